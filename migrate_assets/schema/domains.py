"""Domains in spec files: declared, created, altered online — never dropped when a spec stops declaring one, and
never given another base type (Postgres cannot change it: the plan refuses).

    domain: public.positive_amount     # or `domain: positive_amount` with `schema: public`
    type: numeric(12,2)                # the base type
    default: "0"                       # optional
    not_null: false                    # optional
    collation: C                       # optional (collatable base types only)
    checks:                            # named CHECK constraints
      - {name: positive_amount_check, expression: VALUE >= 0}

Expressions are checked as every other expression is (`exprcheck`: offline first, then read by Postgres, never
run): the desired domain is created in a transaction that is always rolled back, under `pg_temp`, one statement
at a time, and Postgres' own spelling of its type, default and checks (`pg_type.typdefault`,
`pg_get_constraintdef`) is compared with the live one. A domain spelled as `export` wrote it never opens that
transaction.

Locks (`pg_locks`, Postgres 15, see tests/schema/test_domains.py): `CREATE DOMAIN`, `SET/DROP DEFAULT`,
`DROP NOT NULL` and `ADD CONSTRAINT … NOT VALID` lock no table; `DROP CONSTRAINT` locks the constraint object only;
`VALIDATE CONSTRAINT` and `SET NOT NULL` take SHARE on every table with a column of the domain while they scan
it (writes wait, reads go on). A new check is therefore added NOT VALID in the transaction and validated after
commit, on its own.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from psycopg import sql

from migrate_assets.errors import Problem, SpecError
from migrate_assets.schema.model import NamedType, Source, Table
from migrate_assets.schema.plan import Change

if TYPE_CHECKING:
    import psycopg

DOMAIN_KEYS = {"domain", "schema", "type", "default", "not_null", "collation", "checks"}
CHECK_KEYS = {"name", "expression"}


@dataclass(frozen=True)
class Domain(NamedType):
    schema: str
    name: str
    type: str
    default: str | None = None
    not_null: bool = False
    collation: str | None = None
    checks: tuple[tuple[str, str], ...] = ()  #: (name, expression)
    #: live side: the names of checks not yet validated
    not_valid: tuple[str, ...] = field(default=(), compare=False)
    #: live side: tables with a column of the domain ("schema.table.column")
    used_by: tuple[str, ...] = field(default=(), compare=False)
    #: live side: columns holding the domain inside an array or a composite type
    contained_in: tuple[str, ...] = field(default=(), compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    #: desired side: where each key is written ("type", "default", "collation", "checks[i]")
    sources: tuple[tuple[str, Source], ...] = field(default=(), compare=False, hash=False, repr=False)



def domains_of(desired: Sequence[Table]) -> tuple[Domain, ...]:
    return tuple(getattr(desired, "domains", ()))


# -- spec files --------------------------------------------------------------------------------------------------
def parse_spec(ctx: Any, raw: Any, path: Any, default_schema: str) -> Domain | None:
    """A `domain:` document (`ctx`: spec.py's checker); expressions checked offline here, by Postgres at plan."""
    from migrate_assets.schema.sqltext import check_expression

    e = ctx.mapping(raw, path, DOMAIN_KEYS, "a domain with its type, default, not_null, collation and checks")
    if e is None:
        return None
    named = ctx.object_name(e, "domain", path, default_schema)
    schema, name = named or (default_schema, "")
    sources: list[tuple[str, Source]] = []
    type_ = e.get("type")
    if not isinstance(type_, str) or not type_.strip():
        ctx.add(e.at("type") if "type" in e else path, "expected the domain's base type (e.g. integer, numeric(12,2))")
        type_ = None
    elif (bad := check_expression(type_)) is not None or any(ch in type_ for ch in ";"):
        ctx.add(e.at("type"), f"invalid type {type_!r}: {bad or 'not a type'}")
        type_ = None
    else:
        sources.append(("type", ctx.src(e.at("type"))))
    default = e.get("default")
    if default is not None:
        if isinstance(default, bool) or not isinstance(default, str | int | float):
            ctx.add(e.at("default"), "expected an SQL expression (a string)")
            default = None
        else:
            default = str(default)
            if (bad := check_expression(default)) is not None:
                ctx.add(e.at("default"), f"invalid default {default!r}: {bad}")
                default = None
            else:
                sources.append(("default", ctx.src(e.at("default"))))
    not_null = ctx.boolean(e, "not_null", False)
    collation = ctx.name(e, "collation", path, required=False)
    if collation is not None:
        sources.append(("collation", ctx.src(e.at("collation"))))
    checks: list[tuple[str, str]] = []
    raw_checks = e.get("checks")
    if raw_checks is not None and not isinstance(raw_checks, list):
        ctx.add(e.at("checks"), "expected a list of checks, each with name and expression")
        raw_checks = []
    for i, c in enumerate(raw_checks or ()):
        cp = (*e.at("checks"), i)
        ce = ctx.mapping(c, cp, CHECK_KEYS, "a check with name and expression")
        if ce is None:
            continue
        cname = ctx.name(ce, "name", cp)
        expr = ce.get("expression")
        if not isinstance(expr, str) or not expr.strip():
            ctx.add(ce.at("expression") if "expression" in ce else cp, "expected a boolean SQL expression over VALUE")
            continue
        if (bad := check_expression(expr)) is not None:
            ctx.add(ce.at("expression"), f"invalid check {expr!r}: {bad}")
            continue
        if cname is None:
            continue
        if any(n == cname for n, _ in checks):
            ctx.add(ce.at("name"), f"duplicate check name {cname!r}")
            continue
        checks.append((cname, expr))
        sources.append((f"checks.{cname}", ctx.src(ce.at("expression"))))
    if named is None or not isinstance(name, str) or type_ is None:
        return None
    return Domain(schema, name, type_.strip(), default, not_null, collation, tuple(checks), (), (), (), ctx.src(path),
                  tuple(sources))


def merge(into: Any, loaded: Any, problems: list[Problem]) -> None:
    """Spec loading: add `loaded.domains` to `into`'s, a duplicate named as a problem."""
    seen = {d.key: d for d in getattr(into, "domains", ())}
    for d in getattr(loaded, "domains", ()):
        if d.key in seen:
            src = d.source
            problems.append(Problem(src.file if src else "<spec>", f"duplicate domain {d.qualified}",
                                    (src.key or "domain") if src else "domain", src.lineno if src else None))
            continue
        seen[d.key] = d
    into.domains = tuple(seen.values())


# -- live side ---------------------------------------------------------------------------------------------------
_LIVE = """
SELECT n.nspname, t.typname, format_type(t.typbasetype, t.typtypmod), t.typdefault, t.typnotnull,
       CASE WHEN t.typcollation <> 0 AND t.typcollation <> b.typcollation THEN
            (SELECT CASE WHEN cn.nspname = 'pg_catalog' THEN co.collname ELSE cn.nspname || '.' || co.collname END
             FROM pg_collation co JOIN pg_namespace cn ON cn.oid = co.collnamespace WHERE co.oid = t.typcollation)
       END,
       (SELECT json_agg(json_build_array(c.conname, pg_get_constraintdef(c.oid), c.convalidated) ORDER BY c.conname)
        FROM pg_constraint c WHERE c.contypid = t.oid AND c.contype = 'c'),
       (SELECT json_agg(DISTINCT an.nspname || '.' || ac.relname || '.' || a.attname)
        FROM pg_attribute a JOIN pg_class ac ON ac.oid = a.attrelid JOIN pg_namespace an ON an.oid = ac.relnamespace
        WHERE a.atttypid = t.oid AND NOT a.attisdropped AND ac.relkind IN ('r', 'p', 'm')),
       (SELECT json_agg(DISTINCT an.nspname || '.' || ac.relname || '.' || a.attname)
        FROM pg_depend d JOIN pg_type ct ON d.classid = 'pg_type'::regclass AND ct.oid = d.objid AND ct.typtype <> 'd'
        JOIN pg_attribute a ON a.atttypid = ct.oid AND NOT a.attisdropped
        JOIN pg_class ac ON ac.oid = a.attrelid JOIN pg_namespace an ON an.oid = ac.relnamespace
        WHERE d.refclassid = 'pg_type'::regclass AND d.refobjid = t.oid AND ac.relkind IN ('r', 'p', 'm'))
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_type b ON b.oid = t.typbasetype
WHERE t.typtype = 'd' AND {where} AND NOT EXISTS (SELECT FROM pg_depend x WHERE x.objid = t.oid AND x.deptype = 'e')
ORDER BY 1, 2
"""


def check_body(definition: str) -> str:
    """`CHECK ((VALUE > 0)) NOT VALID` → `(VALUE > 0)`: what a spec's `expression` holds."""
    text = definition.strip()
    if text.endswith(" NOT VALID"):
        text = text[: -len(" NOT VALID")]
    if text.startswith("CHECK (") and text.endswith(")"):
        text = text[len("CHECK ("):-1]
    return text


def _json(v: Any) -> list[Any]:
    if v is None:
        return []
    return json.loads(v) if isinstance(v, str) else list(v)


def _rows(conn: psycopg.Connection[Any], where: str, params: list[Any]) -> list[Domain]:
    out = []
    for nsp, name, typ, default, notnull, coll, checks, used, contained in conn.execute(
            _LIVE.replace("{where}", where), params).fetchall():
        cks = _json(checks)
        out.append(Domain(str(nsp), str(name), str(typ), default, bool(notnull), coll,
                          tuple((str(c[0]), check_body(str(c[1]))) for c in cks),
                          tuple(str(c[0]) for c in cks if not c[2]), tuple(sorted(_json(used))),
                          tuple(sorted(_json(contained)))))
    return out


def live_domains(conn: psycopg.Connection[Any], keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Domain]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = _rows(conn, "(n.nspname, t.typname) IN (SELECT k->>0, k->>1 FROM json_array_elements(%s::json) k)",
                 [json.dumps(wanted, ensure_ascii=False)])
    return {d.key: d for d in rows}


def all_live_domains(conn: psycopg.Connection[Any], schemas: Iterable[str]) -> list[Domain]:
    return _rows(conn, "n.nspname = ANY(%s)", [sorted(set(schemas))])


# -- Postgres' reading of a desired domain -----------------------------------------------------------------------
def _problem(d: Domain, key: str, message: str) -> Problem:
    src = d.where(key)
    shown = src.key if src and src.key else key
    return Problem(src.file if src else "<spec>", f"domain {d.qualified}: {message}", shown,
                   src.lineno if src else None)


def read_desired(conn: psycopg.Connection[Any], declared: Sequence[Domain], live: dict[tuple[str, str], Domain],
                 new_types: set[str]) -> dict[tuple[str, str], Domain]:
    """Each declared domain as Postgres spells it (type, default, checks), read from a copy created under `pg_temp`
    in a transaction that is always rolled back, one statement per key so a refusal names its key. Domains
    spelled as the live one are taken as they are; a new domain over a type the plan itself creates is planned
    as written (Postgres reads it at apply). SpecError (file, line, key) for what Postgres refuses."""
    from migrate_assets.schema import ddl
    from migrate_assets.schema.viewplan import _one_statement, scratch_transaction

    out: dict[tuple[str, str], Domain] = {}
    todo = []
    for d in declared:
        have = live.get(d.key)
        if have is not None and d == have:
            out[d.key] = have
        else:
            todo.append(d)
    if not todo:
        return out
    problems: list[Problem] = []
    with scratch_transaction(conn):
        conn.execute("SET LOCAL statement_timeout = '5s'")
        for i, d in enumerate(todo):
            tmp = sql.Identifier("pg_temp", f"ma_domain_{i}")
            conn.execute("SAVEPOINT ma_domain")
            steps: list[tuple[str, sql.Composable]] = [
                ("type", sql.SQL("CREATE DOMAIN {} AS {}{}").format(
                    tmp, sql.SQL(d.type),  # checked offline: one type, no ';'
                    sql.SQL(" COLLATE {}").format(collation_sql(d.collation)) if d.collation else sql.SQL("")))]
            if d.default is not None:
                steps.append(("default", sql.SQL(ddl.domain_default("pg_temp", f"ma_domain_{i}", d.default))))
            for cname, expr in d.checks:
                steps.append((f"checks.{cname}", sql.SQL(ddl.domain_add_check("pg_temp", f"ma_domain_{i}", cname, expr))))
            failed = False
            for key, stmt in steps:
                state, msg = _one_statement(conn, stmt.as_bytes(conn))
                if state is None:
                    continue
                failed = True
                if key == "type" and state == "42704" and d.key not in live and _mentions(d.type, new_types):
                    out[d.key] = d  # over a type the plan creates: planned as written
                else:
                    problems.append(_problem(d, key if key != "type" or not d.collation or "collat" not in msg
                                             else "collation", msg))
                break
            if failed:
                conn.execute("ROLLBACK TO SAVEPOINT ma_domain")
                continue
            got = _rows(conn, "t.oid = %s::regtype", [f"pg_temp.ma_domain_{i}"])[0]
            out[d.key] = Domain(d.schema, d.name, got.type, got.default, d.not_null,
                                got.collation if d.collation else None, got.checks, (), (), (), d.source, d.sources)
            conn.execute("ROLLBACK TO SAVEPOINT ma_domain")
    if problems:
        raise SpecError(problems)
    return out


def _mentions(type_text: str, names: set[str]) -> bool:
    low = type_text.lower().replace('"', "")
    return any(n.replace('"', "").lower() in low for n in names)


def collation_sql(name: str) -> sql.Composable:
    if "." in name:
        s, _, c = name.partition(".")
        return sql.Identifier(s, c)
    return sql.Identifier(name)


# -- planning ----------------------------------------------------------------------------------------------------
def plan(declared: Sequence[Domain], live: dict[tuple[str, str], Domain],
         read: dict[tuple[str, str], Domain]) -> tuple[list[Change], list[str]]:
    """(changes, refusals). Creates and alterations go early in the transaction (before any table that may use the
    domain); a new check is added NOT VALID there and validated after commit."""
    from migrate_assets.schema.ops import domain_ops as dops

    changes: list[Change] = []
    refusals: list[str] = []
    for d in declared:
        want = read.get(d.key, d)
        have = live.get(d.key)
        if have is None:
            changes.append(_change(want, dops.CreateDomain(type=want.type, default=want.default,
                                                           not_null=want.not_null, collation=want.collation,
                                                           checks=want.checks)))
            continue
        if want.type != have.type:
            refusals.append(f"domain {d.qualified}: its base type would change from {have.type} to {want.type}, "
                            "which Postgres cannot do (create a new domain and move the columns to it)")
            continue
        if (want.collation or None) != (have.collation or None):
            refusals.append(f"domain {d.qualified}: its collation would change from {have.collation or 'the default'}"
                            f" to {want.collation or 'the default'}, which Postgres cannot do")
            continue
        scans = (want.not_null and not have.not_null) or any(
            dict(have.checks).get(n) != x or n in have.not_valid for n, x in want.checks)
        if scans and have.contained_in:
            refusals.append(f"domain {d.qualified}: a new check or NOT NULL must be validated against the stored "
                            f"values, and Postgres cannot do that while {', '.join(have.contained_in)} holds the domain "
                            "inside an array or composite type (ALTER DOMAIN is refused); change those columns first")
            continue
        if want.default != have.default:
            changes.append(_change(want, dops.SetDomainDefault(default=want.default, previous=have.default)))
        wanted = dict(want.checks)
        had = dict(have.checks)
        for cname, expr in have.checks:
            if wanted.get(cname) != expr:
                changes.append(_change(want, dops.DropDomainCheck(name=cname, expression=expr)))
        for cname, expr in want.checks:
            if had.get(cname) != expr:
                changes.append(_change(want, dops.AddDomainCheck(name=cname, expression=expr)))
                changes.append(_change(want, dops.ValidateDomainCheck(name=cname, used_by=have.used_by),
                                       transactional=False))
            elif cname in have.not_valid:
                changes.append(_change(want, dops.ValidateDomainCheck(name=cname, used_by=have.used_by),
                                       transactional=False))
        if want.not_null != have.not_null:
            changes.append(_change(want, dops.DomainNotNull(not_null=want.not_null, used_by=have.used_by)))
    return changes, refusals


def _change(d: Domain, op: Any, *, transactional: bool = True) -> Change:
    anchor = Table(d.schema, d.name)
    p = op.plain(anchor)
    return Change(d.qualified, op.change_kind, op.describe(anchor), p.forward, p.inverse, p.hazards, transactional,
                  None)


# -- export ------------------------------------------------------------------------------------------------------
def document(d: Domain, default_schema: str) -> dict[str, Any]:
    """The spec document of live domain `d`, in Postgres' spelling (so a plan against it finds nothing to do)."""
    doc: dict[str, Any] = {"domain": d.name if d.schema == default_schema and "." not in d.name
                           else f"{d.schema}.{d.name}"}
    if "." in d.name:
        doc = {"domain": d.name, "schema": d.schema}
    doc["type"] = d.type
    if d.default is not None:
        doc["default"] = d.default
    if d.not_null:
        doc["not_null"] = True
    if d.collation:
        doc["collation"] = d.collation
    if d.checks:
        doc["checks"] = [{"name": n, "expression": x} for n, x in d.checks]
    return doc


@dataclass
class Planned:
    """What the planner needs from the declared domains: their changes and refusals, the type names they give
    columns (`names`) and those that do not exist yet (`new`)."""

    changes: list[Change]
    refusals: list[str]
    names: set[str]
    new: set[str]
    schemas: set[str]

    def merge(self, other: Any) -> None:
        """Put `other`'s (composites.Planned) changes first: a domain may be over a composite type."""
        self.changes[:0] = other.changes
        self.refusals += other.refusals
        self.names |= other.names
        self.new |= other.new
        self.schemas |= other.schemas


def prepare(conn: psycopg.Connection[Any], desired: Sequence[Table], new_types: set[str]) -> Planned:
    """The planner's hook: the declared domains read, compared with the live ones and planned (`new_types`: type
    names the plan creates before the domains, e.g. new enums)."""
    declared = domains_of(desired)
    if not declared:
        return Planned([], [], set(), set(), set())
    live = live_domains(conn, [d.key for d in declared])
    for d in declared:  # array columns of the domain the specs declare (maybe new in this plan): as live ones
        have = live.get(d.key)
        arrays = {f"{t.qualified}.{c.name}" for t in desired for c in t.columns
                  if c.type.array_dims and c.type.name == d.type_name}
        if have is not None and arrays - set(have.contained_in):
            live[d.key] = replace(have, contained_in=tuple(sorted(set(have.contained_in) | arrays)))
    new = {d.type_name for d in declared if d.key not in live}
    read = read_desired(conn, declared, live, set(new_types) | new)
    changes, refusals = plan(declared, live, read)
    return Planned(changes, refusals, {d.type_name for d in declared}, new, {d.schema for d in declared})
