"""The Apache Iceberg sink a pipeline names (`sink:` in its `pipelines` entry), as pre-flight sees it.

The saga owns the Iceberg table's schema: it creates the table and adds, renames or widens its columns before
the source changes. A sink that does the same on its own races the saga, and a sink that does not write the
pipeline's table (or does not read its topic) makes verify's data check meaningless. Pre-flight reads the sink's
live config from Kafka Connect and refuses such a combination before anything changes, naming the sink, the key
and the value to set.
"""

from __future__ import annotations

import re

from migrate_assets.errors import SafetyRefusal
from migrate_assets.evolution.actions import CreateIcebergTable, IcebergUpdate, RunContext
from migrate_assets.evolution.layers import Layer
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
