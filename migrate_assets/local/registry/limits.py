"""What one request may ask of the registry: body size, and a schema's nesting and size.

A real registry sits behind a web server that refuses oversized bodies (413) long before any parsing; without
limits, one 7 MB schema kept a core busy for ten minutes here (the `avro` compatibility checker looks fields up
by a dict it rebuilds on every call, so its cost grows with the square of the field count). The defaults are
far above any table PostgreSQL can hold (1,600 columns) and are set by the command line flags.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from .errors import INVALID_SCHEMA, RegistryError

_STRING = re.compile(r'"(?:[^"\\]|\\.)*"')
_BRACKET = re.compile(r"[][{}]")

#: HTTP 413, as the error code a Confluent client reads from the body
PAYLOAD_TOO_LARGE = 413


@dataclass(frozen=True)
class Limits:
    max_body_bytes: int = 1 << 20
    #: nesting of JSON objects/arrays in one schema
    max_schema_depth: int = 64
    #: record fields, summed over every record of the schema (PostgreSQL tables have at most 1,600 columns)
    max_schema_fields: int = 2_000
    #: JSON values of the schema (types, names, enum symbols, union branches, defaults, ...)
    max_schema_nodes: int = 100_000

    def __post_init__(self) -> None:
        for name in ("max_body_bytes", "max_schema_depth", "max_schema_fields", "max_schema_nodes"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1")


def too_large(size: int | None, limits: Limits) -> RegistryError:
    got = f"{size:,} bytes" if size is not None else "more"
    return RegistryError(
        PAYLOAD_TOO_LARGE, f"Request entity too large: {got}, the limit is {limits.max_body_bytes:,} bytes")


def check_schema_depth(text: str, limits: Limits) -> None:
    """Refuse nesting deeper than the limit before any parser recurses into it (one pass over the brackets
    outside strings)."""
    depth = 0
    for m in _BRACKET.finditer(_STRING.sub("", text)):
        depth += 1 if m.group() in "[{" else -1
        if depth > limits.max_schema_depth:
            raise RegistryError(INVALID_SCHEMA, f"Invalid schema: nested deeper than {limits.max_schema_depth} levels")


def check_schema_size(value: Any, limits: Limits) -> None:
    """Refuse a schema with more record fields, or more JSON values, than the limits (no recursion)."""
    fields = nodes = 0
    stack = [value]
    while stack:
        node = stack.pop()
        nodes += 1
        if isinstance(node, dict):
            if isinstance(node.get("fields"), list):
                fields += len(node["fields"])
            stack.extend(node.values())
        elif isinstance(node, list):
            stack.extend(node)
        if fields > limits.max_schema_fields:
            raise RegistryError(INVALID_SCHEMA, f"Invalid schema: more than {limits.max_schema_fields:,} record fields")
        if nodes > limits.max_schema_nodes:
            raise RegistryError(INVALID_SCHEMA, f"Invalid schema: more than {limits.max_schema_nodes:,} JSON values")
