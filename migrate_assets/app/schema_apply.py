"""The declarative workflow for pipeline tables: one spec edit, one plan that covers every layer, one apply.

For a table listed in `pipelines:`, the column changes of the declarative plan (add, drop, rename through
`renamed_from`, type, nullability, default, comment) become the operations a change file would hold
(`pipeline_changes`) and go through the evolution engine — the same planner and pre-flight `evolve` uses for
`plan` (`pipeline_section`: registry version, Iceberg update, DDL, connector step, each with its compensation,
and the pre-flight checks), and the same saga for `apply` (`apply_schema`): registry → lakehouse → DDL →
connector → verify, compensated in reverse on failure, never bare DDL. What the pipeline cannot see (indexes,
table comments) is applied directly as before; a primary-key or unique change of a pipeline table is refused
(it changes the topic's key: `evolve` it). Tables outside `pipelines:` take the plain path unchanged.

`plan` and `apply --dry-run` only read: the evolution pre-flight runs with the source in read-only mode.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import psycopg

from migrate_assets.config import ProjectConfig
from migrate_assets.errors import MigrateAssetsError, UnsafeChangeRefused
from migrate_assets.expand.handoff import EXPANDABLE
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.expand.shape import read_live
from migrate_assets.schema import ops
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import for_change_kind
from migrate_assets.schema.plan import Change, Plan

#: declarative change kinds that are column operations the pipeline sees (carried by the saga)
COLUMN_KINDS = frozenset({"add_column", "drop_column", "rename_column", "alter_type", "set_not_null",
                          "drop_not_null", "set_default", "drop_default", "set_identity"})
#: kinds the pipeline does not see (the topic key follows the primary key only): applied directly even on a
#: pipeline table
#: changes the published columns do not see (indexes, keys other than the primary key, CHECK and FOREIGN KEY
#: constraints, comments, identity sequence options): applied directly on a pipeline table too
DIRECT_KINDS = frozenset({"add_index", "drop_index", "add_unique", "drop_unique", "set_comment", "add_check",
                          "drop_check", "add_foreign_key", "drop_foreign_key", "validate_constraint",
                          "set_identity_options"})


def pipeline_tables(cfg: ProjectConfig) -> set[str]:
    schema = cfg.database.schema_
    return {p.table if "." in p.table else f"{schema}.{p.table}" for p in cfg.pipelines}


def _operation(conn: psycopg.Connection[Any], c: Change, want: Table) -> ops.Operation | None:
    """The change-file operation of one declarative column change (None: not a column operation); each
    operation class builds itself (`Operation.from_declared`)."""
    cls = for_change_kind(c.kind)
    if cls is None or not c.column:
        return None
    return cls.from_declared(c.column, want.column(c.column), lambda: read_live(conn, want.schema, want.name))


@dataclass
class Split:
    """The declarative plan divided: what runs directly, and one change set per pipeline table."""

    direct: Plan
    changes: list[ChangeSet] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    #: pipeline tables whose breaking changes stay in the direct plan for expand–contract (on_breaking_change:
    #: expand_contract): the connector is told to skip the helpers before the expand runs
    expanding: list[str] = field(default_factory=list)


def split(conn: psycopg.Connection[Any], cfg: ProjectConfig, plan: Plan, desired: Sequence[Table]) -> Split:
    """The column changes of pipeline tables as change sets (in plan order, as the diff orders a table's
    operations), the rest as the direct plan; changes of pipeline tables that neither path may carry are
    refused with the reason."""
    piped = pipeline_tables(cfg)
    wanted = {t.qualified: t for t in desired}
    per_table: dict[str, list[ops.Operation]] = {}
    keep: list[Change] = []
    refusals: list[str] = []
    expanding: list[str] = []
    handoff = cfg.on_breaking_change == "expand_contract"
    for c in plan.changes:
        if c.table not in piped or c.table not in wanted or c.kind in DIRECT_KINDS:
            keep.append(c)
            continue
        if handoff and c.breaking and c.kind in EXPANDABLE and c.column:  # CDC-aware expand–contract
            keep.append(c)
            if c.table not in expanding:
                expanding.append(c.table)
            continue
        if c.kind == "create_table":
            refusals.append(f"{c.table}: a pipeline table that does not exist yet joins the pipeline with "
                            "`migrate-assets evolve` (no change file), which creates it from its spec in every layer")
            continue
        op = _operation(conn, c, wanted[c.table]) if c.kind in COLUMN_KINDS else None
        if op is None:
            refusals.append(f"{c.table}: {c.description} ({c.kind}) is not carried through the pipeline by "
                            "`apply`; write it as a change file for `migrate-assets evolve`")
            continue
        per_table.setdefault(c.table, []).append(op)
    sets = [ChangeSet(schema=t.split(".", 1)[0], table=t.split(".", 1)[1], operations=tuple(o),
                      source="<spec files>") for t, o in per_table.items()]
    return Split(replace(plan, changes=tuple(keep)), sets, refusals, expanding)


# -- the cross-layer plan ----------------------------------------------------------------------------------------


def _context(cfg: ProjectConfig, read_only: bool) -> Any:
    from migrate_assets.resources import project
    from migrate_assets.resources.postgres import PostgresSource

    ctx = project.build_context(cfg)
    if read_only and isinstance(ctx.source, PostgresSource):
        ctx.source.read_only = True  # pre-flight reads in READ ONLY transactions
    return ctx


def _run_dict(report: Any, rec: Any, change: ChangeSet) -> dict[str, Any]:
    from migrate_assets.evolution import run as evo

    data = evo.result_dict(rec)
    data["operations"] = [o.to_dict() for o in change.operations]
    data["preflight"] = [{"layer": str(layer), "check": c} for layer, c in report.checks]
    return data


def plan_pipeline(cfg: ProjectConfig, plan: Plan) -> dict[str, Any] | None:
    """`pipeline_section` on a read-only connection of its own, with the project's specs."""
    if not plan.changes or not (pipeline_tables(cfg) & {c.table for c in plan.changes}):
        return None
    from migrate_assets.resources import database

    with database.schema_connection(cfg, read_only=True) as conn:
        return pipeline_section(conn, cfg, plan, database.specs(cfg))


def pipeline_section(conn: psycopg.Connection[Any], cfg: ProjectConfig, plan: Plan,
                     desired: Sequence[Table]) -> dict[str, Any] | None:
    """For `plan`: each pipeline table's changes as `evolve --dry-run` plans them (pre-flight of every layer,
    then the saga's steps with their compensation), and what `apply` refuses. None when no pipeline table
    changes. Reads only."""
    parts = split(conn, cfg, plan, desired)
    if not parts.changes and not parts.refusals and not parts.expanding:
        return None
    from migrate_assets.app.evolve import plan_changes
    from migrate_assets.resources import project

    ctx = _context(cfg, read_only=True)
    tables: list[dict[str, Any]] = []
    for change in parts.changes:  # one at a time, so one table's refusal does not hide the others' plans
        try:
            [planned] = plan_changes([change], ctx, lambda t: project.target(cfg, t), project.policy(cfg),
                                     project.retry_policy(cfg), "<spec files>")
            report, rec = planned.report, planned.record
        except MigrateAssetsError as exc:  # pre-flight refused, or a layer is down: the plan says which
            tables.append({"table": change.qualified, "status": "refused" if exc.exit_code == 3 else "failed",
                           "operations": [o.to_dict() for o in change.operations], "error": str(exc),
                           "exit_code": exc.exit_code})
            continue
        tables.append({"table": change.qualified, **_run_dict(report, rec, change)})
    return {"tables": tables, "refusals": parts.refusals, "expand_contract": parts.expanding}


# -- apply -------------------------------------------------------------------------------------------------------


@dataclass
class Applied:
    plan: Plan  #: what ran directly
    result: Any  #: its ApplyResult (None: a pipeline run failed first, nothing ran directly)
    expanded: list[dict[str, Any]]
    pipeline: list[dict[str, Any]] = field(default_factory=list)  #: one evolution run per pipeline table

    @property
    def pipeline_ok(self) -> bool:
        return all(r.get("status") in ("succeeded", "dry_run") for r in self.pipeline)


def apply_schema(conn: psycopg.Connection[Any], cfg: ProjectConfig, plan: Plan, desired: list[Table], opts: Any,
                 dry_run: bool = False, on_step: Callable[[Any], None] | None = None) -> Applied:
    """Apply `plan`: the pipeline tables' column changes through the evolution saga first (one run per table,
    stopping at the first that does not succeed — its layers compensated by the saga), then the rest directly
    (`resources.database.apply_schema`: one transaction, concurrent index builds, `on_breaking_change`)."""
    from migrate_assets.resources import database

    parts = split(conn, cfg, plan, desired)
    if parts.refusals:
        raise UnsafeChangeRefused(parts.refusals)
    runs: list[dict[str, Any]] = []
    if parts.changes:
        from migrate_assets.app.evolve import evolve_tables, plan_changes
        from migrate_assets.app.fanout import DatabaseLayerLock
        from migrate_assets.resources import project

        ctx = _context(cfg, read_only=dry_run)
        # every table's pre-flight passes before any table changes anything (as `evolve` with several files)
        planned = plan_changes(parts.changes, ctx, lambda t: project.target(cfg, t), project.policy(cfg),
                               project.retry_policy(cfg), "<spec files>")
        store = None if dry_run else project.store(cfg)
        try:
            outcome = evolve_tables(planned, ctx, store, project.retry_policy(cfg),
                                    None if dry_run else DatabaseLayerLock(cfg), on_step, dry_run=dry_run)
        finally:
            if store is not None:
                store.close()
        by_table = {c.qualified: c for c in parts.changes}
        runs = [{"table": p.table, **_run_dict(p.report, p.record, by_table[p.table])} for p in outcome.runs]
        if not outcome.succeeded:
            return Applied(replace(parts.direct, changes=()), None, [], runs)
        if not dry_run:  # the tables moved: the rest is planned again on the live schema the saga left
            from migrate_assets.schema.planner import build_plan

            again = split(conn, cfg, build_plan(conn, desired, opts, scope=plan.scope), desired)
            if again.changes or again.refusals:
                raise UnsafeChangeRefused([f"{c.qualified}: still differs from its spec after the pipeline change "
                                           f"({len(c.operations)} operation(s)); run `migrate-assets plan`"
                                           for c in again.changes] + again.refusals)
            parts = again
    if parts.expanding:
        from migrate_assets.app.expand_pipeline import exclude_helpers

        for table in parts.expanding:  # before the helpers exist: the connector must not publish them
            exclude_helpers(cfg, table, dry_run=dry_run)
    direct, result, expanded = database.apply_schema(conn, cfg, parts.direct, desired, opts, dry_run=dry_run)
    return Applied(direct, result, expanded, runs)
