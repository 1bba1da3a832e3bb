"""Sequences in spec files — standalone, or owned by a column (`OWNED BY`) — with every option: declared, created,
altered (`ALTER SEQUENCE`), never dropped when a spec stops declaring one, and their position never moved.

    sequence: public.batch_seq       # or `sequence: batch_seq` with `schema: public`
    as: bigint                       # smallint | integer | bigint
    increment: 1
    minvalue: 1
    maxvalue: 9223372036854775807
    start: 100                       # what RESTART goes back to; changing it never moves the current value
    cache: 1
    cycle: false
    owned_by: measurements.id        # [schema.]table.column in the sequence's schema; absent: owned by nothing

Options left out are Postgres' defaults for the type and direction, and are managed as such. Identity sequences
belong to their column (`identity:` options) and serial sequences to their `serial` column: neither is a sequence
of its own here (a spec that declares one is refused, naming the column).

Locks (`pg_locks`, Postgres 15): `CREATE SEQUENCE` ACCESS EXCLUSIVE on the new sequence only; `ALTER SEQUENCE`
SHARE ROW EXCLUSIVE on the sequence (a concurrent `nextval` waits for the instant), no table lock; `OWNED BY` adds
ACCESS SHARE on the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from collections.abc import Sequence as Seq
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from psycopg import sql

from migrate_assets.errors import Problem, SpecError
from migrate_assets.schema.model import Named, Source, Table
from migrate_assets.schema.plan import Change

if TYPE_CHECKING:
    from migrate_assets.schema import ops
else:  # imported on first use: an unchanged schema plans without it (lazy_ops)
    from migrate_assets.schema.lazy_ops import ops

if TYPE_CHECKING:
    import psycopg

SEQUENCE_KEYS = {"sequence", "schema", "as", "start", "increment", "minvalue", "maxvalue", "cache", "cycle", "owned_by"}
TYPES = {"smallint": "smallint", "int2": "smallint", "integer": "integer", "int": "integer", "int4": "integer",
         "bigint": "bigint", "int8": "bigint"}
RANGE = {"smallint": (-32768, 32767), "integer": (-2147483648, 2147483647),
         "bigint": (-9223372036854775808, 9223372036854775807)}
OPTIONS = ("type", "increment", "minvalue", "maxvalue", "start", "cache", "cycle")


@dataclass(frozen=True)
class Sequence(Named):
    schema: str
    name: str
    type: str = "bigint"
    increment: int = 1
    minvalue: int = 1
    maxvalue: int = RANGE["bigint"][1]
    start: int = 1
    cache: int = 1
    cycle: bool = False
    owned_by: tuple[str, str, str] | None = None  #: (schema, table, column)
    #: live side: the identity column it belongs to, or the serial column whose default reads it
    column_of: str | None = field(default=None, compare=False)
    last_value: int | None = field(default=None, compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)
    #: desired side: where `owned_by` is written (its own line, for messages)
    owned_source: Source | None = field(default=None, compare=False, hash=False, repr=False)


    def options(self) -> dict[str, object]:
        return {k: getattr(self, k) for k in OPTIONS}


def defaults(type_: str, increment: int) -> dict[str, int]:
    lo, hi = RANGE[type_]
    mn, mx = (1, hi) if increment > 0 else (lo, -1)
    return {"minvalue": mn, "maxvalue": mx, "start": mn if increment > 0 else mx}


def sequences_of(desired: Seq[Table]) -> tuple[Sequence, ...]:
    return tuple(getattr(desired, "sequences", ()))


# -- spec files --------------------------------------------------------------------------------------------------
def parse_spec(ctx: Any, raw: Any, path: Any, default_schema: str) -> Sequence | None:
    """A `sequence:` document (`ctx`: spec.py's checker): every option checked the way `CREATE SEQUENCE` checks it,
    each problem with its key."""
    e = ctx.mapping(raw, path, SEQUENCE_KEYS, "a sequence with its options")
    if e is None:
        return None
    named = ctx.object_name(e, "sequence", path, default_schema)
    schema, name = named or (default_schema, "")
    type_ = TYPES.get(str(e.get("as") or "bigint").lower())
    if type_ is None:
        ctx.add(e.at("as"), "expected smallint, integer or bigint")
        type_ = "bigint"
    nums: dict[str, int] = {}
    for key in ("increment", "minvalue", "maxvalue", "start", "cache"):
        v = e.get(key)
        if v is None:
            continue
        if v.__class__ is not int:
            ctx.add(e.at(key), "expected a whole number")
        else:
            nums[key] = v
    cycle = ctx.boolean(e, "cycle", False)
    lo, hi = RANGE[type_]
    inc = nums.get("increment", 1)
    if inc == 0:
        ctx.add(e.at("increment"), "INCREMENT must not be zero")
        inc = 1
    d = defaults(type_, inc)
    mn, mx = nums.get("minvalue", d["minvalue"]), nums.get("maxvalue", d["maxvalue"])
    bad = False
    for key, v in (("minvalue", mn), ("maxvalue", mx)):
        if not lo <= v <= hi:
            ctx.add(e.at(key), f"{key.upper()} {v} is out of range for a sequence of type {type_} ({lo} .. {hi})")
            bad = True
    if not bad and mn >= mx:
        ctx.add(e.at("minvalue") if "minvalue" in e else e.at("maxvalue"), f"MINVALUE {mn} must be less than MAXVALUE {mx}")
        bad = True
    start = nums.get("start", mn if inc > 0 else mx)
    if not bad and not mn <= start <= mx:
        ctx.add(e.at("start") if "start" in e else path, f"START {start} is outside MINVALUE {mn} .. MAXVALUE {mx}")
    cache = nums.get("cache", 1)
    if cache < 1:
        ctx.add(e.at("cache"), f"CACHE {cache} must be at least 1")
    if abs(inc) > hi - lo:
        ctx.add(e.at("increment"), f"INCREMENT {inc} is out of range for type {type_}")
    owned = _owned_by(ctx, e, schema)
    if named is None or not isinstance(name, str):
        return None
    return Sequence(schema, name, type_, inc, mn, mx, start, cache, cycle, owned, None, None, ctx.src(path),
                    ctx.src(e.at("owned_by")) if owned else None)


def _owned_by(ctx: Any, e: Any, schema: str) -> tuple[str, str, str] | None:
    v = e.get("owned_by")
    if v is None:
        return None
    parts = v.split(".") if isinstance(v, str) else []
    if len(parts) == 2:
        parts = [schema, *parts]
    if len(parts) != 3 or not all(parts):
        ctx.add(e.at("owned_by"), "expected table.column (or schema.table.column) of the column that owns the sequence")
        return None
    if parts[0] != schema:
        ctx.add(e.at("owned_by"), f"a sequence can only be owned by a table in its own schema ({schema})")
        return None
    return (parts[0], parts[1], parts[2])


# -- live side ---------------------------------------------------------------------------------------------------
_LIVE = """
SELECT n.nspname, c.relname, format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax, s.seqstart,
       s.seqcache, s.seqcycle,
       (SELECT json_build_array(tn.nspname, tc.relname, a.attname, d.deptype = 'i' OR EXISTS (
                   SELECT FROM pg_depend dd JOIN pg_attrdef ad ON ad.oid = dd.objid
                   WHERE dd.classid = 'pg_attrdef'::regclass AND dd.refclassid = 'pg_class'::regclass
                     AND dd.refobjid = c.oid AND ad.adrelid = d.refobjid AND ad.adnum = d.refobjsubid))
        FROM pg_depend d JOIN pg_class tc ON tc.oid = d.refobjid JOIN pg_namespace tn ON tn.oid = tc.relnamespace
        JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
        WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
          AND d.deptype IN ('a', 'i') LIMIT 1),
       pg_sequence_last_value(c.oid)
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE {where} AND NOT EXISTS (SELECT FROM pg_depend x WHERE x.objid = c.oid AND x.deptype = 'e')
ORDER BY 1, 2
"""


def _rows(conn: psycopg.Connection, where: str, params: list[Any]) -> list[Sequence]:
    out = []
    for nsp, rel, typ, inc, mn, mx, start, cache, cycle, owner, last in conn.execute(
            _LIVE.replace("{where}", where), params).fetchall():
        owner = json.loads(owner) if isinstance(owner, str) else owner
        owned = (str(owner[0]), str(owner[1]), str(owner[2])) if owner else None
        column_of = f"{owner[0]}.{owner[1]}.{owner[2]}" if owner and owner[3] else None
        out.append(Sequence(str(nsp), str(rel), TYPES.get(str(typ), str(typ)), int(inc), int(mn), int(mx), int(start),
                            int(cache), bool(cycle), owned, column_of, None if last is None else int(last)))
    return out


def live_sequences(conn: psycopg.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Sequence]:
    wanted = sorted(set(keys))
    if not wanted:
        return {}
    rows = _rows(conn, "(n.nspname, c.relname) IN (SELECT k->>0, k->>1 FROM json_array_elements(%s::json) k)",
                 [json.dumps(wanted, ensure_ascii=False)])
    return {s.key: s for s in rows}


def all_live_sequences(conn: psycopg.Connection, schemas: Iterable[str]) -> list[Sequence]:
    """The sequences of `schemas` that are sequences of their own (not an identity's, not a serial's)."""
    return [s for s in _rows(conn, "n.nspname = ANY(%s)", [sorted(set(schemas))]) if s.column_of is None]


# -- planning ----------------------------------------------------------------------------------------------------
def check(conn: psycopg.Connection, declared: Seq[Sequence], desired: Seq[Table]) -> None:
    """SpecError naming file, line and key for an `owned_by` column that neither the specs nor the database have."""
    problems = []
    tables = {t.key: t for t in desired}
    outside = sorted({(s.owned_by[0], s.owned_by[1]) for s in declared if s.owned_by and s.owned_by[:2] not in tables})
    cols: dict[tuple[str, str], set[str]] = {k: {c.name for c in t.columns} for k, t in tables.items()}
    if outside:
        rows = conn.execute(
            "SELECT n.nspname, c.relname, array_agg(a.attname::text) FROM pg_class c JOIN pg_namespace n ON "
            "n.oid = c.relnamespace JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped "
            "WHERE c.relkind IN ('r', 'p') AND (n.nspname, c.relname) IN (SELECT k->>0, k->>1 FROM "
            "json_array_elements(%s::json) k) GROUP BY 1, 2", [json.dumps(outside)]).fetchall()
        cols.update({(str(n), str(r)): set(a) for n, r, a in rows})
    for s in declared:
        if s.key in tables:
            src = s.source
            problems.append(Problem(src.file if src else "<spec>", f"sequence {s.qualified} has the name of a table the "
                                    "spec files declare (a schema holds one relation of a name)",
                                    f"{src.key}.sequence" if src and src.key else "sequence", src.lineno if src else None))
        if s.owned_by and s.owned_by[2] not in cols.get(s.owned_by[:2], set()):
            src = s.owned_source or s.source
            problems.append(Problem(src.file if src else "<spec>", f"sequence {s.qualified} is owned_by "
                                    f"{'.'.join(s.owned_by)}, a column that neither the spec files nor the database "
                                    "have", src.key if src and src.key else "owned_by", src.lineno if src else None))
    if problems:
        raise SpecError(problems)


def plan(declared: Iterable[Sequence], live: dict[tuple[str, str], Sequence]) -> tuple[list[Change], list[Change], list[str]]:
    """(changes early in the transaction, changes after every table is made, refusals)."""

    early: list[Change] = []
    late: list[Change] = []
    refusals: list[str] = []
    for want in declared:
        have = live.get(want.key)
        if have is None:
            early.append(_change(want, ops.CreateSequence(options=_opts(want))))
            if want.owned_by:
                late.append(_change(want, ops.SequenceOwnedBy(owner=want.owned_by, previous=None)))
            continue
        if have.column_of is not None:
            refusals.append(f"sequence {want.qualified} belongs to column {have.column_of} (identity or serial): its "
                            "options are the column's; leave it out of the sequence specs")
            continue
        old, new = have.options(), want.options()
        changed = tuple((k, v) for k, v in _opts(want) if old[k] != new[k])
        if changed:
            last = have.last_value
            if last is not None and not want.minvalue <= last <= want.maxvalue:
                refusals.append(f"sequence {want.qualified}: its current value {last} is outside the new MINVALUE "
                                f"{want.minvalue} .. MAXVALUE {want.maxvalue}; Postgres refuses that (RESTART it by hand "
                                "first, knowing what uses it)")
                continue
            early.append(_change(want, ops.AlterSequence(options=changed,
                                                         previous=tuple((k, old[k]) for k, _ in changed))))
        if want.owned_by != have.owned_by:
            late.append(_change(want, ops.SequenceOwnedBy(owner=want.owned_by, previous=have.owned_by)))
    return early, late, refusals


def _opts(s: Sequence) -> tuple[tuple[str, Any], ...]:
    return tuple(s.options().items())


def _change(s: Sequence, op: Any) -> Change:
    anchor = Table(s.schema, s.name)
    d = op.plain(anchor)
    return Change(s.qualified, op.change_kind, op.describe(anchor), d.forward, d.inverse, d.hazards, True, None)


def place(changes: list[Change], late: list[Change]) -> list[Change]:
    """`late` (OWNED BY) inserted after every transactional change that may create a table, before the foreign keys
    and everything after commit."""
    if not late:
        return changes
    at = next((i for i, c in enumerate(changes) if not c.transactional or c.kind == "add_foreign_key"), len(changes))
    return changes[:at] + late + changes[at:]


_WORDS = {"type": "AS", "increment": "INCREMENT BY", "minvalue": "MINVALUE", "maxvalue": "MAXVALUE",
          "start": "START WITH", "cache": "CACHE"}


def options_sql(options: Iterable[tuple[str, Any]]) -> sql.Composable:
    parts: list[sql.Composable] = []
    for k, v in options:
        if k == "cycle":
            parts.append(sql.SQL("CYCLE" if v else "NO CYCLE"))
        elif k == "type":
            parts.append(sql.SQL("AS " + TYPES[str(v)]))
        else:
            parts.append(sql.SQL(_WORDS[k] + " {}").format(sql.Literal(int(v))))
    return sql.SQL(" ").join(parts)


def owner_sql(owner: tuple[str, str, str] | None) -> sql.Composable:
    return sql.SQL("NONE") if owner is None else sql.Identifier(*owner)


def document(s: Sequence, default_schema: str) -> dict[str, Any]:
    """The spec document for live sequence `s`: options that differ from the defaults only."""
    doc: dict[str, Any] = {"sequence": s.name if s.schema == default_schema and "." not in s.name else f"{s.schema}.{s.name}"}
    if "." in s.name:
        doc = {"sequence": s.name, "schema": s.schema}
    if s.type != "bigint":
        doc["as"] = s.type
    if s.increment != 1:
        doc["increment"] = s.increment
    d = defaults(s.type, s.increment)
    for k in ("minvalue", "maxvalue"):
        if getattr(s, k) != d[k]:
            doc[k] = getattr(s, k)
    if s.start != (s.minvalue if s.increment > 0 else s.maxvalue):
        doc["start"] = s.start
    if s.cache != 1:
        doc["cache"] = s.cache
    if s.cycle:
        doc["cycle"] = True
    if s.owned_by:
        o = s.owned_by
        doc["owned_by"] = f"{o[1]}.{o[2]}"
    return doc


def merge(into: Any, loaded: Any, problems: list[Problem]) -> None:
    """Spec loading: add `loaded.sequences` to `into`'s, a duplicate named as a problem."""
    seen = {s.key: s for s in getattr(into, "sequences", ())}
    for s in getattr(loaded, "sequences", ()):
        if s.key in seen:
            src = s.source
            problems.append(Problem(src.file if src else "<spec>", f"duplicate sequence {s.qualified}",
                                    src.key or "sequence" if src else "sequence", src.lineno if src else None))
            continue
        seen[s.key] = s
    into.sequences = tuple(seen.values())

