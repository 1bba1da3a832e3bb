"""The table as expand sees it: schema's `Table`, read by `schema.introspect` and kept in the state row as JSON.

Contract and abort rebuild the plan from the recorded pre-expand `Table` in any process, even after expand changed
the table; abort proves it restored the table by comparing schema's `fingerprint` of the live table with the one
recorded before expand (`restored`).

Rows written before expand used schema's model (no `format` key) hold a reduced column list and a catalog hash
that is no longer computed. They are still read, so an expand such a version started can be continued,
contracted or aborted; abort then checks what it undoes — the columns, their NOT NULL and the primary key.
"""

from __future__ import annotations

from typing import Any

import psycopg

from migrate_assets.expand.state import OperationState
from migrate_assets.schema.introspect import introspect
from migrate_assets.schema.model import Column, Constraint, Index, Table, fingerprint
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


def to_json(t: Table) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "schema": t.schema,
        "name": t.name,
        "columns": [
            {
                "name": c.name, "type": c.type.render(), "nullable": c.nullable, "default": c.default,
                "serial": c.serial, "identity": c.identity, "generated": c.generated, "comment": c.comment,
            }
            for c in t.columns
        ],
        "primary_key": _constraint_json(t.primary_key) if t.primary_key else None,
        "uniques": [_constraint_json(u) for u in t.uniques],
        "indexes": [
            {
                "name": i.name, "columns": list(i.columns), "unique": i.unique, "where": i.where,
                "method": i.method, "definition": i.definition, "expression": i.expression,
            }
            for i in t.indexes
        ],
        "comment": t.comment,
    }  # fmt: skip


def from_json(data: dict[str, Any]) -> Table:
    """Inverse of `to_json`; also reads the rows older versions wrote."""
    if data.get("format") != FORMAT:
        return _from_format_1(data)
    pk = data["primary_key"]
    return Table(
        schema=data["schema"],
        name=data["name"],
        columns=tuple(Column(**{**c, "type": parse_type(c["type"])}) for c in data["columns"]),
        primary_key=_constraint(pk) if pk else None,
        uniques=tuple(map(_constraint, data["uniques"])),
        indexes=tuple(Index(**{**i, "columns": tuple(i["columns"])}) for i in data["indexes"]),
        comment=data["comment"],
    )


def _constraint_json(c: Constraint) -> dict[str, Any]:
    return {"name": c.name, "columns": list(c.columns)}


def _constraint(data: dict[str, Any]) -> Constraint:
    return Constraint(data["name"], tuple(data["columns"]))


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
