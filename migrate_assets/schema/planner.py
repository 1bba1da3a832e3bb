"""The I/O half of planning: introspect the live tables in scope, let Postgres canonicalise and check the
desired expressions, probe emptiness where a NOT NULL column needs it, then run the pure `diff`.

Round trips: the catalog (tables, columns, constraints, indexes, other objects, and one small statement printing
each distinct CHECK/predicate tree once when there are any; search_path and jit set and restored in one statement
each way), one emptiness probe (only when needed), one parse per distinct expression that may reach DDL
(`exprcheck`: Postgres parses, nothing runs) and one EXPLAIN per expression whose spelling differs from the live
one (and per live counterpart). `Prefetch` lets the catalog read run while the spec files are still validated.
"""

from __future__ import annotations

import threading
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from migrate_assets.errors import Problem, SpecError, UsageError
from migrate_assets.schema import (
    composites,
    domains,
    enum_drops,
    partitions,
    sequence_objects,
    unmanaged,
    viewplan,
    views,
)
from migrate_assets.schema.diff import (
    TableKey,
    check_canon_key,
    diff,
    exclude_canon_key,
    generated_canon_key,
    in_sync,
    index_expr_key,
    pending_checks,
    pending_defaults,
    pending_excludes,
    pending_generated,
    pending_index_expressions,
    pending_predicates,
    tables_needing_row_check,
)
from migrate_assets.schema.enums import diff_enums, enums_of, live_enums
from migrate_assets.schema.exprcheck import (
    Expression,
    canonical_forms,
    check_expressions,
    expression_words,
    relation_shape,
)
from migrate_assets.schema.introspect import Canonical, existing_schemas, introspect, tables_with_rows
from migrate_assets.schema.model import Source, Table, fingerprint, gc_paused
from migrate_assets.schema.plan import Plan, Scope
from migrate_assets.schema.typecheck import resolve_types

INTERNAL_PREFIX = "migrate_assets_"


@dataclass(frozen=True)
class PlanOptions:
    default_schema: str = "public"
    only_tables: tuple[str, ...] = ()  #: `--table` filters: `name` or `schema.name`
    allow_drop_table: bool = False
    ignore: frozenset[TableKey] = frozenset()  #: e.g. the migrations state table


def _qualify(name: str, default_schema: str) -> TableKey:
    s, dot, t = name.partition(".")
    return (s, t) if dot else (default_schema, name)


def select_tables(desired: Sequence[Table], opts: PlanOptions) -> tuple[list[Table], Scope]:
    wanted = {_qualify(n, opts.default_schema) for n in opts.only_tables}
    chosen = [t for t in desired if not wanted or t.key in wanted]
    return chosen, scope_of([t.key for t in desired], opts)


def scope_of(keys: Sequence[TableKey], opts: PlanOptions) -> Scope:
    """The live tables a plan of the spec tables `keys` reads."""
    wanted = {_qualify(n, opts.default_schema) for n in opts.only_tables}
    schemas = tuple(sorted({s for s, _ in keys} | {opts.default_schema}))
    if wanted:
        tables: tuple[TableKey, ...] | None = tuple(sorted(wanted))
    elif opts.allow_drop_table:
        tables = None
    else:
        tables = tuple(sorted(set(keys)))
    return Scope(schemas, tables, opts.allow_drop_table)


class Prefetch:
    """The live tables of a plan's scope, read in a background thread while the spec files are still being
    validated: the server's share of a plan (most of the catalog read) then overlaps the Python side.

    Started from the table keys of the parsed, not yet validated, spec documents; `build_plan` uses the result
    only when the validated specs give the same scope (otherwise, or if the read failed, it reads again itself,
    so a wrong guess costs time, never correctness). The connection is the plan's own: nothing else uses it until
    `wait` returns, and `wait` always runs (context manager) before the connection may close.
    """

    def __init__(self, conn: psycopg.Connection, keys: Sequence[TableKey], opts: PlanOptions) -> None:
        self.conn, self.scope, self.ignore = conn, scope_of(keys, opts), opts.ignore
        self._live: dict[TableKey, Table] | None = None
        self.views: dict[TableKey, views.View] | None = None  #: every view of the database, read after the tables
        self._thread = threading.Thread(target=self._read, name="migrate-assets catalog prefetch", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        try:
            self._live = live_tables(self.conn, self.scope, self.ignore)
            self.views = views.live_views(self.conn)  # not scoped: the same read plan_views makes
        except Exception:  # noqa: BLE001 - build_plan reads again on its own thread and raises there
            self._live = None
            self.views = None

    def wait(self) -> None:
        self._thread.join()

    def result(self, scope: Scope, ignore: Iterable[TableKey]) -> dict[TableKey, Table] | None:
        """The prefetched live tables if they were read for exactly `scope` (and `ignore`), else None."""
        self.wait()
        if self._live is None or scope != self.scope or frozenset(ignore) != self.ignore:
            return None
        return self._live

    def __enter__(self) -> Prefetch:
        return self

    def __exit__(self, *exc: object) -> None:
        if self._thread.is_alive() and exc[0] is not None:
            try:  # the specs were refused: stop the catalog read instead of waiting for it
                self.conn.cancel_safe()
            except Exception:  # noqa: BLE001, S110 - best effort; the join below still waits for it
                pass
        self.wait()


def live_tables(conn: psycopg.Connection, scope: Scope, ignore: Iterable[TableKey] = ()) -> dict[TableKey, Table]:
    live = introspect(conn, scope.schemas, scope.tables)
    skip = set(ignore)
    return {k: t for k, t in live.items() if k not in skip and not k[1].startswith(INTERNAL_PREFIX)}


def scope_fingerprint(live: dict[TableKey, Table], scope: Scope) -> str:
    return fingerprint(live, scope.describe())


def build_plan(
    conn: psycopg.Connection, desired: Sequence[Table], opts: PlanOptions = PlanOptions(), scope: Scope | None = None,
    prefetch: Prefetch | None = None,
) -> Plan:
    """Plan the changes that make the database match `desired` (within `scope` when replaying a stored plan;
    with the live tables `prefetch` read meanwhile when its scope is the plan's)."""
    with gc_paused():
        return _build_plan(conn, desired, opts, scope, prefetch)


def _build_plan(conn: psycopg.Connection, desired: Sequence[Table], opts: PlanOptions, scope: Scope | None,
                prefetch: Prefetch | None = None) -> Plan:
    if scope is None:
        chosen, scope = select_tables(desired, opts)
    else:
        in_scope = set(scope.tables) if scope.tables is not None else None
        chosen = [t for t in desired if (t.key in in_scope if in_scope is not None else t.schema in scope.schemas)]
        opts = PlanOptions(opts.default_schema, opts.only_tables, scope.allow_drop_table, opts.ignore)
    live = prefetch.result(scope, opts.ignore) if prefetch is not None else None
    live_views = prefetch.views if live is not None and prefetch is not None else None  # read with those tables
    if live is None:
        live = live_tables(conn, scope, opts.ignore)
    _check_wanted(desired, opts, live)
    check_references(conn, desired, live)
    _check_methods(conn, chosen)
    todo = [t for t in chosen if not in_sync(t, live.get(t.key))]  # the rest plan nothing
    declared = enums_of(desired)
    pre = viewplan.plan_extensions(conn, desired)  # schemas and extensions (views.py)
    have_enums = live_enums(conn, [e.key for e in declared])
    new_enums = {e.type_name for e in declared if e.key not in have_enums and not e.drop}
    with viewplan.extensions_present(conn, pre):  # types of an extension the plan creates resolve
        comps = composites.prepare(conn, desired, new_enums)  # issue 15 types: composites.py, domains.py
        doms = domains.prepare(conn, desired, new_enums | comps.new)
        doms.merge(comps)
        if todo:
            todo = resolve_types(conn, todo, {c.type for t in live.values() for c in t.columns},
                                 {e.type_name for e in declared} | doms.names)
        canon = _canonical(conn, todo, live, new_enums | doms.new)
        # partitions: bound values checked and compared by Postgres; tables a partition would be made from
        canon.predicates.update(partitions.check(conn, chosen, live, new_enums | doms.new))
    standalone = partitions.standalone_tables(conn, [p.key for t in todo if t.partitioning and t.key in live
                                                     for p in t.partitioning.partitions if not p.drop])
    seqs = sequence_objects.sequences_of(desired)
    sequence_objects.check(conn, seqs, desired)
    seq_early, seq_late, seq_refusals = sequence_objects.plan(seqs, sequence_objects.live_sequences(conn, [s.key for s in seqs]))
    check = tables_needing_row_check(todo, live)
    nonempty = tables_with_rows(conn, check) if check else set()
    drops: list[TableKey] = []
    if opts.allow_drop_table:
        want = {t.key for t in desired}
        drops = sorted(k for k in live if k not in want)
    new_schemas = {t.schema for t in chosen if t.key not in live} | {e.schema for e in declared} | {s.schema for s in seqs} | doms.schemas
    missing = new_schemas - existing_schemas(conn, new_schemas) if new_schemas else set()
    enum_changes, enum_refusals = diff_enums(declared, have_enums)
    enum_dropped, drop_refusals = enum_drops.plan(conn, declared, have_enums)  # issue 15 types: `drop: true`
    enum_refusals += drop_refusals
    res = diff(todo, live, canon=canon, nonempty=nonempty, drop_tables=drops, missing_schemas=missing | pre.schemas,
               first=pre.changes + enum_changes + doms.changes + seq_early, context=chosen, standalone=standalone)
    changes = sequence_objects.place(res.changes, seq_late) + enum_dropped  # OWNED BY once the tables exist
    vp = viewplan.plan_views(conn, desired, changes, manage=not opts.only_tables,  # views after the tables
                             live=live_views)
    return Plan(tuple(viewplan.in_order(changes + vp.changes)), scope_fingerprint(live, scope), scope,
                tuple(enum_refusals) + tuple(doms.refusals) + tuple(seq_refusals) + tuple(res.refusals) + tuple(pre.refusals)
                + tuple(vp.refusals),
                viewplan.managed_listing(unmanaged.listing(chosen, live), desired))


def _check_wanted(desired: Sequence[Table], opts: PlanOptions, live: dict[TableKey, Table]) -> None:
    """Every `--table` names a table of the specs (or, with --allow-drop-table, one the database has)."""
    known = {t.key for t in desired} | (set(live) if opts.allow_drop_table else set())
    unknown = [n for n in opts.only_tables if _qualify(n, opts.default_schema) not in known]
    if unknown:
        where = "the spec files or the database" if opts.allow_drop_table else "the spec files"
        raise UsageError([Problem("<command line>", f"table {n!r} is not in {where}", "--table") for n in unknown])


def _canonical(conn: psycopg.Connection, todo: Sequence[Table], live: dict[TableKey, Table],
               new_types: set[str] = frozenset()) -> Canonical:  # type: ignore[assignment]
    """Check every expression that may reach DDL, then get Postgres' reading of the ones whose spelling differs
    from the live one (both sides, one statement each; `exprcheck` says how nothing is run)."""
    check_tables(conn, todo, new_types)
    pairs: list[tuple[Expression, Expression]] = []
    for t in todo:
        lt = live.get(t.key)
        if lt is None:
            continue
        for c, needs in pending_defaults([t], live):
            lc = lt.column(c.name) or next((x for o in c.renamed_from if (x := lt.column(o))), None)
            if needs and c.default is not None and lc is not None and lc.default is not None:
                typ = c.type.render()
                pairs.append((Expression(c.default, "", "", type_sql=typ),
                              Expression(lc.default, "", "", type_sql=typ)))
    preds = pending_predicates(todo, live)
    lwhere = {(k, ix.name): li.where for k, ix in preds for li in live[k].indexes if li.name == ix.name}
    for key, ix in preds:
        w, h = ix.where or "true", lwhere[(key, ix.name)] or "true"
        rel = _shape(live[key], w + " " + h)
        pairs.append((Expression(w, "", "", source=rel, predicate=True),
                      Expression(h, "", "", source=rel, predicate=True)))
    gens = pending_generated(todo, live)
    for key, gc, glc in gens:
        rel = _shape(live[key], f"{gc.generated} {glc.generated}")
        typ = glc.type.render()
        pairs.append((Expression(gc.generated or "", "", "", type_sql=typ, source=rel),
                      Expression(glc.generated or "", "", "", type_sql=typ, source=rel)))
    exprs = pending_index_expressions(todo, live)
    for key, _, wtext, htext, _ in exprs:
        rel = _shape(live[key], wtext + " " + htext)
        pairs.append((Expression(wtext, "", "", source=rel), Expression(htext, "", "", source=rel)))
    checks = pending_checks(todo, live)
    for key, wck, lck in checks:
        rel = _shape(live[key], wck.expression + " " + lck.expression)
        pairs.append((Expression(wck.expression, "", "", source=rel, predicate=True),
                      Expression(lck.expression, "", "", source=rel, predicate=True)))
    out_x = _canonical_excludes(conn, todo, live)
    if not pairs:
        return Canonical({}, out_x)
    forms = canonical_forms(conn, [e for pair in pairs for e in pair])
    out_d: dict[tuple[str, str], str] = {}
    out_p: dict[tuple[str, str, str], str] = {}
    for i, (want, have) in enumerate(pairs[: len(pairs) - len(preds) - len(gens) - len(exprs) - len(checks)]):
        a, b = forms[2 * i], forms[2 * i + 1]
        assert want.type_sql is not None
        if a is not None:
            out_d[(want.type_sql, want.text)] = a
        if b is not None:
            out_d[(want.type_sql, have.text)] = b
    for j, (key, iname, _, htext, k) in enumerate(exprs):
        i = len(pairs) - len(checks) - len(exprs) + j
        a, b = forms[2 * i], forms[2 * i + 1]
        if a is not None and a == b:
            out_p[index_expr_key(key, iname, k)] = htext
    for j, (key, gc, glc) in enumerate(gens):
        i = len(pairs) - len(checks) - len(exprs) - len(gens) + j
        a, b = forms[2 * i], forms[2 * i + 1]
        out_p[generated_canon_key(key, gc.name)] = (glc.generated or "") if a is not None and a == b else (gc.generated or "")
    for j, (key, wck, lck) in enumerate(checks):
        i = len(pairs) - len(checks) + j
        a, b = forms[2 * i], forms[2 * i + 1]
        out_p[check_canon_key(key, wck.name)] = lck.expression if a is not None and a == b else wck.expression
    for j, (key, ix) in enumerate(preds):
        i = len(pairs) - len(checks) - len(exprs) - len(gens) - len(preds) + j
        a, b = forms[2 * i], forms[2 * i + 1]
        same = a is not None and a == b
        out_p[(key[0], key[1], ix.name)] = (lwhere[(key, ix.name)] or "") if same else (ix.where or "")
    return Canonical(out_d, {**out_p, **out_x})


def _canonical_excludes(conn: psycopg.Connection, todo: Sequence[Table],
                        live: dict[TableKey, Table]) -> dict[tuple[str, str, str], str]:
    """EXCLUDE elements and predicates spelled unlike the live constraint: the live text when Postgres reads both
    alike, else the desired one (its own statement: only asked for when a spec's spelling differs)."""
    xs = pending_excludes(todo, live)
    if not xs:
        return {}
    exprs: list[Expression] = []
    for key, _, k, wtext, htext in xs:
        rel = _shape(live[key], wtext + " " + htext)
        exprs += [Expression(t, "", "", source=rel, predicate=k < 0) for t in (wtext, htext)]
    forms = canonical_forms(conn, exprs)
    out: dict[tuple[str, str, str], str] = {}
    for i, (key, name, k, wtext, htext) in enumerate(xs):
        a, b = forms[2 * i], forms[2 * i + 1]
        out[exclude_canon_key(key, name, k)] = htext if a is not None and a == b else wtext
    return out


def check_tables(conn: psycopg.Connection, tables: Sequence[Table],
                 new_types: set[str] = frozenset()) -> None:  # type: ignore[assignment]
    """SpecError naming file, line and key of every default and index predicate of `tables` that is not one valid
    expression (`exprcheck`: Postgres parses, nothing runs). Every path that turns a spec into DDL calls it."""
    check: list[Expression] = []
    for t in tables:
        for c in t.columns:
            if c.default is not None and not c.serial:  # a type the plan creates cannot be cast to yet
                typ = None if c.type.name in new_types else c.type.render()
                check.append(_located(c.default, c.source, "default", "default", type_sql=typ))
        for ix in t.indexes:
            for k, el in enumerate(ix.elements):
                if el.expression is not None:
                    check.append(_located(el.expression, ix.source, f"columns[{k}].expression", "index expression",
                                          source=_shape(t, el.expression)))
            if ix.where is not None:
                check.append(_located(ix.where, ix.source, "where", "index predicate", source=_shape(t, ix.where),
                                      predicate=True))
        for c in t.columns:
            if c.generated is not None:
                check.append(_located(c.generated, c.source, "generated", "generated expression",
                                      type_sql=c.type.render(), source=_shape(t, c.generated)))
        for ck in t.checks:
            check.append(_located(ck.expression, ck.source, "expression", "CHECK expression",
                                  source=_shape(t, ck.expression), predicate=True))
        for x in t.excludes:
            for k, xel in enumerate(x.elements):
                if xel.expression is not None:
                    check.append(_located(xel.expression, x.source, f"elements[{k}].expression", "EXCLUDE element",
                                          source=_shape(t, xel.expression)))
            if x.where is not None:
                check.append(_located(x.where, x.source, "where", "EXCLUDE predicate", source=_shape(t, x.where),
                                      predicate=True))
    problems = check_expressions(conn, check)
    if problems:
        raise SpecError(problems)


def _located(text: str, src: Source | None, key: str, label: str, **kw: Any) -> Expression:
    if src is None:
        return Expression(text, "<spec>", key, label=label, **kw)
    return Expression(text, src.file, f"{src.key}.{key}" if src.key else key, src.lineno, label=label, **kw)


def _shape(t: Table, text: str) -> sql.Composable:
    """The columns of `t` the text may name, as a relation for parsing its predicates (the table itself may not
    exist yet). Named like the table only when the text may name it, so that predicates over the same columns
    in many tables share one check."""
    words = expression_words(text)
    alias = t.name if t.name in words else "_ma"
    return relation_shape([(c.name, c.type.render()) for c in t.columns if c.name in words], alias)


def _keys_of(t: Table) -> set[frozenset[str]]:
    """Column sets a FOREIGN KEY may reference: the primary key, UNIQUE constraints, plain unique indexes."""
    keys = {frozenset(u.columns) for u in t.uniques}
    keys |= {frozenset(i.columns) for i in t.indexes if i.unique and i.where is None and not i.expression}
    return keys | ({frozenset(t.primary_key.columns)} if t.primary_key else set())


_EXTERNAL_KEYS = """
SELECT n.nspname, c.relname,
       ARRAY(SELECT a.attname::text FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       ARRAY(SELECT (SELECT json_agg(a.attname) FROM unnest(i.indkey::int2[]) AS k(n)
                     JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = k.n)::text
             FROM pg_index i WHERE i.indrelid = c.oid AND i.indisunique AND i.indpred IS NULL AND i.indexprs IS NULL)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('r', 'p') AND (n.nspname, c.relname) IN (SELECT k->>0, k->>1 FROM json_array_elements(%s::json) k)
"""


def check_references(conn: psycopg.Connection, desired: Sequence[Table], live: dict[TableKey, Table]) -> None:
    """SpecError naming file, line and key of every FOREIGN KEY whose referenced table or columns do not exist, or
    whose referenced columns carry no PRIMARY KEY / UNIQUE constraint (the spec files say what a table they hold
    will have; other tables are read from the database, in one query)."""
    import json

    fks = [(t, fk) for t in desired for fk in t.foreign_keys]
    if not fks:
        return
    by_key = {t.key: t for t in desired}
    outside = sorted({fk.ref_key for _, fk in fks if fk.ref_key not in by_key and fk.ref_key not in live})
    external: dict[TableKey, tuple[set[str], set[frozenset[str]]]] = {}
    if outside:
        for nsp, rel, cols, idx in conn.execute(_EXTERNAL_KEYS, [json.dumps(outside)]).fetchall():
            external[(nsp, rel)] = (set(cols), {frozenset(json.loads(x)) for x in idx})

    def known(key: TableKey) -> tuple[set[str], set[frozenset[str]]] | None:
        """Column names and keys of a referenced table: the spec's, else the database's. Made per foreign key
        and dropped after it (kept for every table they were ~30 MiB at 10,000 tables, the plan's peak)."""
        t = by_key.get(key)
        if t is None:
            t = live.get(key)
        if t is None:
            return external.get(key)
        return {c.name for c in t.columns}, _keys_of(t)

    problems = []
    for _, fk in fks:
        src = fk.source
        ref = known(fk.ref_key)
        if ref is not None and frozenset(fk.ref_columns) in ref[1] and all(c in ref[0] for c in fk.ref_columns):
            continue  # the usual case; a line number is looked up only for a problem (the first costs a re-parse)
        file, key, line = (src.file, src.key, src.lineno) if src else ("<spec>", "", None)
        where = f"{key}.references" if key else "references"
        target = f"{fk.ref_schema}.{fk.ref_table}"
        if ref is None:
            problems.append(Problem(file, f"foreign key {fk.name} references table {target}, which is neither in "
                                          "the spec files nor in the database", where, line))
            continue
        cols, keys = ref
        gone = [c for c in fk.ref_columns if c not in cols]
        if gone:
            problems.append(Problem(file, f"foreign key {fk.name} references unknown column(s) {', '.join(gone)} of "
                                          f"{target}", f"{where}.columns", line))
        elif frozenset(fk.ref_columns) not in keys:
            problems.append(Problem(file, f"foreign key {fk.name} references ({', '.join(fk.ref_columns)}) of {target}, "
                                          "which has no PRIMARY KEY or UNIQUE constraint on exactly those columns",
                                    f"{where}.columns", line))
    if problems:
        raise SpecError(problems)


def _check_methods(conn: psycopg.Connection, tables: Sequence[Table]) -> None:
    """SpecError for an index access method the database does not have (asked only for names beyond the six
    built-in ones, in one query)."""
    from migrate_assets.schema.model import INDEX_METHODS

    odd = [(t, ix) for t in tables for ix in t.indexes if ix.method not in INDEX_METHODS]
    if not odd:
        return
    rows = conn.execute("SELECT amname FROM pg_am WHERE amtype = 'i' AND amname = ANY(%s)",
                        [sorted({ix.method for _, ix in odd})]).fetchall()
    have = {str(r[0]) for r in rows}
    problems = []
    for _, ix in odd:
        if ix.method not in have:
            e = _located("", ix.source, "method", "")
            problems.append(Problem(e.file, f"unknown index method {ix.method!r}: the database has no such access "
                                            "method (an extension may add it)", e.key, e.line))
    if problems:
        raise SpecError(problems)
