"""One pipeline table on the in-memory layers (`migrate_assets.evolution.memory`): the fixtures of the fast saga
tests (test_saga_fast, test_saga_probe). The real-stack tests (test_evolve_stack, test_faults, test_crash) cover
the same paths on the real services."""

from __future__ import annotations

import copy
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrate_assets.errors import LayerRequestError
from migrate_assets.evolution.actions import (
    Bounds,
    ConnectorSync,
    IcebergUpdate,
    RegisterSchema,
    RunContext,
    SourceDdl,
    VerifyLayers,
)
from migrate_assets.evolution.derive import avro_row_fields, new_subject_schema
from migrate_assets.evolution.layers import IcebergOp, Layer, SourceColumn
from migrate_assets.evolution.memory import (
    MemoryConnector,
    MemoryLakehouse,
    MemoryRegistry,
    MemorySource,
    MemoryStore,
)
from migrate_assets.evolution.planner import EvolutionPlan, PipelineTarget, PlannedStep
from migrate_assets.evolution.run import attach_verifier
from migrate_assets.evolution.saga import RetryPolicy
from migrate_assets.evolution.typemap import map_type
from migrate_assets.expand import parse_change_text
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.schema import ddl

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


# --------------------------------------------------------------------------------------------------------------
# a hand-built plan of `add_column note` over the memory layers, with effect-level faults (test_saga_probe)
# --------------------------------------------------------------------------------------------------------------

BEFORE_SCHEMA = '{"type": "record", "name": "v", "fields": [{"name": "id", "type": "int"}]}'
AFTER_SCHEMA = ('{"type": "record", "name": "v", "fields": [{"name": "id", "type": "int"}, '
                '{"name": "note", "type": ["null", "string"], "default": null}]}')
OLD_CONFIG = {"column.include.list": "public.customers.id"}
NEW_CONFIG = {"column.include.list": "public.customers.id,public.customers.note"}


class Crash(BaseException):
    """The process died right after a layer's effect landed (nothing in the saga catches a BaseException)."""


class _Arming:
    def __init__(self, arm: Callable[[str], None]) -> None:
        self.add = arm


class Faults:
    """Effects named `<layer>.<method>` (e.g. `registry.register`): `crash.add(effect)` lands the next call's
    effect, stops the store from saving and raises `Crash`; `fail.add(effect)` lands it and raises a
    non-retryable error (the answer of an applied request was lost); `calls[effect]` counts the calls."""

    def __init__(self, layers: dict[str, Any], store: MemoryStore) -> None:
        self.layers, self.store = layers, store

        def crash(effect: str) -> None:
            layer, method = self._split(effect)
            layer.fail(method, Crash(effect), after=True, hook=lambda: setattr(store, "dead", True))

        def fail(effect: str) -> None:
            layer, method = self._split(effect)
            layer.fail(method, LayerRequestError(effect.split(".")[0], "the answer was lost (the request was applied)"),
                       after=True)

        self.crash, self.fail = _Arming(crash), _Arming(fail)

    def _split(self, effect: str) -> tuple[Any, str]:
        name, method = effect.split(".", 1)
        return self.layers[name], method

    @property
    def calls(self) -> dict[str, int]:
        return {f"{n}.{m}": layer.calls.count(m) for n, layer in self.layers.items() for m in set(layer.calls)}


@dataclass
class World:
    """Every memory layer of one pipeline table, a store, and the plan of `add_column note` across them."""

    faults: Faults
    ctx: RunContext
    store: MemoryStore
    plan: EvolutionPlan
    stack: MemoryStack

    def snapshot(self) -> dict[str, Any]:
        """Every layer's state as plain data: source columns, registry versions, Iceberg schema + snapshot id,
        connector config."""
        s = self.stack
        st = s.lakehouse.state("ns.customers")
        assert st is not None
        return copy.deepcopy({
            "source": s.source.tables["public.customers"], "registry": s.registry.versions("p.public.customers-value"),
            "iceberg": (st.schema_id, st.snapshot_id, [f.name for f in st.fields]),
            "connector": s.connector.config("c"),
        })


def world() -> World:
    source = MemorySource({"public.customers": [SourceColumn("id", "integer", False)]})
    source.add_slot("slot")
    registry = MemoryRegistry()
    registry.register("p.public.customers-value", BEFORE_SCHEMA)
    lake = MemoryLakehouse()
    lake.add_table("ns.customers", [("id", "int")], snapshot_id=7)
    conn = MemoryConnector(source)
    conn.add("c", OLD_CONFIG)
    s = MemoryStack(source, registry, lake, conn)
    store = MemoryStore()
    ctx = RunContext(source=source, registry=registry, lakehouse=lake, connector=conn)
    col = ddl.column_spec("note", "text")
    steps = (
        PlannedStep(Layer.SCHEMA_REGISTRY.step, Layer.SCHEMA_REGISTRY,
                    RegisterSchema("p.public.customers-value", AFTER_SCHEMA, 1), True, None, "soft-delete"),
        PlannedStep(Layer.LAKEHOUSE.step, Layer.LAKEHOUSE,
                    IcebergUpdate("ns.customers", (IcebergOp("add_column", "note", "string"),), 0), True, None,
                    "revert"),
        PlannedStep(Layer.SOURCE_DB.step, Layer.SOURCE_DB,
                    SourceDdl("public.customers", (ddl.add_column("public", "customers", col),),
                              (ddl.drop_column("public", "customers", "note"),),
                              expected_fingerprint=source.fingerprint("public.customers")), True, None, "drop"),
        PlannedStep(Layer.CONNECTOR.step, Layer.CONNECTOR,
                    ConnectorSync("c", "slot", tuple(NEW_CONFIG.items()), tuple(OLD_CONFIG.items()), "new column"),
                    True, None, "put back"),
        PlannedStep(Layer.VERIFY.step, Layer.VERIFY, VerifyLayers("public.customers"), True, None, "nothing"),
    )
    plan = EvolutionPlan("public.customers", ({"add_column": {"name": "note"}},), steps)
    layers = {"source": source, "registry": registry, "lakehouse": lake, "connector": conn}
    for layer in layers.values():
        layer.calls.clear()  # count only what the saga does
    return World(Faults(layers, store), ctx, store, plan, s)
