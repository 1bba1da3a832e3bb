"""From a `migrate.yaml` project to the database-only engines' inputs: connections, spec tables, plan / apply /
expand options, the migrations runner, and the expand–contract hand-off of `apply`.

The CLI (`plan`, `apply`, `migrations`, `expand` …) and the Dagster database jobs both build these here, so a
setting read from the project means the same on both sides. Kept apart from `project` (the pipeline layers) so the
database-only commands never load the layer clients (pyiceberg, confluent-kafka, httpx: about a second).
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import psycopg

from migrate_assets.config import ProjectConfig, redact_dsn
from migrate_assets.errors import ChangeFileError, ConfigError, LayerUnreachableError
from migrate_assets.schema.session import read_only_options, set_timeouts

# `plan` (and every CI `plan --check`) needs only the lines above and the planner: the spec loader and planner,
# the expand–contract engine, `apply` and the migrations runner load in the functions that use them, so
# `migrations up` loads no planner and `plan` no runner (tests/cli/test_startup_imports.py holds this)
if TYPE_CHECKING:
    from migrate_assets.expand import runner
    from migrate_assets.expand.backfill import ProgressFn
    from migrate_assets.expand.ops import ChangeSet
    from migrate_assets.schema.apply import ApplyOptions, ApplyResult
    from migrate_assets.schema.model import Table
    from migrate_assets.schema.plan import Plan
    from migrate_assets.schema.planner import PlanOptions
    from migrate_assets.versioned import MigrationRunner, StateTable, Step

#: parsed-YAML cache of the spec files, by content hash, under the project folder; MIGRATE_ASSETS_NO_CACHE=1 disables it
SPEC_CACHE = ".migrate/cache/specs"
#: where `apply` writes the change files of the breaking changes it hands to expand–contract
CHANGES_DIR = "changes"


@contextmanager
def connect(cfg: ProjectConfig, application_name: str = "migrate-assets",
            autocommit: bool = True, read_only: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """A connection to the project's database, closed on exit.

    A bounded connect timeout, so a stopped server fails in seconds instead of hanging. Failing to connect is a
    transient `LayerUnreachableError` (a Dagster RetryPolicy retries it); a DSN libpq cannot parse is a config
    error, which no retry fixes. `read_only` (plan, dry runs, status): every transaction is READ ONLY, so even
    a statement that should never have been sent cannot write.
    """
    extra: dict[str, Any] = {}
    try:
        if read_only:
            extra["options"] = read_only_options(cfg.database.dsn)
        conn = psycopg.connect(cfg.database.dsn, autocommit=autocommit, connect_timeout=10,
                               application_name=application_name, **extra)
    except psycopg.OperationalError as exc:
        from migrate_assets.evolution.layers import Layer

        raise LayerUnreachableError(Layer.SOURCE_DB, f"{redact_dsn(cfg.database.dsn)}: {str(exc).strip()}") from None
    except psycopg.ProgrammingError as exc:
        raise ConfigError(f"invalid DSN: {str(exc).strip()}", file=cfg.source_file, key="database.dsn") from None
    try:
        yield conn
    finally:
        conn.close()


@contextmanager
def schema_connection(cfg: ProjectConfig, application_name: str = "migrate-assets",
                      read_only: bool = False) -> Iterator[psycopg.Connection[Any]]:
    """An autocommit connection for planning and applying: the catalog reads wait at most `lock_timeout`
    (`read_only`: for `plan` and dry runs, see `connect`)."""
    with connect(cfg, application_name, read_only=read_only) as conn:
        set_timeouts(conn, local=False, lock_timeout=cfg.lock_timeout)
        yield conn


def specs(cfg: ProjectConfig, missing_ok: bool = False) -> list[Table]:
    """The tables the spec files declare; `missing_ok` skips spec folders that do not exist (instead of an error).

    Parsed YAML is reused by content hash (validation still runs every time), so an unchanged spec set loads fast.
    """
    from migrate_assets.schema.spec import load_specs

    return load_specs(*_spec_sources(cfg, missing_ok))


def _spec_sources(cfg: ProjectConfig, missing_ok: bool = False) -> tuple[list[Path], str, Path | None]:
    """The spec paths, default schema and parsed-YAML cache directory of the project."""
    paths = [cfg.path(p) for p in cfg.schemas]
    cache = None if os.environ.get("MIGRATE_ASSETS_NO_CACHE") else cfg.path(SPEC_CACHE)
    return [p for p in paths if p.exists()] if missing_ok else paths, cfg.database.schema_, cache


def check_specs(cfg: ProjectConfig, tables: Sequence[Table]) -> None:
    """Postgres checks the defaults and index predicates of `tables` on a read-only connection (nothing runs):
    for paths that build DDL from specs without a plan (evolve of tables joining the pipeline)."""
    if tables:
        from migrate_assets.schema.planner import check_tables

        with connect(cfg, read_only=True) as conn:
            check_tables(conn, tables)


def state_table(cfg: ProjectConfig) -> StateTable:
    """The migrations' state table (`lock_table`); a malformed name is a config error."""
    from migrate_assets.versioned.state import StateTable

    try:
        return StateTable.parse(cfg.lock_table, cfg.database.schema_)
    except ValueError as exc:
        raise ConfigError(str(exc), file=cfg.source_file, key="lock_table") from None


def plan_options(cfg: ProjectConfig, tables: Sequence[str] = (), allow_drop_table: bool = False) -> PlanOptions:
    """Plan options; the migrations' state table is never the planner's to drop or change."""
    from migrate_assets.schema.planner import PlanOptions

    lock = state_table(cfg)
    return PlanOptions(default_schema=cfg.database.schema_, only_tables=tuple(tables),
                       allow_drop_table=allow_drop_table, ignore=frozenset({(lock.schema, lock.name)}))


def schema_plan(cfg: ProjectConfig, tables: Sequence[str] = (), allow_drop_table: bool = False,
                application_name: str = "migrate-assets") -> Plan:
    """The declarative plan: the spec files against the live database."""
    from migrate_assets.schema.model import gc_paused
    from migrate_assets.schema.plan import with_spec_gaps
    from migrate_assets.schema.planner import Prefetch, build_plan
    from migrate_assets.schema.spec import read_specs

    opts = plan_options(cfg, tables, allow_drop_table)
    raw = read_specs(*_spec_sources(cfg))  # read; parsed and validated below, while the catalog is read
    with contextlib.ExitStack() as stack:
        # no cyclic-GC passes over the many small objects of both sides while they are built and compared
        stack.enter_context(gc_paused(promote=True))
        try:
            conn = stack.enter_context(schema_connection(cfg, application_name, read_only=True))
        except (LayerUnreachableError, ConfigError):
            raw.build()  # a spec problem is reported before a bad or unreachable database, as without the overlap
            raise
        prefetch = stack.enter_context(Prefetch(conn, raw.table_keys, opts))
        desired = raw.build()
        return with_spec_gaps(build_plan(conn, desired, opts, prefetch=prefetch), desired)


def apply_options(cfg: ProjectConfig, opts: PlanOptions) -> ApplyOptions:
    from migrate_assets.schema.apply import ApplyOptions

    return ApplyOptions(on_breaking_change=cfg.on_breaking_change, lock_timeout=cfg.lock_timeout,
                        statement_timeout=cfg.statement_timeout, attempts=cfg.retries.attempts,
                        backoff=cfg.retries.backoff, max_backoff=cfg.retries.max_backoff, ignore=opts.ignore)


def apply_schema(conn: psycopg.Connection[Any], cfg: ProjectConfig, plan: Plan, desired: list[Table],
                 opts: PlanOptions, dry_run: bool = False, on_attempt: Callable[[int], None] | None = None,
                 on_progress: ProgressFn | None = None) -> tuple[Plan, ApplyResult, list[dict[str, Any]]]:
    """Apply `plan` under the project's `on_breaking_change`.

    With `expand_contract`, breaking column changes leave the plan and are expanded instead, each saved as a change
    file (unless `dry_run`) for a later `contract`. Returns the plan applied, its result, and per hand-off
    `{"table", "change_file", "result"}`.
    """
    from migrate_assets.expand.handoff import split_for_expand, write_change_file
    from migrate_assets.schema.apply import apply_plan

    change_sets: list[ChangeSet] = []
    if cfg.on_breaking_change == "expand_contract":
        plan, change_sets = split_for_expand(conn, plan, desired)
    result = apply_plan(conn, plan, apply_options(cfg, opts), dry_run=dry_run, on_attempt=on_attempt)
    expanded: list[dict[str, Any]] = []
    for cs in change_sets:
        res = expand(conn, cfg, cs, expand_options(cfg), dry_run=dry_run, on_progress=on_progress)
        path = None if dry_run else write_change_file(cs, str(cfg.path(CHANGES_DIR)))
        expanded.append({"table": cs.qualified, "change_file": path, "result": res})
    return plan, result, expanded


def read_change(cfg: ProjectConfig, path: str | Path) -> ChangeSet:
    """A change file; bare table names are in the project's schema. Its types and expressions are checked by
    Postgres on a read-only connection (`expand.validate.expression_problems`: nothing runs) before any
    command can embed them: a problem is a ChangeFileError (exit 2) naming file, line and key."""
    from migrate_assets.expand import load_change_file
    from migrate_assets.expand.shape import read_live
    from migrate_assets.expand.validate import expression_problems

    change = load_change_file(str(path), cfg.database.schema_)
    with connect(cfg, "migrate-assets", read_only=True) as conn:
        problems = expression_problems(conn, change, read_live(conn, change.schema, change.table))
    if problems:
        raise ChangeFileError(problems)
    return change


def expand_options(cfg: ProjectConfig, batch_size: int | None = None, batch_delay: float = 0.0) -> runner.Options:
    from migrate_assets.expand import runner

    return runner.Options(state_schema=cfg.database.schema_, batch_size=batch_size or runner.Options.batch_size,
                          batch_delay=batch_delay, lock_timeout=cfg.lock_timeout, attempts=cfg.retries.attempts,
                          backoff=cfg.retries.backoff, max_backoff=cfg.retries.max_backoff)


def expand(conn: psycopg.Connection[Any], cfg: ProjectConfig, change_set: ChangeSet, opts: runner.Options,
           dry_run: bool = False, on_progress: ProgressFn | None = None) -> dict[str, Any]:
    """`runner.expand`; a table one of the project's pipelines captures is reported as CDC-tracked."""
    from migrate_assets.expand import runner

    return runner.expand(conn, change_set, opts, dry_run=dry_run,
                         cdc_tracked=cfg.pipeline_for(change_set.qualified) is not None, on_progress=on_progress)


def migration_runner(cfg: ProjectConfig, on_step: Callable[[Step], None] | None = None) -> MigrationRunner:
    from migrate_assets.versioned import MigrationRunner

    return MigrationRunner(cfg.database.dsn, cfg.path(cfg.migrations), state_table(cfg), lock_wait=cfg.lock_wait,
                           lock_timeout=cfg.lock_timeout, statement_timeout=cfg.statement_timeout, on_step=on_step)
