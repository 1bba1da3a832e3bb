"""Lakehouse actions: an Iceberg schema update and its schema-only revert; create and drop a table."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

from migrate_assets.errors import DataLoss, StalePlanError
from migrate_assets.evolution.actions.base import Action, RunContext, StepFailed, refuse_losses
from migrate_assets.evolution.layers import IcebergOp, IcebergState, Layer
from migrate_assets.evolution.results import (
    IcebergReverted,
    IcebergTableCreated,
    IcebergTableDropped,
    IcebergUpdated,
    StepResult,
)


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
    identifier_fields: tuple[str, ...] = ()  # the source table's primary key: required, the identifier fields

    def run(self, ctx: RunContext) -> IcebergTableCreated:
        st = ctx.require_lakehouse().create_table(self.identifier, tuple((n, t) for n, t in self.columns),
                                                  self.identifier_fields)
        return IcebergTableCreated(st.schema_id)

    def inverse(self, result: IcebergTableCreated) -> Action[Any] | None:
        return DropIcebergTable(identifier=self.identifier) if result.created else None

    def probe(self, ctx: RunContext) -> IcebergTableCreated | None:
        st = ctx.require_lakehouse().state(self.identifier)
        # only a table of our columns is ours (another writer may have taken the name: never undo that one)
        ours = st is not None and [f.name for f in st.fields] == [n for n, _ in self.columns]
        return IcebergTableCreated(st.schema_id) if st is not None and ours else None

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
