"""One pipeline table on the in-memory layers (`migrate_assets.evolution.memory`): the fixture of the fast saga
tests. The real-stack tests (test_evolve_stack, test_faults, test_crash) cover the same paths on the real
services."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from migrate_assets.evolution.actions import Bounds, RunContext
from migrate_assets.evolution.derive import avro_row_fields, new_subject_schema
from migrate_assets.evolution.layers import SourceColumn
from migrate_assets.evolution.memory import MemoryConnector, MemoryLakehouse, MemoryRegistry, MemorySource
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.evolution.run import attach_verifier
from migrate_assets.evolution.saga import RetryPolicy
from migrate_assets.evolution.typemap import map_type
from migrate_assets.expand import parse_change_text
from migrate_assets.expand.ops import ChangeSet

TABLE = "public.t"
COLUMNS = [SourceColumn("id", "bigint", False), SourceColumn("email", "text", True),
           SourceColumn("amount", "integer", True)]
TARGET = PipelineTarget(TABLE, "c", "app.public.t-value", "lake.t")
CONFIG = {"slot.name": "s", "table.include.list": "public.t", "topic.prefix": "app"}
FAST = RetryPolicy(attempts=3, backoff=0.001, max_backoff=0.001)
FLAT = '{"type":"record","name":"Value","namespace":"app.public.t","fields":[]}'


@dataclass
class MemoryStack:
    source: MemorySource
    registry: MemoryRegistry
    lakehouse: MemoryLakehouse
    connector: MemoryConnector

    def context(self) -> RunContext:
        ctx = RunContext(self.source, self.registry, self.lakehouse, self.connector,
                         bounds=Bounds(slot_catch_up=0.3, running=0.3, progress=0.3))
        attach_verifier(ctx, [TARGET])
        return ctx

    def state(self) -> dict[str, Any]:
        """What each layer looks like, for before/after comparisons."""
        latest = self.registry.latest(TARGET.subject or "")
        ice = self.lakehouse.state(TARGET.iceberg_table or "")
        return {
            "source_db": self.source.tables.get(TABLE),
            "schema_registry": (latest.version, avro_row_fields(latest.schema)) if latest else None,
            "lakehouse": (ice.schema_id, ice.fields) if ice else None,
            "connector": self.connector.config("c"),
        }


def stack(config: dict[str, str] | None = None) -> MemoryStack:
    source = MemorySource({TABLE: COLUMNS})
    registry = MemoryRegistry()
    cols = [(c.name, c.type, c.nullable, None) for c in COLUMNS]
    registry.register(TARGET.subject or "", new_subject_schema(FLAT, "app", "public", "t", cols))
    lake = MemoryLakehouse()
    lake.add_table(TARGET.iceberg_table or "", [(c.name, map_type(c.type).iceberg) for c in COLUMNS])
    conn = MemoryConnector(source)
    conn.add("c", config or CONFIG)
    return MemoryStack(source, registry, lake, conn)


def change(*ops: str) -> ChangeSet:
    return parse_change_text("table: t\noperations:\n" + "".join(f"  - {o}\n" for o in ops))
