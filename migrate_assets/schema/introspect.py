"""Reading live tables from `pg_catalog`, schema-scoped, in a constant number of queries.

Four bulk queries (tables, columns, constraints, indexes) cover any number of tables, with `search_path`
set to `pg_catalog` so that `format_type`, `pg_get_expr` and `pg_get_indexdef` print every non-catalog name
qualified — the same text whatever the caller's search_path. `canonicalize` asks Postgres (inside a rolled
back transaction, in one round trip) for its own spelling of desired defaults and index predicates whose text
differs from the live one, so equal expressions written differently do not show up as changes.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import psycopg
from psycopg import sql

from migrate_assets.schema.model import Column, Constraint, Index, Table
from migrate_assets.schema.types import PgType, from_catalog

TableKey = tuple[str, str]

#: the relations in scope; every query starts from it, so no large oid arrays are sent or scanned
_SCOPE = """
WITH rels AS (
    SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%(schemas)s)
      AND (%(all)s OR (n.nspname, c.relname) IN (SELECT * FROM unnest(%(tschemas)s::text[], %(tnames)s::text[])))
)"""

_TABLES = _SCOPE + """
SELECT r.oid, r.nspname, r.relname, NULL FROM rels r
"""

_COLUMNS = _SCOPE + """,
cols AS (
    SELECT a.attrelid, a.attname, a.atttypid, a.atttypmod, a.attndims, a.attnotnull, a.attidentity,
           a.attgenerated, a.attnum
    FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid
    WHERE a.attnum > 0 AND NOT a.attisdropped
),
types AS (  -- format each distinct (type, typmod) once
    SELECT t.atttypid, t.atttypmod, format_type(t.atttypid, t.atttypmod) AS formatted
    FROM (SELECT DISTINCT atttypid, atttypmod FROM cols) t
),
owned AS (
    SELECT dep.refobjid, dep.refobjsubid FROM pg_depend dep JOIN pg_class s ON s.oid = dep.objid AND s.relkind = 'S'
    WHERE dep.classid = 'pg_class'::regclass AND dep.refclassid = 'pg_class'::regclass AND dep.deptype = 'a'
)
SELECT c.attrelid, c.attname, t.formatted, c.attndims, c.attnotnull, pg_get_expr(ad.adbin, ad.adrelid),
       c.attidentity, c.attgenerated, NULL, o.refobjid IS NOT NULL, c.attnum
FROM cols c
JOIN types t ON t.atttypid = c.atttypid AND t.atttypmod = c.atttypmod
LEFT JOIN pg_attrdef ad ON ad.adrelid = c.attrelid AND ad.adnum = c.attnum
LEFT JOIN owned o ON o.refobjid = c.attrelid AND o.refobjsubid = c.attnum
"""  # noqa: S608

_COMMENTS = _SCOPE + """
SELECT d.objoid, d.objsubid, d.description FROM pg_description d
WHERE d.classoid = 'pg_class'::regclass AND d.objoid IN (SELECT oid FROM rels)
"""  # noqa: S608

_CONSTRAINTS = _SCOPE + """
SELECT con.conrelid, con.contype, con.conname,
       ARRAY(SELECT a.attname FROM unnest(con.conkey) WITH ORDINALITY k(attnum, ord)
             JOIN pg_attribute a ON a.attrelid = con.conrelid AND a.attnum = k.attnum ORDER BY k.ord)
FROM rels r JOIN pg_constraint con ON con.conrelid = r.oid
WHERE con.contype IN ('p', 'u')
"""  # noqa: S608

#: an index is opaque (compared by its whole definition) when it has expressions, INCLUDE columns,
#: DESC/NULLS options, a non-default operator class or an explicit collation
_INDEXES = _SCOPE + """,
backing AS (
    SELECT con.conindid FROM rels r JOIN pg_constraint con ON con.conrelid = r.oid
    WHERE con.contype IN ('p', 'u', 'x')
),
nondefault AS (SELECT coalesce(array_agg(oid), '{}') AS oids FROM pg_opclass WHERE NOT opcdefault)
SELECT x.indrelid, x.relname, x.indisunique, x.amname,
       CASE WHEN x.opaque OR NOT x.indisvalid THEN pg_get_indexdef(x.indexrelid) END,
       x.pred, x.cols, x.opaque, x.indisvalid
FROM (
    SELECT i.indrelid, ic.relname, i.indisunique, am.amname, i.indexrelid,
           pg_get_expr(i.indpred, i.indrelid) AS pred,
           ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(attnum, ord)
                 LEFT JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                 WHERE k.ord <= i.indnkeyatts ORDER BY k.ord) AS cols,
           i.indexprs IS NOT NULL OR i.indnkeyatts < i.indnatts
             OR EXISTS (SELECT 1 FROM unnest(i.indoption::int2[]) o WHERE o <> 0)
             OR i.indclass::oid[] && (SELECT oids FROM nondefault)
             OR EXISTS (SELECT 1 FROM unnest(i.indcollation::oid[]) c WHERE c NOT IN (0, 100)) AS opaque,
           i.indisvalid
    FROM rels r
    JOIN pg_index i ON i.indrelid = r.oid
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    WHERE i.indexrelid NOT IN (SELECT conindid FROM backing)
) x
"""  # noqa: S608


@dataclass
class _Acc:
    schema: str
    name: str
    comment: str | None
    columns: list[Column]
    pk: Constraint | None
    uniques: list[Constraint]
    indexes: list[Index]


class _CatalogPath:
    """Context manager: search_path = pg_catalog for the duration, restored afterwards (same transaction)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.old = "public"

    def __enter__(self) -> None:
        row = self.conn.execute("SELECT current_setting('search_path'), set_config('search_path', 'pg_catalog', false)").fetchone()
        self.old = row[0] if row else "public"

    def __exit__(self, *exc: object) -> None:
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            self.conn.execute("SELECT set_config('search_path', %s, false)", [self.old])


def introspect(
    conn: psycopg.Connection, schemas: Iterable[str], tables: Iterable[TableKey] | None = None
) -> dict[TableKey, Table]:
    """Live tables of `schemas` (all of them, or only `tables`), keyed by (schema, name)."""
    wanted = list(tables) if tables is not None else []
    params = {
        "schemas": sorted(set(schemas) | {s for s, _ in wanted}),
        "all": tables is None,
        "tschemas": [s for s, _ in wanted],
        "tnames": [n for _, n in wanted],
    }
    acc: dict[int, _Acc] = {}
    with _CatalogPath(conn):
        for oid, nsp, rel, comment in conn.execute(_TABLES, params).fetchall():
            acc[oid] = _Acc(nsp, rel, comment, [], None, [], [])
        if acc:
            comments = {(o, sub): d for o, sub, d in conn.execute(_COMMENTS, params).fetchall()}
            for oid, a in acc.items():
                a.comment = comments.get((oid, 0))
            rows = conn.execute(_COLUMNS, params).fetchall()
            rows.sort(key=lambda r: (r[0], r[10]))
            for row in rows:
                if row[0] in acc:
                    acc[row[0]].columns.append(_column(row, comments.get((row[0], row[10]))))
            for relid, contype, name, cols in conn.execute(_CONSTRAINTS, params).fetchall():
                if relid not in acc:
                    continue
                con = Constraint(name, tuple(cols))
                if contype == "p":
                    acc[relid].pk = con
                else:
                    acc[relid].uniques.append(con)
            for row in conn.execute(_INDEXES, params).fetchall():
                if row[0] in acc:
                    acc[row[0]].indexes.append(_index(row))
    out: dict[TableKey, Table] = {}
    for a in acc.values():
        out[(a.schema, a.name)] = Table(
            a.schema,
            a.name,
            tuple(a.columns),
            a.pk,
            tuple(sorted(a.uniques, key=lambda u: u.columns)),
            tuple(sorted(a.indexes, key=lambda i: i.name)),
            a.comment,
        )
    return out


def _column(row: Sequence[object], comment: object) -> Column:
    _, name, fmt, ndims, notnull, default, identity, generated, _, owns_seq, _attnum = row
    ptype = from_catalog(str(fmt), int(ndims or 0))  # type: ignore[call-overload]
    serial = bool(owns_seq) and isinstance(default, str) and default.startswith("nextval(")
    return Column(
        name=str(name),
        type=ptype,
        nullable=not notnull,
        default=None if serial or generated == "s" else (str(default) if default is not None else None),
        serial=serial,
        identity={"a": "always", "d": "by default"}.get(str(identity)),
        generated=str(default) if generated == "s" else None,
        comment=str(comment) if comment is not None else None,
    )


def _index(row: Sequence[object]) -> Index:
    _, name, unique, method, definition, pred, cols, opaque, valid = row
    col_list = list(cols) if isinstance(cols, list) else []
    names = tuple(str(c) for c in col_list) if not opaque and all(c is not None for c in col_list) else ()
    return Index(
        name=str(name),
        columns=names,
        unique=bool(unique),
        where=str(pred) if pred is not None else None,
        method=str(method),
        definition=None if definition is None else str(definition) + ("" if valid else " -- INVALID"),
        expression=bool(opaque) or not names or not valid,
    )


def existing_schemas(conn: psycopg.Connection, names: Iterable[str]) -> set[str]:
    """Which of `names` exist as schemas (one query)."""
    rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname = ANY(%s)", [sorted(set(names))]).fetchall()
    return {str(r[0]) for r in rows}


def tables_with_rows(conn: psycopg.Connection, keys: Iterable[TableKey]) -> set[TableKey]:
    """Which of `keys` hold at least one row, in one statement (query_to_xml runs the probe per table)."""
    keys = list(keys)
    if not keys:
        return set()
    q = """
    SELECT s, t FROM unnest(%s::text[], %s::text[]) AS k(s, t)
    WHERE (xpath('/row/e/text()',
           query_to_xml(format('SELECT EXISTS (SELECT 1 FROM %%I.%%I) AS e', s, t), false, true, '')))[1]::text = 'true'
    """
    rows = conn.execute(q, [[k[0] for k in keys], [k[1] for k in keys]]).fetchall()
    return {(str(s), str(t)) for s, t in rows}


@dataclass(frozen=True)
class Canonical:
    """Postgres' own spelling of desired expressions: defaults by (type, expr), predicates by index."""

    defaults: dict[tuple[str, str], str]
    predicates: dict[tuple[str, str, str], str]


def canonicalize(
    conn: psycopg.Connection,
    defaults: Iterable[tuple[PgType, str]],
    predicates: Iterable[tuple[TableKey, Index]],
) -> Canonical:
    """Ask Postgres how it stores each expression (temp objects in a rolled-back transaction).

    Raises `psycopg.Error` when an expression is invalid; `find_invalid` then names the culprits.
    """
    dlist = sorted(set(defaults), key=lambda d: (d[0].render(), d[1]))
    plist = list(predicates)
    if not dlist and not plist:
        return Canonical({}, {})
    stmts: list[sql.Composable] = []
    chunk = 1000
    for start in range(0, len(dlist), chunk):
        cols = sql.SQL(", ").join(
            sql.SQL("{} {} DEFAULT {}").format(sql.Identifier(f"c{start + i}"), sql.SQL(t.render()), sql.SQL(e))  # noqa: S608
            for i, (t, e) in enumerate(dlist[start : start + chunk])
        )
        stmts.append(sql.SQL("CREATE TEMP TABLE {} ({})").format(sql.Identifier(f"_ma_canon_d{start}"), cols))
    for i, (key, ix) in enumerate(plist):
        tmp = sql.Identifier(f"_ma_canon_p{i}")
        stmts.append(sql.SQL("CREATE TEMP TABLE {} (LIKE {})").format(tmp, sql.Identifier(*key)))
        stmts.append(
            sql.SQL("CREATE INDEX {} ON {} ({}) WHERE {}").format(
                sql.Identifier(f"_ma_canon_i{i}"), tmp, sql.SQL(", ").join(map(sql.Identifier, ix.columns)), sql.SQL(ix.where or "true")
            )
        )
    out_d: dict[tuple[str, str], str] = {}
    out_p: dict[tuple[str, str, str], str] = {}
    with conn.transaction(force_rollback=True):
        conn.execute(sql.SQL(";\n").join(stmts))
        with _CatalogPath(conn):
            rows = conn.execute(
                """SELECT c.relname, a.attname, pg_get_expr(ad.adbin, ad.adrelid)
                   FROM pg_attrdef ad JOIN pg_class c ON c.oid = ad.adrelid
                   JOIN pg_attribute a ON a.attrelid = ad.adrelid AND a.attnum = ad.adnum
                   WHERE c.relnamespace = pg_my_temp_schema() AND c.relname LIKE '\\_ma\\_canon\\_d%%'"""
            ).fetchall()
            for _, att, expr in rows:
                t, e = dlist[int(str(att)[1:])]
                out_d[(t.render(), e)] = str(expr)
            rows = conn.execute(
                """SELECT c.relname, pg_get_expr(i.indpred, i.indrelid) FROM pg_index i
                   JOIN pg_class c ON c.oid = i.indexrelid
                   WHERE c.relnamespace = pg_my_temp_schema() AND c.relname LIKE '\\_ma\\_canon\\_i%%'"""
            ).fetchall()
            for rel, pred in rows:
                key, ix = plist[int(str(rel)[len("_ma_canon_i") :])]
                out_p[(key[0], key[1], ix.name)] = str(pred)
    return Canonical(out_d, out_p)


def find_invalid(conn: psycopg.Connection, defaults: Iterable[tuple[PgType, str]]) -> list[tuple[PgType, str, str]]:
    """Each (type, default) Postgres rejects, with its error (error path only: one statement per default)."""
    bad: list[tuple[PgType, str, str]] = []
    with conn.transaction(force_rollback=True):
        for i, (t, e) in enumerate(sorted(set(defaults), key=lambda d: (d[0].render(), d[1]))):
            try:
                with conn.transaction():
                    conn.execute(
                        sql.SQL("CREATE TEMP TABLE {} (c {} DEFAULT {})").format(  # noqa: S608
                            sql.Identifier(f"_ma_check_{i}"), sql.SQL(t.render()), sql.SQL(e)
                        )
                    )
            except psycopg.Error as exc:
                bad.append((t, e, str(exc).strip().splitlines()[0]))
    return bad
