"""An Iceberg catalog as the evolution engine needs it (`LakehouseLayer`), on pyiceberg.

The catalog comes from `pyiceberg.catalog.load_catalog(name, **properties)`, so REST, Glue, Hive and SQL
catalogs all work without catalog-specific code. Three things pyiceberg does not do for us are done here:

* our own type-change rule before pyiceberg's: a decimal keeps its scale and may only grow in precision
  (pyiceberg 0.12 accepts a scale change, which would misread every stored value), and only the Iceberg
  promotions int→long and float→double are allowed otherwise;
* `add_column` always adds an optional column: a required one needs a default only format v3 allows;
* `restore_schema` makes an earlier schema id current again (`SetCurrentSchemaUpdate`: there is no public "set
  current schema" call), only while no snapshot was committed since (`AssertRefSnapshotId` on main) — the one way
  to undo a widening, which an inverse update cannot do. It never moves a ref: an undo never drops a snapshot
  committed after the change (issue 14); `count_values` tells the undo what deleting a column would hide.
"""

from __future__ import annotations

import re
from typing import Any

from pyiceberg.catalog import Catalog, load_catalog
from pyiceberg.exceptions import (
    CommitFailedException,
    NoSuchNamespaceError,
    NoSuchTableError,
    ValidationError,
)
from pyiceberg.expressions import NotNull, Reference
from pyiceberg.schema import Schema
from pyiceberg.table import Table, Transaction
from pyiceberg.table.refs import MAIN_BRANCH
from pyiceberg.table.update import (
    AssertCurrentSchemaId,
    AssertRefSnapshotId,
    SetCurrentSchemaUpdate,
    TableRequirement,
)
from pyiceberg.table.update.schema import UpdateSchema
from pyiceberg.types import (
    BinaryType,
    BooleanType,
    DateType,
    DecimalType,
    DoubleType,
    FloatType,
    IcebergType,
    IntegerType,
    ListType,
    LongType,
    MapType,
    NestedField,
    PrimitiveType,
    StringType,
    StructType,
    TimestampType,
    TimestamptzType,
    TimeType,
    UUIDType,
)

from migrate_assets.errors import (
    InvalidLakehouseUpdateError,
    LakehouseTableNotFoundError,
    LayerRequestError,
    LayerUnreachableError,
    TransientError,
)
from migrate_assets.evolution.derive import iceberg_promotion_allowed
from migrate_assets.evolution.layers import ANY_SNAPSHOT, IcebergField, IcebergOp, IcebergState, Layer

LAYER = Layer.LAKEHOUSE
OP_KINDS = ("add_column", "promote", "rename", "delete", "make_optional")

_SIMPLE: dict[str, PrimitiveType] = {
    "int": IntegerType(),
    "long": LongType(),
    "float": FloatType(),
    "double": DoubleType(),
    "string": StringType(),
    "boolean": BooleanType(),
    "date": DateType(),
    "time": TimeType(),
    "timestamp": TimestampType(),
    "timestamptz": TimestamptzType(),
    "uuid": UUIDType(),
    "binary": BinaryType(),
}
_DECIMAL = re.compile(r"decimal\(\s*(\d+)\s*,\s*(\d+)\s*\)")


def parse_type(text: str) -> IcebergType:
    """`int`, `long`, ..., `decimal(14, 2)`, `list<string>`, `map<string, string>`, `struct<x: double, y: int>`
    → the pyiceberg type (primitives as `str(type)` prints them; nested fields optional, ids placeholders that
    pyiceberg reassigns when the column is added or the table created)."""
    ids = iter(range(10_000, 1_000_000))
    return _parse(text, ids)


def _split_top(body: str) -> list[str]:
    parts, depth, cur = [], 0, ""
    for ch in body:
        depth += {"<": 1, ">": -1}.get(ch, 0)
        if ch == "," and depth == 0 and not re.fullmatch(r".*decimal\(\s*\d+\s*", cur, re.S):
            parts.append(cur.strip())
            cur = ""
        else:
            cur += ch
    return [*parts, cur.strip()] if cur.strip() else parts


def _parse(text: str, ids: Any) -> IcebergType:
    t = text.strip().lower()
    if t in _SIMPLE:
        return _SIMPLE[t]
    m = _DECIMAL.fullmatch(t)
    if m:
        return DecimalType(int(m.group(1)), int(m.group(2)))
    nested = re.fullmatch(r"(list|map|struct)<(.*)>", t, re.S)
    if nested:
        kind, parts = nested.group(1), _split_top(nested.group(2))
        if kind == "list" and len(parts) == 1:
            return ListType(next(ids), _parse(parts[0], ids), element_required=False)
        if kind == "map" and len(parts) == 2:
            return MapType(next(ids), _parse(parts[0], ids), next(ids), _parse(parts[1], ids), value_required=False)
        if kind == "struct" and all(":" in p for p in parts):
            return StructType(*(NestedField(next(ids), p.split(":", 1)[0].strip(), _parse(p.split(":", 1)[1], ids),
                                            required=False) for p in parts))
    raise ValueError(f"unsupported Iceberg type {text!r} (known: {', '.join(_SIMPLE)}, decimal(p, s), list<t>, "
                     "map<k, v>, struct<name: t, ...>)")


def type_text(t: IcebergType) -> str:
    """The canonical spelling `parse_type` reads: pyiceberg's for primitives, nested types without field ids or
    optional markers (`struct<x: double, y: double>`), so a layer's state compares with the type map's."""
    if isinstance(t, ListType):
        return f"list<{type_text(t.element_type)}>"
    if isinstance(t, MapType):
        return f"map<{type_text(t.key_type)}, {type_text(t.value_type)}>"
    if isinstance(t, StructType):
        return "struct<" + ", ".join(f"{f.name}: {type_text(f.field_type)}" for f in t.fields) + ">"
    return str(t)


def type_change_problem(name: str, old: IcebergType, new: IcebergType) -> str | None:
    """Why `old` → `new` is not a safe promotion (None when it is): the one rule in evolution.derive."""
    ok, why = iceberg_promotion_allowed(type_text(old), type_text(new))
    return None if ok else f"{name}: {why}"


def _state(identifier: str, table: Table, schema: Schema | None = None) -> IcebergState:
    schema = schema if schema is not None else table.schema()
    fields = tuple(IcebergField(f.field_id, f.name, type_text(f.field_type), f.required) for f in schema.fields)
    snap = table.current_snapshot()
    return IcebergState(identifier, schema.schema_id, table.metadata.current_snapshot_id, fields,
                        snap.schema_id if snap is not None else None)


class IcebergLakehouse:
    """`LakehouseLayer` on the catalog `name` configured by `properties` (as for `load_catalog`)."""

    def __init__(self, name: str, properties: dict[str, Any]) -> None:
        self.name, self.properties = name, dict(properties)
        self._catalog: Catalog | None = None

    @property
    def catalog(self) -> Catalog:
        if self._catalog is None:
            try:
                self._catalog = load_catalog(self.name, **self.properties)
            except Exception as exc:  # any catalog backend: driver, HTTP or file errors
                raise LayerUnreachableError(
                    LAYER, f"catalog {self.name!r}: {type(exc).__name__}: {exc}"
                ) from exc
        return self._catalog

    def load(self, identifier: str) -> Table | None:
        """The table as the catalog has it now (None when absent)."""
        try:
            return self.catalog.load_table(identifier)
        except (NoSuchTableError, NoSuchNamespaceError):
            return None
        except (ValueError, TypeError, ValidationError):
            raise
        except Exception as exc:  # the backend's own I/O errors (sqlalchemy, HTTP, file system)
            raise LayerUnreachableError(LAYER, f"load {identifier}: {type(exc).__name__}: {exc}") from exc

    def _require(self, identifier: str) -> Table:
        table = self.load(identifier)
        if table is None:
            raise LakehouseTableNotFoundError(identifier)
        return table

    # -- LakehouseLayer --------------------------------------------------------------------------------------

    def state(self, identifier: str) -> IcebergState | None:
        table = self.load(identifier)
        return None if table is None else _state(identifier, table)

    def validate(self, identifier: str, ops: tuple[IcebergOp, ...]) -> IcebergState:
        """The schema the update would produce, computed by pyiceberg's pure `_apply()`; nothing is committed.

        The schema id is the one a commit would make current: an existing equal schema's id when the update
        reproduces it (pyiceberg reuses it), else the next free id.
        """
        table = self._require(identifier)
        update = self._build(identifier, table.transaction(), ops)
        try:
            new = update._apply()
        except (ValueError, ValidationError) as exc:
            raise InvalidLakehouseUpdateError(identifier, [str(exc)]) from exc
        reused = next((s.schema_id for s in table.metadata.schemas if s == new), None)
        if reused is not None:
            new = Schema(*new.fields, schema_id=reused, identifier_field_ids=list(new.identifier_field_ids))
        return _state(identifier, table, new)

    def apply(self, identifier: str, ops: tuple[IcebergOp, ...], expected_schema_id: int,
              expected_snapshot_id: int | None = ANY_SNAPSHOT) -> IcebergState:
        """Commit the update iff the current schema id is still `expected_schema_id` (checked at commit time by
        the catalog too): a competing schema change is a TransientError, to be re-planned. With
        `expected_snapshot_id`, main must also still point there (an undo that probed the rows it would hide
        must not commit over rows appended after the probe)."""
        table = self._require(identifier)
        txn = table.transaction()
        requirements: tuple[TableRequirement, ...] = (
            AssertCurrentSchemaId.model_validate({"current-schema-id": expected_schema_id}),)
        if expected_snapshot_id != ANY_SNAPSHOT:
            requirements += (AssertRefSnapshotId.model_validate(
                {"ref": MAIN_BRANCH, "snapshot-id": expected_snapshot_id}),)
        try:
            txn._stage((), requirements)
            update = self._build(identifier, txn, ops)
            try:
                update.commit()
            except (ValueError, ValidationError) as exc:
                raise InvalidLakehouseUpdateError(identifier, [str(exc)]) from exc
            txn.commit_transaction()
        except CommitFailedException as exc:
            raise TransientError(
                f"{LAYER}: commit to {identifier} lost to a concurrent change: {exc}"
            ) from exc
        return _state(identifier, self._require(identifier))

    def restore_schema(self, identifier: str, schema_id: int, expected_schema_id: int,
                       expected_snapshot_id: int | None) -> IcebergState:
        """One commit that makes the earlier schema `schema_id` current again, and nothing else: no ref moves, no
        snapshot is dropped. Required at commit time: the current schema is still `expected_schema_id` and main
        still points at `expected_snapshot_id` — i.e. no row was committed since, so no row can hold a value the
        earlier schema cannot read (a concurrent commit is a TransientError: re-read and choose again)."""
        table = self._require(identifier)
        if not any(s.schema_id == schema_id for s in table.metadata.schemas):
            raise InvalidLakehouseUpdateError(identifier, [f"schema id {schema_id} is not in the table's metadata"])
        snap = table.current_snapshot()
        if snap is not None and snap.schema_id == expected_schema_id != schema_id:
            raise InvalidLakehouseUpdateError(identifier, [
                f"snapshot {snap.snapshot_id} was written with schema id {expected_schema_id}: its rows may hold "
                f"values schema id {schema_id} cannot read"])
        requirements = (
            AssertCurrentSchemaId.model_validate({"current-schema-id": expected_schema_id}),
            AssertRefSnapshotId.model_validate({"ref": MAIN_BRANCH, "snapshot-id": expected_snapshot_id}),
        )
        txn = Transaction(table)
        try:
            txn._apply((SetCurrentSchemaUpdate.model_validate({"schema-id": schema_id}),), requirements)
            txn.commit_transaction()
        except CommitFailedException as exc:
            raise TransientError(
                f"{LAYER}: schema restore of {identifier} lost to a concurrent change: {exc}"
            ) from exc
        return _state(identifier, self._require(identifier))

    def count_values(self, identifier: str, column: str | None = None) -> int:
        """Rows of the current snapshot (`column` None), or how many of them hold a non-null `column` (0 when the
        table or the column is gone). Whole files are counted from their metadata where the stats decide."""
        table = self.load(identifier)
        if table is None or table.metadata.current_snapshot_id is None:
            return 0
        if column is None:
            return table.scan().count()
        if column not in {f.name for f in table.schema().fields}:
            return 0
        return table.scan(row_filter=NotNull(term=Reference(column))).count()

    # -- building the update ---------------------------------------------------------------------------------

    def _build(self, identifier: str, txn: Transaction, ops: tuple[IcebergOp, ...]) -> UpdateSchema:
        """Stage `ops` on an UpdateSchema of `txn`, our own rules first; every problem is reported at once."""
        update = txn.update_schema()
        schema = txn.table_metadata.schema()
        original: dict[str, str] = {}  # a name renamed within this update → its name in `schema`
        problems: list[str] = []
        for op in ops:
            name = original.get(op.name, op.name)
            try:
                self._stage_op(update, schema, op, name, problems)
            except (ValueError, ValidationError) as exc:
                problems.append(f"{op.kind} {op.name}: {exc}")
            if op.kind == "rename" and op.new_name:
                original[op.new_name] = name
        if problems:
            raise InvalidLakehouseUpdateError(identifier, problems)
        return update

    @staticmethod
    def _stage_op(
        update: UpdateSchema, schema: Schema, op: IcebergOp, name: str, problems: list[str]
    ) -> None:
        if op.kind == "add_column":
            if not op.type:
                problems.append(f"add_column {op.name}: a type is required")
                return
            update.add_column(op.name, parse_type(op.type), required=False)
        elif op.kind == "promote":
            if not op.type:
                problems.append(f"promote {op.name}: a type is required")
                return
            new = parse_type(op.type)
            problem = type_change_problem(op.name, schema.find_field(name).field_type, new)
            if problem:
                problems.append(problem)
                return
            update.update_column(name, field_type=new)
        elif op.kind == "rename":
            if not op.new_name:
                problems.append(f"rename {op.name}: new_name is required")
                return
            update.rename_column(name, op.new_name)
        elif op.kind == "delete":
            update.delete_column(name)
        elif op.kind == "make_optional":
            update.make_column_optional(name)
        else:
            problems.append(f"unknown operation kind {op.kind!r} (known: {', '.join(OP_KINDS)})")

    def create_table(self, identifier: str, columns: tuple[tuple[str, str], ...],
                     identifier_fields: tuple[str, ...] = ()) -> IcebergState:
        """Create the table, and its namespace. Every column is optional (CDC rows may omit any value) except
        `identifier_fields` — the source table's primary key: required, and the schema's identifier fields
        (`identifier_field_ids`), so engines that upsert or deduplicate by key find it in the table."""
        from pyiceberg.exceptions import NamespaceAlreadyExistsError, TableAlreadyExistsError

        unknown = [n for n in identifier_fields if n not in {name for name, _ in columns}]
        if unknown:
            raise InvalidLakehouseUpdateError(identifier, [f"identifier field {n} is not a column" for n in unknown])
        namespace = identifier.rsplit(".", 1)[0]
        fields = [NestedField(i + 1, name, parse_type(t), required=name in identifier_fields)
                  for i, (name, t) in enumerate(columns)]
        ids = [f.field_id for name in identifier_fields for f in fields if f.name == name]
        try:
            schema = Schema(*fields, identifier_field_ids=ids)
        except (ValueError, ValidationError) as exc:  # e.g. a key column of a type Iceberg cannot identify by
            raise InvalidLakehouseUpdateError(identifier, [str(exc)]) from exc
        try:
            try:
                self.catalog.create_namespace(namespace)
            except NamespaceAlreadyExistsError:
                pass
            table = self.catalog.create_table(identifier, schema=schema)
        except TableAlreadyExistsError as exc:
            raise LayerRequestError(LAYER, f"Iceberg table {identifier} already exists") from exc
        except (ValueError, TypeError, ValidationError):
            raise
        except Exception as exc:  # the backend's own I/O errors (sqlalchemy, HTTP, file system): retried; a
            # create that landed although its answer was lost is then "already exists", and the saga's probe
            # finds it ours by its columns
            raise LayerUnreachableError(LAYER, f"create {identifier}: {type(exc).__name__}: {exc}") from exc
        return _state(identifier, table)

    def drop_table(self, identifier: str) -> None:
        try:
            self.catalog.drop_table(identifier)
        except NoSuchTableError:
            pass
