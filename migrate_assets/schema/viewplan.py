"""Planning views, materialized views, schemas and extensions (`schema/views.py` has the model).

Two hooks of the planner:

* `plan_extensions` (before the tables): declared schemas that are missing, CREATE / UPDATE / SET SCHEMA of
  declared extensions — in the main transaction, first; a name or version the server does not offer is bad
  input (exit 2).
* `plan_views` (after the tables): each declared view's definition is read by Postgres, never run: in a
  transaction that is always rolled back, the new schemas, extensions, enums and tables of the plan are
  created, then each definition becomes a view (its own name when it is new, a temporary name when a live
  view has it). The statement is sent as one protocol-level Parse (a second statement is refused outright),
  then executed: `CREATE VIEW` stores the query without running it. `pg_get_viewdef` of that view is the
  definition compared with the live view's, and planned (so the DDL never depends on the applier's
  search_path). A definition that does not parse, or reads what neither the database nor the plan has, is bad
  input naming file, line and key. One that reads what the plan changes in an existing table (a column added)
  is planned as written, read with search_path = its schema, public.

Dependent views: a table change that Postgres refuses while a view reads the column (DROP COLUMN, ALTER
COLUMN TYPE, a new collation), a view that must be dropped to change (its columns change, a materialized one)
— every view reading it, transitively, managed or not, is dropped first and created again after the change in
the same transaction, in dependency order, as it was (definition, options, comments, indexes, owner, grants).
A view the specs do not declare that reads a dropped column, or has triggers or rules, is refused with the
reason: it would be lost.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import psycopg
from psycopg import pq, sql

from migrate_assets.errors import Problem, SpecError
from migrate_assets.schema.model import Table
from migrate_assets.schema.plan import Change, Hazard, Unmanaged
from migrate_assets.schema.views import (
    Extension,
    SchemaDecl,
    View,
    ViewIndex,
    drop_view_index_sql,
    extensions_of,
    live_extensions,
    live_schemas,
    live_views,
    schemas_of,
    view_index_sql,
    viewdef_text,
    views_of,
)

if TYPE_CHECKING:
    from migrate_assets.schema import ops
else:  # imported on first use: an unchanged schema plans without it (lazy_ops)
    from migrate_assets.schema.lazy_ops import ops

Key = tuple[str, str]
#: table changes Postgres refuses while a view reads the column
BLOCKING_KINDS = frozenset({"drop_column", "alter_type", "set_collation"})
#: changes that create what a new view may read (run in the rolled-back probe transaction)
SETUP_KINDS = frozenset({"create_schema", "create_extension", "create_enum", "create_table"})
#: SQLSTATEs of "reads something that is not there (yet)": retried after the other views, then judged
_MISSING = frozenset({"42P01", "42703", "42883", "3F000", "42704"})
VIEW_KINDS = ("view", "materialized_view")


def _where(src: Any, key: str) -> tuple[str, str, int | None]:
    if src is None:
        return "<spec>", key, None
    return src.file, f"{src.key}.{key}" if src.key else key, src.lineno


def _problem(o: Any, key: str, message: str) -> Problem:
    f, k, line = _where(o.source, key)
    return Problem(f, message, k, line)


def _change(qualified: str, op: Any, anchor: Table, *, transactional: bool = True) -> Change:
    d = op.plain(anchor)
    return Change(qualified, op.change_kind, op.describe(anchor), d.forward, d.inverse, d.hazards, transactional, None)


def _anchor(v: View) -> Table:
    return Table(v.schema, v.name)


# --------------------------------------------------------------------------------------------------------
# schemas and extensions
# --------------------------------------------------------------------------------------------------------


@dataclass
class Prepared:
    changes: list[Change] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)
    schemas: set[str] = field(default_factory=set)  #: to create (CREATE SCHEMA IF NOT EXISTS)
    new_extensions: list[Extension] = field(default_factory=list)


def plan_extensions(conn: psycopg.Connection[Any], desired: Sequence[Table]) -> Prepared:
    out = Prepared()
    decl_schemas = schemas_of(desired)
    exts = extensions_of(desired)
    # declared schemas, an extension's, and a view's (created with it, as a new table's schema is)
    wanted = {s.name for s in decl_schemas} | {x.schema for x in exts if x.schema} | {v.schema for v in views_of(desired)}
    if not wanted and not exts:
        return out
    have_schemas = live_schemas(conn, wanted)
    out.schemas = wanted - set(have_schemas)
    for s in decl_schemas:
        live_comment = have_schemas[s.name].comment if s.name in have_schemas else None
        if s.comment is not None and s.comment != live_comment:
            stmt = sql.SQL("COMMENT ON SCHEMA {} IS {}").format(sql.Identifier(s.name), sql.Literal(s.comment))
            undo = sql.SQL("COMMENT ON SCHEMA {} IS {}").format(
                sql.Identifier(s.name), sql.Literal(live_comment) if live_comment else sql.SQL("NULL"))
            out.changes.append(Change(s.name, "comment_schema", f"comment on schema {s.name}",
                                      (stmt.as_string(None),), (undo.as_string(None),), (), True, None))
    if not exts:
        return out
    live = live_extensions(conn)
    rows = conn.execute("SELECT name, version FROM pg_available_extension_versions WHERE name = ANY(%s)",
                        [sorted({x.name for x in exts})]).fetchall()
    available: dict[str, set[str]] = {}
    for n, v in rows:
        available.setdefault(str(n), set()).add(str(v))
    problems: list[Problem] = []
    for x in exts:
        have = live.get(x.name)
        if x.name not in available and have is None:
            problems.append(_problem(x, "extension", f"extension {x.name!r} is not available on this server "
                                                     "(pg_available_extensions does not list it)"))
            continue
        if x.version is not None and x.version not in available.get(x.name, set()) and \
                (have is None or have.version != x.version):
            why = (f"extension {x.name} has no version {x.version!r} on this server "
                   f"(available: {', '.join(sorted(available.get(x.name, ())))})")
            vs = x.version_source
            problems.append(Problem(vs.file, why, vs.key, vs.lineno) if vs else _problem(x, "version", why))
            continue
        anchor = Table(x.schema or "", x.name)
        if have is None:
            out.changes.append(_change(x.name, ops.CreateExtension(name=x.name, schema=x.schema, version=x.version), anchor))
            out.new_extensions.append(x)
            continue
        if x.version is not None and x.version != have.version:
            paths = {(str(s), str(t)) for s, t in conn.execute(
                "SELECT source, target FROM pg_extension_update_paths(%s) WHERE path IS NOT NULL", [x.name]).fetchall()}
            if (have.version, x.version) not in paths:
                out.refusals.append(f"extension {x.name}: no update path from version {have.version} to {x.version} "
                                    "on this server")
            else:
                op = ops.UpdateExtension(name=x.name, version=x.version, old_version=have.version or "",
                                     reversible=(x.version, have.version) in paths)
                out.changes.append(_change(x.name, op, anchor))
        if x.schema is not None and x.schema != have.schema:
            if not have.relocatable:
                out.refusals.append(f"extension {x.name}: it is in schema {have.schema}, the spec says {x.schema}, "
                                    "and the extension cannot be moved (not relocatable)")
            else:
                out.changes.append(_change(x.name, ops.MoveExtension(name=x.name, schema=x.schema,
                                                                 old_schema=have.schema or ""), anchor))
    if problems:
        raise SpecError(problems)
    return out


@contextmanager
def scratch_transaction(conn: psycopg.Connection[Any]) -> Iterator[None]:
    """A transaction that is always rolled back, in which the planner creates what it needs Postgres to read
    (views, the plan's new tables and extensions). The plan's session is READ ONLY (`read_only_options`); this
    transaction alone is READ WRITE — the only place a plan writes, and nothing it writes is ever committed. Inside
    a caller's transaction it is a savepoint (written only if the caller's transaction may write)."""
    idle = conn.info.transaction_status == pq.TransactionStatus.IDLE
    with conn.transaction(force_rollback=True):
        if idle:
            conn.execute("SET TRANSACTION READ WRITE")
        yield


class extensions_present:  # noqa: N801 - a context manager used like a function
    """While planning tables: the extensions the plan creates exist (their types resolve), in a transaction that
    is always rolled back; a no-op when there are none."""

    def __init__(self, conn: psycopg.Connection[Any], pre: Prepared) -> None:
        self.conn, self.pre = conn, pre
        self.tx: Any = None

    def __enter__(self) -> None:
        if not self.pre.new_extensions:
            return
        self.tx = scratch_transaction(self.conn)
        self.tx.__enter__()
        for s in sorted(self.pre.schemas):
            self.conn.execute(sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(s)))
        for c in self.pre.changes:
            if c.kind == "create_extension":
                self.conn.execute("SAVEPOINT ma_extension")
                try:
                    for stmt in c.sql:
                        self.conn.execute(stmt.encode())
                except psycopg.Error:  # e.g. not allowed to: the types stay unknown, apply says why
                    self.conn.execute("ROLLBACK TO SAVEPOINT ma_extension")

    def __exit__(self, *exc: Any) -> None:
        if self.tx is not None:
            self.tx.__exit__(*exc)


# --------------------------------------------------------------------------------------------------------
# reading desired definitions through Postgres
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Reading:
    """Postgres' reading of a desired definition (`definition` None: planned as written, see the module)."""

    definition: str | None
    columns: tuple[tuple[str, str], ...] = ()
    reads: tuple[tuple[str, str, str], ...] = ()


_PROBE_INFO = """
SELECT pg_get_viewdef(%(oid)s::oid, true),
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = %(oid)s::oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT json_agg(DISTINCT jsonb_build_array(rn.nspname, rc.relname, coalesce(ra.attname, '')))
        FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
             AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> %(oid)s::oid
        JOIN pg_class rc ON rc.oid = d.refobjid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        LEFT JOIN pg_attribute ra ON ra.attrelid = d.refobjid AND ra.attnum = d.refobjsubid AND d.refobjsubid > 0
        WHERE rw.ev_class = %(oid)s::oid)
"""


def _one_statement(conn: psycopg.Connection[Any], stmt: bytes) -> tuple[str | None, str]:
    """Parse `stmt` as one prepared statement (a second one is refused), then execute it: (SQLSTATE, message)
    of the error, or (None, "")."""
    res = conn.pgconn.prepare(b"", stmt)
    if res.status == pq.ExecStatus.COMMAND_OK:
        res = conn.pgconn.exec_prepared(b"", [])
        if res.status == pq.ExecStatus.COMMAND_OK:
            return None, ""
    state = res.error_field(pq.DiagnosticField.SQLSTATE)
    msg = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"rejected").decode(conn.info.encoding, "replace")
    return (state.decode() if state else "XX000"), msg


def _json(v: Any) -> list[Any]:
    if v is None:
        return []
    return json.loads(v) if isinstance(v, str) else list(v)


def read_definitions(conn: psycopg.Connection[Any], views: Sequence[View], live: dict[Key, View],
                     setup: Sequence[str], pending_columns: set[str] = frozenset(),  # type: ignore[assignment]
                     retyping: bool = False) -> tuple[dict[Key, Reading], list[Problem]]:
    """Postgres' reading of each view's definition (see the module docstring); nothing is kept."""
    out: dict[Key, Reading] = {}
    problems: list[Problem] = []
    if not views:
        return out, problems
    errors: dict[Key, tuple[str, str]] = {}
    with scratch_transaction(conn):
        conn.execute("SET LOCAL lock_timeout = '2s'")
        conn.execute("SET LOCAL statement_timeout = '20s'")
        for stmt in setup:
            conn.execute("SAVEPOINT ma_setup")
            try:
                conn.execute(stmt.encode())
            except psycopg.Error:
                conn.execute("ROLLBACK TO SAVEPOINT ma_setup")
        todo = list(enumerate(views))
        progress = True
        while todo and progress:
            progress = False
            for item in list(todo):
                i, v = item
                own = v.key not in live
                name = sql.Identifier(v.schema, v.name) if own else sql.Identifier("pg_temp", f"ma_view_probe_{i}")
                path = sql.SQL(", ").join([sql.Identifier(v.schema), sql.Identifier("public")]).as_string(conn)
                conn.execute("SAVEPOINT ma_view")
                conn.execute("SELECT set_config('search_path', %s, true)", [path])
                create = sql.SQL("CREATE VIEW {} AS {}").format(name, sql.SQL(v.definition))  # noqa: S608 - parsed alone
                state, msg = _one_statement(conn, create.as_bytes(conn))
                if state is None:
                    problem = _check_index_predicates(conn, v, name)
                    if problem:
                        problems.append(problem)
                    conn.execute("SELECT set_config('search_path', 'pg_catalog', true)")
                    oid = conn.execute(sql.SQL("SELECT {}::regclass::oid").format(
                        sql.Literal(name.as_string(conn)))).fetchone()
                    row = conn.execute(_PROBE_INFO, {"oid": oid[0] if oid else 0}).fetchone()
                    assert row is not None
                    out[v.key] = Reading(viewdef_text(row[0]), tuple((str(a), str(b)) for a, b in _json(row[1])),
                                         tuple(sorted((str(s), str(r), str(c)) for s, r, c in _json(row[2]))))
                    conn.execute("RELEASE SAVEPOINT ma_view")
                    todo.remove(item)
                    errors.pop(v.key, None)
                    progress = True
                else:
                    conn.execute("ROLLBACK TO SAVEPOINT ma_view")
                    errors[v.key] = (state, msg)
                    if state not in _MISSING:
                        todo.remove(item)
    by_key = {v.key: v for v in views}
    for key, (state, msg) in errors.items():
        v = by_key[key]
        if _pending(state, msg, pending_columns, retyping):
            out[key] = Reading(None)  # reads what the plan adds to an existing table: planned as written
        else:
            src = v.definition_source
            problems.append(Problem(src.file, f"invalid view definition: {msg}", src.key, src.lineno) if src
                            else _problem(v, "definition", f"invalid view definition: {msg}"))
    return out, problems


_COLUMN_MISSING = re.compile(r'column "?(?:[^"\s]+\.)?"?([^"]+?)"? does not exist')


def _pending(state: str, message: str, columns: set[str], retyping: bool) -> bool:
    """Whether Postgres' complaint may be about what the plan itself adds: a column an existing table gains (added
    or renamed to), or a function over a column whose type changes."""
    if state == "42703":
        m = _COLUMN_MISSING.search(message)
        return m is not None and m.group(1) in columns
    return state == "42883" and retyping


def _check_index_predicates(conn: psycopg.Connection[Any], v: View, name: sql.Composable) -> Problem | None:
    """A matview index's columns exist in the view and its WHERE is one condition over them (parsed only)."""
    from migrate_assets.schema.exprcheck import ExpressionError, _parse_or_raise

    for k, ix in enumerate(v.indexes):
        cols = sql.SQL(", ").join(sql.Identifier(c) for c in ix.columns)
        where = sql.SQL(" WHERE ({}) IS NOT DISTINCT FROM true").format(sql.SQL(ix.where)) if ix.where else sql.SQL("")
        try:
            with conn.transaction():
                _parse_or_raise(conn, sql.SQL("SELECT {} FROM {}{}").format(cols, name, where))  # noqa: S608
        except ExpressionError as exc:
            return _problem(v, f"indexes[{k}]", f"invalid index of {v.qualified}: {exc.message}")
    return None


# --------------------------------------------------------------------------------------------------------
# the view plan
# --------------------------------------------------------------------------------------------------------


@dataclass
class ViewPlan:
    changes: list[Change] = field(default_factory=list)
    refusals: list[str] = field(default_factory=list)


def _norm(text: str) -> str:
    return " ".join(text.replace("(", " ( ").replace(")", " ) ").split()).rstrip(";").strip()


def same_definition(a: str, b: str) -> bool:
    return _norm(a) == _norm(b)


def _qual(s: str, t: str) -> str:
    return f"{s}.{t}"


def plan_views(conn: psycopg.Connection[Any], desired: Sequence[Table], table_changes: Sequence[Change],
               *, manage: bool = True, live: dict[Key, View] | None = None) -> ViewPlan:
    """Changes for the declared views (when `manage`) and for every view a table change needs out of the way
    (`live`: the database's views when already read, e.g. by the planner's prefetch)."""
    declared = views_of(desired) if manage else ()
    blocked = {(c.table, c.column) for c in table_changes if c.kind in BLOCKING_KINDS and c.column is not None}
    dropped_cols = {(c.table, c.column) for c in table_changes if c.kind == "drop_column" and c.column is not None}
    dropped_tables = {c.table for c in table_changes if c.kind == "drop_table"}
    if not declared and not blocked and not dropped_tables:
        return ViewPlan()
    if live is None:
        live = live_views(conn)
    # what needs Postgres' reading: definitions not spelled exactly as the live view prints them
    want = {v.key: v for v in declared}
    unread = [v for v in declared if v.key not in live or not same_definition(v.definition, live[v.key].definition)]
    setup = [s for c in table_changes if c.kind in SETUP_KINDS and c.transactional for s in c.sql]
    adds = {c.column for c in table_changes if c.kind in ("add_column", "rename_column") and c.column is not None}
    retyping = any(c.kind == "alter_type" for c in table_changes)
    readings, problems = read_definitions(conn, unread, live, setup, adds, retyping)
    if problems:
        raise SpecError(problems)
    for v in declared:
        if v.key not in readings:
            lv = live[v.key]
            readings[v.key] = Reading(lv.definition, lv.columns, lv.reads)
    vp = diff_views(want, readings, live, blocked, dropped_cols, dropped_tables)
    vp.refusals += _renamed_under(vp.changes, readings, live, table_changes)
    return vp


_RENAME = re.compile(r'RENAME COLUMN "((?:[^"]|"")*)" TO "((?:[^"]|"")*)"')


def _renamed_under(changes: Sequence[Change], readings: dict[Key, Reading], live: dict[Key, View],
                   table_changes: Sequence[Change]) -> list[str]:
    """A view created (again) from a text read before the plan renames a column it names would fail at apply:
    refused at plan time with the reason."""
    renamed: dict[tuple[str, str], str] = {}
    for c in table_changes:
        if c.kind == "rename_column":
            for stmt in c.sql:
                if (m := _RENAME.search(stmt)) is not None:
                    renamed[(c.table, m.group(1).replace('""', '"'))] = m.group(2).replace('""', '"')
    if not renamed:
        return []
    out = []
    for c in changes:
        if c.kind != "create_view":
            continue
        schema, _, name = c.table.partition(".")
        r = readings.get((schema, name))
        lv = live.get((schema, name))
        if r is not None:  # declared: what Postgres read (nothing when it is planned as written)
            reads = r.reads if r.definition is not None else ()
        else:
            reads = lv.reads if lv is not None else ()
        for s, t, col in reads:
            new = renamed.get((_qual(s, t), col))
            if new is not None:
                out.append(f"view {c.table} reads column {col} of {s}.{t}, which the plan renames to {new}, and must "
                           "be created again in the same transaction from a text that names the old column: name the "
                           "new column in its spec, or rename in a plan of its own")
    return out


def diff_views(want: dict[Key, View], readings: dict[Key, Reading], live: dict[Key, View],
               blocked: set[tuple[str, str]], dropped_cols: set[tuple[str, str]],
               dropped_tables: set[str]) -> ViewPlan:
    """Pure: the changes that make the declared views match and move dependent views out of a table change's
    way (see the module docstring), in dependency order."""
    out = ViewPlan()
    rebuild: dict[Key, str] = {}  # live view → why it is dropped and created again
    creates: dict[Key, View] = {}  # views created (new, or dropped and created again)
    replaces: dict[Key, Change] = {}  # CREATE OR REPLACE
    tail: list[Change] = []  # options, comments, indexes
    # Postgres read these definitions over columns whose type the plan changes (its reading spells the old types
    # in casts): they are created as written, after the change, and a live one is dropped and created again
    shifted: set[Key] = set()
    grew = True
    while grew:
        grew = False
        for key in want:
            r = readings[key]
            if key not in shifted and r.definition is not None and any(
                    ((_qual(s, t), c) in blocked and (_qual(s, t), c) not in dropped_cols) or (s, t) in shifted
                    for s, t, c in r.reads):
                shifted.add(key)
                grew = True
    for key, v in want.items():
        r = readings[key]
        lv = live.get(key)
        for s, t, c in r.reads:
            if (_qual(s, t), c) in dropped_cols:
                out.refusals.append(f"view {v.qualified}: its definition reads column {c} of {s}.{t}, which the plan "
                                    "drops; change the definition or keep the column")
        if lv is None:
            creates[key] = v
            continue
        if lv.materialized != v.materialized:
            rebuild[key] = f"it becomes a {v.what}"
        elif key in shifted:
            rebuild[key] = "its definition reads a column whose type this plan changes"
        elif r.definition is None:
            rebuild[key] = "its definition reads what this plan adds"
        elif not same_definition(r.definition, lv.definition):
            if not v.materialized and r.columns[: len(lv.columns)] == lv.columns:
                op = ops.ReplaceView(view=replace(v, options=lv.options), definition=r.definition, old=lv,
                                 same_columns=r.columns == lv.columns)
                replaces[key] = _change(v.qualified, op, _anchor(v))
            else:
                rebuild[key] = "its definition changes in a way CREATE OR REPLACE cannot do" if not v.materialized \
                    else "a materialized view's definition changes"
        if key in rebuild:
            continue
        if v.options != lv.options or (v.comment or None) != (lv.comment or None):
            tail.append(_change(v.qualified, ops.AlterView(view=v, old=lv), _anchor(v)))
        tail.extend(_index_changes(v, lv))
    # views a table change needs out of the way
    for key, lv in live.items():
        hit = [f"{s}.{t}.{c}" for s, t, c in lv.reads if (_qual(s, t), c) in blocked]
        if hit and key not in rebuild:
            rebuild[key] = f"it reads {', '.join(hit)}, which this plan changes"
        gone = [f"{s}.{t}" for s, t, _ in lv.reads if _qual(s, t) in dropped_tables]
        if gone:
            out.refusals.append(f"{lv.what} {lv.qualified} reads table {gone[0]}, which the plan drops; drop or change "
                                "the view first")
    # …and every view reading one of those, transitively
    grew = True
    while grew:
        grew = False
        for key, lv in live.items():
            if key in rebuild:
                continue
            via = next((f"{s}.{t}" for s, t, _ in lv.reads if (s, t) in rebuild), None)
            if via is not None:
                rebuild[key] = f"it reads {via}, which is dropped and created again"
                grew = True
    for key in rebuild:
        lv = live[key]
        replaces.pop(key, None)
        if key in want:
            creates[key] = want[key]
            continue
        creates[key] = lv
        cols = [f"{s}.{t}.{c}" for s, t, c in lv.reads if (_qual(s, t), c) in dropped_cols]
        if cols:
            out.refusals.append(f"{lv.what} {lv.qualified} reads {', '.join(cols)}, which the plan drops; it could "
                                "not be created again and would be lost: declare the view in a spec (with a definition "
                                "that does not read the column) or drop it by hand first")
        if lv.odd:
            out.refusals.append(f"{lv.what} {lv.qualified} must be dropped and created again ({rebuild[key]}), but it "
                                f"has {lv.odd}, which the plan cannot re-create; declare it or drop it by hand first")
    # drops: a view before what it reads; creates and replaces: after
    drop_deps = {k: {(s, t) for s, t, _ in live[k].reads if (s, t) in rebuild and (s, t) != k} for k in rebuild}
    for key in reversed(_topological(drop_deps)):
        lv = live[key]
        lost: tuple[str, ...] = ()
        if key in want and readings[key].definition is not None:
            new_cols = set(readings[key].columns)
            lost = tuple(c for c, typ in lv.columns if (c, typ) not in new_cols)
        out.changes.append(_change(lv.qualified, ops.DropView(view=lv, because=rebuild[key], loses_columns=lost,
                                                          managed=key in want),
                                   _anchor(lv)))
    made = set(creates) | set(replaces)
    deps: dict[Key, set[Key]] = {}
    for key in made:
        rd = readings.get(key) if key in want else None
        reads = rd.reads if rd is not None and rd.definition is not None else live[key].reads if key in live else ()
        deps[key] = {(s, t) for s, t, _ in reads if (s, t) in made and (s, t) != key}
        if rd is not None and rd.definition is None:  # planned as written: its words say which views it may read
            from migrate_assets.schema.exprcheck import expression_words

            words = expression_words(want[key].definition)
            deps[key] |= {k for k in made if k != key and k[1] in words}
    for key in _topological(deps):
        if key in replaces:
            out.changes.append(replaces[key])
            continue
        v = creates[key]
        if key in want:
            r = readings[key]
            planned = r.definition if r.definition is not None and key not in shifted else v.definition
            lv = live.get(key)
            # a declared view keeps its live owner, grants and column comments when it is created again
            kept = {c for c, _ in r.columns}
            view = replace(v, owner=lv.owner, grants=lv.grants,
                           column_comments=tuple(cc for cc in lv.column_comments if cc[0] in kept)) if lv else v
            if lv is not None and lv.materialized and v.materialized:
                view = replace(view, indexes=_rebuilt_indexes(v, lv))
            create = ops.CreateView(view=view, definition=planned, rebuilt=key in rebuild, because=rebuild.get(key, ""))
        else:
            create = ops.CreateView(view=v, definition=v.definition, rebuilt=True, because=rebuild[key])
        out.changes.append(_change(v.qualified, create, _anchor(v)))
    out.changes.extend(tail)
    return out


def _rebuilt_indexes(v: View, lv: View) -> tuple[ViewIndex, ...]:
    """A declared materialized view created again: its declared indexes, and the live ones the spec form cannot
    express (kept as Postgres wrote them)."""
    named = {ix.name for ix in v.indexes}
    return v.indexes + tuple(ix for ix in lv.indexes if not ix.plain and ix.name not in named)


def _same_index(a: ViewIndex, b: ViewIndex) -> bool:
    from migrate_assets.schema.sqltext import normalize

    return (a.columns, a.unique, a.method) == (b.columns, b.unique, b.method) and \
        (None if a.where is None else normalize(a.where)) == (None if b.where is None else normalize(b.where))


def _index_changes(v: View, lv: View) -> list[Change]:
    """Indexes of a declared materialized view that stays: built and dropped CONCURRENTLY after commit; a live
    index the spec form cannot express is kept unless the spec names it."""
    from migrate_assets.schema import hazards

    out: list[Change] = []
    if not v.materialized:
        return out
    have = {ix.name: ix for ix in lv.indexes}
    wanted = {ix.name: ix for ix in v.indexes}
    for name, hi in have.items():
        wx = wanted.get(name)
        if (wx is None and not hi.plain) or (wx is not None and hi.plain and _same_index(wx, hi)):
            continue
        old = _as_index(hi)
        out.append(Change(v.qualified, "drop_index", f"drop index {v.schema}.{name} of materialized view {v.qualified}",
                          (drop_view_index_sql(v, name, concurrently=True),),
                          (view_index_sql(v, hi, concurrently=True),),
                          hazards.drop_index(replaced_by=_as_index(wx) if wx else None, old=old), False, None))
    for name, wi in wanted.items():
        hv = have.get(name)
        if hv is not None and hv.plain and _same_index(wi, hv):
            continue
        out.append(Change(v.qualified, "add_index",
                          f"add {'unique ' if wi.unique else ''}index {name} on materialized view {v.qualified} "
                          f"({', '.join(wi.columns)})", (view_index_sql(v, wi, concurrently=True),),
                          (drop_view_index_sql(v, name, concurrently=True),), (Hazard.LONG_RUNNING,), False, None))
    return out


def _as_index(ix: ViewIndex) -> Any:
    from migrate_assets.schema.model import Index

    return Index(ix.name, ix.columns, ix.unique, ix.where, ix.method, definition=ix.definition)


def _topological(deps: dict[Key, set[Key]]) -> list[Key]:
    """Keys in an order where each comes after its dependencies (name order among equals; a cycle, which
    Postgres does not allow between views, is broken by name)."""
    out: list[Key] = []
    done: set[Key] = set()
    todo = sorted(deps)
    while todo:
        ready = [k for k in todo if deps[k] <= done or not (deps[k] - done) & set(todo)]
        if not ready:
            ready = todo[:1]
        for k in ready:
            out.append(k)
            done.add(k)
        todo = [k for k in todo if k not in done]
    return out


def in_order(changes: Iterable[Change]) -> list[Change]:
    """The table plan's changes and the view plan's in one execution order (`diff._rank`, stable)."""
    from migrate_assets.schema.diff import _rank

    return sorted(changes, key=_rank)


def managed_listing(unmanaged: Iterable[Unmanaged], desired: Sequence[Table]) -> tuple[Unmanaged, ...]:
    """The planner's unmanaged list without the views the specs declare (they are managed now)."""
    names = {v.qualified for v in views_of(desired)}
    return tuple(u for u in unmanaged if not (u.kind in VIEW_KINDS and u.name in names))


__all__ = ["BLOCKING_KINDS", "Prepared", "Reading", "SchemaDecl", "ViewPlan", "diff_views", "extensions_present", "in_order",
           "managed_listing", "plan_extensions", "plan_views", "read_definitions", "same_definition"]
