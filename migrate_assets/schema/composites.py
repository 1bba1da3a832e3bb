"""Composite types in spec files: declared, created, given new attributes, attributes dropped or retyped — never
dropped when a spec stops declaring one.

    composite: public.money_pair       # or `composite: money_pair` with `schema: public`
    attributes:
      - {name: amount, type: "numeric(12,2)"}
      - {name: currency, type: text, collation: C}

What Postgres does (Postgres 15, `pg_locks` and relfilenode in tests/schema/test_composites.py): `ADD ATTRIBUTE`
and `DROP ATTRIBUTE` take ACCESS EXCLUSIVE on the type only and rewrite no table, even when a table column holds the
type (stored values read the new attribute as NULL; a dropped attribute's values are gone). `ALTER ATTRIBUTE … TYPE`
is refused by Postgres while a table column holds the type, so the plan refuses it then, naming the columns.
Attributes cannot be reordered: a new one goes at the end, and a spec that moves existing ones is refused. Types
are compared in Postgres' spelling, read from a copy created under `pg_temp` in a transaction that is always rolled
back (only when the spelling differs from the live one).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql

from migrate_assets.errors import Problem, SpecError
from migrate_assets.schema.model import NamedType, Source, Table
from migrate_assets.schema.plan import Change

if TYPE_CHECKING:
    import psycopg

COMPOSITE_KEYS = {"composite", "schema", "attributes"}
ATTRIBUTE_KEYS = {"name", "type", "collation"}


@dataclass(frozen=True)
class Composite(NamedType):
    schema: str
    name: str
    attributes: tuple[tuple[str, str, str | None], ...]  #: (name, type, collation)
    #: live side: table columns holding the type ("schema.table.column")
    used_by: tuple[str, ...] = field(default=(), compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    sources: tuple[tuple[str, Source], ...] = field(default=(), compare=False, hash=False, repr=False)



def composites_of(desired: Sequence[Table]) -> tuple[Composite, ...]:
    return tuple(getattr(desired, "composites", ()))


def parse_spec(ctx: Any, raw: Any, path: Any, default_schema: str) -> Composite | None:
    from migrate_assets.schema.sqltext import check_expression

    e = ctx.mapping(raw, path, COMPOSITE_KEYS, "a composite type with its attributes")
    if e is None:
        return None
    named = ctx.object_name(e, "composite", path, default_schema)
    schema, name = named or (default_schema, "")
    raw_attrs = e.get("attributes")
    if not isinstance(raw_attrs, list) or not raw_attrs:
        ctx.add(e.at("attributes") if "attributes" in e else path, "expected a non-empty list of attributes, each "
                "with name and type")
        raw_attrs = []
    attrs: list[tuple[str, str, str | None]] = []
    sources: list[tuple[str, Source]] = []
    for i, a in enumerate(raw_attrs):
        ap = (*e.at("attributes"), i)
        ae = ctx.mapping(a, ap, ATTRIBUTE_KEYS, "an attribute with name, type and collation")
        if ae is None:
            continue
        aname = ctx.name(ae, "name", ap)
        typ = ae.get("type")
        coll = ctx.name(ae, "collation", ap, required=False)
        if not isinstance(typ, str) or not typ.strip():
            ctx.add(ae.at("type") if "type" in ae else ap, "expected the attribute's type")
            continue
        if (bad := check_expression(typ)) is not None:
            ctx.add(ae.at("type"), f"invalid type {typ!r}: {bad}")
            continue
        if aname is None:
            continue
        if any(n == aname for n, _, _ in attrs):
            ctx.add(ae.at("name"), f"duplicate attribute {aname!r}")
            continue
        attrs.append((aname, typ.strip(), coll))
        sources.append((f"attributes.{aname}", ctx.src(ae.at("type"))))
    if named is None or not isinstance(name, str) or not attrs:
        return None
    return Composite(schema, name, tuple(attrs), (), ctx.src(path), tuple(sources))


def merge(into: Any, loaded: Any, problems: list[Problem]) -> None:
    seen = {c.key: c for c in getattr(into, "composites", ())}
    for c in getattr(loaded, "composites", ()):
        if c.key in seen:
            src = c.source
            problems.append(Problem(src.file if src else "<spec>", f"duplicate composite type {c.qualified}",
                                    (src.key or "composite") if src else "composite", src.lineno if src else None))
            continue
        seen[c.key] = c
    into.composites = tuple(seen.values())


_LIVE = """
SELECT n.nspname, t.typname,
       (SELECT json_agg(json_build_array(a.attname, format_type(a.atttypid, a.atttypmod),
               CASE WHEN a.attcollation <> 0 AND a.attcollation <> at.typcollation THEN
                    (SELECT CASE WHEN cn.nspname = 'pg_catalog' THEN co.collname ELSE cn.nspname || '.' || co.collname END
                     FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = a.attcollation)
               END) ORDER BY a.attnum)
        FROM pg_attribute a JOIN pg_type at ON at.oid = a.atttypid
        WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped),
       (SELECT json_agg(DISTINCT un.nspname || '.' || uc.relname || '.' || ua.attname)
        FROM pg_attribute ua JOIN pg_class uc ON uc.oid = ua.attrelid JOIN pg_namespace un ON un.oid = uc.relnamespace
        WHERE ua.atttypid IN (t.oid, t.typarray) AND NOT ua.attisdropped AND uc.relkind IN ('r', 'p', 'm'))
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_class c ON c.oid = t.typrelid
WHERE t.typtype = 'c' AND c.relkind = 'c' AND {where}
  AND NOT EXISTS (SELECT FROM pg_depend x WHERE x.objid = t.oid AND x.deptype = 'e')
ORDER BY 1, 2
"""


def _json(v: Any) -> list[Any]:
    if v is None:
        return []
    return json.loads(v) if isinstance(v, str) else list(v)


def _rows(conn: psycopg.Connection[Any], where: str, params: list[Any]) -> list[Composite]:
    return [Composite(str(n), str(t), tuple((str(a[0]), str(a[1]), a[2]) for a in _json(attrs)),
                      tuple(sorted(_json(used))))
            for n, t, attrs, used in conn.execute(_LIVE.replace("{where}", where), params).fetchall()]


def live_composites(conn: psycopg.Connection[Any], keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Composite]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = _rows(conn, "(n.nspname, t.typname) IN (SELECT k->>0, k->>1 FROM json_array_elements(%s::json) k)",
                 [json.dumps(wanted, ensure_ascii=False)])
    return {c.key: c for c in rows}


def all_live_composites(conn: psycopg.Connection[Any], schemas: Iterable[str]) -> list[Composite]:
    return _rows(conn, "n.nspname = ANY(%s)", [sorted(set(schemas))])


def attribute_sql(name: str, typ: str, coll: str | None) -> sql.Composable:
    from migrate_assets.schema.domains import collation_sql

    out = sql.SQL("{} {}").format(sql.Identifier(name), sql.SQL(typ))  # type checked offline, read by Postgres
    if coll:
        out = sql.SQL("{} COLLATE {}").format(out, collation_sql(coll))
    return out


def read_desired(conn: psycopg.Connection[Any], declared: Sequence[Composite],
                 live: dict[tuple[str, str], Composite], new_types: set[str]) -> dict[tuple[str, str], Composite]:
    """Each declared composite in Postgres' spelling (see the module); SpecError naming the attribute Postgres
    refuses. One over a type the plan creates is planned as written."""
    from migrate_assets.schema.domains import _mentions
    from migrate_assets.schema.viewplan import _one_statement, scratch_transaction

    out: dict[tuple[str, str], Composite] = {}
    todo = []
    for c in declared:
        have = live.get(c.key)
        if have is not None and c == have:
            out[c.key] = have
        else:
            todo.append(c)
    if not todo:
        return out
    problems: list[Problem] = []
    with scratch_transaction(conn):
        conn.execute("SET LOCAL statement_timeout = '5s'")
        for i, c in enumerate(todo):
            tmp = f"ma_composite_{i}"
            conn.execute("SAVEPOINT ma_composite")
            state, _ = _one_statement(conn, sql.SQL("CREATE TYPE {} AS ()").format(
                sql.Identifier("pg_temp", tmp)).as_bytes(conn))
            failed = state is not None
            for aname, typ, coll in c.attributes if not failed else ():
                state, msg = _one_statement(conn, sql.SQL("ALTER TYPE {} ADD ATTRIBUTE {}").format(
                    sql.Identifier("pg_temp", tmp), attribute_sql(aname, typ, coll)).as_bytes(conn))
                if state is None:
                    continue
                failed = True
                if not (state == "42704" and c.key not in live and _mentions(typ, new_types)):
                    src = c.where(f"attributes.{aname}")
                    problems.append(Problem(src.file if src else "<spec>", f"composite type {c.qualified}, attribute "
                                            f"{aname}: {msg}", src.key if src and src.key else "attributes",
                                            src.lineno if src else None))
                else:
                    out[c.key] = c
                break
            if not failed:
                got = _rows(conn, "t.oid = %s::regtype", [f"pg_temp.{tmp}"])[0]
                out[c.key] = Composite(c.schema, c.name, got.attributes, (), c.source, c.sources)
            conn.execute("ROLLBACK TO SAVEPOINT ma_composite")
    if problems:
        raise SpecError(problems)
    return out


def plan(declared: Sequence[Composite], live: dict[tuple[str, str], Composite],
         read: dict[tuple[str, str], Composite]) -> tuple[list[Change], list[str]]:
    from migrate_assets.schema.ops import composite_ops as cops

    changes: list[Change] = []
    refusals: list[str] = []
    for c in declared:
        want = read.get(c.key, c)
        have = live.get(c.key)
        if have is None:
            changes.append(_change(want, cops.CreateComposite(attributes=want.attributes)))
            continue
        had = {a[0]: a for a in have.attributes}
        wanted = {a[0]: a for a in want.attributes}
        kept = [a[0] for a in want.attributes if a[0] in had]
        if kept != [a[0] for a in have.attributes if a[0] in wanted]:
            refusals.append(f"composite type {c.qualified}: the attributes {', '.join(kept)} would change order, "
                            "which Postgres cannot do")
            continue
        retyped = [a for a in want.attributes if a[0] in had and had[a[0]] != a]
        if retyped and have.used_by:
            refusals.append(f"composite type {c.qualified}: attribute(s) {', '.join(a[0] for a in retyped)} would "
                            f"change type or collation, which Postgres refuses while {', '.join(have.used_by)} "
                            "holds the type")
            continue
        if kept != [a[0] for a in want.attributes][: len(kept)]:
            refusals.append(f"composite type {c.qualified}: new attributes can only go after the existing ones")
            continue
        for a in have.attributes:
            if a[0] not in wanted:
                changes.append(_change(want, cops.DropAttribute(attribute=a, used_by=have.used_by)))
        for a in retyped:
            changes.append(_change(want, cops.AlterAttribute(attribute=a, previous=had[a[0]])))
        for a in want.attributes:
            if a[0] not in had:
                changes.append(_change(want, cops.AddAttribute(attribute=a)))
    return changes, refusals


def _change(c: Composite, op: Any) -> Change:
    anchor = Table(c.schema, c.name)
    p = op.plain(anchor)
    return Change(c.qualified, op.change_kind, op.describe(anchor), p.forward, p.inverse, p.hazards, True, None)


@dataclass
class Planned:
    changes: list[Change]
    refusals: list[str]
    names: set[str]
    new: set[str]
    schemas: set[str]


def prepare(conn: psycopg.Connection[Any], desired: Sequence[Table], new_types: set[str]) -> Planned:
    """The planner's hook (like `domains.prepare`)."""
    declared = composites_of(desired)
    if not declared:
        return Planned([], [], set(), set(), set())
    live = live_composites(conn, [c.key for c in declared])
    new = {c.type_name for c in declared if c.key not in live}
    read = read_desired(conn, declared, live, set(new_types) | new)
    changes, refusals = plan(declared, live, read)
    return Planned(changes, refusals, {c.type_name for c in declared}, new, {c.schema for c in declared})


def document(c: Composite, default_schema: str) -> dict[str, Any]:
    doc: dict[str, Any] = {"composite": c.name if c.schema == default_schema and "." not in c.name
                           else f"{c.schema}.{c.name}"}
    if "." in c.name:
        doc = {"composite": c.name, "schema": c.schema}
    attrs = []
    for n, t, coll in c.attributes:
        a = {"name": n, "type": t}
        if coll:
            a["collation"] = coll
        attrs.append(a)
    doc["attributes"] = attrs
    return doc
