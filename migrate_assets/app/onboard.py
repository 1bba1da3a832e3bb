"""Onboarding: bring an existing table into a pipeline (`migrate-assets pipeline add SCHEMA.TABLE`).

Two ways, one result — the table captured by a Debezium connector with the settings the tool relies on
(migrate_assets.resources.debezium), its registry subject present, an Iceberg table made from the live columns
through the type map, the entry in `pipelines:` of the project file, and a verify at the end:

* the connector exists: the table *joins* it through the evolution saga as `evolve` runs it (`app.evolve`: subject,
  Iceberg table, signal table, connector filter with a safe restart under the layer lock and an incremental
  snapshot of the existing rows, verify), which compensates every completed step itself when one fails;
* no such connector: it is created for the table (its initial snapshot carries the existing rows) by a saga of
  its own (`_plan_new_connector`: signal table, connector, subject, Iceberg table, verify), a stored run like
  every evolution (`runs list`, `evolve --resume/--rollback RUN`) whose failure compensates every completed step:
  the connector goes with its source offsets, replication slot, publication and the subjects it registered.

The Iceberg table gets the source table's primary key as its identifier fields (required columns).

Nothing changes before every check passed (layers configured, table present, every column type mapped, no
Iceberg table in the way). Either way the entry goes into the project file before the saga runs (an interrupted
run's `evolve --resume RUN` verifies it) and the file is put back when the run does not succeed; it is edited as
text: the user's comments and formatting stay.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from psycopg.conninfo import conninfo_to_dict

from migrate_assets import projectfile
from migrate_assets.config import ProjectConfig
from migrate_assets.errors import InvalidInputError, Problem
from migrate_assets.evolution.actions import (
    CreateConnector,
    CreateIcebergTable,
    SourceDdl,
    VerifyOnboarded,
    WaitForSubject,
)
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.planner import EvolutionPlan, PipelineTarget, PlannedStep
from migrate_assets.evolution.preflight import with_user_types
from migrate_assets.evolution.typemap import TypeMapOptions, map_type
from migrate_assets.resources import debezium, project
from migrate_assets.schema.ddl import q, table_ident

Progress = Callable[[str], None]
WAIT = 90.0  # seconds for the subject to appear


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
    next: str | None = None

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


def _free_prefix(client: Any, name: str, wanted: str) -> str:
    """The topic prefix of a new connector: the database's name, unless another connector of the cluster has it,
    then the connector's name. Two Debezium connectors of one prefix share their metrics' names: the second
    one's task waits about two minutes for names that never come free before it snapshots (seen on Connect)."""
    taken = {client.config(c).get("topic.prefix") for c in client.list()}
    for prefix in (wanted, debezium.slug(name)):
        if prefix not in taken:
            return prefix
    raise InvalidInputError(f"topic prefixes {wanted} and {debezium.slug(name)} are both used by other connectors: "
                            "choose another --connector", file="<command line>", key="--connector")


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
        prefix = _free_prefix(client, name, debezium.slug(str(conninfo_to_dict(cfg.database.dsn).get("dbname")
                                                               or "cdc")))
    report = Report(table, name, f"{prefix}.{table}-value", ice, "join" if exists else "new_connector")
    new = None if exists else _plan_new_connector(cfg, ctx, report, mapped)
    if dry_run:
        report.status = "dry_run"
        plan = new.plan if new is not None else _join_planned(cfg, ctx, report).report.plan
        report.warnings += list(plan.warnings)
        steps = [{"step": f"{st.id}: {st.action.describe()}", "status": "pending", "compensation": st.compensation}
                 for st in plan.steps]
        entry = [{"step": f"add {report.table} to {cfg.source_file}", "status": "pending"}]
        report.steps = entry + steps
        return report
    if new is None:
        return _join(cfg, ctx, report, say)
    return _create(cfg, ctx, report, new, say)


# -- the connector exists: the evolution saga ---------------------------------------------------------------------


def _join_planned(cfg: ProjectConfig, ctx: Any, report: Report) -> Any:
    """The join saga after its pre-flight (reads only): `app.evolve`'s plan of a table joining its connector."""
    from migrate_assets.app import evolve as use_case

    target = PipelineTarget(report.table, report.connector, report.subject, report.iceberg_table)
    return use_case.plan_new_tables([(target, None)], ctx, project.policy(cfg), project.retry_policy(cfg),
                                    "<command line>")[0]


def _join(cfg: ProjectConfig, ctx: Any, report: Report, say: Progress) -> Report:
    """Run the join saga as `evolve` runs it: under the database's evolution layer lock (it restarts the connector,
    its config change rebased on the live config)."""
    from migrate_assets.app import evolve as use_case
    from migrate_assets.app.fanout import DatabaseLayerLock

    planned = _join_planned(cfg, ctx, report)
    report.warnings += list(planned.report.plan.warnings)

    def run(store: Any, on_step: Callable[[Any], None]) -> Any:
        outcome = use_case.evolve_tables([planned], ctx, store, project.retry_policy(cfg), DatabaseLayerLock(cfg),
                                         on_step)
        return outcome.runs[0].record

    return _onboard(cfg, ctx, report, run, say)


# -- no connector yet: a saga that creates it ---------------------------------------------------------------------


@dataclass(frozen=True)
class NewConnector:
    """What pre-flight found for a connector to be created: names, row count, key, and the plan."""

    slot: str
    publication: str
    signal: str
    rows: int
    key: tuple[str, ...]
    plan: EvolutionPlan


def _plan_new_connector(cfg: ProjectConfig, ctx: Any, report: Report, mapped: list[tuple[str, str]]) -> NewConnector:
    """Read every layer and check before anything changes (the names the connector would take must be free), and
    plan the saga: signal table, connector (its compensation deletes it with slot, publication and the subjects
    its converters registered), the subject, the Iceberg table (primary key as identifier fields), verify."""
    schema = report.table.split(".", 1)[0]
    signal = f"{schema}.{debezium.SIGNAL_TABLE}"
    slot = debezium.slug(f"ma_{report.connector}")
    publication = slot + "_pub"
    if ctx.source.slot(slot) is not None:
        raise InvalidInputError(f"replication slot {slot} (of connector {report.connector}) already exists: drop it "
                                "or choose another --connector", file="<command line>", key="--connector")
    with ctx.source.connect() as conn:
        if conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone():
            raise InvalidInputError(f"publication {publication} (of connector {report.connector}) already exists: "
                                    "drop it or choose another --connector", file="<command line>", key="--connector")
    key_subject = report.subject[: -len("-value")] + "-key"
    new_subjects = tuple(s for s in (report.subject, key_subject) if ctx.registry.latest(s) is None)
    rows = ctx.source.count_values(report.table)
    key = tuple(ctx.source.primary_key(report.table))
    assert cfg.schema_registry is not None
    config = debezium.connector_config(cfg.database.dsn, cfg.schema_registry.url, [re.escape(report.table)],
                                       report.subject.split(".", 1)[0], slot=slot, publication=publication,
                                       signal_table=signal)
    steps: list[PlannedStep] = []
    warnings: list[str] = []
    if ctx.source.columns(signal) is None:
        ident = table_ident(*signal.split(".", 1))
        create = q("CREATE TABLE {} (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))",
                   ident)
        steps.append(PlannedStep(Layer.SOURCE_DB.step, Layer.SOURCE_DB,
                                 SourceDdl(signal, (create,), (q("DROP TABLE {}", ident),), cfg.lock_timeout,
                                           ctx.source.fingerprint(signal)),
                                 True, "absent", f"drop the signal table {signal}"))
    steps.append(PlannedStep(Layer.CONNECTOR.step, Layer.CONNECTOR,
                             CreateConnector(report.connector, tuple(sorted(config.items())), slot, publication,
                                             new_subjects),
                             True, "absent", f"delete connector {report.connector} with its source offsets, slot "
                             f"{slot} and publication {publication}"
                             + (f"; soft-delete {', '.join(new_subjects)}" if new_subjects else "")))
    if rows:
        steps.append(PlannedStep(Layer.SCHEMA_REGISTRY.step, Layer.SCHEMA_REGISTRY, WaitForSubject(report.subject, WAIT),
                                 True, None, "nothing to undo (the subject goes with the connector)"))
    else:  # not a skipped layer (those are the ones not configured): nothing to wait for yet
        warnings.append(f"{report.table} is empty: the converter registers {report.subject} with its first row; "
                        "verify reports the subject missing until then")
    steps.append(PlannedStep(Layer.LAKEHOUSE.step, Layer.LAKEHOUSE,
                             CreateIcebergTable(report.iceberg_table, tuple(mapped), key),
                             True, "absent", f"drop {report.iceberg_table}"))
    steps.append(PlannedStep(Layer.VERIFY.step, Layer.VERIFY, VerifyOnboarded(report.table, report.subject), True,
                             None, "nothing to undo"))
    plan = EvolutionPlan(report.table, ({"onboard": {"table": report.table, "connector": report.connector,
                                                     "snapshot": "initial"}},),
                         tuple(steps), (), (), tuple(warnings))
    return NewConnector(slot, publication, signal, rows, key, plan)


def _create(cfg: ProjectConfig, ctx: Any, report: Report, new: NewConnector, say: Progress) -> Report:
    """The saga that creates the connector (no layer lock: it restarts no connector another table shares)."""
    from migrate_assets.evolution import run as evo
    from migrate_assets.evolution.saga import Saga

    report.warnings += list(new.plan.warnings)

    def run(store: Any, on_step: Callable[[Any], None]) -> Any:
        evo.attach_verifier(ctx, [PipelineTarget(report.table, report.connector, report.subject,
                                                 report.iceberg_table)])
        return Saga(ctx, store, project.retry_policy(cfg), on_step).start(new.plan)

    return _onboard(cfg, ctx, report, run, say)


def _onboard(cfg: ProjectConfig, ctx: Any, report: Report, run: Callable[[Any, Callable[[Any], None]], Any],
             say: Progress) -> Report:
    """The entry goes into the project file first (a run interrupted here is finished by `evolve --resume RUN`,
    whose verify reads it), then the saga runs (a stored run); a run that does not succeed puts the file back."""
    from migrate_assets.evolution.saga import RunInterrupted

    path = Path(cfg.source_file)
    text_before = path.read_text()
    _add_entry(cfg, report)
    text_after = path.read_text()
    report.steps.append({"step": f"add {report.table} to {cfg.source_file}", "status": "done"})
    store = project.store(cfg)
    try:
        rec = run(store, lambda st: say(f"{st.id}: {st.status}"))
    except RunInterrupted as stop:
        rec = stop.record
    finally:
        store.close()
    report.run_id = rec.run_id
    report.steps += [{"step": s.id, "status": s.status, "seconds": round(s.seconds, 3), "error": s.error,
                      "compensation": s.compensation} for s in rec.steps]
    if rec.status == "succeeded":
        report.verify = _verify(ctx, report)
        report.status = "succeeded"
        return report
    report.error = rec.error
    if rec.status == "interrupted":
        report.status = "failed"
        report.next = (f"interrupted: `migrate-assets evolve --resume {rec.run_id}` finishes the onboarding, "
                       f"`migrate-assets evolve --rollback {rec.run_id}` and `migrate-assets pipeline remove "
                       f"{report.table}` undo it")
        return report
    if path.read_text() == text_after:  # untouched since: exactly as it was (no empty `pipelines: []` left)
        path.write_text(text_before)
    else:
        projectfile.remove_pipeline(path, report.table, cfg.database.schema_)
    report.steps.append({"step": f"undo: remove {report.table} from {cfg.source_file}", "status": "done"})
    if rec.status == "rolled_back":
        report.status = "rolled_back"
    else:
        report.status = "failed"
        report.next = (f"some layers are not undone yet (see each step's compensation): run `migrate-assets evolve "
                       f"--rollback {rec.run_id}` again once they are reachable")
    return report


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
