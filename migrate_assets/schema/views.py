"""Views, materialized views, schemas and extensions in spec files: the model, the spec documents, the live
catalog and `export`'s documents. Planning them is `schema/viewplan.py`.

    - view: recent_orders                 # or `schema.name`; `schema:` as for tables
      definition: |                       # exactly one query (SELECT / WITH / VALUES / TABLE)
        SELECT id, total FROM orders WHERE total > 0
      options: {security_barrier: true, check_option: local}   # views only (ALTER VIEW … SET)
      comment: Orders with a total
    - view: order_totals
      materialized: true
      definition: SELECT customer, sum(total) AS total FROM orders GROUP BY customer
      indexes:                            # materialized views only
        - {name: order_totals_customer, columns: [customer], unique: true}
    - extension: citext                   # CREATE EXTENSION; `version:` → … VERSION / ALTER EXTENSION … UPDATE TO
      schema: public
      version: "1.6"
    - schema: analytics                   # CREATE SCHEMA when missing (a mapping with `schema` and no other kind)

Unqualified names in a definition are read with `search_path` = the view's schema, then `public` (when planning
and when applying). A definition is compared with the live view as Postgres normalises it (`pg_get_viewdef`).
Undeclared views, schemas and extensions are never dropped for their own sake.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql

from migrate_assets.schema import ddl
from migrate_assets.schema.model import INDEX_METHODS, Named, Source

if TYPE_CHECKING:
    import psycopg

VIEW_KEYS = {"view", "schema", "definition", "materialized", "options", "comment", "indexes"}
EXTENSION_KEYS = {"extension", "schema", "version"}
SCHEMA_KEYS = {"schema", "comment"}
VIEW_INDEX_KEYS = {"name", "columns", "unique", "where", "method"}
#: `options:` of a plain view (pg_class.reloptions); values as Postgres stores them
VIEW_OPTIONS = {"check_option": ("local", "cascaded"), "security_barrier": (True, False),
                "security_invoker": (True, False)}
#: what a view's definition may start with
QUERY_HEADS = frozenset({"select", "with", "values", "table", "("})


@dataclass(frozen=True, slots=True)
class ViewIndex:
    """An index of a materialized view: plain columns (`definition` holds the whole text of a live one, and
    `plain` is False when it has expressions, ordering or operator classes the spec form has no words for)."""

    name: str
    columns: tuple[str, ...]
    unique: bool = False
    method: str = "btree"
    where: str | None = None
    definition: str | None = field(default=None, compare=False)
    plain: bool = field(default=True, compare=False)


@dataclass(frozen=True)
class View(Named):
    schema: str
    name: str
    definition: str
    materialized: bool = False
    #: reloptions as `key=value` (sorted), e.g. `check_option=local`, `security_barrier=true`
    options: tuple[str, ...] = ()
    comment: str | None = None
    indexes: tuple[ViewIndex, ...] = ()
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    #: where the definition itself is (its line, for Postgres' complaints about it)
    definition_source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    # -- live side only ------------------------------------------------------------------------------------
    #: (name, format_type) of its columns
    columns: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    owner: str | None = field(default=None, compare=False)
    #: (grantee or PUBLIC, privilege, grantable) beside the owner's own
    grants: tuple[tuple[str, str, bool], ...] = field(default=(), compare=False)
    column_comments: tuple[tuple[str, str], ...] = field(default=(), compare=False)
    #: (schema, relation, column or "") of what its query reads
    reads: tuple[tuple[str, str, str], ...] = field(default=(), compare=False)
    #: why it cannot be re-created exactly as it is (triggers, rules, column defaults), or None
    odd: str | None = field(default=None, compare=False)
    #: a materialized view that holds its query's rows (False: created WITH NO DATA, never refreshed)
    populated: bool = field(default=True, compare=False)


    @property
    def what(self) -> str:
        return "materialized view" if self.materialized else "view"


@dataclass(frozen=True)
class Extension:
    name: str
    schema: str | None = None  #: None: wherever CREATE EXTENSION puts it (desired side)
    version: str | None = None  #: None: the default version, never updated (desired side)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    relocatable: bool = field(default=False, compare=False)
    version_source: Source | None = field(default=None, compare=False, hash=False, repr=False)


@dataclass(frozen=True)
class SchemaDecl:
    name: str
    comment: str | None = None
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)


SchemaObject = View | Extension | SchemaDecl


def views_of(desired: Sequence[Any]) -> tuple[View, ...]:
    return tuple(o for o in getattr(desired, "schema_objects", ()) if isinstance(o, View))


def extensions_of(desired: Sequence[Any]) -> tuple[Extension, ...]:
    return tuple(o for o in getattr(desired, "schema_objects", ()) if isinstance(o, Extension))


def schemas_of(desired: Sequence[Any]) -> tuple[SchemaDecl, ...]:
    return tuple(o for o in getattr(desired, "schema_objects", ()) if isinstance(o, SchemaDecl))


# --------------------------------------------------------------------------------------------------------
# spec documents
# --------------------------------------------------------------------------------------------------------


def is_object(raw: dict[str, Any]) -> bool:
    """A spec mapping that declares a view, an extension or a schema (not a table or an enum)."""
    if "table" in raw or "enum" in raw:
        return False
    return "view" in raw or "extension" in raw or ("schema" in raw and raw.keys() <= SCHEMA_KEYS)


def parse_object(ctx: Any, raw: dict[str, Any], path: tuple[Any, ...], default_schema: str) -> SchemaObject | None:
    """One view / extension / schema document (`ctx` is the spec loader's problem collector)."""
    if "view" in raw:
        return _view(ctx, raw, path, default_schema)
    if "extension" in raw:
        return _extension(ctx, raw, path)
    e = ctx.mapping(raw, path, SCHEMA_KEYS, "a schema with schema and comment")
    if e is None:
        return None
    name = ctx.name(e, "schema", path)
    comment = ctx.text(e, "comment")
    return SchemaDecl(name, comment, ctx.src(path)) if name else None


def check_query_text(text: str) -> str | None:
    """Why `text` cannot be one query (offline: the same lexer rules as expressions; no `;`, no comments,
    brackets balanced), or None. Postgres then parses it (`viewplan`)."""
    from migrate_assets.schema.sqltext import tokens

    if not text.strip():
        return "definition is empty"
    if "\x00" in text:
        return "a NUL character is not allowed in a definition"
    try:
        toks = tokens(text)
    except ValueError as exc:
        return str(exc).replace("in an expression", "in a view definition")
    depth = 0
    for t in toks:
        if t[0] == "$" and len(t) > 1 and t[1].isdigit():
            return f"parameter {t!r} is not allowed in a view definition"
        if t in ("(", "["):
            depth += 1
        elif t in (")", "]"):
            depth -= 1
            if depth < 0:
                return f"unbalanced {t!r}"
    if depth:
        return "unbalanced '('"
    if toks[0].lower() not in QUERY_HEADS:
        return f"a view definition is one query (SELECT, WITH, VALUES or TABLE), not {toks[0]!r} …"
    return None


def _view(ctx: Any, raw: dict[str, Any], path: tuple[Any, ...], default_schema: str) -> View | None:
    e = ctx.mapping(raw, path, VIEW_KEYS, "a view with view and definition")
    if e is None:
        return None
    key = ctx.object_name(e, "view", path, default_schema)
    definition = ctx.checked_text(e, "definition", path, check_query_text, " (the view's query)",
                                  "invalid view definition")
    materialized = ctx.boolean(e, "materialized", False)
    options: list[str] = []
    raw_opts = e.get("options")
    if raw_opts is not None:
        if materialized:
            ctx.add(e.at("options"), "options are for views (a materialized view has storage parameters only)")
        elif not isinstance(raw_opts, dict):
            ctx.add(e.at("options"), "expected a mapping of view options (check_option, security_barrier, "
                                     "security_invoker)")
        else:
            for k, v in raw_opts.items():
                allowed = VIEW_OPTIONS.get(str(k))
                if allowed is None:
                    ctx.add((*e.at("options"), str(k)), f"unknown view option (expected one of: "
                                                         f"{', '.join(sorted(VIEW_OPTIONS))})")
                elif v not in allowed or v.__class__ is not allowed[0].__class__:
                    ctx.add((*e.at("options"), str(k)), "expected one of: " + ", ".join(
                        str(a).lower() for a in allowed))
                else:
                    options.append(f"{k}={str(v).lower()}")
    indexes = _view_indexes(ctx, e, materialized)
    comment = ctx.text(e, "comment")
    if key is None or definition is None:
        return None
    return View(key[0], key[1], definition, materialized, tuple(sorted(options)), comment, tuple(indexes),
                ctx.src(path), ctx.src(e.at("definition")))


def _view_indexes(ctx: Any, e: Any, materialized: bool) -> list[ViewIndex]:
    from migrate_assets.schema.spec import ident_problem

    raw = e.get("indexes")
    if raw is None:
        return []
    if not materialized:
        ctx.add(e.at("indexes"), "only a materialized view has indexes (say `materialized: true`)")
        return []
    if not isinstance(raw, list):
        ctx.add(e.at("indexes"), "expected a list of indexes")
        return []
    out: list[ViewIndex] = []
    for i, ri in enumerate(raw):
        p = (*e.at("indexes"), i)
        ie = ctx.mapping(ri, p, VIEW_INDEX_KEYS, "an index with name and columns")
        if ie is None:
            continue
        name = ctx.name(ie, "name", p)
        cols = [c for c, _ in ctx.names(ie, "columns")]
        if not cols:
            ctx.add(ie.at("columns") if "columns" in ie else p, "expected a non-empty list of column names")
        method = ctx.text(ie, "method") or "btree"
        if method not in INDEX_METHODS and ident_problem(method):
            ctx.add(ie.at("method"), "an access method name")
        where = ctx.text(ie, "where")
        if where is not None:
            from migrate_assets.schema.sqltext import check_expression

            why = check_expression(where)
            if why:
                ctx.add(ie.at("where"), f"invalid index predicate: {why}")
        unique = ctx.boolean(ie, "unique", False)
        if name and cols:
            if any(x.name == name for x in out):
                ctx.add(ie.at("name"), f"duplicate index {name!r}")
            out.append(ViewIndex(name, tuple(cols), unique, method, where))
    return out


def _extension(ctx: Any, raw: dict[str, Any], path: tuple[Any, ...]) -> Extension | None:
    e = ctx.mapping(raw, path, EXTENSION_KEYS, "an extension with extension, schema and version")
    if e is None:
        return None
    name = ctx.name(e, "extension", path)
    schema = ctx.name(e, "schema", path, required=False)
    version = e.get("version")
    if version is not None and not isinstance(version, str | int | float) or isinstance(version, bool):
        ctx.add(e.at("version"), "expected a version string such as \"1.6\"")
        version = None
    return Extension(name, schema, None if version is None else str(version), ctx.src(path),
                     version_source=ctx.src(e.at("version")) if version is not None else None) if name else None


def merge(objects: Iterable[SchemaObject]) -> tuple[list[SchemaObject], list[tuple[SchemaObject, str]]]:
    """Objects of all files, and (object, message) for each duplicate (the first one is kept)."""
    seen: dict[tuple[str, ...], SchemaObject] = {}
    dups: list[tuple[SchemaObject, str]] = []
    for o in objects:
        if isinstance(o, View):
            k: tuple[str, ...] = ("relation", o.schema, o.name)
            label = f"view {o.qualified}"
        elif isinstance(o, Extension):
            k, label = ("extension", o.name), f"extension {o.name}"
        else:
            k, label = ("schema", o.name), f"schema {o.name}"
        if k in seen:
            dups.append((o, f"duplicate {label}"))
        else:
            seen[k] = o
    return list(seen.values()), dups


def duplicate_problem(o: SchemaObject, why: str) -> Any:
    from migrate_assets.errors import Problem

    src = o.source
    return Problem(src.file if src else "<spec>", why, (src.key if src else "") or why.split()[1], src.lineno if src else None)


def name_clashes(objects: Iterable[SchemaObject], tables: dict[tuple[str, str], Any]) -> list[Any]:
    """A view declared under the name of a declared table."""
    from migrate_assets.errors import Problem

    out = []
    for o in objects:
        if isinstance(o, View) and o.key in tables:
            src = o.source
            out.append(Problem(src.file if src else "<spec>", f"view {o.qualified} has the name of a table the specs "
                               "declare", (src.key if src else "") or "view", src.lineno if src else None))
    return out


# --------------------------------------------------------------------------------------------------------
# the live catalog
# --------------------------------------------------------------------------------------------------------

#: every view and materialized view outside the system schemas and extensions (dependents may live in any
#: schema); read with search_path = pg_catalog, so every other name in a definition is schema-qualified
_LIVE_VIEWS = """
SELECT c.oid, n.nspname, c.relname, c.relkind = 'm', pg_get_viewdef(c.oid, true),
       coalesce(c.reloptions, '{}'), obj_description(c.oid, 'pg_class'), pg_get_userbyid(c.relowner),
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod)) ORDER BY a.attnum)
        FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT json_agg(json_build_array(CASE WHEN x.grantee = 0 THEN 'PUBLIC' ELSE pg_get_userbyid(x.grantee) END,
                                          x.privilege_type, x.is_grantable))
        FROM aclexplode(c.relacl) x WHERE x.grantee <> c.relowner),
       (SELECT json_agg(json_build_array(a.attname, d.description)) FROM pg_description d
        JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum = d.objsubid
        WHERE d.objoid = c.oid AND d.classoid = 'pg_class'::regclass AND d.objsubid > 0),
       (SELECT json_agg(DISTINCT jsonb_build_array(rn.nspname, rc.relname, coalesce(ra.attname, '')))
        FROM pg_rewrite rw JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = rw.oid
             AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> c.oid
        JOIN pg_class rc ON rc.oid = d.refobjid JOIN pg_namespace rn ON rn.oid = rc.relnamespace
        LEFT JOIN pg_attribute ra ON ra.attrelid = d.refobjid AND ra.attnum = d.refobjsubid AND d.refobjsubid > 0
        WHERE rw.ev_class = c.oid),
       concat_ws(', ',
         CASE WHEN EXISTS (SELECT FROM pg_trigger t WHERE t.tgrelid = c.oid) THEN 'triggers' END,
         CASE WHEN EXISTS (SELECT FROM pg_rewrite r WHERE r.ev_class = c.oid AND r.rulename <> '_RETURN')
              THEN 'rules' END,
         CASE WHEN EXISTS (SELECT FROM pg_attrdef ad WHERE ad.adrelid = c.oid) THEN 'column defaults' END,
         CASE WHEN EXISTS (SELECT FROM pg_seclabel s WHERE s.objoid = c.oid AND s.classoid = 'pg_class'::regclass)
              THEN 'security labels' END),
       c.relispopulated
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE c.relkind IN ('v', 'm') AND n.nspname NOT IN ('pg_catalog', 'information_schema')
  AND n.nspname NOT LIKE 'pg\\_toast%%' AND n.nspname NOT LIKE 'pg\\_temp%%'
  AND NOT EXISTS (SELECT FROM pg_depend e WHERE e.classid = 'pg_class'::regclass AND e.objid = c.oid
                  AND e.deptype = 'e')
"""

#: indexes of materialized views: plain ones (columns only) come with their columns
_LIVE_VIEW_INDEXES = """
SELECT i.indrelid, ic.relname, i.indisunique, am.amname, pg_get_expr(i.indpred, i.indrelid),
       ARRAY(SELECT a.attname FROM unnest(i.indkey::int2[]) WITH ORDINALITY k(n, o)
             JOIN pg_attribute a ON a.attrelid = i.indrelid AND a.attnum = k.n ORDER BY k.o),
       i.indexprs IS NULL AND i.indnkeyatts = i.indnatts AND 0 = ALL(i.indoption::int2[])
       AND NOT EXISTS (SELECT FROM unnest(i.indclass::oid[]) cl(oid) JOIN pg_opclass oc ON oc.oid = cl.oid
                       WHERE NOT oc.opcdefault)
       AND NOT EXISTS (SELECT FROM unnest(i.indcollation::oid[]) co(oid) WHERE co.oid NOT IN (0, 100)),
       pg_get_indexdef(i.indexrelid)
FROM pg_index i JOIN pg_class c ON c.oid = i.indrelid AND c.relkind = 'm'
JOIN pg_class ic ON ic.oid = i.indexrelid JOIN pg_am am ON am.oid = ic.relam
WHERE i.indrelid = ANY(%s)
"""


def live_views(conn: psycopg.Connection[Any]) -> dict[tuple[str, str], View]:
    """Every view and materialized view of the database (two catalog queries)."""
    from migrate_assets.schema.introspect import catalog_path

    with catalog_path(conn):
        rows = conn.execute(_LIVE_VIEWS).fetchall()
        mats = [r[0] for r in rows if r[3]]
        ix_rows = conn.execute(_LIVE_VIEW_INDEXES, [mats]).fetchall() if mats else []
    indexes: dict[int, list[ViewIndex]] = {}
    for relid, name, unique, method, where, cols, plain, definition in ix_rows:
        indexes.setdefault(relid, []).append(ViewIndex(str(name), tuple(cols), bool(unique), str(method), where,
                                                       str(definition), bool(plain)))
    out: dict[tuple[str, str], View] = {}
    for oid, nsp, rel, mat, definition, opts, comment, owner, cols, grants, ccomments, reads, odd, filled in rows:
        out[(str(nsp), str(rel))] = View(
            str(nsp), str(rel), viewdef_text(definition), bool(mat), tuple(sorted(str(o) for o in opts)), comment,
            tuple(sorted(indexes.get(oid, ()), key=lambda x: x.name)),
            columns=tuple((str(a), str(b)) for a, b in _json(cols)),
            owner=str(owner), grants=tuple(sorted((str(g), str(p), bool(w)) for g, p, w in _json(grants))),
            column_comments=tuple(sorted((str(a), str(b)) for a, b in _json(ccomments))),
            reads=tuple(sorted((str(s), str(r), str(c)) for s, r, c in _json(reads))),
            odd=str(odd) or None, populated=bool(filled),
        )
    return out


def viewdef_text(text: str | None) -> str:
    """`pg_get_viewdef`'s text without its closing `;` and outer blank space."""
    return (text or "").strip().removesuffix(";").rstrip()


def _json(v: Any) -> list[Any]:
    if v is None:
        return []
    return json.loads(v) if isinstance(v, str) else list(v)


def live_extensions(conn: psycopg.Connection[Any]) -> dict[str, Extension]:
    rows = conn.execute("SELECT e.extname, n.nspname, e.extversion, e.extrelocatable FROM pg_extension e "
                        "JOIN pg_namespace n ON n.oid = e.extnamespace").fetchall()
    return {str(a): Extension(str(a), str(b), str(c), relocatable=bool(d)) for a, b, c, d in rows}


def live_schemas(conn: psycopg.Connection[Any], names: Iterable[str]) -> dict[str, SchemaDecl]:
    rows = conn.execute("SELECT nspname, obj_description(oid, 'pg_namespace') FROM pg_namespace "
                        "WHERE nspname = ANY(%s)", [sorted(set(names))]).fetchall()
    return {str(a): SchemaDecl(str(a), b) for a, b in rows}


# --------------------------------------------------------------------------------------------------------
# DDL (every name through sql.Identifier; a definition is checked first, see viewplan)
# --------------------------------------------------------------------------------------------------------

SAVED_PATH = "migrate_assets.saved_search_path"


def _r(stmt: sql.Composable) -> str:
    return stmt.as_string(None)


def kind_sql(materialized: bool) -> sql.SQL:
    return sql.SQL("MATERIALIZED VIEW" if materialized else "VIEW")


def create_view_sql(v: View, definition: str, *, replace: bool = False, with_data: bool = True) -> list[str]:
    """CREATE [OR REPLACE] [MATERIALIZED] VIEW with its options, read with search_path = its schema, public
    (set around it and restored: later statements of the transaction see the caller's path)."""
    name = sql.Identifier(v.schema, v.name)
    opts: sql.Composable = sql.SQL("")
    if v.options and not v.materialized:
        opts = sql.SQL(" WITH ({})").format(sql.SQL(", ").join(_option(o) for o in v.options))
    head = sql.SQL("CREATE OR REPLACE " if replace else "CREATE ")
    body = sql.SQL(definition)  # noqa: S608 - checked: one query, parsed by Postgres before it is planned
    tail = sql.SQL("" if not v.materialized else " WITH DATA" if with_data else " WITH NO DATA")
    path = sql.SQL(", ").join([sql.Identifier(v.schema), sql.Identifier("public")]).as_string(None)
    return [
        _r(sql.SQL("SELECT set_config({}, current_setting('search_path'), true)").format(sql.Literal(SAVED_PATH))),
        _r(sql.SQL("SELECT set_config('search_path', {}, true)").format(sql.Literal(path))),
        _r(sql.SQL("{}{} {}{} AS {}{}").format(head, kind_sql(v.materialized), name, opts, body, tail)),
        _r(sql.SQL("SELECT set_config('search_path', current_setting({}), true)").format(sql.Literal(SAVED_PATH))),
    ]


def _option(o: str) -> sql.Composable:
    k, _, val = o.partition("=")
    return sql.SQL("{} = {}").format(sql.Identifier(k), sql.Literal(val))


def drop_view_sql(v: View) -> str:
    return _r(sql.SQL("DROP {} {}").format(kind_sql(v.materialized), sql.Identifier(v.schema, v.name)))


def comment_view_sql(v: View, text: str | None) -> str:
    return _r(sql.SQL("COMMENT ON {} {} IS {}").format(kind_sql(v.materialized), sql.Identifier(v.schema, v.name),
                                                       sql.Literal(text) if text is not None else sql.SQL("NULL")))


def set_options_sql(v: View, add: Sequence[str], reset: Sequence[str]) -> list[str]:
    out = []
    name = sql.Identifier(v.schema, v.name)
    if add:
        out.append(_r(sql.SQL("ALTER VIEW {} SET ({})").format(name, sql.SQL(", ").join(_option(o) for o in add))))
    if reset:
        out.append(_r(sql.SQL("ALTER VIEW {} RESET ({})").format(
            name, sql.SQL(", ").join(sql.Identifier(o.partition("=")[0]) for o in reset))))
    return out


def view_index_sql(v: View, ix: ViewIndex, *, concurrently: bool) -> str:
    if ix.definition is not None and not ix.plain:  # a live index kept as Postgres wrote it
        return ddl.concurrently(ix.definition) if concurrently else ix.definition
    stmt = sql.SQL("CREATE {}INDEX {}{} ON {} USING {} ({}){}").format(
        sql.SQL("UNIQUE " if ix.unique else ""), sql.SQL("CONCURRENTLY " if concurrently else ""),
        sql.Identifier(ix.name), sql.Identifier(v.schema, v.name),
        sql.SQL(ix.method) if ix.method in INDEX_METHODS else sql.Identifier(ix.method),
        sql.SQL(", ").join(sql.Identifier(c) for c in ix.columns),
        sql.SQL(" WHERE ({})").format(sql.SQL(ix.where)) if ix.where else sql.SQL(""),  # noqa: S608 - checked
    )
    return _r(stmt)


def drop_view_index_sql(v: View, name: str, *, concurrently: bool) -> str:
    return ddl.drop_index(v.schema, name, concurrently=concurrently)


def grant_sql(v: View, grants: Iterable[tuple[str, str, bool]]) -> list[str]:
    out = []
    for grantee, privilege, grantable in grants:
        who = sql.SQL("PUBLIC") if grantee == "PUBLIC" else sql.Identifier(grantee)
        out.append(_r(sql.SQL("GRANT {} ON {} TO {}{}").format(
            sql.SQL(privilege), sql.Identifier(v.schema, v.name), who,
            sql.SQL(" WITH GRANT OPTION" if grantable else ""))))
    return out


def recreate_sql(v: View, *, definition: str | None = None, replace: bool = False) -> list[str]:
    """Everything that makes `v` again: the view, its options, comments, indexes, owner and grants (a live view
    re-created exactly as it was; a desired one with `definition` as planned)."""
    out = create_view_sql(v, definition if definition is not None else v.definition, replace=replace,
                          with_data=v.populated)
    name = sql.Identifier(v.schema, v.name)
    if not replace:
        out += [view_index_sql(v, ix, concurrently=False) for ix in v.indexes]
    if v.comment is not None:
        out.append(comment_view_sql(v, v.comment))
    for col, text in v.column_comments:
        out.append(_r(sql.SQL("COMMENT ON COLUMN {} IS {}").format(sql.Identifier(v.schema, v.name, col),
                                                                  sql.Literal(text))))
    if v.owner is not None and not replace:
        out.append(_r(sql.SQL("ALTER {} {} OWNER TO {}").format(kind_sql(v.materialized), name,
                                                                sql.Identifier(v.owner))))
    if not replace:
        out += grant_sql(v, v.grants)
    return out


# --------------------------------------------------------------------------------------------------------
# export
# --------------------------------------------------------------------------------------------------------


def export_documents(conn: psycopg.Connection[Any], schemas: Sequence[str],
                     default_schema: str) -> dict[str, dict[str, Any]]:
    """File name → document for every view and materialized view of `schemas`, every schema but the default
    one, and every extension (but plpgsql), in Postgres' spelling (`pg_get_viewdef`, `extversion`)."""
    import re

    def fname(*parts: str) -> str:
        return re.sub(r"[^A-Za-z0-9_.-]", "_", ".".join(parts))

    docs: dict[str, dict[str, Any]] = {}
    for v in live_views(conn).values():
        if v.schema not in schemas:
            continue
        doc: dict[str, Any] = {"view": v.name}
        if v.schema != default_schema or "." in v.name:
            doc["schema"] = v.schema
        if v.materialized:
            doc["materialized"] = True
        doc["definition"] = v.definition.strip()
        if v.options and not v.materialized:
            doc["options"] = {k: (val == "true" if val in ("true", "false") else val)
                              for k, _, val in (o.partition("=") for o in v.options)}
        if v.comment is not None:
            doc["comment"] = v.comment
        plain = [ix for ix in v.indexes if ix.plain]
        if plain:
            docs_ix = []
            for ix in plain:
                d: dict[str, Any] = {"name": ix.name, "columns": list(ix.columns)}
                if ix.unique:
                    d["unique"] = True
                if ix.method != "btree":
                    d["method"] = ix.method
                if ix.where is not None:
                    d["where"] = ix.where
                docs_ix.append(d)
            doc["indexes"] = docs_ix
        docs[fname(v.schema, v.name) + (".matview.yaml" if v.materialized else ".view.yaml")] = doc
    for s in live_schemas(conn, schemas).values():
        if s.name != default_schema:
            docs[fname(s.name) + ".schema.yaml"] = {"schema": s.name, **({"comment": s.comment} if s.comment else {})}
    for x in live_extensions(conn).values():
        if x.name != "plpgsql":
            docs[fname(x.name) + ".extension.yaml"] = {"extension": x.name, "schema": x.schema, "version": x.version}
    return docs


def not_expressed(conn: psycopg.Connection[Any], schemas: Sequence[str]) -> list[tuple[str, str, str, str]]:
    """(schema, kind, name, why) of the parts of views that `export` cannot write: indexes with expressions,
    ordering or operator classes; triggers and rules on views."""
    out = []
    for v in live_views(conn).values():
        if v.schema not in schemas:
            continue
        out += [(v.schema, "index", ix.name, f"index of {v.qualified}: {ix.definition}") for ix in v.indexes
                if not ix.plain]
        if v.odd:
            out.append((v.schema, v.what.replace(" ", "_"), v.name, f"{v.odd} (the definition is exported)"))
    return out
