"""Two pipeline tables (`public.t`, `public.u`) behind one connector, on the in-memory layers
(`migrate_assets.evolution.memory`): the fixtures of the application layer's fast tests. The same use cases run on
the real services in tests/cli (evolve, verify, runs) and tests/jobs/test_evolve_fanout.py."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from migrate_assets.app.fanout import LockMode
from migrate_assets.evolution.actions import Bounds, RunContext
from migrate_assets.evolution.derive import new_subject_schema
from migrate_assets.evolution.layers import SourceColumn
from migrate_assets.evolution.memory import MemoryConnector, MemoryLakehouse, MemoryRegistry, MemorySource
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.evolution.saga import RetryPolicy
from migrate_assets.evolution.typemap import map_type
from migrate_assets.expand import parse_change_text
from migrate_assets.expand.ops import ChangeSet

TABLES = ("public.t", "public.u")
COLUMNS = [SourceColumn("id", "bigint", False), SourceColumn("email", "text", True),
           SourceColumn("amount", "integer", True)]
TARGETS = {t: PipelineTarget(t, "c", f"app.{t}-value", f"lake.{t.split('.')[1]}") for t in TABLES}
#: a column include list: every added column changes the connector's config (and restarts it safely)
CONFIG = {"slot.name": "s", "table.include.list": ",".join(TABLES), "topic.prefix": "app",
          "column.include.list": ",".join(f"{t}.{c.name}" for t in TABLES for c in COLUMNS)}
FAST = RetryPolicy(attempts=2, backoff=0.001, max_backoff=0.001)


@dataclass
class MemoryLock:
    """The evolution layer lock in memory: records every hold's mode; holding it twice at once is a bug here
    (the CLI runs one table at a time)."""

    holds: list[str] = field(default_factory=list)
    held: str | None = None

    @contextmanager
    def hold(self, mode: LockMode) -> Iterator[None]:
        assert self.held is None, f"layer lock held twice ({self.held}, {mode})"
        self.held = mode
        self.holds.append(mode)
        try:
            yield
        finally:
            self.held = None


@dataclass
class Stack:
    source: MemorySource
    registry: MemoryRegistry
    lakehouse: MemoryLakehouse
    connector: MemoryConnector

    def context(self) -> RunContext:
        return RunContext(self.source, self.registry, self.lakehouse, self.connector,
                          bounds=Bounds(slot_catch_up=0.3, running=0.3, progress=0.3))

    def columns(self, table: str) -> list[str]:
        return [c.name for c in self.source.tables[table]]

    def captured(self) -> list[str]:
        return self.connector.config("c")["column.include.list"].split(",")


def stack() -> Stack:
    source = MemorySource({t: list(COLUMNS) for t in TABLES})
    registry = MemoryRegistry()
    lake = MemoryLakehouse()
    cols = [(c.name, c.type, c.nullable, None) for c in COLUMNS]
    for t in TABLES:
        schema, name = t.split(".")
        flat = f'{{"type":"record","name":"Value","namespace":"app.{t}","fields":[]}}'
        registry.register(f"app.{t}-value", new_subject_schema(flat, "app", schema, name, cols))  # type: ignore[arg-type]
        lake.add_table(f"lake.{name}", [(c.name, map_type(c.type).iceberg) for c in COLUMNS])
    conn = MemoryConnector(source)
    conn.add("c", dict(CONFIG))
    return Stack(source, registry, lake, conn)


def change(table: str, *ops: str, file: str = "<test>") -> ChangeSet:
    return parse_change_text(f"table: {table}\noperations:\n" + "".join(f"  - {o}\n" for o in ops), file)


def add(table: str, column: str, file: str = "<test>") -> ChangeSet:
    return change(table, f"add_column: {{name: {column}, type: text, nullable: true}}", file=file)
