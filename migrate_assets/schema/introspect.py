"""Reading live tables from `pg_catalog`, schema-scoped, in a constant number of queries.

Five bulk queries (tables, columns, constraints, indexes, other objects) cover any number of tables, with
`search_path` set to `pg_catalog` so that `format_type`, `pg_get_expr` and `pg_get_indexdef` print every
non-catalog name qualified — the same text whatever the caller's search_path. The tables query finds the scope
once; the others get its oids as one array (exact row estimates, no repeated scan of pg_class) and are read row
by row in chunks (`_stream`), so that no query's whole result is held beside the objects built from it. `Canonical` carries Postgres' reading of desired
and live expressions whose text differs (`exprcheck.canonical_forms`), so equal expressions written differently
do not show up as changes.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import psycopg

from migrate_assets.schema import partitions
from migrate_assets.schema.model import (
    FK_ACTIONS,
    FK_MATCH,
    Check,
    Column,
    Constraint,
    Exclude,
    ExcludeElement,
    ForeignKey,
    Index,
    IndexElement,
    Table,
    positional_constructor,
)
from migrate_assets.schema.plan import Unmanaged
from migrate_assets.schema.types import from_catalog

TableKey = tuple[str, str]

#: the relations in scope; every query starts from it, so no large oid arrays are sent or scanned
_SCOPE = """
WITH rels AS (
    SELECT c.oid, n.nspname, c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE c.relkind IN ('r', 'p') AND NOT c.relispartition AND n.nspname = ANY(%(schemas)s)
      AND (%(all)s OR (n.nspname, c.relname) IN (SELECT k->>0, k->>1 FROM json_array_elements(%(tables)s::json) k))
)"""

_TABLES = _SCOPE + """
SELECT r.oid, r.nspname, r.relname, d.description,
       EXISTS (SELECT FROM pg_partitioned_table pt WHERE pt.partrelid = r.oid) FROM rels r
LEFT JOIN pg_description d ON d.objoid = r.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid = 0
"""  # noqa: S608

#: the tables found by `_TABLES`, by oid: the other queries start from it
_RELS = """
WITH rels AS (SELECT unnest(%(oids)s::oid[]) AS oid)"""

#: defaults (with whether the column owns a sequence) and comments are gathered for the tables in scope and
#: joined in, not looked up column by column; a default cannot reference columns, so it is printed without
#: the table as context (relid 0): with it, every call opens the table and builds its column names — only
#: generated columns need that. Which columns own a sequence is read from the sequences' side (pg_sequence, then
#: each one's dependencies by index) instead of a scan of pg_depend. A column's collation (when not its type's)
#: and an identity column's sequence options are looked up for those columns only (CASE around a subquery: most
#: columns have neither), so that no separate query is needed for them
_COLUMNS = _RELS + """,
owned AS MATERIALIZED (
    SELECT DISTINCT dep.refobjid, dep.refobjsubid FROM pg_sequence s
    JOIN pg_depend dep ON dep.classid = 'pg_class'::regclass AND dep.objid = s.seqrelid AND dep.objsubid = 0
         AND dep.refclassid = 'pg_class'::regclass AND dep.deptype = 'a'
),
descs AS (
    SELECT d.objoid, d.objsubid, d.description FROM rels r
    JOIN pg_description d ON d.objoid = r.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid > 0
)
SELECT a.attrelid, a.attname, format_type(a.atttypid, a.atttypmod), a.attndims, a.attnotnull,
       pg_get_expr(ad.adbin, CASE WHEN a.attgenerated = '' THEN 0 ELSE a.attrelid END),
       a.attidentity, a.attgenerated, ds.description,
       CASE WHEN ad.adbin IS NOT NULL THEN o.refobjid IS NOT NULL END, a.attnum,
       CASE WHEN a.attcollation NOT IN (0, 100) THEN (
           SELECT 'column collation ' || quote_ident(co.collname) FROM pg_type ty JOIN pg_collation co ON co.oid = a.attcollation
           WHERE ty.oid = a.atttypid AND ty.typcollation <> a.attcollation) END,
       CASE WHEN a.attidentity <> '' THEN (
           SELECT json_build_array(s.seqstart, s.seqincrement, s.seqmin, s.seqmax, s.seqcache, s.seqcycle,
                                   format_type(s.seqtypid, NULL))
           FROM pg_depend d JOIN pg_sequence s ON s.seqrelid = d.objid
           WHERE d.refclassid = 'pg_class'::regclass AND d.refobjid = a.attrelid AND d.refobjsubid = a.attnum
             AND d.classid = 'pg_class'::regclass AND d.deptype = 'i' LIMIT 1) END
FROM rels r JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef ad ON ad.adrelid = a.attrelid AND ad.adnum = a.attnum
LEFT JOIN owned o ON o.refobjid = a.attrelid AND o.refobjsubid = a.attnum
LEFT JOIN descs ds ON ds.objoid = a.attrelid AND ds.objsubid = a.attnum
"""  # noqa: S608

#: key columns come back as attnums and are named from the columns already read; `unmanaged` says why the old
#: spec form (no `unique:` list) cannot express a PRIMARY KEY / UNIQUE constraint (it then stays in the model, so
#: its columns count as covered, but is never dropped). FOREIGN KEY and CHECK constraints come with everything the
#: spec can say about them; the referenced table's columns are named here (it may be outside the scope), for
#: FOREIGN KEYs only, and a FOREIGN KEY's whole definition only when the spec cannot express it (it is listed).
#: A CHECK comes as its stored tree, printed later once per distinct tree and names (`_PRINTED`)
_CONSTRAINTS = _RELS + """
SELECT con.conrelid, con.contype, con.conname, con.conkey,
       CASE WHEN con.contype NOT IN ('p', 'u') THEN NULL
            WHEN ix.indnkeyatts < ix.indnatts THEN 'INCLUDE columns'
            WHEN con.condeferrable THEN 'DEFERRABLE'
            WHEN {nnd_con} THEN 'NULLS NOT DISTINCT'
            WHEN con.contype = 'u' AND cardinality(con.conkey) > 1 THEN 'UNIQUE over several columns'
       END,
       con.condeferrable, con.condeferred, con.convalidated, coalesce({nnd_con}, false),
       fn.nspname, fc.relname, f.cols, con.confupdtype, con.confdeltype, con.confmatchtype,
       CASE WHEN con.contype = 'c' THEN con.conbin::text END, con.connoinherit,
       CASE WHEN con.contype = 'f' AND ({delset} OR con.confmatchtype NOT IN ('s', 'f') OR f.cols IS NULL)
            THEN pg_get_constraintdef(con.oid) END, {delset},
       CASE WHEN con.contype = 'x' THEN (SELECT am.amname FROM pg_class ic JOIN pg_am am ON am.oid = ic.relam
                                         WHERE ic.oid = ix.indexrelid) END,
       CASE WHEN con.contype = 'x' THEN pg_get_expr(ix.indpred, ix.indrelid) END,
       CASE WHEN con.contype = 'x' THEN ARRAY(
           SELECT a.attname FROM generate_series(1, ix.indnkeyatts) g(i) LEFT JOIN pg_attribute a
           ON a.attrelid = ix.indrelid AND a.attnum = ix.indkey[g.i - 1] AND a.attnum > 0 ORDER BY g.i) END,
       CASE WHEN con.contype = 'x' THEN ARRAY(
           SELECT pg_get_indexdef(ix.indexrelid, g.i, true) FROM generate_series(1, ix.indnkeyatts) g(i) ORDER BY g.i) END,
       CASE WHEN con.contype = 'x' THEN ARRAY(
           SELECT o.oprname FROM unnest(con.conexclop) WITH ORDINALITY k(op, i) JOIN pg_operator o ON o.oid = k.op
           ORDER BY k.i) END,
       CASE WHEN con.contype = 'x' THEN ARRAY(
           SELECT a.attname FROM generate_series(ix.indnkeyatts + 1, ix.indnatts) g(i) JOIN pg_attribute a
           ON a.attrelid = ix.indrelid AND a.attnum = ix.indkey[g.i - 1] ORDER BY g.i) END,
       con.oid
FROM rels r JOIN pg_constraint con ON con.conrelid = r.oid
LEFT JOIN pg_index ix ON ix.indexrelid = con.conindid
LEFT JOIN pg_class fc ON fc.oid = con.confrelid
LEFT JOIN pg_namespace fn ON fn.oid = fc.relnamespace
LEFT JOIN LATERAL (
    SELECT array_agg(fa.attname ORDER BY k.i) AS cols FROM unnest(con.confkey) WITH ORDINALITY AS k(n, i)
    CROSS JOIN LATERAL (  -- each key looked up by index (OFFSET 0: not turned into a hash of every column)
        SELECT fa.attname FROM pg_attribute fa WHERE fa.attrelid = con.confrelid AND fa.attnum = k.n OFFSET 0) fa
    WHERE con.contype = 'f'
) f ON true
WHERE con.contype IN ('p', 'u', 'f', 'c', 'x')
"""  # noqa: S608

#: CHECK expressions and index predicates as Postgres prints them, for one constraint / index of each distinct
#: (stored tree, names its Vars print as): `pg_get_expr` reads nothing else, and with a table as context it opens
#: the table (a relation-cache build: 0.35 s for 10,000 tables, while most schemas repeat their CHECKs and
#: predicates from table to table). `_var_key` says which names
_PRINTED = """
SELECT 'c', c.oid, pg_get_expr(c.conbin, c.conrelid) FROM unnest(%(checks)s::oid[]) AS o(oid)
JOIN pg_constraint c ON c.oid = o.oid
UNION ALL
SELECT 'i', i.indexrelid, pg_get_expr(i.indpred, i.indrelid) FROM unnest(%(predicates)s::oid[]) AS o(oid)
JOIN pg_index i ON i.indexrelid = o.oid
"""

#: the columns (attnums) an object uses, from pg_depend: only asked for the few unmanaged objects
_USED = """(SELECT array_agg(DISTINCT u.refobjsubid) FROM pg_depend u WHERE u.classid = '{cls}'::regclass
           AND u.objid = {oid} AND u.refclassid = 'pg_class'::regclass AND u.refobjsubid > 0)"""

#: an index is opaque (compared by its whole definition, never dropped: the spec cannot express it) when it has
#: expressions, INCLUDE columns, DESC/NULLS options, a non-default operator class, a collation other than its
#: column's own, or an access method the spec does not know; the reason comes back as text. The collation test
#: looks at the columns only for an index with a non-default collation (most have none: 2.3x faster at 2,000
#: tables); an explicit COLLATE "default" on a column of another collation is thus not seen. A predicate comes as its
#: stored tree, printed later once per distinct tree and names (`_PRINTED`)
_INDEXES = _RELS + """,
nondefault AS (SELECT coalesce(array_agg(oid), '{}') AS oids FROM pg_opclass WHERE NOT opcdefault)
SELECT x.indrelid, x.relname, x.indisunique, x.amname,
       CASE WHEN x.opaque IS NOT NULL OR NOT x.indisvalid THEN pg_get_indexdef(x.indexrelid) END,
       x.indpred::text, x.indkey, x.opaque, x.indisvalid,
       CASE WHEN x.opaque IS NOT NULL THEN """ + _USED.format(cls="pg_class", oid="x.indexrelid") + """ END,
       CASE WHEN x.opaque IS NOT NULL THEN (
           SELECT json_agg(json_build_array(
                      k.attnum, CASE WHEN k.attnum = 0 THEN pg_get_indexdef(x.indexrelid, k.n::int, false) END, k.opt,
                      CASE WHEN oc.opcdefault THEN NULL WHEN ocn.nspname = 'pg_catalog' THEN oc.opcname::text
                           ELSE ocn.nspname || '.' || oc.opcname END,
                      CASE WHEN k.coll = 0 OR k.coll = coalesce(a.attcollation, 100) THEN NULL ELSE co.collname::text END)
                  ORDER BY k.n)
           FROM unnest(x.allkeys, x.indoption::int2[], x.indclass::oid[], x.indcollation::oid[])
                WITH ORDINALITY AS k(attnum, opt, cls, coll, n)
           LEFT JOIN pg_opclass oc ON oc.oid = k.cls LEFT JOIN pg_namespace ocn ON ocn.oid = oc.opcnamespace
           LEFT JOIN pg_attribute a ON a.attrelid = x.indrelid AND a.attnum = k.attnum AND k.attnum > 0
           LEFT JOIN pg_collation co ON co.oid = k.coll
           WHERE k.n <= x.indnkeyatts) END,
       (x.allkeys)[x.indnkeyatts:], x.nnd, x.indexrelid
FROM (
    SELECT i.indrelid, ic.relname, i.indisunique, am.amname, i.indexrelid, i.indpred,
           (i.indkey::int2[])[:i.indnkeyatts - 1] AS indkey, i.indkey::int2[] AS allkeys, i.indnkeyatts,
           i.indoption, i.indclass, i.indcollation, coalesce({nnd_idx}, false) AS nnd,
           CASE WHEN i.indexprs IS NOT NULL THEN 'expression'
                WHEN i.indnkeyatts < i.indnatts THEN 'INCLUDE columns'
                WHEN 0 <> ANY(i.indoption::int2[]) THEN 'DESC / NULLS FIRST ordering'
                WHEN i.indclass::oid[] && (SELECT oids FROM nondefault) THEN 'non-default operator class'
                WHEN NOT i.indcollation::oid[] <@ '{0,100}'::oid[] AND EXISTS (
                    SELECT FROM unnest((i.indkey::int2[])[:i.indnkeyatts - 1], i.indcollation::oid[]) AS k(attnum, coll)
                    JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.attnum
                    WHERE k.coll <> a.attcollation
                ) THEN 'collation other than the column''s'
                WHEN {nnd_idx} THEN 'NULLS NOT DISTINCT'
                WHEN am.amname <> ALL('{btree,hash,gist,gin,brin,spgist}') THEN 'access method ' || am.amname
           END AS opaque,
           i.indisvalid
    FROM rels r
    JOIN pg_index i ON i.indrelid = r.oid
    JOIN pg_class ic ON ic.oid = i.indexrelid
    JOIN pg_am am ON am.oid = ic.relam
    WHERE NOT EXISTS (SELECT FROM pg_constraint con WHERE con.conindid = i.indexrelid AND con.contype IN ('p', 'u', 'x'))
) x
"""  # noqa: S608

#: objects of kinds the spec format has no words for, per table: (relid, kind, name, reason, attnums used); column
#: collations come with the columns. Views are found from the rewrite rules' side (few) rather than by looking up
#: every table's dependents
_OTHERS = _RELS + """
SELECT con.conrelid, 'exclusion', con.conname, pg_get_constraintdef(con.oid),
       """ + _USED.format(cls="pg_constraint", oid="con.oid") + """
FROM rels r JOIN pg_constraint con ON con.conrelid = r.oid WHERE con.contype = 'x'
UNION ALL
SELECT t.tgrelid, 'trigger', t.tgname, pg_get_triggerdef(t.oid), """ + _USED.format(cls="pg_trigger", oid="t.oid") + """
FROM rels r JOIN pg_trigger t ON t.tgrelid = r.oid WHERE NOT t.tgisinternal
UNION ALL
SELECT r.oid, CASE v.relkind WHEN 'm' THEN 'materialized_view' ELSE 'view' END, v.oid::regclass::text,
       'reads this table', array_agg(DISTINCT d.refobjsubid) FILTER (WHERE d.refobjsubid > 0)
FROM pg_rewrite rw
JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid AND d.refclassid = 'pg_class'::regclass
JOIN rels r ON r.oid = d.refobjid
JOIN pg_class v ON v.oid = rw.ev_class AND v.oid <> r.oid
GROUP BY r.oid, v.oid, v.relkind
UNION ALL
SELECT p.polrelid, 'policy', p.polname, 'row-level security policy', """ + _USED.format(cls="pg_policy", oid="p.oid") + """
FROM rels r JOIN pg_policy p ON p.polrelid = r.oid
"""  # noqa: S608

#: what the `kind`s of `_OTHERS` are, for the reason text
_OTHER_WHAT = {
    "check": "CHECK constraint",
    "foreign_key": "FOREIGN KEY",
    "exclusion": "EXCLUDE constraint",
    "trigger": "trigger",
    "view": "view",
    "materialized_view": "materialized view",
    "collation": "collation",
    "policy": "policy",
}


def _for_server(conn: psycopg.Connection, query: str) -> str:
    """`query` with the catalog columns this server has (`indnullsnotdistinct` is Postgres 15+)."""
    has = conn.info.server_version >= 150000
    return query.replace("{nnd_con}", "ix.indnullsnotdistinct" if has else "false").replace(
        "{nnd_idx}", "i.indnullsnotdistinct" if has else "false"
    ).replace("{delset}", "con.confdelsetcols IS NOT NULL" if has else "false")


class _CatalogPath:
    """Context manager: search_path = pg_catalog for the duration, restored afterwards (same transaction).

    JIT is off meanwhile: the catalog queries are cheap per row but, with exact row estimates, costly enough in
    total for the planner to compile them (0.12-0.2 s of LLVM at 10,000 tables, more than it ever saves here)."""

    def __init__(self, conn: psycopg.Connection) -> None:
        self.conn = conn
        self.old = ("public", "on")

    def __enter__(self) -> None:
        row = self.conn.execute(
            "SELECT current_setting('search_path'), current_setting('jit'), set_config('search_path', 'pg_catalog', false), "
            "set_config('jit', 'off', false)").fetchone()  # fmt: skip
        self.old = (row[0], row[1]) if row else ("public", "on")

    def __exit__(self, *exc: object) -> None:
        if self.conn.info.transaction_status != psycopg.pq.TransactionStatus.INERROR:
            self.conn.execute("SELECT set_config('search_path', %s, false), set_config('jit', %s, false)", list(self.old))


catalog_path = _CatalogPath


def introspect(
    conn: psycopg.Connection, schemas: Iterable[str], tables: Iterable[TableKey] | None = None
) -> dict[TableKey, Table]:
    """Live tables of `schemas` (all of them, or only `tables`), keyed by (schema, name).

    Uses `conn` alone (no module state): it may run in a thread of its own while specs load."""
    wanted = list(tables) if tables is not None else []
    params = {
        "schemas": sorted(set(schemas) | {s for s, _ in wanted}),
        "all": tables is None,
        "tables": json.dumps(wanted, ensure_ascii=False),  # one string: one JSON parse, not 2 arrays
    }
    with _CatalogPath(conn):
        rels = conn.execute(_TABLES, params).fetchall()
        if not rels:
            return {}
        scope = {"oids": [r[0] for r in rels]}
        columns, attnames, other_rows = _columns(_stream(conn, _COLUMNS, scope))
        pks: dict[int, Constraint] = {}
        uniques: dict[int, list[Constraint]] = {}
        fkeys: dict[int, list[ForeignKey]] = {}
        checks: dict[int, list[Check]] = {}
        excludes: dict[int, list[Exclude]] = {}
        uses: dict[int, set[tuple[str, str, str]]] = {}  # (column, kind, name) of objects the spec may not manage
        odd: list[tuple[int, str, str, str, str, list[int]]] = []
        no_names: dict[int, str] = {}
        relnames = {r[0]: r[2] for r in rels}
        printed = _Printed()
        check_rows: list[tuple[int, str, bool, bool, int]] = []  # built once their expressions are printed
        for (relid, contype, name, conkey, why, deferrable, deferred, valid, nnd, fnsp, frel, fcols, upd, dele, match,
             tree, noinherit, fdef, delset, xam, xwhere, xcols, xdefs, xops, xinclude, conoid) in _stream(
                conn, _for_server(conn, _CONSTRAINTS), scope):  # fmt: skip
            names = attnames.get(relid, no_names)
            cols = tuple([names[k] for k in conkey if k in names]) if conkey else ()
            if contype in ("p", "u"):
                con = _new_constraint(name, cols, why, nnd, deferrable, deferred, None)
                if contype == "p":
                    pks[relid] = con
                else:
                    uniques.setdefault(relid, []).append(con)
            elif contype == "f" and (delset or match not in FK_MATCH or not fcols):
                odd.append((relid, "foreign_key", name, fdef or "", "FOREIGN KEY", list(conkey or ())))
            elif contype == "f":
                fkeys.setdefault(relid, []).append(_new_foreign_key(
                    name, cols, fnsp, frel, tuple(fcols), FK_ACTIONS[dele], FK_ACTIONS[upd], FK_MATCH[match],
                    deferrable, deferred, valid, None))  # fmt: skip
                _note_uses(uses, names, relid, "foreign_key", name, conkey)
            elif contype == "x":  # listed among the others too (with the columns it uses) while no spec manages it
                elements = tuple(ExcludeElement(c, None if c is not None else d, o)
                                 for c, d, o in zip(xcols, xdefs, xops, strict=False))
                excludes.setdefault(relid, []).append(
                    Exclude(name, elements, xam, xwhere, tuple(xinclude), deferrable, deferred))
            else:
                group = printed.group("c", tree, conoid, names, relnames[relid]) if tree is not None else -1
                check_rows.append((relid, name, noinherit, valid, group))
                _note_uses(uses, names, relid, "check", name, conkey)
        indexes: dict[int, list[Index]] = {}
        opaque_uses: list[tuple[int, str, list[int] | None]] = []
        partial: list[tuple[int, int, tuple[Any, ...]]] = []  # built once their predicates are printed
        for (relid, iname, unique, method, idef, tree, keys, opaque, valid, used, elements, include,
             nnd, indoid) in _stream(conn, _for_server(conn, _INDEXES), scope):  # fmt: skip
            args = (iname, unique, method, idef, None, keys, opaque, valid, elements, include, nnd)
            if tree is None:
                indexes.setdefault(relid, []).append(_index(attnames.get(relid, no_names), *args))
            else:
                partial.append((relid, printed.group("i", tree, indoid, attnames.get(relid, no_names),
                                                     relnames[relid]), args))
            if used:
                opaque_uses.append((relid, iname, used))
        texts = printed.texts(conn)
        for relid, name, noinherit, valid, group in check_rows:
            checks.setdefault(relid, []).append(_new_check(name, texts.get(("c", group)) or "", noinherit, valid, None))
        for relid, group, (iname, unique, method, idef, _, keys, opaque, valid, elements, include, nnd) in partial:
            indexes.setdefault(relid, []).append(_index(
                attnames.get(relid, no_names), iname, unique, method, idef, texts.get(("i", group)), keys, opaque, valid,
                elements, include, nnd))  # fmt: skip
        other_rows.extend(_stream(conn, _OTHERS, scope))
        # partitioned tables: key and partitions (asked only when there is one)
        parted_oids = [r[0] for r in rels if r[4]]
        parted = partitions.read_live(conn, _RELS, {"oids": parted_oids}) if parted_oids else {}
    names_of = {oid: f"{nsp}.{rel}" for oid, nsp, rel, *_ in rels}
    others: dict[int, list[Unmanaged]] = {}
    for relid, kind, name, detail, what, used in odd:
        others.setdefault(relid, []).append(Unmanaged(names_of[relid], kind, name, f"{what}: {detail}"))
        _note_uses(uses, attnames.get(relid, no_names), relid, kind, name, used)
    for relid, name, used in opaque_uses:
        _note_uses(uses, attnames.get(relid, no_names), relid, "index", name, used)
    for relid, kind, name, detail, used in sorted(other_rows, key=_BY_KIND_NAME):
        reason = f"{_OTHER_WHAT.get(kind, kind)}: {detail}" if kind not in ("collation", "policy") else detail
        others.setdefault(relid, []).append(Unmanaged(names_of[relid], kind, name, reason))
        _note_uses(uses, attnames.get(relid, no_names), relid, kind, name, used)
    del attnames
    return {
        (nsp, rel): Table(
            nsp,
            rel,
            tuple(columns.get(oid, ())),
            pks.get(oid),
            _sorted(uniques.get(oid), _BY_COLUMNS),
            _sorted(indexes.get(oid), _BY_NAME),
            comment,
            foreign_keys=_sorted(fkeys.get(oid), _BY_NAME),
            checks=_sorted(checks.get(oid), _BY_NAME),
            excludes=_sorted(excludes.get(oid), _BY_NAME),
            others=tuple(others.get(oid, ())),
            column_users=tuple(sorted(uses[oid])) if oid in uses else (),
            partitioning=parted.get(oid),
        )
        for oid, nsp, rel, comment, _ in rels
    }


#: rows per chunk when reading a query's result (`_stream`): enough to keep the per-chunk overhead small, few
#: enough that a 10,000-table catalog is never held whole (220,000 column rows were 110 MiB at once)
_CHUNK = 4096
_BY_NAME = operator.attrgetter("name")
_BY_COLUMNS = operator.attrgetter("columns")
_BY_KIND_NAME = operator.itemgetter(0, 1, 2)


def _stream(conn: psycopg.Connection, query: str, params: dict[str, Any]) -> Iterator[tuple[Any, ...]]:
    """The rows of `query`, received in chunks of `_CHUNK` (libpq's chunked rows mode, libpq 17+; with an older
    libpq the whole result is received at once, and rows are still made one at a time)."""
    if psycopg.capabilities.has_stream_chunked():
        return conn.cursor().stream(query, params, size=_CHUNK)
    return iter(conn.execute(query, params))


_VARATTNO = re.compile(r":varattno (-?[0-9]+) ")


class _Printed:
    """CHECK expressions (`c`) and index predicates (`i`) to print, one per distinct stored tree and names its
    Vars print as; `texts` prints them in one statement (`_PRINTED`)."""

    def __init__(self) -> None:
        self.groups: dict[tuple[Any, ...], int] = {}
        self.ones: dict[str, list[int]] = {"c": [], "i": []}  # the constraint / index printed for each group
        self.kinds: list[tuple[str, int]] = []  # group -> (kind, oid printed)
        self.attnos: dict[str, list[int]] = {}  # tree -> the attnos of its Vars (trees repeat)

    def group(self, kind: str, tree: str, oid: int, names: dict[int, str], relname: str) -> int:
        """The group of an expression `tree` of a table with columns `names` (attnum -> name) called `relname`."""
        nums = self.attnos.get(tree)
        if nums is None:
            nums = self.attnos[tree] = _var_attnos(tree)
        key = (kind, tree, tuple([names.get(n) for n in nums if n > 0]), relname if 0 in nums else None)
        got = self.groups.get(key)
        if got is None:
            got = self.groups[key] = len(self.kinds)
            self.kinds.append((kind, oid))
            self.ones[kind].append(oid)
        return got

    def texts(self, conn: psycopg.Connection) -> dict[tuple[str, int], str]:
        """(kind, group) -> the printed expression."""
        if not self.kinds:
            return {}
        rows = conn.execute(_PRINTED, {"checks": self.ones["c"], "predicates": self.ones["i"]}).fetchall()
        by_oid = {(kind, oid): text for kind, oid, text in rows}
        return {(kind, g): by_oid[(kind, oid)] for g, (kind, oid) in enumerate(self.kinds) if (kind, oid) in by_oid}


def _var_attnos(tree: str) -> list[int]:
    """The attnos of the Vars of a stored expression tree (`:varattno N`), sorted. Besides the tree,
    `pg_get_expr(tree, table)` prints only the names of those columns (a system column's, attno < 0, is the same
    in every table) and, for a whole-row Var (attno 0), the table's name: equal trees whose Vars name the same
    columns print alike (`_Printed.group`)."""
    return sorted({int(n) for n in _VARATTNO.findall(tree)})


def _sorted(items: list[Any] | None, key: Callable[[Any], Any]) -> tuple[Any, ...]:
    """`items` sorted by `key` as a tuple (most tables have none or one of each kind: no sort for those)."""
    if not items:
        return ()
    return tuple(items) if len(items) == 1 else tuple(sorted(items, key=key))


def _note_uses(uses: dict[int, set[tuple[str, str, str]]], names: dict[int, str], relid: int, kind: str, name: str,
               used: list[int] | None) -> None:  # fmt: skip
    if kind == "collation":
        return  # a property of the column itself, not an object DROP COLUMN would take along
    for attnum in used or ():
        if attnum in names:
            uses.setdefault(relid, set()).add((names[attnum], kind, name))


def _columns(rows: Iterable[tuple[Any, ...]]) -> tuple[
        dict[int, list[Column]], dict[int, dict[int, str]], list[tuple[int, str, str, str, None]]]:  # fmt: skip
    """Columns by table oid (in attnum order), each table's attnum → name map for keys, and the rows of `_OTHERS`'
    shape for columns with a collation of their own."""
    columns: dict[int, list[Column]] = {}
    attnames: dict[int, dict[int, str]] = {}
    collated: list[tuple[int, str, str, str, None]] = []
    made: dict[tuple[object, ...], Column] = {}  # equal catalog rows share one Column (schemas repeat shapes)
    unordered: set[int] = set()
    last_rel, last_num = None, 0
    cols: list[Column] = []
    names: dict[int, str] = {}
    for row in rows:
        relid, name, fmt, ndims, notnull, default, ident, gen, comment, owns, attnum, collation, sequence = row
        key = row[1:10] if collation is None and sequence is None else (*row[1:10], collation, str(sequence))
        col = made.get(key)
        if col is None:
            col = made[key] = _column(name, fmt, ndims, notnull, default, ident, gen, comment, owns, collation, sequence)
        if relid != last_rel:
            got = columns.get(relid)
            if got is None:
                cols = columns[relid] = []
                names = attnames[relid] = {}
            else:  # the rows of a table came in more than one run
                cols, names = got, attnames[relid]
                unordered.add(relid)
            last_rel = relid
        elif attnum < last_num:
            unordered.add(relid)
        last_num = attnum
        cols.append(col)
        names[attnum] = col.name
        if collation is not None:
            collated.append((relid, "collation", col.name, collation, None))
    for relid in unordered:  # attnum order (rows mostly come in it: an index scan per table)
        named = {c.name: c for c in columns[relid]}
        names = attnames[relid]
        columns[relid] = [named[names[n]] for n in sorted(names)]
    return columns, attnames, collated


def _column(
    name: str, fmt: str, ndims: int, notnull: bool, default: str | None, identity: str, generated: str,
    comment: str | None, owns_seq: bool | None, collation: str | None = None, sequence: list[Any] | None = None,
) -> Column:  # fmt: skip
    """One column from its catalog row (`collation`: `_OTHERS`' detail text; `sequence`: the identity sequence's
    start, increment, min, max, cache, cycle and type)."""
    serial = bool(owns_seq) and default is not None and default.startswith("nextval(")
    return Column(
        sequence=_nextval_target(default) if serial else None,
        name=name,
        type=from_catalog(fmt, ndims or 0),
        nullable=not notnull,
        default=None if serial or generated == "s" else default,
        serial=serial,
        identity=_IDENTITY.get(identity),
        generated=default if generated == "s" else None,
        comment=comment,
        collation=None if collation is None else split_qualified(collation.removeprefix("column collation "))[0],
        identity_options=identity_options_of(sequence[6], *sequence[:6]) or None if sequence is not None else None,
    )


_IDENTITY = {"a": "always", "d": "by default"}
_NEXTVAL = re.compile(r"nextval\('((?:[^']|'')+)'::regclass\)")


def _nextval_target(default: str | None) -> str | None:
    """The sequence a `nextval('schema.seq'::regclass)` default reads, as Postgres prints the regclass."""
    m = _NEXTVAL.fullmatch(default or "")
    return m.group(1).replace("''", "'") if m else None


def split_qualified(text: str) -> tuple[str, ...]:
    """`schema.name` as Postgres prints a qualified name (parts quoted only when needed) → its parts."""
    parts: list[str] = []
    i, n = 0, len(text)
    while i < n:
        if text[i] == '"':
            j, buf = i + 1, []
            while j < n:
                if text[j] == '"':
                    if j + 1 < n and text[j + 1] == '"':
                        buf.append('"')
                        j += 2
                        continue
                    break
                buf.append(text[j])
                j += 1
            parts.append("".join(buf))
            i = j + 1
        else:
            j = text.find(".", i)
            j = n if j < 0 else j
            parts.append(text[i:j])
            i = j
        if i < n and text[i] == ".":
            i += 1
    return tuple(parts)


def _index(
    attnames: dict[int, str], name: str, unique: bool, method: str, definition: str | None, pred: str | None,
    keys: list[int], opaque: str | None, valid: bool, elements: list[list[Any]] | None, include: list[int] | None,
    nnd: bool,
) -> Index:  # fmt: skip
    """One index from its catalog row; `elements` (every key with its options) only for an opaque index."""
    cols = [attnames.get(k) for k in keys]
    names: tuple[str, ...] = tuple(cols) if opaque is None and None not in cols else ()  # type: ignore[arg-type]
    if elements is not None:
        return Index(
            name=name, columns=names, unique=unique, where=pred, method=method,
            definition=None if definition is None else definition + ("" if valid else " -- INVALID"),
            expression=opaque is not None or not names or not valid, unmanaged=opaque,
            elements=tuple(_element(attnames, *e) for e in elements),
            include=tuple(attnames.get(k, "") for k in include or ()), nulls_not_distinct=bool(nnd),
        )  # fmt: skip
    return _new_index(name, names, unique, pred, method,
                      None if definition is None else definition + ("" if valid else " -- INVALID"),
                      opaque is not None or not names or not valid, None, opaque, (), (), False, True)


#: the objects built per row, by their fields in declaration order (filling the slots directly is about half the
#: cost of the generated keyword `__init__`: 30,000 indexes and 40,000 constraints at 10,000 tables)
_new_index = positional_constructor(Index)
_new_constraint = positional_constructor(Constraint)
_new_foreign_key = positional_constructor(ForeignKey)
_new_check = positional_constructor(Check)

_TYPE_MAX = {"smallint": 32767, "integer": 2147483647, "bigint": 9223372036854775807}


def identity_options_of(typ: str, start: int, inc: int, lo: int, hi: int, cache: int,
                        cycle: bool) -> tuple[tuple[str, int | bool], ...]:
    """The options of an identity sequence that differ from what Postgres gives one without options."""
    top = _TYPE_MAX.get(typ, _TYPE_MAX["bigint"])
    dlo, dhi = (1, top) if inc > 0 else (-top - 1, -1)
    dstart = dlo if inc > 0 else dhi
    got = {"increment": (inc, 1), "minvalue": (lo, dlo), "maxvalue": (hi, dhi), "start": (start, dstart if lo == dlo and
           hi == dhi else (lo if inc > 0 else hi)), "cache": (cache, 1), "cycle": (cycle, False)}
    return tuple(sorted((k, v) for k, (v, default) in got.items() if v != default))


def _element(names: dict[int, str], attnum: int, expression: str | None, opt: int, opclass: str | None,
             collation: str | None) -> IndexElement:
    desc, nulls_first = bool(opt & 1), bool(opt & 2)
    nulls = None if nulls_first == desc else ("first" if nulls_first else "last")
    return IndexElement(names.get(attnum) if attnum else None, expression if not attnum else None, desc, nulls,
                        opclass, collation)


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
    """Postgres' reading of expressions: defaults by (type, text), desired and live alike; predicates by index
    (the live predicate's text when Postgres reads both the same)."""

    defaults: dict[tuple[str, str], str]
    predicates: dict[tuple[str, str, str], str]
