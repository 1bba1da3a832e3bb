"""Schema parsing, identity and compatibility rules (Avro here, JSON Schema in `jsoncompat`, Protobuf in
`protocompat`).

Two parsers validate every schema because each lets through mistakes the other catches (e.g. the `avro`
package accepts some malformed defaults fastavro refuses, and the reverse for some name rules).
Compatibility uses the `avro` package's `ReaderWriterCompatibilityChecker`, the Python port of the checker
the Java registry uses, so answers match what Kafka Connect's AvroConverter would get from Confluent.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

import avro.name
import avro.schema
import fastavro
from avro.compatibility import (
    ReaderWriterCompatibilityChecker,
    SchemaCompatibilityResult,
    SchemaCompatibilityType,
)

from . import jsoncompat, protocompat
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


#: what `/schemas/types` lists
SCHEMA_TYPES = ("AVRO", "JSON", "PROTOBUF")


@dataclass(frozen=True)
class Reference:
    """One entry of a request's `references`: the type `name` is defined by `subject` at `version`."""

    name: str
    subject: str
    version: int

    def to_json(self) -> dict[str, object]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True)
class Resolved:
    """A referenced schema, its own references already resolved (dependencies come first in a list)."""

    text: str
    schema_type: str


@dataclass(frozen=True)
class ParsedSchema:
    """A validated schema with the two identity keys the store compares on.

    `key` ignores whitespace and attribute order (what Confluent does without `normalize`, since it compares
    re-serialized schemas); `normalized` also sorts every object's keys, for `normalize=true`. Both include
    the type and the references, so the same text with other references is another schema. `parsed` is the
    Avro schema with every referenced type inlined (None for JSON and PROTOBUF).
    """

    text: str
    parsed: avro.schema.Schema | None
    key: str
    normalized: str
    schema_type: str = "AVRO"
    references: tuple[Reference, ...] = ()


def _sorted_json(value: object) -> str:
    return json.dumps(value, sort_keys=True, separators=(",", ":"))


def schema_type_of(value: object) -> str:
    """The canonical type name; absent means AVRO; anything unknown is 42201 as with Confluent."""
    if value is None:
        return "AVRO"
    if isinstance(value, str) and value.upper() in SCHEMA_TYPES:
        return value.upper()
    raise RegistryError(INVALID_SCHEMA, f"Invalid schemaType {value!r}: expected one of {', '.join(SCHEMA_TYPES)}")


def references_of(value: object) -> tuple[Reference, ...]:
    """A request's `references`, checked field by field (42201 naming the entry and what was expected)."""
    if value is None:
        return ()
    if not isinstance(value, list):
        raise RegistryError(INVALID_SCHEMA, "Invalid schema: references must be a list")
    refs = []
    for n, item in enumerate(value):
        ok = (
            isinstance(item, dict)
            and isinstance(item.get("name"), str) and item["name"]
            and isinstance(item.get("subject"), str) and item["subject"]
            and type(item.get("version")) is int and item["version"] >= -1 and item["version"] != 0
        )
        if not ok:
            raise RegistryError(
                INVALID_SCHEMA,
                f"Invalid schema: references[{n}] needs a non-empty name and subject and a version "
                "(a number of at least 1, or -1 for the latest)",
            )
        refs.append(Reference(item["name"], item["subject"], item["version"]))
    return tuple(refs)


def parse(text: object, schema_type: object = None, references: object = None,
          limits: Limits = DEFAULT_LIMITS, resolved: list[Resolved] | None = None) -> ParsedSchema:
    """Validate a schema as received in a request body; any problem is a 42201 naming the cause. Nesting and
    size are checked first (`limits`), so a pathological schema is refused before any parser sees it.
    `resolved`: the referenced schemas (dependencies first), as the store found them for `references`."""
    kind = schema_type_of(schema_type)
    refs = references_of(references)
    if not isinstance(text, str) or not text.strip():
        raise RegistryError(INVALID_SCHEMA, "Invalid schema: empty or not a string")
    check_schema_depth(text, limits)
    ref_key = _sorted_json([r.to_json() for r in refs]) if refs else ""
    if kind == "PROTOBUF":
        proto = protocompat.parse(text)  # refused here when it does not parse; stored as given
        names = {r.name for r in refs}
        missing = [i for i in proto.imports if i not in names and not i.startswith(protocompat.WELL_KNOWN)]
        if missing:
            raise RegistryError(
                INVALID_SCHEMA, f"Invalid schema: import {missing[0]!r} is not among the references"
            )
        key = "PROTOBUF|" + " ".join(text.split()) + ref_key
        return ParsedSchema(text, None, key, key, kind, refs)
    try:
        as_json = json.loads(text)
    except (ValueError, RecursionError) as exc:
        raise RegistryError(INVALID_SCHEMA, f"Invalid schema: not JSON: {exc}") from exc
    check_schema_size(as_json, limits)
    if kind == "JSON":
        jsoncompat.validate(as_json)
        key = "JSON|" + json.dumps(as_json, separators=(",", ":")) + ref_key
        return ParsedSchema(text, None, key, "JSON|" + _sorted_json(as_json) + ref_key, kind, refs)
    parsed = _parse_avro(as_json, text, resolved or [])
    full = parsed.to_json()
    # `full` has every referenced type inlined: normalized, the same content matches whether it came with
    # references (in any order) or fully resolved, as with Confluent's `normalize=true`
    return ParsedSchema(
        text=text,
        parsed=parsed,
        key=json.dumps(full, separators=(",", ":")) + ref_key,
        normalized=_sorted_json(full),
        references=refs,
    )


def _parse_avro(as_json: Any, text: str, resolved: list[Resolved]) -> avro.schema.Schema:
    """Both parsers, the referenced types defined first in each, so names resolve as Confluent's do."""
    names = avro.name.Names()
    named: dict[str, Any] = {}
    for ref in resolved:
        if ref.schema_type != "AVRO":
            raise RegistryError(INVALID_SCHEMA, f"Invalid schema: an Avro schema cannot reference a {ref.schema_type} schema")
        try:
            ref_json = json.loads(ref.text)
            avro.schema.make_avsc_object(ref_json, names)
            fastavro.parse_schema(ref_json, named_schemas=named, _write_hint=False)
        except Exception as exc:  # both parsers raise several unrelated exception types
            raise RegistryError(INVALID_SCHEMA, f"Invalid schema: a referenced schema does not parse with the others: {exc}") from exc
    try:
        parsed = avro.schema.make_avsc_object(as_json, names)
    except Exception as exc:  # the avro package raises several unrelated exception types
        raise RegistryError(INVALID_SCHEMA, f"Invalid schema (avro): {exc}") from exc
    try:
        fastavro.parse_schema(as_json, named_schemas=named, _write_hint=False)
    except Exception as exc:  # fastavro likewise
        raise RegistryError(INVALID_SCHEMA, f"Invalid schema (fastavro): {exc}") from exc
    return parsed


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


def check(new: ParsedSchema, old: ParsedSchema, old_version: int, level: str) -> list[str]:
    """Messages explaining why `new` may not follow `old` under `level`; empty when compatible.

    BACKWARD: consumers on the new schema read old data (new = reader). FORWARD: consumers on the old
    schema read new data (old = reader). FULL: both. The transitive part is the caller's job (which versions).
    """
    if new.schema_type != old.schema_type:
        return [
            f"{{errorType:'SCHEMA_TYPE_MISMATCH', description:'version {old_version} is a {old.schema_type} "
            f"schema, the new one is {new.schema_type}', location:'/'}}"
        ]
    base = level.removesuffix("_TRANSITIVE")
    if new.schema_type == "JSON":
        return _check_json(new, old, old_version, base)
    if new.schema_type == "PROTOBUF":
        return _check_protobuf(new, old, old_version, base)
    assert new.parsed is not None and old.parsed is not None
    pairs: list[tuple[str, avro.schema.Schema, avro.schema.Schema]] = []
    if base in ("BACKWARD", "FULL"):
        pairs.append(("BACKWARD (new schema reads old data)", new.parsed, old.parsed))
    if base in ("FORWARD", "FULL"):
        pairs.append(("FORWARD (old schema reads new data)", old.parsed, new.parsed))
    messages = []
    for direction, reader, writer in pairs:
        # a fresh checker each time: it memoizes by object identity
        result = ReaderWriterCompatibilityChecker().get_compatibility(reader, writer)
        if result.compatibility is SchemaCompatibilityType.incompatible:
            messages.append(_describe(result, direction, old_version))
    return messages


def _check_json(new: ParsedSchema, old: ParsedSchema, old_version: int, base: str) -> list[str]:
    """Confluent's JSON Schema rules (`jsoncompat`): BACKWARD diffs old -> new, FORWARD new -> old."""
    if new.references or old.references:
        raise RegistryError(
            INVALID_SCHEMA,
            "Compatibility rules for JSON schemas with references are not implemented by this registry: "
            "set the subject's level to NONE to keep more than one version",
        )
    return _both_ways(json.loads(new.text), json.loads(old.text), old_version, base, jsoncompat.incompatible)


def _check_protobuf(new: ParsedSchema, old: ParsedSchema, old_version: int, base: str) -> list[str]:
    """Confluent's Protobuf rules (`protocompat`): BACKWARD diffs old -> new, FORWARD new -> old."""
    return _both_ways(protocompat.parse(new.text), protocompat.parse(old.text), old_version, base,
                      protocompat.incompatible)


def _both_ways(new: Any, old: Any, old_version: int, base: str,
               incompatible: Callable[[Any, Any], Iterable[Any]]) -> list[str]:
    """Confluent's messages for a structural checker: BACKWARD diffs old -> new, FORWARD new -> old, FULL both."""
    pairs = []
    if base in ("BACKWARD", "FULL"):
        pairs.append(("BACKWARD (new schema reads old data)", old, new))
    if base in ("FORWARD", "FULL"):
        pairs.append(("FORWARD (old schema reads new data)", new, old))
    return [f"{{errorType:'{found.kind}', description:'{direction} check against version {old_version} "
            f"failed', location:'{found.path}'}}"
            for direction, original, update in pairs for found in incompatible(original, update)]
