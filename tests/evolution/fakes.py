"""In-memory implementations of the engine's layer protocols (evolution/layers.py) and of the run store, for fast
saga tests. They implement OUR protocols only; every real system is tested against the real thing elsewhere.

The source layer understands a tiny statement language of its own (`ADD <column> <type>` / `DROP <column>`),
since SourceDdl hands statements through untouched. `crash_after(layer_method)` makes the next call of that method
land its effect and then kill the "process": the store stops persisting (as if the process died before saving)
and `Crash` (a BaseException, like a signal) unwinds the saga.
"""

from __future__ import annotations

import copy
import hashlib
import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import Any

from migrate_assets.errors import InvalidInputError, LayerRequestError, Problem
from migrate_assets.evolution.actions import (
    ConnectorSync,
    IcebergUpdate,
    RegisterSchema,
    RunContext,
    SourceDdl,
    VerifyLayers,
)
from migrate_assets.evolution.layers import (
    CompatibilityResult,
    ConnectorStatus,
    DdlResult,
    IcebergField,
    IcebergOp,
    IcebergState,
    RegistryVersion,
    SlotState,
    SourceColumn,
)
from migrate_assets.evolution.planner import EvolutionPlan, PlannedStep
from migrate_assets.evolution.store import EvolutionStore, RunRecord


class Crash(BaseException):
    """The process died right after a layer's effect landed."""


@dataclass
class Faults:
    """`crash`: method name → crash after its effect; `fail`: method name → raise a non-retryable error after
    the effect (the answer of a request the server applied was lost)."""

    crash: set[str] = field(default_factory=set)
    fail: set[str] = field(default_factory=set)
    store: FakeStore | None = None
    calls: dict[str, int] = field(default_factory=dict)

    def landed(self, name: str) -> None:
        self.calls[name] = self.calls.get(name, 0) + 1
        if name in self.crash:
            self.crash.discard(name)
            if self.store is not None:
                self.store.dead = True
            raise Crash(name)
        if name in self.fail:
            self.fail.discard(name)
            raise LayerRequestError(name.split(".")[0], "the answer was lost (the request was applied)")


class FakeSource:
    def __init__(self, faults: Faults, columns: list[SourceColumn]) -> None:
        self.faults, self.cols, self.lsn = faults, {"public.customers": list(columns)}, 100

    def columns(self, table: str) -> list[SourceColumn] | None:
        return list(self.cols[table]) if table in self.cols else None

    def fingerprint(self, table: str) -> str:
        return hashlib.sha256(repr(self.cols.get(table)).encode()).hexdigest()[:16]

    def execute_ddl(self, statements: list[str], lock_timeout: float) -> DdlResult:
        cols = self.cols["public.customers"]
        for s in statements:
            verb, name, *rest = s.split()
            if verb == "ADD":
                cols.append(SourceColumn(name, rest[0], True))
            elif verb == "DROP":
                cols[:] = [c for c in cols if c.name != name]
        self.lsn += 10
        self.faults.landed("source.execute_ddl")
        return DdlResult(self.lsn)

    def current_lsn(self) -> int:
        return self.lsn

    def count_values(self, table: str, column: str | None = None) -> int:
        return 0

    def slot(self, slot_name: str) -> SlotState | None:
        return SlotState(slot_name, True, self.lsn, self.lsn)

    def write_heartbeat(self) -> None:
        self.lsn += 1


class FakeRegistry:
    def __init__(self, faults: Faults, subject: str, schema: str) -> None:
        self.faults = faults
        self.subjects: dict[str, list[RegistryVersion]] = {subject: [RegistryVersion(subject, 1, 1, schema)]}
        self.deleted: set[tuple[str, int]] = set()

    def _live(self, subject: str) -> list[RegistryVersion]:
        return [v for v in self.subjects.get(subject, []) if (subject, v.version) not in self.deleted]

    def latest(self, subject: str) -> RegistryVersion | None:
        live = self._live(subject)
        return live[-1] if live else None

    def versions(self, subject: str) -> list[int]:
        return [v.version for v in self._live(subject)]

    def compatibility_level(self, subject: str) -> str:
        return "BACKWARD"

    def check_compatibility(self, subject: str, schema: str) -> CompatibilityResult:
        return CompatibilityResult(True, "BACKWARD")

    def register(self, subject: str, schema: str) -> RegistryVersion:
        for v in self._live(subject):
            if v.schema == schema:
                return v
        every = self.subjects.setdefault(subject, [])
        v = RegistryVersion(subject, (every[-1].version if every else 0) + 1, 100 + len(every), schema)
        every.append(v)
        self.faults.landed("registry.register")
        return v

    def soft_delete(self, subject: str, version: int) -> None:
        self.deleted.add((subject, version))


class FakeLakehouse:
    def __init__(self, faults: Faults, identifier: str, fields: list[tuple[str, str]]) -> None:
        self.faults = faults
        first = IcebergState(identifier, 0, 7, tuple(IcebergField(i + 1, n, t, False)
                                                      for i, (n, t) in enumerate(fields)))
        self.history: dict[int, IcebergState] = {0: first}
        self.current: dict[str, IcebergState] = {identifier: first}

    def state(self, identifier: str) -> IcebergState | None:
        return self.current.get(identifier)

    def validate(self, identifier: str, ops: tuple[IcebergOp, ...]) -> IcebergState:
        return self._applied(self.current[identifier], ops)

    def _applied(self, st: IcebergState, ops: tuple[IcebergOp, ...]) -> IcebergState:
        fields = list(st.fields)
        for op in ops:
            if op.kind == "add_column":
                fields.append(IcebergField(max(f.field_id for f in fields) + 1, op.name, op.type or "string", False))
            elif op.kind == "delete":
                fields = [f for f in fields if f.name != op.name]
        return replace(st, schema_id=max(self.history) + 1, fields=tuple(fields))

    def apply(self, identifier: str, ops: tuple[IcebergOp, ...], expected_schema_id: int) -> IcebergState:
        new = self._applied(self.current[identifier], ops)
        self.history[new.schema_id] = new
        self.current[identifier] = new
        self.faults.landed("lakehouse.apply")
        return new

    def restore(self, identifier: str, schema_id: int, snapshot_id: int | None) -> IcebergState:
        st = replace(self.history[schema_id], snapshot_id=snapshot_id)
        self.current[identifier] = st
        return st

    def restore_schema(self, identifier: str, schema_id: int, expected_schema_id: int,
                       expected_snapshot_id: int | None) -> IcebergState:
        st = replace(self.history[schema_id], snapshot_id=self.current[identifier].snapshot_id)
        self.current[identifier] = st
        return st

    def count_values(self, identifier: str, column: str | None = None) -> int:
        return 0

    def create_table(self, identifier: str, columns: tuple[tuple[str, str], ...]) -> IcebergState:
        raise NotImplementedError

    def drop_table(self, identifier: str) -> None:
        raise NotImplementedError


class FakeConnector:
    def __init__(self, faults: Faults, name: str, config: dict[str, str]) -> None:
        self.faults, self.configs, self.restarts = faults, {name: dict(config)}, 0

    def status(self, name: str) -> ConnectorStatus:
        return ConnectorStatus(name, "RUNNING", ("RUNNING",))

    def config(self, name: str) -> dict[str, str]:
        return dict(self.configs[name])

    def put_config(self, name: str, config: dict[str, str]) -> None:
        self.configs[name] = dict(config)
        self.faults.landed("connector.put_config")

    def restart(self, name: str, include_tasks: bool = True, only_failed: bool = False) -> None:
        self.restarts += 1

    def pause(self, name: str) -> None:
        pass

    def resume(self, name: str) -> None:
        pass

    def wait_running(self, name: str, timeout: float) -> ConnectorStatus:
        return self.status(name)


class FakeStore(EvolutionStore):
    """Records kept as their stored JSON; `dead` drops every later save (the process died before saving)."""

    def __init__(self) -> None:  # no database
        self.rows: dict[str, str] = {}
        self.dead = False
        self.saves = 0

    def save(self, rec: RunRecord) -> None:
        if not self.dead:
            self.saves += 1
            self.rows[rec.run_id] = json.dumps(EvolutionStore.row(rec))

    def load(self, run_id: str) -> RunRecord:
        if run_id not in self.rows:
            raise InvalidInputError([Problem(file="<command line>", key="RUN", message=f"no run {run_id}")])
        return EvolutionStore.from_row(json.loads(self.rows[run_id]))

    def close(self) -> None:
        pass

    @contextmanager
    def run_lock(self, run_id: str) -> Iterator[None]:
        self.locked = run_id
        yield


BEFORE_SCHEMA = '{"type": "record", "name": "v", "fields": [{"name": "id", "type": "int"}]}'
AFTER_SCHEMA = ('{"type": "record", "name": "v", "fields": [{"name": "id", "type": "int"}, '
                '{"name": "note", "type": ["null", "string"], "default": null}]}')
OLD_CONFIG = {"column.include.list": "public.customers.id"}
NEW_CONFIG = {"column.include.list": "public.customers.id,public.customers.note"}


@dataclass
class World:
    """Every fake layer of one pipeline table, a store, and the plan of `add_column note` across them."""

    faults: Faults
    ctx: RunContext
    store: FakeStore
    plan: EvolutionPlan

    def snapshot(self) -> dict[str, Any]:
        """Every layer's state as plain data: source columns, registry versions, Iceberg schema + snapshot id,
        connector config and restarts."""
        src, reg, lake, conn = self.ctx.source, self.ctx.registry, self.ctx.lakehouse, self.ctx.connector
        assert isinstance(src, FakeSource) and isinstance(reg, FakeRegistry)
        assert isinstance(lake, FakeLakehouse) and isinstance(conn, FakeConnector)
        st = lake.current["ns.customers"]
        return copy.deepcopy({
            "source": src.cols["public.customers"], "registry": reg.versions("p.public.customers-value"),
            "iceberg": (st.schema_id, st.snapshot_id, [f.name for f in st.fields]),
            "connector": conn.configs["c"],
        })


def world() -> World:
    faults = Faults()
    store = FakeStore()
    faults.store = store
    src = FakeSource(faults, [SourceColumn("id", "integer", False)])
    ctx = RunContext(source=src, registry=FakeRegistry(faults, "p.public.customers-value", BEFORE_SCHEMA),
                     lakehouse=FakeLakehouse(faults, "ns.customers", [("id", "int")]),
                     connector=FakeConnector(faults, "c", OLD_CONFIG))
    steps = (
        PlannedStep("registry", "schema_registry",
                    RegisterSchema("p.public.customers-value", AFTER_SCHEMA, 1), True, None, "soft-delete"),
        PlannedStep("lakehouse", "lakehouse",
                    IcebergUpdate("ns.customers", (IcebergOp("add_column", "note", "string"),), 0), True, None,
                    "restore"),
        PlannedStep("ddl", "source_db",
                    SourceDdl("public.customers", ("ADD note text",), ("DROP note",),
                              expected_fingerprint=src.fingerprint("public.customers")), True, None, "drop"),
        PlannedStep("connector", "connector",
                    ConnectorSync("c", "slot", tuple(NEW_CONFIG.items()), tuple(OLD_CONFIG.items()), "new column"),
                    True, None, "put back"),
        PlannedStep("verify", "verify", VerifyLayers("public.customers"), True, None, "nothing"),
    )
    plan = EvolutionPlan("public.customers", ({"add_column": {"name": "note"}},), steps)
    return World(faults, ctx, store, plan)
