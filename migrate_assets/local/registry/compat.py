"""Avro parsing, schema identity and compatibility rules.

Two parsers validate every schema because each lets through mistakes the other catches (e.g. the `avro`
package accepts some malformed defaults fastavro refuses, and the reverse for some name rules).
Compatibility uses the `avro` package's `ReaderWriterCompatibilityChecker`, the Python port of the checker
the Java registry uses, so answers match what Kafka Connect's AvroConverter would get from Confluent.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

import avro.schema
import fastavro
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)

from .errors import INVALID_COMPATIBILITY_LEVEL, INVALID_SCHEMA, RegistryError
from .limits import Limits, check_schema_depth, check_schema_size

DEFAULT_LIMITS = Limits()

LEVELS = (
    "BACKWARD",
    "BACKWARD_TRANSITIVE",
    "FORWARD",
    "FORWARD_TRANSITIVE",
    "FULL",
    "FULL_TRANSITIVE",
    "NONE",
)
DEFAULT_LEVEL = "BACKWARD"


def check_level(value: object) -> str:
    """The level in its canonical upper-case spelling, or 42203 as Confluent answers."""
    if isinstance(value, str) and value.upper() in LEVELS:
        return value.upper()
    raise RegistryError(
        INVALID_COMPATIBILITY_LEVEL,
        f"Invalid compatibility level {value!r}. Valid values are: {', '.join(LEVELS)}",
    )


@dataclass(frozen=True)
class ParsedSchema:
    """A validated schema with the two identity keys the store compares on.

    `key` ignores whitespace and attribute order (what Confluent does without `normalize`, since it compares
    re-serialized schemas); `normalized` also sorts every object's keys, for `normalize=true`.
    """

    text: str
    parsed: avro.schema.Schema
    key: str
    normalized: str


def _sorted_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def parse(text: object, schema_type: object = None, references: object = None,
          limits: Limits = DEFAULT_LIMITS) -> ParsedSchema:
    """Validate a schema as received in a request body; any problem is a 42201 naming the cause. Nesting and
    size are checked first (`limits`), so a pathological schema is refused before any parser sees it."""
    if schema_type is not None and str(schema_type).upper() != "AVRO":
        raise RegistryError(
            INVALID_SCHEMA, f"Unsupported schemaType {schema_type!r}: this registry only supports AVRO"
        )
    if references not in (None, []):
        raise RegistryError(INVALID_SCHEMA, "Schema references are not supported by this registry")
    if not isinstance(text, str) or not text.strip():
        raise RegistryError(INVALID_SCHEMA, "Invalid schema: empty or not a string")
    check_schema_depth(text, limits)
    try:
        as_json = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(INVALID_SCHEMA, f"Invalid schema: not JSON: {exc}") from exc
    check_schema_size(as_json, limits)
    try:
        parsed = avro.schema.parse(text)
    except Exception as exc:  # the avro package raises several unrelated exception types
        raise RegistryError(INVALID_SCHEMA, f"Invalid schema (avro): {exc}") from exc
    try:
        fastavro.parse_schema(as_json, _write_hint=False)
    except Exception as exc:  # fastavro likewise
        raise RegistryError(INVALID_SCHEMA, f"Invalid schema (fastavro): {exc}") from exc
    full = parsed.to_json()
    return ParsedSchema(
        text=text,
        parsed=parsed,
        key=json.dumps(full, separators=(",", ":")),
        normalized=_sorted_json(full),
    )


_HINTS = {
    "name_mismatch": "named types differ in name",
    "fixed_size_mismatch": "fixed sizes differ",
    "missing_enum_symbols": "writer enum symbols missing from the reader",
    "reader_field_missing_default_value": "reader field without a default is absent from the writer",
    "type_mismatch": "types cannot be promoted",
    "missing_union_branch": "writer union branch missing from the reader",
}


def _describe(result: SchemaCompatibilityResult, direction: str, version: int) -> str:
    """One Confluent-style message: the error type(s), what it means, where, and the checker's details."""
    kinds = sorted({i.value for i in result.incompatibilities})
    hints = "; ".join(_HINTS.get(k, k) for k in kinds)
    where = ", ".join(sorted(result.locations))
    what = "; ".join(sorted(result.messages))
    return (
        f"{{errorType:'{', '.join(k.upper() for k in kinds)}', description:'{direction} check against "
        f"version {version} failed ({hints}): {what}', location:'{where}'}}"
    )


def check(new: ParsedSchema, old: avro.schema.Schema, old_version: int, level: str) -> list[str]:
    """Messages explaining why `new` may not follow `old` under `level`; empty when compatible.

    BACKWARD: consumers on the new schema read old data (new = reader). FORWARD: consumers on the old
    schema read new data (old = reader). FULL: both. The transitive part is the caller's job (which versions).
    """
    base = level.removesuffix("_TRANSITIVE")
    pairs: list[tuple[str, avro.schema.Schema, avro.schema.Schema]] = []
    if base in ("BACKWARD", "FULL"):
        pairs.append(("BACKWARD (new schema reads old data)", new.parsed, old))
    if base in ("FORWARD", "FULL"):
        pairs.append(("FORWARD (old schema reads new data)", old, new.parsed))
    messages = []
    for direction, reader, writer in pairs:
        # a fresh checker each time: it memoizes by object identity
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
        if result.compatibility is SchemaCompatibilityType.incompatible:
            messages.append(_describe(result, direction, old_version))
    return messages


def parse_stored(text: str) -> avro.schema.Schema:
    """Parse a schema that was validated when it was stored."""
    return avro.schema.parse(text)
