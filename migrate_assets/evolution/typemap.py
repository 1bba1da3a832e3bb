"""The one cross-layer type map: canonical Postgres type → what Debezium emits (Connect + Avro) → Iceberg.

Covers the type table of Debezium 3.6's PostgreSQL connector under every setting that changes it:
`decimal.handling.mode`, `time.precision.mode`, `binary.handling.mode`, `interval.handling.mode`,
`hstore.handling.mode`, `include.unknown.datatypes` and `money.fraction.digits`. The Avro side is the schema the
Confluent AvroConverter registers for the Connect schema Debezium builds (logical types, `connect.*` attributes and
key order included: a registry compares schema text). The Iceberg side is the faithful equal where Iceberg has one,
a `list<…>` for arrays, a `struct<…>` where Debezium emits a struct, a `map<…>` for hstore maps, and `string`
(or `long` for microsecond durations) where Iceberg has no equal. A type Debezium does not carry, or carries
wrongly, is refused at plan time naming the type, why, and the setting that would change it
(UnsupportedTypeError), never guessed.

Enums and domains are user types whose meaning lives in the catalog: `TypeMapOptions.user_types` holds them (read
by pre-flight and verify); an enum carries its labels as Debezium's `allowed` parameter, a domain maps as its base
type. The full table is generated from this module into docs/evolution.md (migrate_assets.evolution.typetable).
"""

from __future__ import annotations

import copy
import json
from dataclasses import dataclass, field, replace
from typing import Any, NamedTuple

from migrate_assets.errors import UnsupportedTypeError
from migrate_assets.schema.types import PgType, parse_type

STRING_TYPES = {"text", "character varying", "character", "bpchar", '"char"', "inet", "cidr", "macaddr",
                "macaddr8", "int4range", "int8range", "numrange", "tsrange", "tstzrange", "daterange"}
#: extension types Debezium recognises by name (in any schema), as its TypeRegistry does
EXTENSION_TYPES = ("citext", "hstore", "ltree", "geometry", "geography")
#: the extension that brings each of them
EXTENSION_OF = {"citext": "citext", "hstore": "hstore", "ltree": "ltree", "geometry": "postgis",
                "geography": "postgis"}
#: built-in types Debezium leaves out of its events unless `include.unknown.datatypes=true` (then: text as bytes)
UNKNOWN_TYPES = {"tsquery", "pg_lsn", "line", "lseg", "box", "path", "polygon", "circle", "int4multirange",
                 "int8multirange", "nummultirange", "tsmultirange", "tstzmultirange", "datemultirange"}
#: element types Debezium carries inside an array (others: the array column is left out of its events)
ARRAY_ELEMENTS = {"smallint", "integer", "bigint", "oid", "real", "double precision", "boolean", "text",
                  "character varying", "character", "bpchar", "numeric", "date", "time without time zone",
                  "time with time zone", "timestamp without time zone", "timestamp with time zone", "uuid", "bytea",
                  "json", "jsonb", "inet", "cidr", "macaddr", "macaddr8", '"char"', "int4range", "int8range", "numrange", "tsrange",
                  "tstzrange", "daterange", "tsvector", "citext", "hstore", "ltree", "geometry", "geography",
                  "enum"}
PRIMITIVES = {"null", "boolean", "int", "long", "float", "double", "bytes", "string"}


class UserType(NamedTuple):
    """A user type from the catalog: `kind` enum (with `labels` in sort order), domain (with its `base` type), or
    extension (a type of EXTENSION_TYPES the database has, in the schema its extension was created in)."""

    name: str  # as PgType spells it: schema.type, quoted as needed
    kind: str  # enum | domain | extension
    labels: tuple[str, ...] = ()
    base: str | None = None


@dataclass(frozen=True)
class LayerTypes:
    """How one Postgres type appears in each layer."""

    pg: str
    connect: str  # Connect schema type (ARRAY<…>, MAP<…> and STRUCT spelled out)
    semantic: str | None  # Connect schema name (Debezium/Kafka logical type), if any
    avro_type: Any  # the Avro type exactly as the AvroConverter writes it (without the optional-union wrapper)
    iceberg: str  # canonical Iceberg type: int, decimal(10, 2), list<string>, struct<x: double, …>, map<…>
    in_array_required: bool = field(default=False, compare=False)  # Debezium's array items are not optional

    @property
    def avro(self) -> str:
        """The Avro type's kind: a primitive, or array / map / record."""
        return self.avro_type if isinstance(self.avro_type, str) else str(self.avro_type["type"])

    @property
    def avro_logical(self) -> dict[str, Any] | None:
        """The attributes beside `type` (logicalType, precision, scale, connect.*), None for a bare primitive."""
        if isinstance(self.avro_type, str):
            return None
        return {k: v for k, v in self.avro_type.items() if k != "type"}

    def avro_schema(self) -> Any:
        """The Avro type as the AvroConverter writes it (a fresh copy; without the optional-union wrapper)."""
        return copy.deepcopy(self.avro_type)


#: the connector settings the map honours, each with Debezium's default first
MODES: dict[str, tuple[str, ...]] = {
    "decimal.handling.mode": ("precise", "double", "string"),
    "time.precision.mode": ("adaptive", "adaptive_time_microseconds", "connect"),
    "binary.handling.mode": ("bytes", "base64", "base64-url-safe", "hex"),
    "interval.handling.mode": ("numeric", "string"),
    "hstore.handling.mode": ("json", "map"),
    "include.unknown.datatypes": ("false", "true"),
}
_ATTR = {key: key.replace(".", "_") for key in MODES}


@dataclass(frozen=True)
class TypeMapOptions:
    decimal_handling_mode: str = "precise"
    time_precision_mode: str = "adaptive"
    binary_handling_mode: str = "bytes"
    interval_handling_mode: str = "numeric"
    hstore_handling_mode: str = "json"
    include_unknown_datatypes: str = "false"
    money_fraction_digits: int = 2
    uuid_as: str = "uuid"  # or "string" for engines that cannot read Iceberg uuid
    user_types: tuple[UserType, ...] = ()
    #: `user_types` is the source catalog's whole list (read by pre-flight): an extension type it lacks is refused
    catalog: bool = False

    def user_type(self, name: str) -> UserType | None:
        return next((u for u in self.user_types if u.name == name), None)

    def mode(self, key: str) -> str:
        return str(getattr(self, _ATTR[key]))

    @classmethod
    def from_connector(cls, config: dict[str, str] | None, base: TypeMapOptions | None = None,
                       source: str = "<connector config>") -> TypeMapOptions:
        """The options a live Debezium connector config implies (its defaults when a key is unset), keeping the
        rest of `base`. A mode this map does not model is refused (exit 2) naming the key, never guessed."""
        base = base or cls()
        if config is None:
            return base
        modes: dict[str, Any] = {}
        for key, allowed in MODES.items():
            value = config.get(key, allowed[0]).strip().lower()
            if value not in allowed:
                raise UnsupportedTypeError(f"{key}={value!r} is not carried by this pipeline; expected one of "
                                           + ", ".join(allowed), file=source, key=key)
            modes[_ATTR[key]] = value
        digits = config.get("money.fraction.digits", "2").strip()
        if not digits.isdigit() or int(digits) > 18:
            raise UnsupportedTypeError(f"money.fraction.digits={digits!r} is not carried by this pipeline; expected "
                                       "a whole number from 0 to 18", file=source, key="money.fraction.digits")
        return replace(base, money_fraction_digits=int(digits), **modes)


def _unsupported(t: PgType, why: str = "") -> UnsupportedTypeError:
    msg = f"type {t.render()!r} has no mapping across the pipeline layers" + (f": {why}" if why else "")
    return UnsupportedTypeError(msg, file="<type map>")


# --- the Avro types the AvroConverter writes for Debezium's Connect schemas --------------------------------


def _sem(prim: str, name: str, params: dict[str, str] | None = None, logical: str | None = None,
         front: dict[str, Any] | None = None) -> dict[str, Any]:
    """A named Connect schema in Avro, keys in the converter's order."""
    out: dict[str, Any] = {"type": prim, **(front or {}), "connect.version": 1}
    if params:
        out["connect.parameters"] = params
    out["connect.name"] = name
    if logical:
        out["logicalType"] = logical
    return out


def _record(name: str, namespace: str, fields: list[tuple[str, Any, bool]], doc: str) -> dict[str, Any]:
    """A Connect struct as an Avro record: optional fields as `["null", t]` with `default: null`."""
    out_fields = [{"name": n, "type": ["null", t], "default": None} if optional else {"name": n, "type": t}
                  for n, t, optional in fields]
    return {"type": "record", "name": name, "namespace": namespace, "fields": out_fields, "connect.doc": doc,
            "connect.version": 1, "connect.name": f"{namespace}.{name}"}


def _decimal(p: int, s: int, with_precision: bool = True) -> dict[str, Any]:
    params = {"scale": str(s), "connect.decimal.precision": str(p)} if with_precision else {"scale": str(s)}
    return _sem("bytes", "org.apache.kafka.connect.data.Decimal", params, "decimal", {"scale": s, "precision": p})


VARIABLE_SCALE_DECIMAL = _record("VariableScaleDecimal", "io.debezium.data",
                                 [("scale", "int", False), ("value", "bytes", False)], "Variable scaled decimal")
POINT = _record("Point", "io.debezium.data.geometry",
                [("x", "double", False), ("y", "double", False), ("wkb", "bytes", True), ("srid", "int", True)],
                "Geometry (POINT)")
GEOMETRY = _record("Geometry", "io.debezium.data.geometry", [("wkb", "bytes", False), ("srid", "int", True)],
                   "Geometry")
GEOGRAPHY = _record("Geography", "io.debezium.data.geometry", [("wkb", "bytes", False), ("srid", "int", True)],
                    "Geography")


def _lt(pg: PgType, connect: str, avro_type: Any, iceberg: str, in_array_required: bool = False) -> LayerTypes:
    semantic = avro_type.get("connect.name") if isinstance(avro_type, dict) else None
    return LayerTypes(pg.render(), connect, semantic, avro_type, iceberg, in_array_required)


# --- the forward direction -------------------------------------------------------------------------------------


def map_type(t: PgType | str, options: TypeMapOptions | None = None) -> LayerTypes:
    """Map one canonical Postgres type to every layer, or raise UnsupportedTypeError naming it and why."""
    opts = options or TypeMapOptions()
    pg = (parse_type(t) if isinstance(t, str) else t).plain
    user = opts.user_type(pg.name) if pg.is_user_defined else None
    if user is not None and user.kind == "domain" and user.base:
        if pg.is_array:
            raise _unsupported(pg, "Debezium leaves arrays of a domain out of its events; use an array of the base type")
        rest = tuple(u for u in opts.user_types if u.name != pg.name)  # a domain never maps through itself
        return replace(map_type(user.base, replace(opts, user_types=rest)), pg=pg.render())
    if not pg.is_array:
        return _scalar(pg, opts)
    if pg.array_dims > 1:
        raise _unsupported(pg, "Debezium writes the rows of a multi-dimensional array as nulls; use a "
                               "one-dimensional array or jsonb")
    elem = pg.element
    kind = _extension(elem) or ("enum" if user is not None and user.kind == "enum" else elem.name)
    if kind not in ARRAY_ELEMENTS:
        why = (f"Debezium leaves arrays of {elem.render()} out of its events (no setting changes this)"
               if kind != "bit" else "Debezium fails on arrays of bit (the task stops); use bytea[]")
        raise _unsupported(pg, why)
    e = _scalar(elem, opts)
    items = e.avro_schema() if e.in_array_required else ["null", e.avro_schema()]
    return LayerTypes(pg.render(), f"ARRAY<{e.connect}>", None, {"type": "array", "items": items},
                      f"list<{e.iceberg}>")


def _extension(pg: PgType) -> str | None:
    """`citext`, `hstore`, … for an extension type in any schema (Debezium matches them by name)."""
    if not pg.is_user_defined:
        return None
    last = pg.name.rsplit(".", 1)[-1].strip('"')
    return last if last in EXTENSION_TYPES else None


def _scalar(pg: PgType, opts: TypeMapOptions) -> LayerTypes:  # noqa: C901, PLR0911, PLR0912 - one branch a type
    n = pg.name
    simple = {
        "smallint": ("INT16", {"type": "int", "connect.type": "int16"}, "int"),
        "integer": ("INT32", "int", "int"),
        "bigint": ("INT64", "long", "long"),
        "oid": ("INT64", "long", "long"),
        "real": ("FLOAT32", "float", "float"),
        "double precision": ("FLOAT64", "double", "double"),
        "boolean": ("BOOLEAN", "boolean", "boolean"),
    }
    if n in simple:
        c, a, i = simple[n]
        return _lt(pg, c, a, i)
    if n in STRING_TYPES:
        return _lt(pg, "STRING", "string", "string")
    ext = _extension(pg)
    if ext is not None:
        return _extension_type(pg, ext, opts)
    if pg.is_user_defined:
        user = opts.user_type(n)
        if user is not None and user.kind == "enum":
            return _lt(pg, "STRING", _sem("string", "io.debezium.data.Enum", {"allowed": ",".join(user.labels)}),
                       "string", in_array_required=True)
        if opts.include_unknown_datatypes == "true":  # a composite or another extension's type: its text
            return _binary(pg, opts)
        raise _unsupported(pg, "not an enum, a domain or an extension type Debezium knows ("
                               + ", ".join(EXTENSION_TYPES) + "): Debezium leaves its columns out of its events; "
                               "set include.unknown.datatypes=true to carry its text form as binary data")
    if n == "numeric":
        return _numeric(pg, opts)
    if n == "money":
        mode = opts.decimal_handling_mode
        if mode != "precise":
            return _lt(pg, "FLOAT64" if mode == "double" else "STRING", mode, mode)
        f = opts.money_fraction_digits  # money is an int64 count of the smallest unit: at most 19 digits
        return _lt(pg, "BYTES", _decimal(64, f, with_precision=False), f"decimal(19, {f})")
    if n in ("timestamp with time zone", "time with time zone", "date", "timestamp without time zone",
             "time without time zone", "interval"):
        return _temporal(pg, opts)
    if n == "bytea":
        return _binary(pg, opts)
    if n in ("bit", "bit varying"):
        length = pg.length
        if n == "bit" and length == 1:
            return _lt(pg, "BOOLEAN", "boolean", "boolean")
        bits = _sem("bytes", "io.debezium.data.Bits", {"length": str(length or 2147483647)})
        return _lt(pg, "BYTES", bits, "binary")
    named = {"uuid": ("io.debezium.data.Uuid", opts.uuid_as), "json": ("io.debezium.data.Json", "string"),
             "jsonb": ("io.debezium.data.Json", "string"), "xml": ("io.debezium.data.Xml", "string"),
             "tsvector": ("io.debezium.data.Tsvector", "string")}
    if n in named:
        sem, ice = named[n]
        return _lt(pg, "STRING", _sem("string", sem), ice, in_array_required=n == "tsvector")
    if n == "point":
        return _lt(pg, "STRUCT", POINT, "struct<x: double, y: double, wkb: binary, srid: int>")
    if n == "name":
        raise _unsupported(pg, "Debezium streams its values as null (pgoutput; only snapshots carry them); use text")
    if n in UNKNOWN_TYPES:
        if opts.include_unknown_datatypes == "true":  # its text, as binary data under binary.handling.mode
            return _binary(pg, opts)
        raise _unsupported(pg, "Debezium leaves columns of this type out of its events; set "
                               "include.unknown.datatypes=true to carry its text form as binary data")
    raise _unsupported(pg, "not in Debezium's PostgreSQL type table")


def _binary(pg: PgType, opts: TypeMapOptions) -> LayerTypes:
    if opts.binary_handling_mode == "bytes":
        return _lt(pg, "BYTES", "bytes", "binary")
    return _lt(pg, "STRING", "string", "string")  # base64, base64-url-safe or hex text


def _extension_type(pg: PgType, ext: str, opts: TypeMapOptions) -> LayerTypes:
    if opts.catalog and opts.user_type(pg.name) is None:
        extension = EXTENSION_OF[ext]
        elsewhere = [u.name for u in opts.user_types if u.kind == "extension" and _extension(parse_type(u.name)) == ext]
        where = (f"; this database has it as {elsewhere[0]}: name that type" if elsewhere else
                 f": the {extension} extension is not installed in it (CREATE EXTENSION {extension})")
        raise _unsupported(pg, f"the source database has no type {pg.name}{where}")
    if ext == "citext":
        return _lt(pg, "STRING", "string", "string")
    if ext == "ltree":
        return _lt(pg, "STRING", _sem("string", "io.debezium.data.Ltree"), "string")
    if ext == "hstore":
        if opts.hstore_handling_mode == "map":
            return _lt(pg, "MAP<STRING, STRING>", {"type": "map", "values": ["null", "string"]},
                       "map<string, string>")
        return _lt(pg, "STRING", _sem("string", "io.debezium.data.Json"), "string")
    record = GEOMETRY if ext == "geometry" else GEOGRAPHY
    return _lt(pg, "STRUCT", record, "struct<wkb: binary, srid: int>")


def _numeric(pg: PgType, opts: TypeMapOptions) -> LayerTypes:
    mode = opts.decimal_handling_mode
    if mode == "double":
        return _lt(pg, "FLOAT64", "double", "double")
    if mode == "string":
        return _lt(pg, "STRING", "string", "string")
    if pg.precision is None:  # Debezium's own struct: the unscaled value's bytes and its scale, per row
        return _lt(pg, "STRUCT", VARIABLE_SCALE_DECIMAL, "struct<scale: int, value: binary>")
    p, s = pg.precision, pg.scale or 0
    if s < 0 or s > p:
        raise _unsupported(pg, f"Debezium writes scale {s % 2048 if s < 0 else s} for it, which no Avro reader "
                               "accepts (scale must be 0..precision); set decimal.handling.mode=string or double")
    return _lt(pg, "BYTES", _decimal(p, s), f"decimal({p}, {s})" if p <= 38 else "string")


def _temporal(pg: PgType, opts: TypeMapOptions) -> LayerTypes:
    n, mode = pg.name, opts.time_precision_mode
    prec = pg.precision if pg.precision is not None else 6
    if n == "timestamp with time zone":
        return _lt(pg, "STRING", _sem("string", "io.debezium.time.ZonedTimestamp"), "timestamptz")
    if n == "time with time zone":
        return _lt(pg, "STRING", _sem("string", "io.debezium.time.ZonedTime"), "string")
    if n == "interval":
        if opts.interval_handling_mode == "string":
            return _lt(pg, "STRING", _sem("string", "io.debezium.time.Interval"), "string")
        return _lt(pg, "INT64", _sem("long", "io.debezium.time.MicroDuration"), "long")
    if n == "date":
        if mode == "connect":
            return _lt(pg, "INT32", _sem("int", "org.apache.kafka.connect.data.Date", logical="date"), "date")
        return _lt(pg, "INT32", _sem("int", "io.debezium.time.Date"), "date")
    if n == "timestamp without time zone":
        if mode == "connect":
            return _lt(pg, "INT64", _sem("long", "org.apache.kafka.connect.data.Timestamp",
                                         logical="timestamp-millis"), "timestamp")
        sem = "io.debezium.time.Timestamp" if prec <= 3 else "io.debezium.time.MicroTimestamp"
        return _lt(pg, "INT64", _sem("long", sem), "timestamp")
    # time without time zone
    if mode == "connect":
        return _lt(pg, "INT32", _sem("int", "org.apache.kafka.connect.data.Time", logical="time-millis"), "time")
    if mode == "adaptive" and prec <= 3:
        return _lt(pg, "INT32", _sem("int", "io.debezium.time.Time"), "time")
    return _lt(pg, "INT64", _sem("long", "io.debezium.time.MicroTime"), "time")


# --- the reverse direction: what a registry / Iceberg type means, for verify -----------------------------


def _sig_text(avro_type: Any) -> str:
    optional = isinstance(avro_type, list) and "null" in avro_type
    prim, sem = avro_signature(avro_type)
    return ("?" if optional else "") + prim + (f"<{sem}>" if sem else "")


def avro_signature(avro_type: Any) -> tuple[str, str | None]:
    """(kind, meaning) of an Avro field type as written by the AvroConverter; optional unions unwrapped.

    The meaning is the Connect schema name with its parameters (an enum's allowed values, a bit string's length),
    `decimal(p, s)` for decimals, the item/value signature for arrays and maps, the record's name for records (a
    name that is not a primitive is a reference to a record defined earlier in the schema)."""
    t = avro_type
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        if len(non_null) != 1:
            return ("union", None)
        t = non_null[0]
    if isinstance(t, str):
        return (t, None) if t in PRIMITIVES else ("record", t)
    if isinstance(t, dict):
        prim = t.get("type")
        if isinstance(prim, dict | list):
            return avro_signature(prim)
        if prim == "array":
            return ("array", _sig_text(t.get("items")))
        if prim == "map":
            return ("map", _sig_text(t.get("values")))
        if prim == "record":
            return ("record", t.get("connect.name") or ".".join(x for x in (t.get("namespace"), t.get("name")) if x))
        if t.get("logicalType") == "decimal":
            return (str(prim), f"decimal({t.get('precision')}, {t.get('scale', 0)})")
        sem = t.get("connect.name")
        params = t.get("connect.parameters")
        if sem and params:
            sem += json.dumps(params, sort_keys=True, separators=(",", ":"))
        return (str(prim), sem)
    return (str(t), None)


def drift_hint(actual: Any, expected: Any) -> str:
    """What to do about a known cause of a layer differing from the map ("" when there is none to name)."""
    enum = "io.debezium.data.Enum"
    if isinstance(actual, tuple) and isinstance(expected, tuple) and all(
            isinstance(x[1], str) and x[1].startswith(enum) for x in (actual, expected)):
        return (" (Debezium reads an enum's labels when its task starts: restart the connector, and the converter "
                "registers a version with the catalog's labels at the next row)")
    return ""


def expected_avro_signature(lt: LayerTypes) -> tuple[str, str | None]:
    return avro_signature(lt.avro_type)


def avro_optional(avro_type: Any) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def normalise_iceberg(type_str: str) -> str:
    """pyiceberg prints `decimal(14, 2)`; accept `decimal(14,2)` too (and the same inside nested types)."""
    return type_str.replace(", ", ",").replace(",", ", ").strip().lower()
