"""The table as expand sees it: schema's `Table`, read by `schema.introspect` and kept in the state row as JSON.

Contract and abort rebuild the plan from the recorded pre-expand `Table` in any process, even after expand changed
the table; abort proves it restored the table by comparing schema's `fingerprint` of the live table with the one
recorded before expand (`restored`).

Rows written before expand used schema's model (no `format` key) hold a reduced column list and a catalog hash
that is no longer computed. They are still read, so an expand such a version started can be continued,
contracted or aborted; abort then checks what it undoes — the columns, their NOT NULL and the primary key.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import psycopg

from migrate_assets.expand.state import OperationState
from migrate_assets.schema.introspect import introspect
from migrate_assets.schema.model import (
    Check,
    Column,
    Constraint,
    Exclude,
    ExcludeElement,
    ForeignKey,
    Index,
    IndexElement,
    Table,
    fingerprint,
)
from migrate_assets.schema.partitions import Bound, Partition, Partitioning
from migrate_assets.schema.types import PgType, UnknownTypeError, from_catalog, parse_type

FORMAT = 2


def read_live(conn: psycopg.Connection[Any], schema: str, name: str) -> Table | None:
    """The live table (None when it does not exist)."""
    return introspect(conn, [schema], [(schema, name)]).get((schema, name))


def table_fingerprint(conn: psycopg.Connection[Any], schema: str, name: str) -> str:
    """Schema's fingerprint of the live table ('' when it does not exist)."""
    live = read_live(conn, schema, name)
    return fingerprint([live]) if live is not None else ""


def restored(live: Table | None, st: OperationState) -> bool:
    """Is `live` the table as it was before `st`'s expand?"""
    if live is None:
        return False
    if st.table_info.get("format") == FORMAT:
        return fingerprint([live]) == st.pre_fingerprint
    return _undone_facts(live) == _undone_facts(from_json(st.table_info))


def _undone_facts(t: Table) -> tuple[object, ...]:
    return tuple((c.name, c.nullable) for c in t.columns), t.primary_key.columns if t.primary_key else ()


#: fields never kept: where a spec came from, and what the catalog said around the table (read again when needed)
_SKIP = frozenset({"source", "others", "column_users", "resolve"})
#: the record type of each nested field, by the record that holds it
_NESTED: dict[type, dict[str, type]] = {
    Table: {"columns": Column, "primary_key": Constraint, "uniques": Constraint, "indexes": Index,
            "foreign_keys": ForeignKey, "checks": Check, "excludes": Exclude, "partitioning": Partitioning},
    Partitioning: {"partitions": Partition},
    Partition: {"bound": Bound},
    Index: {"elements": IndexElement},
    Exclude: {"elements": ExcludeElement},
}


def to_json(t: Table) -> dict[str, Any]:
    """Every fact of the table model (each record's fields by name), so what expand recorded is what it read."""
    return {"format": FORMAT, **_encode(t)}


def _encode(value: Any) -> Any:
    if isinstance(value, PgType):
        return value.render()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: _encode(getattr(value, f.name)) for f in dataclasses.fields(value) if f.name not in _SKIP}
    if isinstance(value, tuple | list | frozenset):
        return [_encode(v) for v in (sorted(value) if isinstance(value, frozenset) else value)]
    return value


def from_json(data: dict[str, Any]) -> Table:
    """Inverse of `to_json`; also reads the rows older versions wrote (fields they lack take their defaults)."""
    if data.get("format") != FORMAT:
        return _from_format_1(data)
    return _decode(Table, {k: v for k, v in data.items() if k != "format"})


def _decode(cls: type, data: dict[str, Any]) -> Any:
    nested = _NESTED.get(cls, {})
    names = {f.name: f for f in dataclasses.fields(cls)}
    kwargs: dict[str, Any] = {}
    for key, raw in data.items():
        if key not in names:
            continue  # a field a newer version wrote: ignored, as the table is read again where it matters
        if key in nested:
            inner = nested[key]
            kwargs[key] = (None if raw is None else _decode(inner, raw)) if not isinstance(raw, list) else \
                tuple(_decode(inner, item) for item in raw)
        elif key == "type" and cls is Column:
            kwargs[key] = parse_type(raw)
        elif key == "manages":
            kwargs[key] = frozenset(raw)
        else:
            kwargs[key] = _tuples(raw)
    return cls(**kwargs)


def _tuples(value: Any) -> Any:
    return tuple(_tuples(v) for v in value) if isinstance(value, list) else value


def _from_format_1(data: dict[str, Any]) -> Table:
    """Older rows: format_type() text per column, flags for identity/generated, every index by its columns."""
    cols = tuple(
        Column(
            name=c["name"],
            type=_format_1_type(c["type"]),
            nullable=not c["not_null"],
            default=None if c["generated"] else c["default"],
            identity="by default" if c["identity"] else None,  # only whether it is one was recorded
            generated=c["default"] if c["generated"] else None,
        )
        for c in data["columns"]
    )
    pk = tuple(data["primary_key"])
    return Table(
        schema=data["schema"],
        name=data["name"],
        columns=cols,
        primary_key=Constraint(None, pk) if pk else None,
        indexes=tuple(Index(n, tuple(c)) for n, c in data.get("indexes", ())),
    )


def _format_1_type(text: str) -> PgType:
    try:
        return from_catalog(text)
    except UnknownTypeError:
        # a user type printed unqualified (it was on the search_path): kept as written, which is how the
        # recorded plan used it in SQL
        return PgType(text)
