"""The Apache Iceberg sink a pipeline names (`sink:` in its `pipelines` entry), as pre-flight sees it.

The saga owns the Iceberg table's schema: it creates the table and adds, renames or widens its columns before
the source changes. A sink that does the same on its own races the saga, and a sink that does not write the
pipeline's table (or does not read its topic) makes verify's data check meaningless. Pre-flight reads the sink's
live config from Kafka Connect and refuses such a combination before anything changes, naming the sink, the key
and the value to set.
"""

from __future__ import annotations

import re
import time

from migrate_assets.errors import SafetyRefusal
from migrate_assets.evolution.actions import CreateIcebergTable, IcebergUpdate, RunContext
from migrate_assets.evolution.layers import ConnectorStatus, Layer
from migrate_assets.evolution.planner import EvolutionPlan, PipelineTarget

SINK_CLASS = "org.apache.iceberg.connect.IcebergSinkConnector"
EVOLVE = "iceberg.tables.evolve-schema-enabled"
AUTO_CREATE = "iceberg.tables.auto-create-enabled"
TABLES = "iceberg.tables"
DYNAMIC = "iceberg.tables.dynamic-enabled"
ROUTE_FIELD = "iceberg.tables.route-field"


class SinkConflict(SafetyRefusal):
    """The named sink's settings would race the saga or miss the pipeline's table."""

    def __init__(self, sink: str, key: str, value: str, why: str) -> None:
        self.sink, self.key, self.value = sink, key, value
        super().__init__(f"sink connector {sink}: {why}; set {key}={value} on {sink} and evolve again "
                         "(nothing was changed)")


def _on(cfg: dict[str, str], key: str) -> bool:
    return cfg.get(key, "false").strip().lower() == "true"


def _listed(value: str | None) -> list[str]:
    return [t.strip().lower() for t in (value or "").split(",") if t.strip()]


def routes_to(cfg: dict[str, str], table: str) -> bool:
    """Whether the sink's static routing writes `table`: listed in `iceberg.tables` (records of several topics
    may be routed by `iceberg.table.<name>.route-regex`, but only to a listed table). Dynamic routing names
    tables by a record field's value and cannot be decided from the config: it is taken as routing there."""
    return _on(cfg, DYNAMIC) or table.lower() in _listed(cfg.get(TABLES))


def reads_topic(cfg: dict[str, str], topic: str) -> bool:
    if "topics" in cfg:
        return topic in [t.strip() for t in cfg["topics"].split(",")]
    pattern = cfg.get("topics.regex")
    return pattern is None or re.fullmatch(pattern, topic) is not None


def check_sink(target: PipelineTarget, plan: EvolutionPlan, ctx: RunContext) -> list[tuple[str, str]]:
    """Refuse (exit 3) a sink whose settings would race or break this plan; the checks made, for the report."""
    if not target.sink or ctx.connector is None:
        return []
    sink = target.sink
    cfg = ctx.connector.config(sink)
    if cfg.get("connector.class") != SINK_CLASS:
        raise SinkConflict(sink, "connector.class", SINK_CLASS,
                           f"is a {cfg.get('connector.class')!r}, not the Apache Iceberg sink")
    actions = [s.action for s in plan.steps]
    if _on(cfg, EVOLVE) and any(isinstance(a, IcebergUpdate | CreateIcebergTable) for a in actions):
        raise SinkConflict(sink, EVOLVE, "false",
                           "evolves the Iceberg schema itself, which races this evolution's lakehouse step")
    if _on(cfg, AUTO_CREATE) and any(isinstance(a, CreateIcebergTable) for a in actions):
        raise SinkConflict(sink, AUTO_CREATE, "false",
                           f"creates tables itself, which races this evolution creating {target.iceberg_table}")
    table = target.iceberg_table
    if table and not routes_to(cfg, table):
        listed = ",".join(t.strip() for t in (cfg.get(TABLES) or "").split(",") if t.strip())
        raise SinkConflict(sink, TABLES, f"{listed},{table}" if listed else table,
                           f"does not write {table} (its {TABLES} is {cfg.get(TABLES)!r})")
    topic = target.subject.removesuffix("-value") if target.subject else None
    if topic and not reads_topic(cfg, topic):
        raise SinkConflict(sink, "topics", f"{cfg['topics']},{topic}" if cfg.get("topics") else topic,
                           f"does not read the pipeline's topic {topic}")
    how = f"dynamic routing by {cfg.get(ROUTE_FIELD)}" if _on(cfg, DYNAMIC) else f"writes {table}"
    return [(Layer.LAKEHOUSE, f"sink {sink} {how}, {EVOLVE}={cfg.get(EVOLVE, 'false')}, "
                              f"{AUTO_CREATE}={cfg.get(AUTO_CREATE, 'false')}")]


# -- verify: the sink's rows, not only its status -------------------------------------------------------------


def _behind(target: PipelineTarget, ctx: RunContext, want: dict[str | None, int]) -> dict[str | None, int]:
    """Per column (None = rows): how many of the source's values the Iceberg table still lacks. The sink appends
    (an update is a new row), so Iceberg holding at least the source's count of a column's non-null values means
    they all arrived."""
    assert ctx.lakehouse is not None and target.iceberg_table
    have = {c: ctx.lakehouse.count_values(target.iceberg_table, c) for c in want}
    return {c: n - have[c] for c, n in want.items() if have[c] < n}


FAILED = "FAILED"


def _restart_failed(ctx: RunContext, sink: str, status: ConnectorStatus,
                    bound: float) -> tuple[ConnectorStatus, tuple[str, ...]]:
    """Restart the FAILED parts of the sink (only those) and wait up to `bound` seconds for it to run again.

    A sink whose commit coordinator stops on an error fails its task by design (Iceberg's sink 1.12 does after
    `iceberg.control.commit.max-consecutive-failures`); Kafka Connect never restarts a FAILED task itself. A
    restarted task opens a fresh catalog and resumes from the offsets committed with its last Iceberg snapshot,
    so no row is lost or written twice. What failed and that it was restarted is reported."""
    assert ctx.connector is not None
    why = status.trace.splitlines()[0] if status.trace else "no trace"
    ctx.connector.restart(sink, include_tasks=True, only_failed=True)
    deadline = time.monotonic() + max(bound, 1.0)
    while True:
        status = ctx.connector.status(sink)
        if status.running or time.monotonic() >= deadline:
            break
        time.sleep(0.5)
    note = (f"sink {sink} had a FAILED task ({why}); restarted its failed task(s): "
            + ("RUNNING again" if status.running else f"still {status.state}, tasks {list(status.tasks)}"))
    return status, (note,)


def verify_sink(target: PipelineTarget, ctx: RunContext, columns: list[str],
                bound: float, restart_failed: bool = False) -> tuple[str, tuple[str, ...], tuple[str, ...]]:
    """(status, differences, notes) of the named sink: RUNNING with all tasks, and within `bound` seconds the
    Iceberg table holds the source's rows and, per column, at least as many non-null values as the source had
    when verify started — a column added by an evolution is read back filled, not only present in the schema.
    What is still missing when the bound passes is the sink's lag, in rows and values. With `restart_failed` (the
    user asked: `verify --restart-failed-sink`), a FAILED sink task is restarted once (`_restart_failed`) before the
    check; without it verify only reads, and a FAILED sink is drift that names the flag."""
    assert ctx.connector is not None and ctx.lakehouse is not None and target.sink and target.iceberg_table
    status = ctx.connector.status(target.sink)
    recovered: tuple[str, ...] = ()
    failed = not status.running and FAILED in (status.state, *status.tasks)
    if failed and restart_failed:
        status, recovered = _restart_failed(ctx, target.sink, status, bound)
    if not status.running:
        hint = ("; `verify --restart-failed-sink` restarts its failed task(s) (Connect never does)"
                if failed and not restart_failed else "")
        return "drift", (f"sink {target.sink} is {status.state}, tasks {list(status.tasks)}"
                         + (f": {status.trace.splitlines()[0]}" if status.trace else "") + hint,), recovered
    want: dict[str | None, int] = {None: ctx.source.count_values(target.table)}
    want.update({c: ctx.source.count_values(target.table, c) for c in columns})
    started = time.monotonic()
    behind = _behind(target, ctx, want)
    while behind and time.monotonic() - started < bound:
        time.sleep(min(0.5, bound))
        behind = _behind(target, ctx, want)
    took = time.monotonic() - started
    label = {None: "rows"} | {c: f"column {c} values" for c in columns}
    if behind:
        return "drift", tuple(
            f"sink {target.sink} lags: {target.iceberg_table} lacks {n} of the source's {want[c]} {label[c]} "
            f"after {bound:g}s" for c, n in behind.items()), ()
    filled = ", ".join(f"{c}={want[c]}" for c in columns)
    return "consistent", (), (*recovered, f"sink {target.sink} RUNNING; {target.iceberg_table} holds the source's "
                                          f"{want[None]} rows and non-null values ({filled}) after {took:.1f}s: "
                                          "lag 0")
