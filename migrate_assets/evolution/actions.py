"""Executable actions of an evolution plan. Each is immutable data (JSON round-trips through `to_dict`) with
`run(ctx)` doing the forward work through the layer protocols and `inverse(result)` returning the action that
undoes it (None when there is nothing to undo) — the compensation is code, never a prose description.

An undo never loses data silently (issue 14): an inverse that would drop a column holding non-null values or
delete rows says so in `losses(ctx)` (probed in the layer, never assumed) and refuses to run
(`DataLossRefused`, exit 3) unless `RunContext.allow_data_loss`. The lakehouse undo changes only the schema: it
never moves the table back to an older snapshot, so rows committed after the change stay in the table.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar, cast

from migrate_assets.errors import (
    DataLoss,
    DataLossRefused,
    IncompatibleSchemaError,
    LayerRequestError,
    MigrateAssetsError,
    RuntimeFailure,
    StalePlanError,
    TransientError,
)
from migrate_assets.evolution.layers import (
    ConnectorLayer,
    IcebergOp,
    IcebergState,
    LakehouseLayer,
    Layer,
    RegistryLayer,
    SourceLayer,
    int_to_lsn,
)
from migrate_assets.evolution.results import (
    UNDO_WAITS,
    ConnectorSynced,
    DdlApplied,
    IcebergReverted,
    IcebergTableCreated,
    IcebergTableDropped,
    IcebergUpdated,
    SchemaRegistered,
    StepResult,
    Verified,
    VersionDeleted,
)


class LayerNotConfigured(RuntimeFailure):
    pass


class StepFailed(RuntimeFailure):
    """A step's own check failed (semantic: not retried)."""


class DriftDetected(RuntimeFailure):
    """Verify found the layers inconsistent after the change."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("verify found drift: " + "; ".join(differences))


L = TypeVar("L")
R = TypeVar("R", bound=StepResult)


@dataclass
class Bounds:
    """How long the connector step may wait (seconds)."""

    slot_catch_up: float = 60.0
    running: float = 60.0
    progress: float = 30.0


@dataclass
class RunContext:
    source: SourceLayer
    registry: RegistryLayer | None = None
    lakehouse: LakehouseLayer | None = None
    connector: ConnectorLayer | None = None
    bounds: Bounds = field(default_factory=Bounds)
    #: the result of each step done so far in this run, by step id
    results: dict[str, StepResult] = field(default_factory=dict)
    log: Callable[[str], None] = lambda _msg: None
    verifier: Callable[[str, RunContext], list[str]] | None = None
    resuming: bool = False
    #: the connector's replication slot, when the plan has a connector step (compensation drains through it)
    slot: str | None = None
    #: an undo may drop columns that hold values and delete rows (`--allow-data-loss`); refused otherwise
    allow_data_loss: bool = False
    #: the source's WAL position when this process got the exclusive evolution layer lock (`app.fanout`): a
    #: connector restart waits for the slot to pass it too (another table's DDL committed before the lock)
    lock_lsn: int | None = None

    def require_registry(self) -> RegistryLayer:
        return self._configured(self.registry, Layer.SCHEMA_REGISTRY)

    def require_lakehouse(self) -> LakehouseLayer:
        return self._configured(self.lakehouse, Layer.LAKEHOUSE)

    def require_connector(self) -> ConnectorLayer:
        return self._configured(self.connector, Layer.CONNECTOR)

    @staticmethod
    def _configured(layer: L | None, name: Layer) -> L:
        if layer is None:
            raise LayerNotConfigured(f"{name} is not configured")
        return layer

    def result(self, step_id: str, kind: type[R]) -> R | None:
        """The result of step `step_id` in this run, when it is done and of type `kind`."""
        found = self.results.get(step_id)
        return found if isinstance(found, kind) else None

    def latest_ddl_lsn(self) -> int | None:
        """The highest commit LSN of this run's DDL (and of the layer lock's LSN, when held)."""
        lsns = [r.commit_lsn for r in self.results.values() if isinstance(r, DdlApplied) and r.commit_lsn]
        if self.lock_lsn:
            lsns.append(self.lock_lsn)
        return max(lsns) if lsns else None


ACTIONS: dict[str, type[Action[Any]]] = {}


@dataclass(frozen=True)
class Action(Generic[R]):
    """A step's executable action; `R` is the type of what `run` and `probe` report (`evolution.results`)."""

    kind: ClassVar[str] = "action"
    layer: ClassVar[str] = ""
    result_type: ClassVar[type[StepResult]] = StepResult

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        ACTIONS[cls.kind] = cls

    def run(self, ctx: RunContext) -> R:
        raise NotImplementedError

    def inverse(self, result: R) -> Action[Any] | None:
        return None

    def probe(self, ctx: RunContext) -> R | None:
        """After a crash mid-step: the result if the forward effect is in the layer, else None."""
        return None

    def read_result(self, stored: Mapping[str, Any]) -> R:
        """A result of this action from its stored JSON form (the run record's `result`)."""
        return cast(R, self.result_type.from_dict(stored))

    def inverse_of(self, stored: Mapping[str, Any]) -> Action[Any] | None:
        """The undo of a done step, from the result its run record stores."""
        return self.inverse(self.read_result(stored))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action[Any]:
        """The action from its stored fields (lists read back as tuples)."""
        for k, v in data.items():
            if isinstance(v, list):
                data[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        return cls(**data)

    @property
    def reversible(self) -> bool:
        """True when `inverse()` puts the layer's schema back exactly as it was before `run()`, also after rows
        were written in the new shape (dropping values written since needs `allow_data_loss`)."""
        return True

    def losses(self, ctx: RunContext) -> list[DataLoss]:
        """What running this action now would lose (probed in its layer); only undo actions lose anything."""
        return []

    def touches(self) -> set[tuple[str, str]]:
        """The objects this action changes, as (kind, name): two tables evolved at once must not share one
        (`app.fanout.refuse_overlapping_plans`)."""
        return set()

    def describe(self) -> str:
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-shaped (tuples as lists) for the run record; `action_from_dict` reads it back."""
        return {"kind": self.kind, **_json_shaped(asdict(self))}


def refuse_losses(action: Action[Any], ctx: RunContext) -> None:
    """Raise DataLossRefused when running `action` now would lose data and the context does not allow it."""
    if not ctx.allow_data_loss:
        found = action.losses(ctx)
        if found:
            raise DataLossRefused(found)


def _json_shaped(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_shaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_shaped(v) for v in value]
    return value


def action_from_dict(data: dict[str, Any]) -> Action[Any]:
    cls = ACTIONS[data["kind"]]
    names = {f.name for f in fields(cls)}
    return cls.from_json({k: v for k, v in data.items() if k in names})


# --------------------------------------------------------------------------------------------------------
# schema registry
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegisterSchema(Action[SchemaRegistered]):
    kind: ClassVar[str] = "register_schema"
    layer: ClassVar[str] = Layer.SCHEMA_REGISTRY
    result_type: ClassVar[type[StepResult]] = SchemaRegistered
    subject: str
    schema: str
    expected_version: int | None  # latest version when planned (precondition)

    def run(self, ctx: RunContext) -> SchemaRegistered:
        reg = ctx.require_registry()
        latest = reg.latest(self.subject)
        current = latest.version if latest else None
        if current != self.expected_version and not (latest and latest.schema == self.schema):
            raise StalePlanError(f"{self.subject} v{self.expected_version}", f"{self.subject} v{current}")
        before = set(reg.versions(self.subject))
        check = reg.check_compatibility(self.subject, self.schema)
        if not check.compatible:
            raise IncompatibleSchemaError(self.subject, check.level, check.messages)
        out = reg.register(self.subject, self.schema)
        return SchemaRegistered(out.version, out.schema_id, created=out.version not in before)

    def inverse(self, result: SchemaRegistered) -> Action[Any] | None:
        if not result.created:
            return None
        return SoftDeleteVersion(subject=self.subject, version=result.version)

    def probe(self, ctx: RunContext) -> SchemaRegistered | None:
        latest = ctx.require_registry().latest(self.subject)
        if latest is None or latest.version == self.expected_version:
            return None
        same = json.loads(latest.schema) == json.loads(self.schema)
        return SchemaRegistered(latest.version, latest.schema_id, created=True) if same else None

    def touches(self) -> set[tuple[str, str]]:
        return {("registry subject", self.subject)}

    def describe(self) -> str:
        return f"register new schema under {self.subject} (after v{self.expected_version})"


@dataclass(frozen=True)
class SoftDeleteVersion(Action[VersionDeleted]):
    kind: ClassVar[str] = "soft_delete_version"
    layer: ClassVar[str] = Layer.SCHEMA_REGISTRY
    result_type: ClassVar[type[StepResult]] = VersionDeleted
    subject: str
    version: int

    def run(self, ctx: RunContext) -> VersionDeleted:
        reg = ctx.require_registry()
        latest = reg.latest(self.subject)
        if latest is None or self.version not in reg.versions(self.subject):
            return VersionDeleted(False, "already gone")
        if latest.version != self.version:
            # a later version exists: producers (the converter) already moved on; deleting ours would lie
            return VersionDeleted(False, f"not undoable: v{latest.version} was registered after v{self.version}")
        if ctx.slot and ctx.latest_ddl_lsn() is not None:
            # rows written while the source had the new shape still need this schema when the connector emits
            # them: deleting it first makes the converter register it again as a new version, so let the
            # connector drain past the inverse DDL (compensated before us) and only then delete
            try:
                wait_slot(ctx, ctx.slot, ctx.source.current_lsn(), ctx.bounds.slot_catch_up,
                          "the rows written in the new shape", streamed=True)
            except TransientError as exc:
                return VersionDeleted(False, f"{UNDO_WAITS}: the connector has not emitted the rows written in "
                                             f"the new shape ({exc})")
        reg.soft_delete(self.subject, self.version)
        return VersionDeleted(True)

    def describe(self) -> str:
        return f"soft-delete {self.subject} v{self.version} (only if still the latest)"


# --------------------------------------------------------------------------------------------------------
# lakehouse
# --------------------------------------------------------------------------------------------------------


def _landed(st: IcebergState, op: IcebergOp) -> bool:
    """Is one schema update's effect visible in `st`? (the saga's probe after a crash or a lost answer)"""
    f = st.field(op.name)
    if op.kind == "add_column":
        return f is not None
    if op.kind == "delete":
        return f is None
    if op.kind == "rename":
        return f is None and st.field(op.new_name or "") is not None
    if op.kind == "promote":
        return f is not None and f.type.replace(" ", "") == (op.type or "").replace(" ", "")
    if op.kind == "make_optional":
        return f is not None and not f.required
    return False


@dataclass(frozen=True)
class IcebergUpdate(Action[IcebergUpdated]):
    kind: ClassVar[str] = "iceberg_update"
    layer: ClassVar[str] = Layer.LAKEHOUSE
    result_type: ClassVar[type[StepResult]] = IcebergUpdated
    identifier: str
    ops: tuple[IcebergOp, ...]
    expected_schema_id: int

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action[Any]:
        return cls(**{**data, "ops": IcebergOp.many(data["ops"])})

    def run(self, ctx: RunContext) -> IcebergUpdated:
        lake = ctx.require_lakehouse()
        state = lake.state(self.identifier)
        if state is None:
            raise StepFailed(f"Iceberg table {self.identifier} does not exist")
        if state.schema_id != self.expected_schema_id:
            raise StalePlanError(f"schema id {self.expected_schema_id}", f"schema id {state.schema_id}")
        new = lake.apply(self.identifier, self.ops, self.expected_schema_id)
        return IcebergUpdated(new.schema_id, state.schema_id, state.snapshot_id)

    def inverse(self, result: IcebergUpdated) -> Action[Any] | None:
        return IcebergRevert(identifier=self.identifier, ops=self.ops, schema_id=result.schema_id,
                             previous_schema_id=result.previous_schema_id,
                             previous_snapshot_id=result.previous_snapshot_id)

    @property
    def reversible(self) -> bool:
        # an added column is deleted and a rename renamed back: the previous schema (and its id) again, whatever
        # was written since; a promotion or make-optional can be taken back only while no snapshot was committed
        # after it (Iceberg cannot narrow a type or make a column required), a deleted column never
        return all(o.kind in ("add_column", "rename") for o in self.ops)

    def probe(self, ctx: RunContext) -> IcebergUpdated | None:
        st = ctx.require_lakehouse().state(self.identifier)
        if st is None or st.schema_id == self.expected_schema_id or not all(_landed(st, o) for o in self.ops):
            return None  # another writer's commit moves the schema id too: only our own ops count
        # a schema update makes no snapshot: the current one is the one to restore
        return IcebergUpdated(st.schema_id, self.expected_schema_id, st.snapshot_id)

    def touches(self) -> set[tuple[str, str]]:
        return {("Iceberg table", self.identifier)}

    def describe(self) -> str:
        ops = ", ".join(f"{o.kind} {o.name}" + (f" {o.type}" if o.type else "") +
                        (f" → {o.new_name}" if o.new_name else "") for o in self.ops)
        return f"update {self.identifier}: {ops}"


@dataclass(frozen=True)
class IcebergRevert(Action[IcebergReverted]):
    """Undo an `IcebergUpdate` in the schema only: every snapshot committed since stays in the table.

    While main still points at the snapshot of before the change and our schema is current, nothing was written
    in the new shape: the previous schema id is made current again (exact, also for a promotion). Otherwise an
    inverse schema update is committed against the current schema (required at commit time): an added column is
    deleted — refused while it holds non-null values, unless `allow_data_loss` — and a rename renamed back; a
    promotion, make-optional or delete stays (narrowing would misread rows written since) and the result says so.
    An inverse update that reproduces the previous schema exactly gets its schema id back (pyiceberg reuses it).
    """

    kind: ClassVar[str] = "iceberg_revert"
    layer: ClassVar[str] = Layer.LAKEHOUSE
    result_type: ClassVar[type[StepResult]] = IcebergReverted
    identifier: str
    ops: tuple[IcebergOp, ...]  # the forward update's operations
    schema_id: int  # the schema id the forward update made current
    previous_schema_id: int
    previous_snapshot_id: int | None

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action[Any]:
        return cls(**{**data, "ops": IcebergOp.many(data["ops"])})

    def _untouched(self, st: IcebergState) -> bool:
        """Nothing was written in the new shape: our schema current, main at the snapshot of before, and that
        snapshot not written with our schema (a probe after a crash may have recorded a later one as 'before')."""
        return (st.schema_id == self.schema_id and st.snapshot_id == self.previous_snapshot_id
                and st.snapshot_schema_id != self.schema_id)

    def inverse_ops(self, st: IcebergState) -> tuple[tuple[IcebergOp, ...], list[str]]:
        """(the inverse schema update against the current state `st`, what it keeps and why)."""
        inv: list[IcebergOp] = []
        kept: list[str] = []
        for op in reversed(self.ops):
            if op.kind == "add_column":
                if st.field(op.name) is not None:
                    inv.append(IcebergOp("delete", op.name))
            elif op.kind == "rename" and op.new_name:
                if st.field(op.new_name) is not None and st.field(op.name) is None:
                    inv.append(IcebergOp("rename", op.new_name, new_name=op.name))
            elif op.kind == "promote":
                kept.append(f"{op.name} stays {op.type}: rows were written since, narrowing would misread them")
            elif op.kind == "make_optional":
                kept.append(f"{op.name} stays optional: Iceberg cannot make a column required again")
            else:
                kept.append(f"{op.kind} {op.name} cannot be undone by a schema update")
        return tuple(inv), kept

    def losses(self, ctx: RunContext) -> list[DataLoss]:
        lake = ctx.require_lakehouse()
        st = lake.state(self.identifier)
        if st is None or st.schema_id == self.previous_schema_id or self._untouched(st):
            return []
        out = []
        for op in self.inverse_ops(st)[0]:
            if op.kind == "delete":
                n = lake.count_values(self.identifier, op.name)
                if n:
                    out.append(DataLoss(Layer.LAKEHOUSE, self.identifier, op.name, n))
        return out

    def run(self, ctx: RunContext) -> IcebergReverted:
        lake = ctx.require_lakehouse()
        st = lake.state(self.identifier)
        if st is None:
            return IcebergReverted(False, reason=f"{self.identifier} no longer exists")
        if st.schema_id == self.previous_schema_id:
            return IcebergReverted(True, st.schema_id, st.snapshot_id, how="already")
        refuse_losses(self, ctx)
        if self._untouched(st):
            new = lake.restore_schema(self.identifier, self.previous_schema_id, st.schema_id, st.snapshot_id)
            return IcebergReverted(True, new.schema_id, new.snapshot_id,
                                   how="previous schema id made current (no snapshot since the change)")
        inv, kept = self.inverse_ops(st)
        # main must still be where the probe saw it: rows appended since would be hidden unprobed
        new = lake.apply(self.identifier, inv, st.schema_id, st.snapshot_id) if inv else st
        return IcebergReverted(not kept, new.schema_id, new.snapshot_id,
                               how="inverse schema update (snapshots since the change kept)", kept=tuple(kept))

    def describe(self) -> str:
        stays = [f"{o.kind} {o.name}" for o in self.ops if o.kind not in ("add_column", "rename")]
        tail = f" ({', '.join(stays)} stays if rows were written in the new shape)" if stays else ""
        return (f"revert the schema of {self.identifier} to schema id {self.previous_schema_id}, keeping every "
                f"snapshot committed since{tail}")


@dataclass(frozen=True)
class CreateIcebergTable(Action[IcebergTableCreated]):
    kind: ClassVar[str] = "iceberg_create_table"
    layer: ClassVar[str] = Layer.LAKEHOUSE
    result_type: ClassVar[type[StepResult]] = IcebergTableCreated
    identifier: str
    columns: tuple[tuple[str, str], ...]  # (name, iceberg type)

    def run(self, ctx: RunContext) -> IcebergTableCreated:
        st = ctx.require_lakehouse().create_table(self.identifier, tuple((n, t) for n, t in self.columns))
        return IcebergTableCreated(st.schema_id)

    def inverse(self, result: IcebergTableCreated) -> Action[Any] | None:
        return DropIcebergTable(identifier=self.identifier) if result.created else None

    def probe(self, ctx: RunContext) -> IcebergTableCreated | None:
        st = ctx.require_lakehouse().state(self.identifier)
        return IcebergTableCreated(st.schema_id) if st is not None else None

    def touches(self) -> set[tuple[str, str]]:
        return {("Iceberg table", self.identifier)}

    def describe(self) -> str:
        return f"create {self.identifier} ({', '.join(f'{n} {t}' for n, t in self.columns)})"


@dataclass(frozen=True)
class DropIcebergTable(Action[IcebergTableDropped]):
    kind: ClassVar[str] = "iceberg_drop_table"
    layer: ClassVar[str] = Layer.LAKEHOUSE
    result_type: ClassVar[type[StepResult]] = IcebergTableDropped
    identifier: str

    def losses(self, ctx: RunContext) -> list[DataLoss]:
        n = ctx.require_lakehouse().count_values(self.identifier)
        return [DataLoss(Layer.LAKEHOUSE, self.identifier, "", n)] if n else []

    def run(self, ctx: RunContext) -> IcebergTableDropped:
        refuse_losses(self, ctx)
        ctx.require_lakehouse().drop_table(self.identifier)
        return IcebergTableDropped()

    def describe(self) -> str:
        return f"drop {self.identifier}"


# --------------------------------------------------------------------------------------------------------
# source database
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceDdl(Action[DdlApplied]):
    kind: ClassVar[str] = "source_ddl"
    layer: ClassVar[str] = Layer.SOURCE_DB
    result_type: ClassVar[type[StepResult]] = DdlApplied
    table: str
    statements: tuple[str, ...]
    inverse_statements: tuple[str, ...] | None
    lock_timeout: float = 2.0
    expected_fingerprint: str | None = None
    #: an inverse: its DROP COLUMN / DROP TABLE / retype statements are probed for the data they would lose first
    undo: bool = False

    @property
    def reversible(self) -> bool:
        return self.inverse_statements is not None

    def losses(self, ctx: RunContext) -> list[DataLoss]:
        if not self.undo:
            return []
        out = []
        for h in hazards(self.statements):
            if h.to_type is None:
                n = ctx.source.count_values(h.table, h.column)
            else:
                try:
                    n = ctx.source.count_changed(h.table, h.column or "", h.to_type, h.using or "")
                except LayerRequestError:
                    continue  # the cast rejects a value: the undo itself fails on it, changing nothing
            if n:
                out.append(DataLoss(Layer.SOURCE_DB, h.table, h.column or "", n,
                                    "changed by the cast back to " + h.to_type if h.to_type else ""))
        return out

    def run(self, ctx: RunContext) -> DdlApplied:
        refuse_losses(self, ctx)
        if self.expected_fingerprint is not None:
            now = ctx.source.fingerprint(self.table)
            if now != self.expected_fingerprint:
                raise StalePlanError(self.expected_fingerprint, now)
        res = ctx.source.execute_ddl(list(self.statements), self.lock_timeout)
        return DdlApplied(res.commit_lsn, res.attempts)

    def probe(self, ctx: RunContext) -> DdlApplied | None:
        # the DDL is one transaction: a changed fingerprint means it committed
        if self.expected_fingerprint is None or ctx.source.fingerprint(self.table) == self.expected_fingerprint:
            return None
        return DdlApplied(ctx.source.current_lsn(), probed=True)

    def inverse(self, result: DdlApplied) -> Action[Any] | None:
        if self.inverse_statements is None:
            return None
        return SourceDdl(table=self.table, statements=self.inverse_statements, inverse_statements=self.statements,
                         lock_timeout=self.lock_timeout, undo=True)

    def touches(self) -> set[tuple[str, str]]:
        return {("source table", self.table)}

    def describe(self) -> str:
        return "; ".join(self.statements)


_QID = r'"((?:[^"]|"")+)"'
_DROP_COLUMN = re.compile(rf"ALTER TABLE {_QID}\.{_QID} DROP COLUMN {_QID}")
_DROP_TABLE = re.compile(rf"DROP TABLE {_QID}\.{_QID}")
_RETYPE = re.compile(rf"ALTER TABLE {_QID}\.{_QID} ALTER COLUMN {_QID} TYPE (.+?) USING (.+)", re.DOTALL)


@dataclass(frozen=True)
class Hazard:
    """A statement that can lose data: DROP COLUMN (`column`), DROP TABLE (no column), or a retype (`to_type`,
    `using`), parsed from statements as the planner renders them (identifiers quoted by psycopg.sql)."""

    table: str
    column: str | None = None
    to_type: str | None = None
    using: str | None = None


def _unq(*groups: str) -> list[str]:
    return [g.replace('""', '"') for g in groups]


def hazards(statements: tuple[str, ...]) -> list[Hazard]:
    out: list[Hazard] = []
    for text in (s.strip() for s in statements):
        if m := _DROP_COLUMN.fullmatch(text):
            schema, table, column = _unq(*m.groups())
            out.append(Hazard(f"{schema}.{table}", column))
        elif m := _DROP_TABLE.fullmatch(text):
            schema, table = _unq(*m.groups())
            out.append(Hazard(f"{schema}.{table}"))
        elif m := _RETYPE.fullmatch(text):
            schema, table, column = _unq(*m.groups()[:3])
            out.append(Hazard(f"{schema}.{table}", column, m.group(4), m.group(5)))
    return out


# --------------------------------------------------------------------------------------------------------
# connector
# --------------------------------------------------------------------------------------------------------


def wait_slot(ctx: RunContext, slot: str, target: int, bound: float, why: str,
              alive: Callable[[], object] | None = None, streamed: bool = False) -> int:
    """Wait until the slot's confirmed_flush_lsn reaches `target`; TransientError after `bound` seconds.

    `alive` (e.g. the connector's status call) runs every ~2 s, so a worker that is down fails the wait at
    once with its own error instead of after the whole bound. With `streamed`, a record the connector wrote to
    Kafka at or past `target` is enough (a connector layer's `streamed_past`): the slot is confirmed only when
    Connect flushes offsets (60 s by default), so only a restart, which resumes from the slot, needs that."""
    deadline = time.monotonic() + bound
    last = None
    next_alive = 0.0
    seen = getattr(ctx.connector, "streamed_past", None) if streamed else None
    while True:
        if alive is not None and time.monotonic() >= next_alive:
            alive()
            next_alive = time.monotonic() + 2.0
        if seen is not None and seen(slot, target):
            return target
        st = ctx.source.slot(slot)
        last = st.confirmed_flush_lsn if st else None
        if last is not None and last >= target:
            return last
        if time.monotonic() > deadline:
            lag = (target - last) if last is not None else None
            raise TransientError(
                f"replication slot {slot!r} did not reach {int_to_lsn(target)} ({why}) within {bound:.0f}s: "
                + (f"confirmed_flush_lsn {int_to_lsn(last)} (lag {lag} bytes)" if last is not None else "slot missing")
            )
        ctx.source.write_heartbeat()
        time.sleep(0.2)


def wait_published(ctx: RunContext, publication: str, tables: tuple[str, ...], bound: float) -> None:
    """Wait until every table is a member of the connector's publication."""
    deadline = time.monotonic() + bound
    while not ctx.source.published(publication, tables):
        if time.monotonic() > deadline:
            raise TransientError(f"publication {publication!r} did not include {', '.join(tables)} within "
                                 f"{bound:.0f}s of the connector running with its new config")
        time.sleep(0.2)


@dataclass(frozen=True)
class ConnectorSync(Action[ConnectorSynced]):
    """Carry the change through the connector the CDC-safe way (issue 8).

    Restart only when the connector's config must change (publication membership, table or column filters);
    before any restart wait until the slot has confirmed the DDL's commit LSN (restarting Debezium right after a
    table rewrite breaks the walsender for good); afterwards require RUNNING *and* slot progress past a fresh LSN.
    """

    kind: ClassVar[str] = "connector_sync"
    layer: ClassVar[str] = Layer.CONNECTOR
    result_type: ClassVar[type[StepResult]] = ConnectorSynced
    name: str
    slot: str
    new_config: tuple[tuple[str, str], ...] | None
    old_config: tuple[tuple[str, str], ...] | None
    reason: str
    #: tables whose existing rows must reach the topic: an incremental snapshot requested through the
    #: connector's signal table (`signal.data.collection`) once it runs with the new config
    snapshot: tuple[str, ...] = ()
    signal_table: str | None = None

    def run(self, ctx: RunContext) -> ConnectorSynced:
        conn = ctx.require_connector()
        b = ctx.bounds
        target = ctx.latest_ddl_lsn() or ctx.source.current_lsn()

        def alive() -> None:
            conn.status(self.name)  # raises LayerUnreachableError when the worker is down

        caught_up = wait_slot(ctx, self.slot, target, b.slot_catch_up, "the DDL's commit LSN", alive,
                              streamed=self.new_config is None)
        restarted = False
        if self.new_config is not None:
            conn.put_config(self.name, dict(self.new_config))
            conn.restart(self.name, include_tasks=True, only_failed=False)
            restarted = True
        st = conn.wait_running(self.name, b.running)
        if self.snapshot and self.signal_table:
            # a signal written before Debezium's publication holds the signal table is never decoded: RUNNING
            # can come before the task has altered its (filtered) publication
            publication = dict(self.new_config or ()).get("publication.name", "dbz_publication")
            wait_published(ctx, publication, (self.signal_table, *self.snapshot), b.running)
            ctx.source.execute_ddl([_snapshot_signal(self.signal_table, self.snapshot)], 5.0)
        fresh = ctx.source.current_lsn()
        progressed = wait_slot(ctx, self.slot, fresh, b.progress, "a LSN taken after the step began", alive,
                               streamed=True)
        return ConnectorSynced(restarted, int_to_lsn(target), int_to_lsn(caught_up), int_to_lsn(progressed),
                               st.state, self.snapshot)

    def probe(self, ctx: RunContext) -> ConnectorSynced | None:
        if self.new_config is None:
            return None
        current = ctx.require_connector().config(self.name)
        return ConnectorSynced(True, probed=True) if current == dict(self.new_config) else None

    def inverse(self, result: ConnectorSynced) -> Action[Any] | None:
        if self.new_config is None:
            return None
        return ConnectorSync(name=self.name, slot=self.slot, new_config=self.old_config,
                             old_config=self.new_config, reason="put back the previous config")

    def touches(self) -> set[tuple[str, str]]:
        """The filter entries the config change adds (the connector itself is shared: its config changes are
        rebased on the live config, `app.fanout`)."""
        if self.new_config is None:
            return set()
        old, new = dict(self.old_config or ()), dict(self.new_config)
        out: set[tuple[str, str]] = set()
        for key in set(old) | set(new):
            if key.endswith(".list") and old.get(key) != new.get(key):
                added = set(_list_items(new.get(key))) - set(_list_items(old.get(key)))
                out.update(("connector filter entry", f"{self.name} {key} {item}") for item in added)
        return out

    def describe(self) -> str:
        what = "update config and restart safely" if self.new_config is not None else "no restart needed"
        return f"{self.name}: {what} ({self.reason}); wait for slot {self.slot} to pass the DDL and make progress"


def _list_items(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def _snapshot_signal(signal_table: str, tables: tuple[str, ...]) -> str:
    """The INSERT that asks Debezium for an incremental snapshot of `tables` (Debezium's signal format)."""
    import json
    import uuid

    from psycopg import sql

    schema, name = signal_table.split(".", 1)
    data = json.dumps({"data-collections": list(tables), "type": "incremental"})
    return sql.SQL("INSERT INTO {} (id, type, data) VALUES ({}, 'execute-snapshot', {})").format(
        sql.Identifier(schema, name), sql.Literal(uuid.uuid4().hex), sql.Literal(data)).as_string(None)


# --------------------------------------------------------------------------------------------------------
# verify
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VerifyLayers(Action[Verified]):
    kind: ClassVar[str] = "verify"
    layer: ClassVar[str] = Layer.VERIFY
    result_type: ClassVar[type[StepResult]] = Verified
    table: str

    def run(self, ctx: RunContext) -> Verified:
        if ctx.verifier is None:
            return Verified(skipped_check=True)
        differences = ctx.verifier(self.table, ctx)
        if differences:
            raise DriftDetected(differences)
        return Verified(consistent=True)

    def describe(self) -> str:
        return f"verify {self.table} across all configured layers"


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, MigrateAssetsError) and exc.transient
