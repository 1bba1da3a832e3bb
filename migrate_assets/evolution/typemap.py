"""The one cross-layer type map: canonical Postgres type → what Debezium emits (Connect + Avro) → Iceberg.

Honours Debezium's `decimal.handling.mode` (precise | double | string) and `time.precision.mode`
(adaptive | adaptive_time_microseconds | connect). Types with no faithful mapping are refused at plan time with
the type named (UnsupportedTypeError), never guessed.

| Postgres | Connect (semantic name) | Avro | Iceberg |
|---|---|---|---|
| smallint | INT16 | int | int |
| integer | INT32 | int | int |
| bigint | INT64 | long | long |
| real | FLOAT32 | float | float |
| double precision | FLOAT64 | double | double |
| boolean | BOOLEAN | boolean | boolean |
| text, character varying(n), character(n) | STRING | string | string |
| numeric(p,s) (precise) | BYTES (connect Decimal) | bytes, logicalType decimal(p,s) | decimal(p,s) |
| numeric(p,s) (double / string) | FLOAT64 / STRING | double / string | double / string |
| timestamp with time zone | STRING (io.debezium.time.ZonedTimestamp) | string | timestamptz |
| timestamp(0-3) (adaptive) | INT64 (io.debezium.time.Timestamp) | long | timestamp |
| timestamp(4-6) (adaptive) | INT64 (io.debezium.time.MicroTimestamp) | long | timestamp |
| timestamp (connect mode) | INT64 (connect Timestamp) | long, logicalType timestamp-millis | timestamp |
| date | INT32 (io.debezium.time.Date) | int | date |
| time(4-6) (adaptive) | INT64 (io.debezium.time.MicroTime) | long | time |
| uuid | STRING (io.debezium.data.Uuid) | string | uuid |
| json, jsonb | STRING (io.debezium.data.Json) | string | string |
| bytea | BYTES | bytes | binary |
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Any

from migrate_assets.errors import UnsupportedTypeError
from migrate_assets.schema.types import PgType, parse_type

STRING_TYPES = {"text", "character varying", "character", "citext"}


@dataclass(frozen=True)
class LayerTypes:
    """How one Postgres type appears in each layer."""

    pg: str
    connect: str  # Connect schema type
    semantic: str | None  # Connect schema name (Debezium/Kafka logical type), if any
    avro: str  # Avro primitive type
    avro_logical: dict[str, Any] | None  # extra Avro attributes (logicalType, precision, scale)
    iceberg: str  # pyiceberg type string

    def avro_schema(self) -> Any:
        """The Avro type as the AvroConverter writes it (without the optional-union wrapper)."""
        if self.avro_logical is None and self.semantic is None and self.connect not in ("INT16", "INT8"):
            return self.avro
        # key order as the AvroConverter writes it: a registry compares schema text, so order matters
        out: dict[str, Any] = {"type": self.avro}
        if self.connect == "INT16":
            out["connect.type"] = "int16"
        logical = dict(self.avro_logical or {})
        for k in ("scale", "precision"):
            if k in logical:
                out[k] = logical.pop(k)
        if self.semantic:
            out["connect.version"] = 1
        if "connect.parameters" in logical:
            out["connect.parameters"] = logical.pop("connect.parameters")
        if self.semantic:
            out["connect.name"] = self.semantic
        out.update(logical)
        return out


@dataclass(frozen=True)
class TypeMapOptions:
    decimal_handling_mode: str = "precise"
    time_precision_mode: str = "adaptive"
    uuid_as: str = "uuid"  # or "string" for engines that cannot read Iceberg uuid

    @classmethod
    def from_connector(cls, config: dict[str, str] | None, base: TypeMapOptions | None = None,
                       source: str = "<connector config>") -> TypeMapOptions:
        """The options a live Debezium connector config implies (its defaults when a key is unset), keeping the
        rest of `base`. A mode this map does not model is refused (exit 2) naming the key, never guessed."""
        base = base or cls()
        if config is None:
            return base
        modes = {}
        for key, allowed in MODES.items():
            value = config.get(key, allowed[0]).strip().lower()
            if value not in allowed:
                raise UnsupportedTypeError(f"{key}={value!r} is not carried by this pipeline; expected one of "
                                           + ", ".join(allowed), file=source, key=key)
            modes[key] = value
        return replace(base, decimal_handling_mode=modes["decimal.handling.mode"],
                       time_precision_mode=modes["time.precision.mode"])


#: the connector settings the map honours, each with Debezium's default first
MODES = {
    "decimal.handling.mode": ("precise", "double", "string"),
    "time.precision.mode": ("adaptive", "adaptive_time_microseconds", "connect"),
}


def _unsupported(t: PgType, why: str = "") -> UnsupportedTypeError:
    msg = f"type {t.render()!r} has no mapping across the pipeline layers" + (f": {why}" if why else "")
    return UnsupportedTypeError(msg, file="<type map>")


def map_type(t: PgType | str, options: TypeMapOptions | None = None) -> LayerTypes:
    """Map one canonical Postgres type to every layer, or raise UnsupportedTypeError naming it."""
    opts = options or TypeMapOptions()
    pg = parse_type(t) if isinstance(t, str) else t
    name = pg.render()
    if pg.is_array:
        raise _unsupported(pg, "arrays are not carried by this pipeline yet")
    n = pg.name
    simple = {
        "smallint": ("INT16", "int", "int"),
        "integer": ("INT32", "int", "int"),
        "bigint": ("INT64", "long", "long"),
        "real": ("FLOAT32", "float", "float"),
        "double precision": ("FLOAT64", "double", "double"),
        "boolean": ("BOOLEAN", "boolean", "boolean"),
        "bytea": ("BYTES", "bytes", "binary"),
    }
    if n in simple:
        c, a, i = simple[n]
        return LayerTypes(name, c, None, a, None, i)
    if n in STRING_TYPES:
        return LayerTypes(name, "STRING", None, "string", None, "string")
    if n == "numeric":
        mode = opts.decimal_handling_mode
        if mode == "double":
            return LayerTypes(name, "FLOAT64", None, "double", None, "double")
        if mode == "string":
            return LayerTypes(name, "STRING", None, "string", None, "string")
        if pg.precision is None:
            raise _unsupported(pg, "numeric without precision becomes Debezium's VariableScaleDecimal struct; "
                                   "declare numeric(p,s) or set decimal.handling.mode=double|string")
        p, s = pg.precision, pg.scale or 0
        if p > 38:
            raise _unsupported(pg, "Iceberg decimals hold at most 38 digits")
        logical = {
            "scale": s,
            "precision": p,
            "connect.parameters": {"scale": str(s), "connect.decimal.precision": str(p)},
            "logicalType": "decimal",
        }
        return LayerTypes(name, "BYTES", "org.apache.kafka.connect.data.Decimal", "bytes", logical, f"decimal({p}, {s})")
    if n == "timestamp with time zone":
        return LayerTypes(name, "STRING", "io.debezium.time.ZonedTimestamp", "string", None, "timestamptz")
    if n == "timestamp without time zone":
        if opts.time_precision_mode == "connect":
            return LayerTypes(name, "INT64", "org.apache.kafka.connect.data.Timestamp", "long",
                              {"logicalType": "timestamp-millis"}, "timestamp")
        prec = pg.precision if pg.precision is not None else 6
        sem = "io.debezium.time.Timestamp" if prec <= 3 else "io.debezium.time.MicroTimestamp"
        return LayerTypes(name, "INT64", sem, "long", None, "timestamp")
    if n == "date":
        if opts.time_precision_mode == "connect":
            return LayerTypes(name, "INT32", "org.apache.kafka.connect.data.Date", "int",
                              {"logicalType": "date"}, "date")
        return LayerTypes(name, "INT32", "io.debezium.time.Date", "int", None, "date")
    if n == "time without time zone":
        prec = pg.precision if pg.precision is not None else 6
        if opts.time_precision_mode == "connect" or (prec <= 3 and opts.time_precision_mode == "adaptive"):
            raise _unsupported(pg, "millisecond time is not carried; use time(6)")
        return LayerTypes(name, "INT64", "io.debezium.time.MicroTime", "long", None, "time")
    if n == "uuid":
        return LayerTypes(name, "STRING", "io.debezium.data.Uuid", "string", None, opts.uuid_as)
    if n in ("json", "jsonb"):
        return LayerTypes(name, "STRING", "io.debezium.data.Json", "string", None, "string")
    raise _unsupported(pg)


# --- the reverse direction: what a registry / Iceberg type means, for verify -----------------------------


def avro_signature(avro_type: Any) -> tuple[str, str | None]:
    """(primitive, semantic) of an Avro field type as written by the AvroConverter; optional unions unwrapped."""
    t = avro_type
    if isinstance(t, list):
        non_null = [x for x in t if x != "null"]
        if len(non_null) != 1:
            return ("union", None)
        t = non_null[0]
    if isinstance(t, dict):
        prim = t.get("type")
        if isinstance(prim, dict | list):
            return avro_signature(prim)
        sem = t.get("connect.name")
        if t.get("logicalType") == "decimal":
            sem = f"decimal({t.get('precision')}, {t.get('scale', 0)})"
        return (str(prim), sem)
    return (str(t), None)


def expected_avro_signature(lt: LayerTypes) -> tuple[str, str | None]:
    if lt.avro_logical and lt.avro_logical.get("logicalType") == "decimal":
        return (lt.avro, f"decimal({lt.avro_logical['precision']}, {lt.avro_logical['scale']})")
    return (lt.avro, lt.semantic)


def avro_optional(avro_type: Any) -> bool:
    return isinstance(avro_type, list) and "null" in avro_type


def normalise_iceberg(type_str: str) -> str:
    """pyiceberg prints `decimal(14, 2)`; accept `decimal(14,2)` too."""
    return type_str.replace(", ", ",").replace(",", ", ").strip().lower()
