"""Onboarding: bring an existing table into a pipeline (`migrate-assets pipeline add SCHEMA.TABLE`).

Two ways, one result — the table captured by a Debezium connector with the settings the tool relies on
(migrate_assets.resources.debezium), its registry subject present, an Iceberg table made from the live columns
through the type map, the entry in `pipelines:` of the project file, and a verify at the end:

* the connector exists: the table *joins* it through the evolution saga (`evolve_new_table`: subject, Iceberg
  table, signal table, connector filter with a safe restart and an incremental snapshot of the existing rows,
  verify), which compensates every completed step itself when one fails;
* no such connector: it is created for the table (its initial snapshot carries the existing rows), as
  sequential steps each with an explicit undo, run in reverse order when a later step (or verify) fails.

Nothing changes before every check passed (layers configured, table present, every column type mapped, no
Iceberg table in the way). The project file is edited as text: the user's comments and formatting stay.
"""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from migrate_assets import projectfile
from migrate_assets.config import ProjectConfig
from migrate_assets.errors import InvalidInputError, MigrateAssetsError, Problem, RuntimeFailure
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.evolution.preflight import with_user_types
from migrate_assets.evolution.typemap import TypeMapOptions, map_type
from migrate_assets.resources import debezium, project
from migrate_assets.schema.ddl import q, table_ident

Progress = Callable[[str], None]
WAIT = 90.0  # seconds for the connector to run and the subject to appear


class OnboardingFailed(RuntimeFailure):
    """A step of `pipeline add` failed; what was done has been undone (see the report)."""


@dataclass
class Report:
    table: str
    connector: str
    subject: str
    iceberg_table: str
    mode: str  # "new_connector" | "join"
    status: str = "running"  # succeeded | rolled_back | failed | dry_run
    steps: list[dict[str, Any]] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    verify: dict[str, Any] | None = None
    run_id: str | None = None
    error: str | None = None

    def to_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def _qualify(table: str, cfg: ProjectConfig) -> str:
    return project.qualify(table, cfg.database.schema_)


def default_connector(cfg: ProjectConfig) -> str:
    """The connector of the project's pipelines when they share one, else `<database>-cdc`."""
    used = {p.connector for p in cfg.pipelines if p.connector}
    if len(used) == 1:
        return used.pop()  # type: ignore[return-value]
    db = str(conninfo_to_dict(cfg.database.dsn).get("dbname") or "postgres")
    return debezium.slug(db).replace("_", "-") + "-cdc"


def _problem(cfg: ProjectConfig, key: str, message: str) -> InvalidInputError:
    return InvalidInputError([Problem(file=cfg.source_file, key=key, message=message)])


def add(cfg: ProjectConfig, table: str, connector: str | None = None, iceberg_table: str | None = None,
        dry_run: bool = False, progress: Progress | None = None) -> Report:
    say = progress or (lambda _m: None)
    table = _qualify(table, cfg)
    missing = [k for k, v in (("kafka_connect", cfg.kafka_connect), ("schema_registry", cfg.schema_registry),
                              ("iceberg", cfg.iceberg)) if v is None]
    if missing:
        raise _problem(cfg, missing[0], f"`pipeline add` needs {', '.join(missing)} configured (`stack up` writes "
                                        "them for the local stack)")
    if cfg.pipeline_for(table) is not None:
        raise _problem(cfg, "pipelines", f"{table} is already a pipeline table")
    ctx = project.build_context(cfg, log=say)
    assert ctx.connector is not None and ctx.lakehouse is not None and ctx.registry is not None
    cols = ctx.source.columns(table)
    if cols is None:
        raise InvalidInputError(f"table {table} does not exist in the source database", file="<command line>",
                                key="TABLE")
    name = connector or default_connector(cfg)
    ice = iceberg_table or table
    if ctx.lakehouse.state(ice) is not None:
        raise InvalidInputError(f"Iceberg table {ice} already exists", file="<command line>", key="--iceberg-table")
    assert cfg.kafka_connect is not None
    client = project.connector(cfg.kafka_connect.url)  # the layer protocol has no create/exists/delete
    exists = client.exists(name)
    # as the connector will emit them (its type settings, the catalog's enums and domains); an unmapped type:
    # exit 2 before any change
    opts = with_user_types(TypeMapOptions.from_connector(ctx.connector.config(name) if exists else None, None,
                                                         f"connector {name}"), ctx)
    mapped = [(c.name, map_type(c.type, opts).iceberg) for c in cols]
    if exists:
        prefix = ctx.connector.config(name).get("topic.prefix") or name
    else:
        prefix = debezium.slug(str(conninfo_to_dict(cfg.database.dsn).get("dbname") or "cdc"))
    report = Report(table, name, f"{prefix}.{table}-value", ice, "join" if exists else "new_connector")
    if dry_run:
        report.status = "dry_run"
        report.steps = [{"step": s, "status": "pending"} for s in
                        (["join saga (registry, lakehouse, signal table, connector, verify)"] if exists else
                         ["signal table", "connector", "registry subject", "lakehouse"]) + ["project file",
                                                                                           "verify"]]
        return report
    if exists:
        return _join(cfg, ctx, report, say)
    return _create(cfg, ctx, client, report, mapped, ctx.source.count_values(table), say)


# -- the connector exists: the evolution saga ---------------------------------------------------------------------


def _join(cfg: ProjectConfig, ctx: Any, report: Report, say: Progress) -> Report:
    from migrate_assets.evolution import run as evo

    target = PipelineTarget(report.table, report.connector, report.subject, report.iceberg_table)
    store = project.store(cfg)
    try:
        _pre, rec = evo.evolve_new_table(None, target, ctx, project.policy(cfg), store, project.retry_policy(cfg),
                                         on_step=lambda st: say(f"{st.id}: {st.status}"))
    finally:
        store.close()
    report.run_id = rec.run_id
    report.steps = [{"step": s.id, "status": s.status, "seconds": round(s.seconds, 3), "error": s.error}
                    for s in rec.steps]
    if rec.status != "succeeded":
        report.status, report.error = ("rolled_back" if rec.status == "rolled_back" else "failed"), rec.error
        return report
    _add_entry(cfg, report)
    report.steps.append({"step": "project file", "status": "done"})
    report.verify = _verify(ctx, report)
    report.status = "succeeded"
    return report


# -- no connector yet: sequential steps, each with its undo -------------------------------------------------------


def _create(cfg: ProjectConfig, ctx: Any, client: Any, report: Report, mapped: list[tuple[str, str]], rows: int,
            say: Progress) -> Report:
    schema = report.table.split(".", 1)[0]
    signal = f"{schema}.{debezium.SIGNAL_TABLE}"
    slot = debezium.slug(f"ma_{report.connector}")
    publication = slot + "_pub"
    undo: list[tuple[str, Callable[[], object]]] = []

    def step(label: str, fn: Callable[[], Any]) -> Any:
        say(f"{label} ...")
        t0 = time.monotonic()
        entry: dict[str, Any] = {"step": label, "status": "running"}
        report.steps.append(entry)
        out = fn()
        entry.update(status="done", seconds=round(time.monotonic() - t0, 3))
        return out

    try:
        if ctx.source.columns(signal) is None:
            ident = table_ident(*signal.split(".", 1))
            create = q("CREATE TABLE {} (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))",
                       ident)
            step(f"create signal table {signal}", lambda: ctx.source.execute_ddl([create], cfg.lock_timeout))
            undo.append((f"drop signal table {signal}",
                         lambda: ctx.source.execute_ddl([q("DROP TABLE IF EXISTS {}", ident)], cfg.lock_timeout)))
        assert cfg.schema_registry is not None
        config = debezium.connector_config(cfg.database.dsn, cfg.schema_registry.url,
                                           [re.escape(report.table)], report.subject.split(".", 1)[0],
                                           slot=slot, publication=publication, signal_table=signal)
        step(f"create connector {report.connector}", lambda: client.create(report.connector, config))
        undo.append((f"delete connector {report.connector}",
                     lambda: _drop_connector(cfg, client, report.connector, slot, publication)))
        step("wait for the connector to run", lambda: ctx.connector.wait_running(report.connector, WAIT))
        if rows:
            step(f"wait for subject {report.subject}", lambda: _wait_subject(ctx, report.subject))
        else:
            report.warnings.append(f"{report.table} is empty: the converter registers {report.subject} with its "
                                   "first row; verify reports the subject missing until then")
        step(f"create Iceberg table {report.iceberg_table}",
             lambda: ctx.lakehouse.create_table(report.iceberg_table, tuple(mapped)))
        undo.append((f"drop Iceberg table {report.iceberg_table}",
                     lambda: ctx.lakehouse.drop_table(report.iceberg_table)))
        step(f"add {report.table} to {cfg.source_file}", lambda: _add_entry(cfg, report))
        undo.append((f"remove {report.table} from {cfg.source_file}",
                     lambda: projectfile.remove_pipeline(Path(cfg.source_file), report.table,
                                                         cfg.database.schema_)))
        report.verify = step("verify", lambda: _verify(ctx, report))
        differences = [d for layer, v in report.verify["layers"].items() if v["status"] != "consistent"
                       and not (layer == "schema_registry" and not rows) for d in v["differences"] or [v["status"]]]
        if differences:
            raise OnboardingFailed("verify found drift after onboarding: " + "; ".join(differences))
    except (MigrateAssetsError, psycopg.Error, OSError) as exc:
        report.error = str(exc)
        for entry in report.steps:
            if entry["status"] == "running":
                entry["status"], entry["error"] = "failed", str(exc)
        report.status = _undo(undo, report, say)
        return report
    report.status = "succeeded"
    return report


def _undo(undo: list[tuple[str, Callable[[], object]]], report: Report, say: Progress) -> str:
    ok = True
    for label, fn in reversed(undo):
        say(f"undo: {label} ...")
        try:
            fn()
            report.steps.append({"step": f"undo: {label}", "status": "done"})
        except Exception as exc:  # noqa: BLE001 - every undo is tried; the report names what is left
            ok = False
            report.steps.append({"step": f"undo: {label}", "status": "failed", "error": str(exc)})
    return "rolled_back" if ok else "failed"


def _wait_subject(ctx: Any, subject: str) -> None:
    deadline = time.monotonic() + WAIT
    while ctx.registry.latest(subject) is None:
        if time.monotonic() > deadline:
            raise OnboardingFailed(f"subject {subject} did not appear in the registry within {WAIT:.0f}s")
        time.sleep(0.3)


def _drop_connector(cfg: ProjectConfig, client: Any, name: str, slot: str, publication: str) -> None:
    """Delete the connector, then its replication slot (once released) and its publication."""
    client.delete(name)
    deadline = time.monotonic() + 30
    with psycopg.connect(cfg.database.dsn, autocommit=True, connect_timeout=5) as conn:
        while True:
            row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone()
            if row is None:
                break
            if not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
                break
            if time.monotonic() > deadline:
                raise OnboardingFailed(f"replication slot {slot} still in use 30s after deleting {name}")
            time.sleep(0.2)
        conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))


def _add_entry(cfg: ProjectConfig, report: Report) -> None:
    projectfile.add_pipeline(Path(cfg.source_file), {"table": report.table, "connector": report.connector,
                                                     "subject": report.subject,
                                                     "iceberg_table": report.iceberg_table})


def _verify(ctx: Any, report: Report) -> dict[str, Any]:
    from migrate_assets.evolution.verify import verify_table

    target = PipelineTarget(report.table, report.connector, report.subject, report.iceberg_table)
    return verify_table(target, ctx).to_dict()


# -- list / remove --------------------------------------------------------------------------------------------------


def remove(cfg: ProjectConfig, table: str) -> dict[str, Any]:
    """Drop the table's entry from `pipelines:` (the layers keep what they hold: connector, subject, Iceberg)."""
    table = _qualify(table, cfg)
    p = cfg.pipeline_for(table)
    if p is None or not projectfile.remove_pipeline(Path(cfg.source_file), table, cfg.database.schema_):
        raise _problem(cfg, "pipelines", f"{table} is not a pipeline table")
    return {"table": table, "removed_from": cfg.source_file, "kept": {
        "connector": p.connector, "subject": p.subject, "iceberg_table": p.iceberg_table}}


def listing(cfg: ProjectConfig) -> dict[str, Any]:
    return {"pipelines": [{"table": t.table, "connector": t.connector, "subject": t.subject,
                           "iceberg_table": t.iceberg_table} for t in project.targets(cfg)]}
