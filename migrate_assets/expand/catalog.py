"""What the planner needs to know about the live table, read from `pg_catalog` as plain data.

`TableInfo` is JSON-serialisable so the state table can keep the pre-expand shape: contract and abort rebuild
the exact same plan from it in any process, even after expand changed the table. `table_fingerprint` hashes
everything that makes up the table's schema (columns, types, defaults, constraints, indexes, triggers) so abort
can prove that it restored the table.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass
from typing import Any

import psycopg


@dataclass(frozen=True)
class ColumnInfo:
    name: str
    type: str  # format_type(atttypid, atttypmod): canonical, typmod kept
    not_null: bool
    default: str | None
    identity: bool = False
    generated: bool = False


@dataclass(frozen=True)
class TableInfo:
    schema: str
    name: str
    columns: tuple[ColumnInfo, ...]
    primary_key: tuple[str, ...]
    #: index name → column names it covers (to warn that contract drops indexes on replaced columns)
    indexes: tuple[tuple[str, tuple[str, ...]], ...] = ()

    def column(self, name: str) -> ColumnInfo | None:
        for c in self.columns:
            if c.name == name:
                return c
        return None

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> TableInfo:
        return cls(
            schema=data["schema"],
            name=data["name"],
            columns=tuple(ColumnInfo(**c) for c in data["columns"]),
            primary_key=tuple(data["primary_key"]),
            indexes=tuple((n, tuple(cols)) for n, cols in data.get("indexes", ())),
        )


_COLUMNS = """
SELECT a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
       pg_get_expr(d.adbin, d.adrelid), a.attidentity <> '', a.attgenerated <> ''
FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
WHERE a.attrelid = %(rel)s AND a.attnum > 0 AND NOT a.attisdropped ORDER BY a.attnum
"""
_PK = """
SELECT a.attname FROM pg_constraint c
CROSS JOIN LATERAL unnest(c.conkey) WITH ORDINALITY AS k(attnum, ord)
JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = k.attnum
WHERE c.conrelid = %(rel)s AND c.contype = 'p' ORDER BY k.ord
"""
_INDEXES = """
SELECT ic.relname, array_agg(a.attname ORDER BY a.attnum) FILTER (WHERE a.attname IS NOT NULL)
FROM pg_index i JOIN pg_class ic ON ic.oid = i.indexrelid
LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey)
WHERE i.indrelid = %(rel)s GROUP BY ic.relname ORDER BY ic.relname
"""


def relation_oid(conn: psycopg.Connection[Any], schema: str, name: str) -> int | None:
    row = conn.execute(
        "SELECT c.oid FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
        "WHERE n.nspname = %s AND c.relname = %s AND c.relkind IN ('r', 'p')",
        (schema, name),
    ).fetchone()
    return int(row[0]) if row else None


def read_table(conn: psycopg.Connection[Any], schema: str, name: str) -> TableInfo | None:
    """The table's columns, primary key and indexes; None when the table does not exist."""
    oid = relation_oid(conn, schema, name)
    if oid is None:
        return None
    params = {"rel": oid}
    cols = tuple(
        ColumnInfo(name=r[0], type=r[1], not_null=r[2], default=r[3], identity=r[4], generated=r[5])
        for r in conn.execute(_COLUMNS, params).fetchall()
    )
    pk = tuple(r[0] for r in conn.execute(_PK, params).fetchall())
    idx = tuple((r[0], tuple(r[1] or ())) for r in conn.execute(_INDEXES, params).fetchall())
    return TableInfo(schema=schema, name=name, columns=cols, primary_key=pk, indexes=idx)


_FINGERPRINT = """
SELECT json_build_object(
  'columns', (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod), a.attnotnull,
                    pg_get_expr(d.adbin, d.adrelid), a.attidentity, a.attgenerated, a.attcollation)
                    ORDER BY a.attnum)
              FROM pg_attribute a LEFT JOIN pg_attrdef d ON d.adrelid = a.attrelid AND d.adnum = a.attnum
              WHERE a.attrelid = %(rel)s AND a.attnum > 0 AND NOT a.attisdropped),
  'constraints', (SELECT json_agg(json_build_array(conname, pg_get_constraintdef(oid), convalidated)
                    ORDER BY conname) FROM pg_constraint WHERE conrelid = %(rel)s),
  'indexes', (SELECT json_agg(pg_get_indexdef(indexrelid) ORDER BY indexrelid::regclass::text)
              FROM pg_index WHERE indrelid = %(rel)s),
  'triggers', (SELECT json_agg(json_build_array(tgname, pg_get_triggerdef(oid), tgenabled) ORDER BY tgname)
               FROM pg_trigger WHERE tgrelid = %(rel)s AND NOT tgisinternal)
)::text
"""


def table_fingerprint(conn: psycopg.Connection[Any], schema: str, name: str) -> str:
    """SHA-256 over the table's schema as pg_catalog describes it ('' when the table does not exist)."""
    oid = relation_oid(conn, schema, name)
    if oid is None:
        return ""
    (doc,) = conn.execute(_FINGERPRINT, {"rel": oid}).fetchone() or ("",)
    canonical = json.dumps(json.loads(doc), sort_keys=True)
    return hashlib.sha256(canonical.encode()).hexdigest()
