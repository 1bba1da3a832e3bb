"""Pure derivations of each layer's new schema from a change (no I/O).

Registry: the new Avro schema is derived from the subject's latest version as Debezium's AvroConverter wrote it
(the row record inside the `Envelope`, or a flat record when the connector unwraps events): added columns are
optional fields with `default: null` (or carry their literal default), type changes use Avro promotions, renames
keep the old name as an alias, drops remove the field. Lakehouse: the same change as Iceberg schema operations,
with our own decimal rule (scale fixed, precision may only grow), because pyiceberg's check accepts scale changes.
"""

from __future__ import annotations

import copy
import json
import re
from typing import Any

from migrate_assets.errors import InvalidInputError, Problem
from migrate_assets.evolution.layers import IcebergOp, IcebergState, Layer
from migrate_assets.evolution.typemap import (
    GEOGRAPHY,
    GEOMETRY,
    POINT,
    VARIABLE_SCALE_DECIMAL,
    TypeMapOptions,
    map_type,
    normalise_iceberg,
)
from migrate_assets.schema.ops import Operation
from migrate_assets.schema.types import parse_type


class UnsupportedChangeError(InvalidInputError):
    """A change that some layer cannot carry (e.g. an Iceberg type change that is not a promotion)."""

    def __init__(self, layer: str, message: str) -> None:
        self.layer = str(layer)
        super().__init__([Problem(file=f"<{layer}>", message=message)])


_LITERAL = re.compile(r"^\s*(?:'((?:[^']|'')*)'(?:::[\w ]+)?|(-?\d+)|(-?\d+\.\d+)|(true|false))\s*$", re.I)


def literal_default(expr: str | None) -> tuple[bool, Any]:
    """(has_literal, value) for a SQL default Debezium would propagate; function defaults are not literals."""
    if expr is None:
        return (False, None)
    m = _LITERAL.match(expr)
    if not m:
        return (False, None)
    if m.group(1) is not None:
        return (True, m.group(1).replace("''", "'"))
    if m.group(2) is not None:
        return (True, int(m.group(2)))
    if m.group(3) is not None:
        return (True, float(m.group(3)))
    return (True, m.group(4).lower() == "true")


# --------------------------------------------------------------------------------------------------------
# Avro
# --------------------------------------------------------------------------------------------------------


def row_record(schema: dict[str, Any]) -> tuple[dict[str, Any], bool]:
    """The record holding the table's columns, and whether it sits inside a Debezium Envelope."""
    names = [f["name"] for f in schema.get("fields", [])]
    if schema.get("type") == "record" and {"before", "after", "op"} <= set(names):
        before = next(f for f in schema["fields"] if f["name"] == "before")
        branches = before["type"] if isinstance(before["type"], list) else [before["type"]]
        rec = next((b for b in branches if isinstance(b, dict) and b.get("type") == "record"), None)
        if rec is None:
            raise UnsupportedChangeError(Layer.SCHEMA_REGISTRY, "Envelope without an inline row record in `before`")
        return rec, True
    if schema.get("type") != "record":
        raise UnsupportedChangeError(Layer.SCHEMA_REGISTRY, "latest schema is not an Avro record")
    return schema, False


def _field_for_column(name: str, pg_type: str, nullable: bool, default: str | None, opts: TypeMapOptions) -> dict:
    avro_t = map_type(pg_type, opts).avro_schema()
    has_lit, value = literal_default(default)
    if nullable and not has_lit:
        return {"name": name, "type": ["null", avro_t], "default": None}
    if nullable:
        return {"name": name, "type": [avro_t, "null"], "default": value}
    if has_lit:
        return {"name": name, "type": avro_t, "default": value}
    return {"name": name, "type": avro_t}


def _retype(field: dict[str, Any], new_type: Any) -> dict[str, Any]:
    out = dict(field)
    t = field["type"]
    if isinstance(t, list):
        out["type"] = [new_type if x != "null" else "null" for x in t]
    else:
        out["type"] = new_type
    return out


class _AvroFields:
    """A `ShapeSink` editing the row record's fields."""

    def __init__(self, fields: list[dict[str, Any]], opts: TypeMapOptions) -> None:
        self.fields, self.opts = fields, opts

    def _find(self, name: str) -> int:
        for i, f in enumerate(self.fields):
            if f["name"] == name:
                return i
        raise UnsupportedChangeError(Layer.SCHEMA_REGISTRY, f"field {name!r} is not in the subject's latest schema")

    def added(self, name: str, type_: str, nullable: bool, default: str | None) -> None:
        if not any(f["name"] == name for f in self.fields):  # else already there (the converter registered it)
            self.fields.append(_field_for_column(name, type_, nullable, default, self.opts))

    def retyped(self, name: str, type_: str) -> None:
        i = self._find(name)
        self.fields[i] = _retype(self.fields[i], map_type(type_, self.opts).avro_schema())

    def renamed(self, old: str, new: str) -> None:
        i = self._find(old)
        f = dict(self.fields[i])
        f["name"] = new
        f["aliases"] = sorted({*f.get("aliases", []), old})
        self.fields[i] = f

    def dropped(self, name: str) -> None:
        del self.fields[self._find(name)]

    def required(self, name: str) -> None:
        i = self._find(name)
        f = dict(self.fields[i])
        if isinstance(f["type"], list):
            f["type"] = [x for x in f["type"] if x != "null"][0]
            f.pop("default", None)
        self.fields[i] = f

    def optional(self, name: str) -> None:
        i = self._find(name)
        f = dict(self.fields[i])
        if not isinstance(f["type"], list):
            f["type"], f["default"] = ["null", f["type"]], None
        self.fields[i] = f


#: Debezium's own records: Avro defines a named type once per schema, later uses name it (as the converter writes)
_NAMED = {r["connect.name"]: r for r in (VARIABLE_SCALE_DECIMAL, POINT, GEOMETRY, GEOGRAPHY)}


def _define_once(t: Any, seen: set[str]) -> Any:
    """`t` with each of Debezium's named records defined at its first use in schema order, named after it."""
    if isinstance(t, str):
        if t in _NAMED and t not in seen:
            seen.add(t)
            return copy.deepcopy(_NAMED[t])  # its definition went with a dropped column: defined here now
        return t
    if isinstance(t, list):
        return [_define_once(x, seen) for x in t]
    if not isinstance(t, dict):
        return t
    full = str(t.get("connect.name"))
    if t.get("type") == "record" and full in _NAMED:
        if full in seen:
            return full
        seen.add(full)
        return t
    out = dict(t)
    if out.get("type") == "record":
        out["fields"] = [{**f, "type": _define_once(f["type"], seen)} for f in out.get("fields", [])]
    elif out.get("type") == "array":
        out["items"] = _define_once(out["items"], seen)
    elif out.get("type") == "map":
        out["values"] = _define_once(out["values"], seen)
    elif isinstance(out.get("type"), dict | list):
        out["type"] = _define_once(out["type"], seen)
    return out


def derive_avro(latest_schema: str, ops: tuple[Operation, ...], old_types: dict[str, str],
                opts: TypeMapOptions | None = None) -> str:
    """New Avro schema text for the subject; `old_types` maps existing column names to their PG types."""
    new = copy.deepcopy(json.loads(latest_schema))
    rec, _ = row_record(new)
    sink = _AvroFields(rec["fields"], opts or TypeMapOptions())
    for op in ops:
        op.effects(sink)
    return json.dumps(_define_once(new, set()), separators=(",", ":"))


def new_subject_schema(template: str, prefix: str, schema: str, table: str,
                       columns: list[tuple[str, str, bool, str | None]], opts: TypeMapOptions | None = None) -> str:
    """The value schema Debezium will write for a table joining the connector, from a sibling subject of the
    same connector (same Envelope/Source shape): names re-pointed at `<prefix>.<schema>.<table>`, the row record
    rebuilt from the columns `(name, pg type, nullable, default)`."""
    opts = opts or TypeMapOptions()
    env = json.loads(template)
    row, wrapped = row_record(env)
    base = f"{prefix}.{schema}.{table}"
    row["fields"] = [_field_for_column(n, t, nullable, d, opts) for n, t, nullable, d in columns]
    row["connect.name"] = f"{base}.Value"
    if wrapped:
        env["namespace"] = base
        env["connect.name"] = f"{base}.Envelope"
        row.pop("namespace", None)
    else:
        env["namespace"] = f"{prefix}.{schema}.{table}"
    return json.dumps(_define_once(env, set()), separators=(",", ":"))


def avro_row_fields(schema_text: str) -> dict[str, Any]:
    """Field name → Avro type of the row record (for verify)."""
    rec, _ = row_record(json.loads(schema_text))
    return {f["name"]: f["type"] for f in rec["fields"]}


# --------------------------------------------------------------------------------------------------------
# Iceberg
# --------------------------------------------------------------------------------------------------------

_DECIMAL = re.compile(r"^decimal\((\d+),\s*(\d+)\)$")


def iceberg_promotion_allowed(old: str, new: str) -> tuple[bool, str]:
    """Iceberg v1/v2 promotions, with the decimal rule pyiceberg gets wrong: scale fixed, precision grows."""
    old, new = normalise_iceberg(old), normalise_iceberg(new)
    if old == new:
        return True, "unchanged"
    if (old, new) in {("int", "long"), ("float", "double")}:
        return True, f"{old} → {new} is an Iceberg promotion"
    mo, mn = _DECIMAL.match(old), _DECIMAL.match(new)
    if mo and mn:
        (po, so), (pn, sn) = (int(mo[1]), int(mo[2])), (int(mn[1]), int(mn[2]))
        if so != sn:
            return False, f"decimal scale cannot change in Iceberg ({old} → {new})"
        if pn < po:
            return False, f"decimal precision cannot shrink in Iceberg ({old} → {new})"
        return True, "decimal precision widening"
    return False, f"Iceberg cannot change {old} to {new} (only int→long, float→double, decimal precision growth)"


class _IcebergOps:
    """A `ShapeSink` turning effects into Iceberg schema operations (what Iceberg cannot do is refused)."""

    def __init__(self, state: IcebergState, opts: TypeMapOptions, allow_delete: bool) -> None:
        self.state, self.opts, self.allow_delete = state, opts, allow_delete
        self.names = {f.name for f in state.fields}
        self.out: list[IcebergOp] = []

    def added(self, name: str, type_: str, nullable: bool, default: str | None) -> None:
        if name not in self.names:
            self.out.append(IcebergOp("add_column", name, type=map_type(type_, self.opts).iceberg))
            self.names.add(name)

    def retyped(self, name: str, type_: str) -> None:
        f = self.state.field(name)
        if f is None:
            raise UnsupportedChangeError(Layer.LAKEHOUSE, f"column {name!r} is not in {self.state.identifier}")
        new_t = map_type(parse_type(type_), self.opts).iceberg
        ok, why = iceberg_promotion_allowed(f.type, new_t)
        if not ok:
            raise UnsupportedChangeError(Layer.LAKEHOUSE, why)
        if normalise_iceberg(f.type) != normalise_iceberg(new_t):
            self.out.append(IcebergOp("promote", name, type=new_t))

    def renamed(self, old: str, new: str) -> None:
        if self.state.field(old) is None:
            raise UnsupportedChangeError(Layer.LAKEHOUSE, f"column {old!r} is not in {self.state.identifier}")
        self.out.append(IcebergOp("rename", old, new_name=new))

    def dropped(self, name: str) -> None:
        if not self.allow_delete:
            raise UnsupportedChangeError(
                Layer.LAKEHOUSE,
                f"dropping {name!r} deletes an Iceberg column; allowed only with "
                "on_breaking_change=warn and --allow-irreversible",
            )
        self.out.append(IcebergOp("delete", name))

    def required(self, name: str) -> None:
        pass  # Iceberg cannot make a column required; optional stays a faithful superset

    def optional(self, name: str) -> None:
        self.out.append(IcebergOp("make_optional", name))


def derive_iceberg(state: IcebergState, ops: tuple[Operation, ...], opts: TypeMapOptions | None = None,
                   allow_delete: bool = False) -> tuple[IcebergOp, ...]:
    """Iceberg schema operations for the change; raise UnsupportedChangeError for what Iceberg cannot do."""
    sink = _IcebergOps(state, opts or TypeMapOptions(), allow_delete)
    for op in ops:
        op.effects(sink)
    return tuple(sink.out)


# --------------------------------------------------------------------------------------------------------
# Enum labels
# --------------------------------------------------------------------------------------------------------


def derive_enum_labels(latest_schema: str, columns: dict[str, str], enum: str, labels: tuple[str, ...]) -> str | None:
    """The subject's next schema when the enum `enum` (as PgType spells it) gets `labels`: each field of a column
    of that enum (or an array of it) carries the new `allowed` list, as Debezium will announce it once its task
    has reloaded the type (a connector restart). None when no column of the table uses the enum.

    The building block of a planned label addition: register this version, `ALTER TYPE … ADD VALUE`, restart the
    connector, verify. Until the restart the converter keeps finding the previous version for Debezium's stale
    schema, so no version appears that was not planned."""
    doc = copy.deepcopy(json.loads(latest_schema))
    rec, _ = row_record(doc)
    allowed = ",".join(labels)
    changed = False

    def relabel(t: Any) -> Any:
        nonlocal changed
        if isinstance(t, list):
            return [relabel(x) for x in t]
        if isinstance(t, dict) and t.get("type") == "array":
            return {**t, "items": relabel(t["items"])}
        if isinstance(t, dict) and t.get("connect.name") == "io.debezium.data.Enum":
            changed = True
            return {**t, "connect.parameters": {**t.get("connect.parameters", {}), "allowed": allowed}}
        return t

    for f in rec["fields"]:
        typ = columns.get(f["name"])
        if typ is not None and parse_type(typ).element.name == enum:
            f["type"] = relabel(f["type"])
    return json.dumps(doc, separators=(",", ":")) if changed else None
