"""Partitioned tables in spec files: the partition key (RANGE / LIST / HASH over columns) and the partitions with
their bounds, a default partition among them. A partition is part of its parent — never a table of its own in a
plan: column changes on the parent reach every partition the way Postgres makes them (one ALTER on the parent).

    table: measurements
    columns: [...]
    partition_by: {strategy: range, columns: [taken]}
    partitions:
      - {name: measurements_2024, from: ['2024-01-01'], to: ['2025-01-01']}
      - {name: measurements_rest, default: true}
      - {name: measurements_2019, from: ['2019-01-01'], to: ['2020-01-01'], drop: true}   # goes, with its rows

Bound values are written as Postgres prints them in `FOR VALUES …` (the text of each literal; `MINVALUE` and
`MAXVALUE` in capitals are the keywords, `null` is NULL in a LIST). A spec without `partitions:` leaves them
alone (listed as unmanaged); one without `partition_by` leaves a live partitioning alone.

Planned online (locks as `pg_locks` shows them on Postgres 15, tests/schema/test_partitions_locks.py):

- a new partition is a table of the parent's shape (`LIKE … INCLUDING DEFAULTS, CONSTRAINTS, INDEXES …`) with a
  CHECK matching its bound, made in the main transaction (ACCESS EXCLUSIVE on the new table only). When the parent
  has a default partition, that one gets a CHECK (NOT bound) … NOT VALID (ACCESS EXCLUSIVE for an instant, no scan).
  After commit: VALIDATE (SHARE UPDATE EXCLUSIVE: writers go on while it scans), then `ATTACH PARTITION` (SHARE
  UPDATE EXCLUSIVE on the parent; ACCESS EXCLUSIVE on the new partition and on the default partition, without a
  scan: the checks prove the bound), then the checks are dropped (ACCESS EXCLUSIVE for an instant).
  `CREATE TABLE … PARTITION OF` would take ACCESS EXCLUSIVE on the parent and scan the default partition under it.
- a partition the spec no longer lists is detached, never dropped: `DETACH PARTITION … CONCURRENTLY` (outside a
  transaction; SHARE UPDATE EXCLUSIVE on the parent, then, once the parent's transactions are done, ACCESS EXCLUSIVE
  on the partition alone for an instant) where Postgres allows it, i.e. when the parent has no default partition; else a
  plain DETACH (ACCESS EXCLUSIVE on the parent, the partition and the default partition). Its rows stay, in a table
  of its own; the undo attaches it again. Only `drop: true` drops one (`deletes_data`, breaking).
- a bound that changes is a plain detach (a concurrent one leaves a CHECK of the old bound on the table), then the
  online attach under the new bound; the partition's rows are out of the parent until the attach.
- a changed key (strategy or columns), or a plain table becoming partitioned (and back), is refused: Postgres can
  only do it by copying the table.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from psycopg import sql

from migrate_assets.errors import Problem, SpecError
from migrate_assets.schema import ddl
from migrate_assets.schema.ddl import ident, q, table_ident
from migrate_assets.schema.model import Named, Source, Table, object_name
from migrate_assets.schema.plan import Change, Hazard, Unmanaged
from migrate_assets.schema.sqltext import tokens

if TYPE_CHECKING:
    from migrate_assets.schema import ops
else:  # imported on first use: an unchanged schema plans without it (lazy_ops)
    from migrate_assets.schema.lazy_ops import ops

if TYPE_CHECKING:
    import psycopg

    from migrate_assets.schema.diff import DiffResult
    from migrate_assets.schema.introspect import Canonical

STRATEGIES = ("range", "list", "hash")
MINVALUE = "\x00MINVALUE"  #: the keyword (a NUL never occurs in a Postgres text value)
MAXVALUE = "\x00MAXVALUE"
PARTITION_BY_KEYS = {"strategy", "columns"}
PARTITION_KEYS = {"name", "schema", "from", "to", "in", "modulus", "remainder", "default", "drop"}
#: what the spec writes for each strategy (for messages)
_BOUND_WORDS = {"range": "from and to", "list": "in", "hash": "modulus and remainder"}

BoundValue = str | None  #: a literal's text, None for NULL, or MINVALUE / MAXVALUE


@dataclass(frozen=True)
class Bound:
    """`FOR VALUES …` of one partition (strategy "default" for the DEFAULT partition)."""

    strategy: str
    lower: tuple[BoundValue, ...] = ()
    upper: tuple[BoundValue, ...] = ()
    values: tuple[BoundValue, ...] = ()
    modulus: int = 0
    remainder: int = 0

    def render(self) -> sql.Composable:
        def vals(vs: Iterable[BoundValue]) -> sql.Composable:
            return sql.SQL(", ").join(_value_sql(v) for v in vs)

        if self.strategy == "default":
            return sql.SQL("DEFAULT")
        if self.strategy == "unknown":  # as Postgres printed it (`read_live`): never from a spec
            return sql.SQL(self.values[0] or "")  # noqa: S608
        if self.strategy == "range":
            return sql.SQL("FOR VALUES FROM ({}) TO ({})").format(vals(self.lower), vals(self.upper))
        if self.strategy == "list":
            return sql.SQL("FOR VALUES IN ({})").format(vals(self.values))
        return sql.SQL("FOR VALUES WITH (MODULUS {}, REMAINDER {})").format(sql.Literal(self.modulus),
                                                                              sql.Literal(self.remainder))

    def text(self) -> str:
        return ddl.render(self.render())

    def literals(self) -> tuple[BoundValue, ...]:
        return self.lower + self.upper + self.values


def _value_sql(v: BoundValue) -> sql.Composable:
    if v is None:
        return sql.SQL("NULL")
    if v in (MINVALUE, MAXVALUE):
        return sql.SQL(v[1:])
    return sql.Literal(v)


@dataclass(frozen=True)
class Partition(Named):
    name: str
    schema: str
    bound: Bound
    #: desired side: the spec says this partition goes, with its rows
    drop: bool = False
    #: live side: the partition is itself partitioned (`pg_get_partkeydef`): its own partitions are not managed
    subpartitioned: str | None = field(default=None, compare=False)
    #: live side: a `DETACH … CONCURRENTLY` was interrupted: the partition is "detach pending" until FINALIZE
    pending: bool = field(default=False, compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)



@dataclass(frozen=True)
class Partitioning:
    strategy: str
    columns: tuple[str, ...]
    partitions: tuple[Partition, ...] = ()
    #: desired side: the spec lists the partitions (else they are left alone)
    listed: bool = field(default=True, compare=False)
    #: live side: why the key cannot be said with columns (expressions, an operator class or collation)
    unmanaged: str | None = field(default=None, compare=False)
    source: Source | None = field(default=None, compare=False, hash=False, repr=False)

    def keydef(self) -> str:
        return f"{self.strategy.upper()} ({', '.join(self.columns)})"

    def default(self) -> Partition | None:
        return next((p for p in self.partitions if p.bound.strategy == "default" and not p.drop), None)


# -- spec files --------------------------------------------------------------------------------------------------
def _scalar(v: Any) -> tuple[bool, BoundValue]:
    if v is None:
        return True, None
    if isinstance(v, bool):
        return True, "true" if v else "false"
    if isinstance(v, int | float):
        return True, repr(v)
    if isinstance(v, str):
        return True, {"MINVALUE": MINVALUE, "MAXVALUE": MAXVALUE}.get(v, v)
    return False, None


def parse_spec(ctx: Any, e: Any, tname: str, schema: str, cols: dict[str, Any], pk: Sequence[str],
               uniques: Sequence[Any]) -> Partitioning | None:
    """`partition_by` and `partitions` of a table entry (`ctx`, `e`: spec.py's checker and entry): offline checks,
    every problem added to `ctx` with its key path."""
    if e.get("partition_by") is None:
        if e.get("partitions") is not None:
            ctx.add(e.at("partitions"), "partitions need partition_by (strategy and columns)")
        return None
    path = e.at("partition_by")
    pe = ctx.mapping(e.get("partition_by"), path, PARTITION_BY_KEYS, "partition_by with strategy and columns")
    if pe is None:
        return None
    strategy = str(pe.get("strategy") or "").lower()
    if strategy not in STRATEGIES:
        ctx.add(pe.at("strategy") if "strategy" in pe else path, "expected strategy: range, list or hash")
        return None
    names = ctx.names(pe, "columns")
    if not names:
        ctx.add(pe.at("columns") if "columns" in pe else path, "partition_by needs at least one column")
    for n, p in names:
        if n not in cols:
            ctx.add(p, f"partition key column {n!r} is not a column of {tname}")
    if strategy == "list" and len(names) > 1:
        ctx.add(pe.at("columns"), "a list partition key has exactly one column")
    columns = tuple(n for n, _ in names)
    for what, con_cols, where in [("primary key", tuple(pk), e.at("primary_key") if "primary_key" in e else path)] + [
            ("unique constraint " + (u.name or ""), u.columns, path) for u in uniques]:
        missing = [c for c in columns if con_cols and c not in con_cols]
        if missing:
            ctx.add(where, f"the {what} of a partitioned table must include the partition key column(s) "
                           f"{', '.join(missing)} (Postgres enforces it per partition)")
    parts: list[Partition] = []
    seen: dict[str, Any] = {}
    defaults = 0
    raw = e.get("partitions")
    if raw is not None and not isinstance(raw, list):
        ctx.add(e.at("partitions"), "expected a list of partitions")
        raw = None
    for i, rp in enumerate(raw or ()):
        ppath = (*e.at("partitions"), i)
        p = _partition(ctx, rp, ppath, strategy, len(columns), schema)
        if p is None:
            continue
        if p.name in seen or p.name == tname:
            ctx.add((*ppath, "name"), f"duplicate partition name {p.name!r}")
            continue
        seen[p.name] = ppath
        if p.bound.strategy == "default" and not p.drop:
            defaults += 1
            if defaults > 1:
                ctx.add(ppath, "only one partition can be the default partition")
        parts.append(p)
    return Partitioning(strategy, columns, tuple(parts), raw is not None, None, ctx.src(path))


def _values(ctx: Any, pe: Any, key: str, n: int | None) -> tuple[BoundValue, ...] | None:
    raw = pe.get(key)
    if not isinstance(raw, list):
        raw = [raw]
    out: list[BoundValue] = []
    for j, v in enumerate(raw):
        ok, val = _scalar(v)
        if not ok:
            ctx.add((*pe.at(key), j), "expected a value (a string, number, boolean or null)")
            return None
        out.append(val)
    if n is not None and len(out) != n:
        ctx.add(pe.at(key), f"expected {n} value(s), one per partition key column, got {len(out)}")
        return None
    return tuple(out)


def _partition(ctx: Any, raw: Any, path: Any, strategy: str, ncols: int, schema: str) -> Partition | None:
    pe = ctx.mapping(raw, path, PARTITION_KEYS, "a partition with name and its bound")
    if pe is None:
        return None
    name = ctx.name(pe, "name", path)
    pschema = ctx.name(pe, "schema", path, required=False) or schema
    given = [k for k in ("from", "to", "in", "modulus", "remainder") if k in pe]
    is_default = ctx.boolean(pe, "default", False)
    drop = ctx.boolean(pe, "drop", False)
    bound: Bound | None = None
    wanted = {"range": {"from", "to"}, "list": {"in"}, "hash": {"modulus", "remainder"}}[strategy]
    if is_default:
        if given:
            ctx.add(pe.at(given[0]), "a default partition has no bound values")
        elif strategy == "hash":
            ctx.add(pe.at("default"), "a hash-partitioned table cannot have a default partition")
        else:
            bound = Bound("default")
    elif set(given) != wanted:
        odd = [k for k in given if k not in wanted]
        ctx.add(pe.at(odd[0]) if odd else path,
                f"a {strategy}-partitioned table's partition needs {_BOUND_WORDS[strategy]} (or default: true)"
                + (f", not {', '.join(odd)}" if odd else ""))
    elif strategy == "range":
        lo, hi = _values(ctx, pe, "from", ncols), _values(ctx, pe, "to", ncols)
        if lo is not None and hi is not None:
            for key, vs in (("from", lo), ("to", hi)):
                if None in vs:
                    ctx.add(pe.at(key), "a range bound cannot be null (use MINVALUE or MAXVALUE)")
                    return None
                if any(vs[k - 1] in (MINVALUE, MAXVALUE) and vs[k] != vs[k - 1] for k in range(1, len(vs))):
                    ctx.add(pe.at(key), "every value after MINVALUE must also be MINVALUE (and MAXVALUE likewise)")
                    return None
            bound = Bound("range", lower=lo, upper=hi)
    elif strategy == "list":
        lv = _values(ctx, pe, "in", None)
        if lv is not None:
            if not lv or MINVALUE in lv or MAXVALUE in lv:
                ctx.add(pe.at("in"), "a list partition needs at least one value (MINVALUE/MAXVALUE are for ranges)")
            elif len(set(lv)) != len(lv):
                ctx.add(pe.at("in"), "a value is listed twice")
            else:
                bound = Bound("list", values=lv)
    else:
        m, r = pe.get("modulus"), pe.get("remainder")
        if m.__class__ is not int or m < 1:
            ctx.add(pe.at("modulus"), "expected a whole number of at least 1")
        elif r.__class__ is not int or not 0 <= r < m:
            ctx.add(pe.at("remainder"), f"expected a whole number from 0 to {m - 1} (less than the modulus)")
        else:
            bound = Bound("hash", modulus=m, remainder=r)
    if name is None or bound is None:
        return None
    return Partition(name, pschema, bound, drop, source=ctx.src(path))


# -- live side ---------------------------------------------------------------------------------------------------
#: partitioned tables in scope (`introspect._SCOPE`'s rels), their key and their partitions with bounds
LIVE = """
SELECT r.oid, pt.partstrat, pg_get_partkeydef(r.oid),
       ARRAY(SELECT a.attname::text FROM unnest(pt.partattrs::int2[]) WITH ORDINALITY k(n, i)
             JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = k.n ORDER BY k.i),
       (SELECT string_agg(quote_ident(a.attname), ', ' ORDER BY k.i) FROM unnest(pt.partattrs::int2[])
               WITH ORDINALITY k(n, i) JOIN pg_attribute a ON a.attrelid = r.oid AND a.attnum = k.n),
       pt.partexprs IS NOT NULL OR 0 = ANY(pt.partattrs::int2[]),
       (SELECT coalesce(json_agg(json_build_array(pn.nspname, pc.relname, pg_get_expr(pc.relpartbound, pc.oid),
                                                  CASE WHEN pc.relkind = 'p' THEN pg_get_partkeydef(pc.oid) END,
                                                  coalesce((to_jsonb(i) ->> 'inhdetachpending')::boolean, false))
                                 ORDER BY pn.nspname, pc.relname), '[]')
        FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhrelid JOIN pg_namespace pn ON pn.oid = pc.relnamespace
        WHERE i.inhparent = r.oid)
FROM rels r JOIN pg_partitioned_table pt ON pt.partrelid = r.oid
"""


def parse_bound(text: str) -> Bound | None:
    """`FOR VALUES …` / `DEFAULT` as `pg_get_expr(relpartbound)` prints it (None: not understood)."""
    try:
        toks = tokens(text)
    except ValueError:
        return None
    up = [t.upper() for t in toks]
    if up == ["DEFAULT"]:
        return Bound("default")
    if up[:2] != ["FOR", "VALUES"]:
        return None
    if up[2:3] == ["WITH"]:
        nums = [int(t) for t in toks if t.isdigit()]
        return Bound("hash", modulus=nums[0], remainder=nums[1]) if len(nums) == 2 else None
    groups: list[list[BoundValue]] = []
    cur: list[BoundValue] | None = None
    neg = False
    for t, u in zip(toks[2:], up[2:], strict=True):
        if t == "(":
            cur = []
        elif t == ")":
            if cur is not None:
                groups.append(cur)
            cur = None
        elif cur is None or t == ",":
            continue
        elif t == "-":
            neg = True
        elif t.startswith("'"):
            cur.append(t[1:-1].replace("''", "'"))
        elif u in ("MINVALUE", "MAXVALUE"):
            cur.append("\x00" + u)
        elif u == "NULL":
            cur.append(None)
        else:
            cur.append(("-" if neg else "") + (t.lower() if u in ("TRUE", "FALSE") else t))
            neg = False
    if up[2] == "IN" and len(groups) == 1:
        return Bound("list", values=tuple(groups[0]))
    if up[2] == "FROM" and len(groups) == 2:
        return Bound("range", lower=tuple(groups[0]), upper=tuple(groups[1]))
    return None


def read_live(conn: psycopg.Connection, scope_sql: str, params: dict[str, Any]) -> dict[int, Partitioning]:
    """Partitioning of the partitioned tables among `scope_sql`'s rels, by table oid (one query)."""
    out: dict[int, Partitioning] = {}
    for oid, strat, keydef, cols, quoted, exprs, parts in conn.execute(scope_sql + LIVE, params).fetchall():
        strategy = {"r": "range", "l": "list", "h": "hash"}[strat]
        odd = None
        if exprs or keydef != f"{strategy.upper()} ({quoted})":
            odd = keydef  # expressions, an operator class or a collation of its own
        got = []
        for nsp, rel, bound, sub, pending in json.loads(parts) if isinstance(parts, str) else parts:
            b = parse_bound(bound)
            got.append(Partition(rel, nsp, b if b is not None else Bound("unknown", values=(bound,)), False, sub,
                                 bool(pending)))
        out[oid] = Partitioning(strategy, tuple(cols), tuple(got), True, odd)
    return out


# -- comparing ---------------------------------------------------------------------------------------------------
def _canon_key(t: Table, p: Partition) -> tuple[str, str, str]:
    return (t.schema, t.name, "partition:" + p.name)


def same_bound(want: Table, p: Partition, live: Partition, canon: Canonical | None = None) -> bool:
    if p.bound == live.bound:
        return True
    return canon is not None and canon.predicates.get(_canon_key(want, p)) == "same"


def in_sync(want: Table, have: Table) -> bool:
    """Cheap test: the partitioning the spec states equals the live one, bounds spelled alike."""
    wp, hp = want.partitioning, have.partitioning
    if wp is None:
        return True  # a live partitioning the spec does not state is left alone (listed)
    if hp is None or (wp.strategy, wp.columns) != (hp.strategy, hp.columns):
        return False
    if not wp.listed:
        return True
    live = {p.key: p for p in hp.partitions}
    for p in wp.partitions:
        lp = live.pop(p.key, None)
        if p.drop != (lp is None) or (lp is not None and (lp.bound != p.bound or lp.pending)):
            return False
    return not live


def pending_values(desired: Iterable[Table], live: dict[tuple[str, str], Table]) -> list[tuple[Table, Partition, Partition]]:
    """(table, desired, live) partitions whose bound values are spelled unlike the live ones (Postgres compares)."""
    out = []
    for t in desired:
        lt = live.get(t.key)
        if t.partitioning is None or lt is None or lt.partitioning is None:
            continue
        have = {p.key: p for p in lt.partitioning.partitions}
        for p in t.partitioning.partitions:
            lp = have.get(p.key)
            if lp is not None and lp.bound != p.bound and lp.bound.strategy == p.bound.strategy and \
                    len(lp.bound.literals()) == len(p.bound.literals()):
                out.append((t, p, lp))
    return out


# -- checks by Postgres ----------------------------------------------------------------------------------------
def _key_types(t: Table) -> list[str]:
    assert t.partitioning is not None
    out = []
    for c in t.partitioning.columns:
        col = t.column(c)
        out.append(col.type.render() if col is not None else "text")
    return out


def value_ranks(conn: psycopg.Connection, values: dict[str, set[str]]) -> dict[tuple[str, str], int]:
    """Each (type, text) ranked by Postgres' own ordering of the type (equal values: equal rank). The texts are bind
    parameters: nothing of the spec becomes SQL; the type is a canonical type name (`PgType.render`)."""
    from migrate_assets.schema.exprcheck import read_only

    out: dict[tuple[str, str], int] = {}
    with read_only(conn):
        for typ, vs in sorted(values.items()):
            texts = sorted(vs)
            query = sql.SQL("SELECT v, dense_rank() OVER (ORDER BY CAST(v AS {})) FROM unnest(%s::text[]) AS u(v)").format(
                sql.SQL(typ))  # noqa: S608 - a canonical type name
            for v, rank in conn.execute(query, [texts]).fetchall():
                out[(typ, str(v))] = int(rank)
    return out


def check(conn: psycopg.Connection, desired: Sequence[Table], live: dict[tuple[str, str], Table],
          new_types: Iterable[str] = ()) -> dict[tuple[str, str, str], str]:
    """SpecError naming file, line and key for: a bound value its key column's type does not accept, bounds that
    overlap (or an empty range), a declared table that is a live partition, a declared partition that is a
    partition of another table. Returns the canonical-equality marks for `Canonical.predicates` (bound values
    spelled unlike the live ones that Postgres reads alike). Values of a type the plan creates (`new_types`: an
    enum) cannot be cast yet: they are compared as written, and Postgres checks them when the partition is made."""
    fresh = set(new_types)
    from migrate_assets.schema.exprcheck import Expression, check_expressions

    tables = [t for t in desired if t.partitioning is not None]
    exprs: list[Expression] = []
    for t in tables:
        types = _key_types(t)
        for p in t.partitioning.partitions if t.partitioning else ():
            src = p.source
            for key, vals in (("from", p.bound.lower), ("to", p.bound.upper), ("in", p.bound.values)):
                for j, v in enumerate(vals):
                    if v is None or v in (MINVALUE, MAXVALUE):
                        continue
                    typ = types[j if key != "in" else 0]
                    if typ in fresh:
                        continue
                    exprs.append(Expression(ddl.render(sql.Literal(v)), src.file if src else "<spec>",
                                            f"{src.key}.{key}[{j}]" if src and src.key else f"{key}[{j}]",
                                            src.lineno if src else None, type_sql=typ, label="partition bound value"))
    problems = check_expressions(conn, exprs) if exprs else []
    problems += _relations(conn, desired, tables, live)
    if problems:
        raise SpecError(problems)
    values: dict[str, set[str]] = {}
    for t in tables:
        types = _key_types(t)
        assert t.partitioning is not None
        lt = live.get(t.key)
        lp = lt.partitioning if lt is not None else None
        same_key = lp is not None and (lp.strategy, lp.columns) == (t.partitioning.strategy, t.partitioning.columns)
        parts = list(t.partitioning.partitions) + (list(lp.partitions) if lp is not None and same_key else [])
        for p in parts:
            for j, v in enumerate(p.bound.lower + p.bound.upper):
                if v is not None and v not in (MINVALUE, MAXVALUE):
                    values.setdefault(types[j % len(types)], set()).add(v)
            for v in p.bound.values:
                if v is not None:
                    values.setdefault(types[0], set()).add(v)
    values = {typ: vs for typ, vs in values.items() if typ not in fresh}
    ranks = value_ranks(conn, values) if values else {}
    for t in tables:
        problems += _overlaps(t, ranks)
    if problems:
        raise SpecError(problems)
    marks: dict[tuple[str, str, str], str] = {}
    for t, p, have in pending_values(desired, live):
        types = _key_types(t)
        if _ranked(p.bound, types, ranks) == _ranked(have.bound, types, ranks):
            marks[_canon_key(t, p)] = "same"
    return marks


_LOW, _HIGH = -1, 1 << 62


def _ranked(b: Bound, types: list[str], ranks: dict[tuple[str, str], int]) -> tuple[object, ...]:
    def r(v: BoundValue, j: int) -> object:
        if v is None:
            return None
        if v == MINVALUE:
            return _LOW
        if v == MAXVALUE:
            return _HIGH
        return ranks.get((types[j % len(types)], v), v)

    return (b.strategy, tuple(r(v, j) for j, v in enumerate(b.lower)), tuple(r(v, j) for j, v in enumerate(b.upper)),
            frozenset(r(v, 0) for v in b.values), b.modulus, b.remainder)


def _range_key(vals: tuple[object, ...]) -> tuple[int, ...]:
    """A range bound as a tuple comparable in Python: after MINVALUE/MAXVALUE nothing counts (Postgres' rule)."""
    out: list[int] = []
    for v in vals:
        out.append(int(v))  # type: ignore[call-overload]
        if v in (_LOW, _HIGH):
            break
    return tuple(out)


def _overlaps(t: Table, ranks: dict[tuple[str, str], int]) -> list[Problem]:
    assert t.partitioning is not None
    types = _key_types(t)
    parts = [p for p in t.partitioning.partitions if not p.drop and p.bound.strategy != "default"]
    problems = []

    def say(p: Partition, message: str, key: str = "") -> None:
        src = p.source
        base = src.key if src else ""
        problems.append(Problem(src.file if src else "<spec>", message, f"{base}.{key}" if base and key else base or key,
                                src.lineno if src else None))

    seen: list[tuple[Partition, Any]] = []
    for p in parts:
        rk = _ranked(p.bound, types, ranks)
        if p.bound.strategy == "range":
            lo, hi = _range_key(rk[1]), _range_key(rk[2])  # type: ignore[arg-type]
            if not lo < hi:
                say(p, f"partition {p.name}: the range is empty (from must be below to)", "to")
                continue
            for q_, (qlo, qhi) in seen:
                if lo < qhi and qlo < hi:
                    say(p, f"partition {p.name} overlaps partition {q_.name}", "from")
                    break
            seen.append((p, (lo, hi)))
        elif p.bound.strategy == "list":
            mine = rk[3]
            for q_, theirs in seen:
                common = mine & theirs  # type: ignore[operator]
                if common:
                    say(p, f"partition {p.name} overlaps partition {q_.name} (a value is in both lists)", "in")
                    break
            seen.append((p, mine))
        elif p.bound.strategy == "hash":
            m, r = p.bound.modulus, p.bound.remainder
            for q_, (qm, qr) in seen:
                small, big = (m, qm) if m <= qm else (qm, m)
                if big % small:
                    say(p, f"partition {p.name}: every modulus must divide the next larger one ({small} does not "
                           f"divide {big} of {q_.name})", "modulus")
                    break
                if (r if m > qm else qr) % small == (qr if m > qm else r):
                    say(p, f"partition {p.name} overlaps partition {q_.name} (modulus {m}, remainder {r})", "remainder")
                    break
            seen.append((p, (m, r)))
    return problems


_RELATIONS = """
SELECT n.nspname, c.relname, c.relkind::text, c.relispartition,
       (SELECT pn.nspname || '.' || pc.relname FROM pg_inherits i JOIN pg_class pc ON pc.oid = i.inhparent
        JOIN pg_namespace pn ON pn.oid = pc.relnamespace WHERE i.inhrelid = c.oid)
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE (n.nspname, c.relname) IN (SELECT k->>0, k->>1 FROM json_array_elements(%s::json) k)
"""


def _relations(conn: psycopg.Connection, desired: Sequence[Table], tables: Sequence[Table],
               live: dict[tuple[str, str], Table]) -> list[Problem]:
    """Declared tables that are live partitions, declared partitions that are something else (one query, asked only
    for tables the database does not show as tables in scope and for declared partitions)."""
    keys = {t.key for t in desired}
    wanted = {p.key: (t, p) for t in tables for p in (t.partitioning.partitions if t.partitioning else ())}
    problems = []
    for key, (t, p) in wanted.items():
        if key in keys:
            src = p.source
            problems.append(Problem(src.file if src else "<spec>", f"{p.qualified} is declared as a table and as a "
                                    f"partition of {t.qualified}", src.key if src else "", src.lineno if src else None))
    names = sorted({k for k in keys if k not in live} | set(wanted))
    rows = conn.execute(_RELATIONS, [json.dumps(names)]).fetchall() if names else []
    for nsp, rel, kind, is_part, parent in rows:
        key = (str(nsp), str(rel))
        if key in keys and is_part and key not in wanted:
            t = next(t for t in desired if t.key == key)
            src = t.source
            problems.append(Problem(src.file if src else "<spec>", f"{nsp}.{rel} is a partition of {parent}: declare "
                                    "it under its parent's partitions, not as a table", "table", src.lineno if src else None))
        if key in wanted:
            t, p = wanted[key]
            src = p.source
            message = (f"{p.qualified} is already a partition of {parent}"
                       if is_part and parent != f"{t.schema}.{t.name}" and parent != t.qualified
                       else f"{p.qualified} exists and is not a table" if kind not in ("r", "p") else None)
            if message:  # the line only on a problem: reading it re-parses the spec file (lazy line map)
                problems.append(Problem(src.file if src else "<spec>", message, src.key if src else "",
                                        src.lineno if src else None))
    return problems


def standalone_tables(conn: psycopg.Connection, keys: Iterable[tuple[str, str]]) -> dict[tuple[str, str], Table]:
    """Those of `keys` that are tables but not partitions (a detached partition, a table to adopt), read whole: the
    attach builds the parent's indexes they lack first (one query, and an introspection only when there is one)."""
    from migrate_assets.schema.introspect import introspect

    names = sorted(set(keys))
    if not names:
        return {}
    rows = conn.execute(_RELATIONS, [json.dumps(names)]).fetchall()
    found = sorted((str(n), str(r)) for n, r, kind, part, _ in rows if kind == "r" and not part)
    return introspect(conn, {s for s, _ in found}, found) if found else {}


def _index_sig(ix: Any) -> tuple[object, ...]:
    return (ix.unique, ix.method, ix.keys(), ix.include, ix.where, ix.nulls_not_distinct)


def _builds(want: Table, have: Table, table: Table, p: Partition) -> tuple[str, ...]:
    """`CREATE INDEX CONCURRENTLY` (and `ADD CONSTRAINT … USING INDEX` for keys) of the parent's indexes and keys that
    stay and that `table`, about to be attached as partition `p`, lacks: ATTACH would build them under its ACCESS
    EXCLUSIVE lock on the table."""
    out: list[str] = []
    kept = {i.name for i in want.indexes}
    theirs = {_index_sig(x) for x in table.indexes}
    for ix in have.indexes:
        if ix.name in kept and not (ix.definition or "").endswith("INVALID") and _index_sig(ix) not in theirs:
            out.append(ddl.create_index(p.schema, p.name, replace(ix, name=_partition_index_name(p, ix.name, have.name)),
                                        concurrently=True))
    keys = [(have.primary_key, "PRIMARY KEY")] if have.primary_key and want.primary_key and \
        want.primary_key.columns == have.primary_key.columns else []
    keys += [(u, "UNIQUE") for u in have.uniques if any(w.columns == u.columns for w in want.uniques)]
    present = {frozenset(u.columns) for u in table.uniques} | ({frozenset(table.primary_key.columns)} if table.primary_key else set())
    for con, kind in keys:
        if con is None or frozenset(con.columns) in present:
            continue
        pname = object_name(p.name, None, "pkey") if kind == "PRIMARY KEY" else object_name(p.name, "_".join(con.columns), "key")
        mine = replace(con, name=pname)
        out += [ddl.create_key_index(p.schema, p.name, mine), ddl.add_key_using_index(p.schema, p.name, kind, mine)]
    return tuple(out)


# -- planning ----------------------------------------------------------------------------------------------------
def create_statements(t: Table, stmts: list[str]) -> list[str]:
    """A new partitioned table: `CREATE TABLE … PARTITION BY …`, its indexes, then each partition `PARTITION OF`
    (nothing reads or writes a table that does not exist yet, so nothing to do online)."""
    pt = t.partitioning
    if pt is None:
        return stmts
    key = sql.SQL("PARTITION BY {} ({})").format(sql.SQL(pt.strategy.upper()), ddl.idents(pt.columns))
    out = [stmts[0] + " " + ddl.render(key), *stmts[1:]]
    for p in pt.partitions:
        if not p.drop:
            out.append(q("CREATE TABLE {} PARTITION OF {} {}", table_ident(p.schema, p.name), table_ident(t.schema, t.name),
                         p.bound.render()))
    return out


def bound_check(t: Table, bound: Bound, columns: tuple[str, ...]) -> sql.Composable:
    """A condition true exactly for the rows `bound` admits, written as Postgres writes a partition constraint (so
    that ATTACH PARTITION finds it proven by a CHECK and skips its scan)."""
    cols = [ident(c) for c in columns]
    if bound.strategy == "hash":
        exprs = sql.SQL(", ").join(cols)
        return sql.SQL("satisfies_hash_partition({}::regclass::oid, {}, {}, {})").format(
            sql.Literal(ddl.render(table_ident(t.schema, t.name))), sql.Literal(bound.modulus),
            sql.Literal(bound.remainder), exprs)
    if bound.strategy == "list":
        vals = [v for v in bound.values if v is not None]
        parts: list[sql.Composable] = []
        if vals:
            parts.append(sql.SQL("{} = ANY (ARRAY[{}])").format(cols[0], sql.SQL(", ").join(sql.Literal(v) for v in vals)))
        if None in bound.values:
            return sql.SQL("(({} IS NULL) OR ({}))").format(cols[0], parts[0] if parts else sql.SQL("false"))
        return sql.SQL("(({} IS NOT NULL) AND ({}))").format(cols[0], parts[0])
    items: list[sql.Composable] = [sql.SQL("({} IS NOT NULL)").format(c) for c in cols]

    def side(vals: tuple[BoundValue, ...], strict: str, last: str, edge: str) -> sql.Composable | None:
        def rec(j: int) -> sql.Composable | None:
            v = vals[j]
            if v in (MINVALUE, MAXVALUE):
                return None
            if j + 1 == len(vals):
                return sql.SQL("({} " + last + " {})").format(cols[j], sql.Literal(v))
            nxt = vals[j + 1]
            if nxt in (MINVALUE, MAXVALUE):
                return sql.SQL("({} " + edge + " {})").format(cols[j], sql.Literal(v))
            inner = rec(j + 1)
            return sql.SQL("(({} " + strict + " {}) OR (({} = {}) AND {}))").format(
                cols[j], sql.Literal(v), cols[j], sql.Literal(v), inner)

        return rec(0)

    lo = side(bound.lower, ">", ">=", ">=")
    hi = side(bound.upper, "<", "<", "<=")
    items += [x for x in (lo, hi) if x is not None]
    return sql.SQL("({})").format(sql.SQL(" AND ").join(items))


def _check_name(table: str, label: str) -> str:
    return object_name(table, None, label)


def _default_of(want: Table, have: Table | None) -> Partition | None:
    """The default partition that is live and stays attached."""
    if have is None or have.partitioning is None:
        return None
    d = have.partitioning.default()
    if d is None or want.partitioning is None:
        return d
    kept = {p.key: p for p in want.partitioning.partitions}
    w = kept.get(d.key)
    return d if (w is not None and not w.drop and w.bound.strategy == "default") or not want.partitioning.listed else None


def plan(want: Table, have: Table | None, canon: Canonical, res: DiffResult,
         standalone: Mapping[tuple[str, str], Table | None] | None = None) -> None:
    """The partition changes of one existing table (`have`) into `res`: refusals for what cannot be done online,
    detaches, online attaches, drops the spec asks for."""

    wp = want.partitioning
    hp = have.partitioning if have is not None else None
    standalone = dict(standalone or {})
    if wp is None or have is None:
        return
    if hp is None:
        res.refusals.append(f"{want.qualified}: the spec partitions a table that exists unpartitioned; Postgres cannot "
                            "partition an existing table (create a partitioned table and copy the rows)")
        return
    if hp.unmanaged is not None or (wp.strategy, wp.columns) != (hp.strategy, hp.columns):
        res.refusals.append(f"{want.qualified}: the partition key would change from {hp.unmanaged or hp.keydef()} to "
                            f"{wp.keydef()}; Postgres cannot change a partition key (create a new table and copy the rows)")
        return
    if not wp.listed:
        return
    live = {p.key: p for p in hp.partitions}
    default = _default_of(want, have)
    detach_online = hp.default() is None
    tx: list[Change] = []
    late: list[Change] = []
    for p in wp.partitions:
        lp = live.get(p.key)
        if lp is not None and lp.pending:  # an interrupted concurrent detach: finish it, then go on from a table
            # FINALIZE adds a CHECK of the old bound (named as Postgres names it): dropped when the table is attached
            # again, where the partition constraint takes its place
            old_check = "" if p.drop else object_name(lp.name, wp.columns[0], "check")
            tx.append(_change(have, ops.DetachPartition(partition=lp.name, partition_schema=lp.schema,
                                                        bound=lp.bound.text(), finalize=True, drop_check=old_check)))
            if p.drop:
                tx.append(Change(have.qualified, "drop_partition", f"drop table {lp.qualified} (its rows go)",
                                 (q("DROP TABLE {}", table_ident(lp.schema, lp.name)),), None,
                                 (Hazard.DELETES_DATA, Hazard.NOT_REVERSIBLE, Hazard.ACCESS_EXCLUSIVE_LOCK), True, None))
                continue
            lp = None
            standalone[p.key] = None  # a partition until now: it has the parent's indexes
        if p.drop:
            if lp is not None:
                op = ops.DetachPartition(partition=p.name, partition_schema=p.schema, bound=lp.bound.text(),
                                         concurrently=detach_online and lp.bound.strategy != "default", drop=True)
                (late if op.after_commit() else tx).append(_change(have, op))
            continue
        if lp is not None and same_bound(want, p, lp, canon):
            continue
        if lp is not None:  # a new bound: detach, then attach again online. Not CONCURRENTLY: that leaves a CHECK of
            # the old bound on the table (Postgres adds one), which the new bound would violate
            op = ops.DetachPartition(partition=p.name, partition_schema=p.schema, bound=lp.bound.text())
            (late if op.after_commit() else tx).append(_change(have, op))
        attach = ops.AttachPartition(
            partition=p.name, partition_schema=p.schema, bound=p.bound.text(),
            condition=ddl.render(bound_check(want, p.bound, wp.columns)) if p.bound.strategy != "default" else "",
            new=lp is None and p.key not in standalone,
            default_partition=default.name if default is not None and p.bound.strategy != "default" else "",
            default_schema=default.schema if default is not None else "",
            default_check=_check_name(default.name, "not_" + p.name) if default is not None else "",
            check_name=_check_name(p.name, "bound"),
            builds=_builds(want, have, found, p) if (found := standalone.get(p.key)) is not None else ())
        prep = attach.prepare(have)
        tx.append(Change(have.qualified, "prepare_partition", attach.describe_prepare(have), prep.forward, prep.inverse,
                         prep.hazards, True, None))
        late.append(_change(have, attach))
    for key, lp in live.items():
        if not any(p.key == key for p in wp.partitions):
            op = ops.DetachPartition(partition=lp.name, partition_schema=lp.schema, bound=lp.bound.text(),
                                     concurrently=detach_online and lp.bound.strategy != "default" and not lp.pending,
                                     finalize=lp.pending)
            (late if op.after_commit() else tx).insert(0, _change(have, op))
    res.changes.extend(tx)
    res.changes.extend(late)


def _change(t: Table, op: Any) -> Change:
    d = op.plain(t)
    return Change(t.qualified, op.change_kind, op.describe(t), d.forward, d.inverse, d.hazards, not op.after_commit(), None)


# -- indexes, keys and foreign keys of a partitioned table -----------------------------------------------------
def adapt(res: DiffResult, live: dict[tuple[str, str], Table], desired: Sequence[Table]) -> None:
    """Rewrite the changes of partitioned tables that Postgres cannot run on one (no CONCURRENTLY, no USING INDEX, no
    NOT VALID foreign key there): an index is built `ON ONLY` the parent, concurrently on each partition and attached
    (the parent index becomes valid with the last one); a dropped index is a plain DROP INDEX (ACCESS EXCLUSIVE on
    the parent and every partition, no scan); a UNIQUE / PRIMARY KEY gets its unique index built concurrently on
    each partition and made that partition's constraint (`USING INDEX`), then `ADD CONSTRAINT` on the parent
    attaches those (an instant, SHARE on the partitions: without a partition constraint Postgres would build new
    indexes under the lock); a foreign key is added valid (it checks the rows under SHARE ROW EXCLUSIVE: writers
    wait)."""
    parted = {lt.qualified: lt for lt in live.values() if lt.partitioning is not None}
    if not parted:
        return
    wanted = {t.qualified: t for t in desired}
    out: list[Change] = []
    for c in res.changes:
        lt = parted.get(c.table)
        if lt is None:
            out.append(c)
            continue
        parts = _attached(lt, wanted.get(c.table))
        if c.kind == "add_index" and parts is not None:
            out.append(_online_index(c, lt, parts))
        elif c.kind == "drop_index":
            stmts = tuple(s.replace("DROP INDEX CONCURRENTLY ", "DROP INDEX ", 1) for s in c.sql)
            undo = None if c.inverse_sql is None else tuple(s.replace(" INDEX CONCURRENTLY ", " INDEX ", 1)
                                                            for s in c.inverse_sql)
            out.append(replace(c, sql=stmts, inverse_sql=undo, transactional=True,
                               hazards=(Hazard.ACCESS_EXCLUSIVE_LOCK, *c.hazards),
                               description=c.description + " (a partitioned index: no CONCURRENTLY, ACCESS EXCLUSIVE "
                                                           "on the table and its partitions for an instant)"))
        elif c.kind in ("add_unique", "add_primary_key") and parts is not None and len(c.sql) == 2:
            out.append(_online_key(c, lt, parts))
        elif c.kind == "add_foreign_key" and any(" NOT VALID" in s for s in c.sql):
            out.append(replace(c, sql=tuple(s.replace(" NOT VALID", "") for s in c.sql),
                               hazards=(*c.hazards, Hazard.LONG_RUNNING),
                               description=c.description + " (validated at once: Postgres 15 has no NOT VALID foreign "
                                                           "key on a partitioned table)"))
        else:
            out.append(c)
    res.changes[:] = out


def _attached(lt: Table, want: Table | None) -> list[Partition] | None:
    """The partitions attached once the plan's partition changes ran (None: one is itself partitioned, which has
    no concurrent index build)."""
    assert lt.partitioning is not None
    parts = list(lt.partitioning.partitions)
    if want is not None and want.partitioning is not None and want.partitioning.listed:
        parts = [p for p in want.partitioning.partitions if not p.drop]
        subs = {p.key for p in lt.partitioning.partitions if p.subpartitioned}
        if any(p.key in subs for p in parts):
            return None
    elif any(p.subpartitioned for p in parts):
        return None
    return parts


def _online_index(c: Change, lt: Table, parts: list[Partition]) -> Change:
    (stmt,) = c.sql
    name = _index_name(stmt)
    head = stmt.replace("CREATE INDEX CONCURRENTLY ", "CREATE INDEX ", 1).replace(
        "CREATE UNIQUE INDEX CONCURRENTLY ", "CREATE UNIQUE INDEX ", 1)
    on = " ON " + ddl.render(table_ident(lt.schema, lt.name)) + " "
    fwd = [head.replace(on, " ON ONLY " + on[4:], 1)]
    for p in parts:
        pname = _partition_index_name(p, name, lt.name)
        fwd.append(stmt.replace(on, " ON " + ddl.render(table_ident(p.schema, p.name)) + " ", 1).replace(
            " " + ddl.render(ident(name)) + " ON ", " " + ddl.render(ident(pname)) + " ON ", 1))
        fwd.append(q("ALTER INDEX {} ATTACH PARTITION {}", sql.Identifier(lt.schema, name), sql.Identifier(p.schema, pname)))
    return replace(c, sql=tuple(fwd), inverse_sql=(ddl.drop_index(lt.schema, name, concurrently=False),),
                   description=c.description + f" (ON ONLY the parent, then concurrently on each of {len(parts)} "
                                               "partitions and attached)")


def _index_name(stmt: str) -> str:
    from migrate_assets.schema.introspect import split_qualified

    rest = stmt.split("CONCURRENTLY ", 1)[1]
    text = rest.split(" ON ", 1)[0]
    return split_qualified(text)[-1]


def _partition_index_name(p: Partition, index: str, parent: str) -> str:
    """The name Postgres gives a partition's index cloned from the parent's `<parent>_<cols>_idx`."""
    if index.startswith(parent + "_"):
        return object_name(p.name, index[len(parent) + 1:].removesuffix("_idx").removesuffix("_key") or None,
                           "idx" if not index.endswith("_key") else "key")
    return object_name(p.name, index, None)


def _online_key(c: Change, lt: Table, parts: list[Partition]) -> Change:
    build, _using = c.sql
    name = _index_name(build)
    on = " ON " + ddl.render(table_ident(lt.schema, lt.name)) + " "
    fwd = []
    suffix = "pkey" if c.kind == "add_primary_key" else "key"
    kind = "PRIMARY KEY" if c.kind == "add_primary_key" else "UNIQUE"
    for p in parts:  # each partition's own constraint from its index: ADD CONSTRAINT on the parent attaches those
        pname = object_name(p.name, None, suffix) if suffix == "pkey" else _partition_index_name(p, name, lt.name)
        fwd.append(build.replace(on, " ON " + ddl.render(table_ident(p.schema, p.name)) + " ", 1).replace(
            " " + ddl.render(ident(name)) + " ON ", " " + ddl.render(ident(pname)) + " ON ", 1))
        fwd.append(ddl.alter(p.schema, p.name, "ADD CONSTRAINT {} " + kind + " USING INDEX {}", ident(pname), ident(pname)))
    cols = build.rsplit("(", 1)[1].split(")", 1)[0]
    nnd = " NULLS NOT DISTINCT" if "NULLS NOT DISTINCT" in build else ""
    fwd.append(ddl.alter(lt.schema, lt.name, "ADD CONSTRAINT {} " + kind + nnd + " (" + cols + ")", ident(name)))
    return replace(c, sql=tuple(fwd), inverse_sql=(ddl.drop_constraint(lt.schema, lt.name, name),),
                   description=c.description.replace("(index built concurrently)", "") +
                   f"(unique indexes built concurrently on each of {len(parts)} partitions; ADD CONSTRAINT attaches them)")


# -- what is left alone; export ---------------------------------------------------------------------------------
def unmanaged(want: Table, have: Table) -> list[Unmanaged]:
    hp = have.partitioning
    if hp is None:
        return []
    out = []
    if want.partitioning is None:
        out.append(Unmanaged(have.qualified, "partitioning", hp.unmanaged or hp.keydef(),
                             "PARTITION BY (the spec has no partition_by)"))
    if want.partitioning is None or not want.partitioning.listed:
        out += [Unmanaged(have.qualified, "partition", p.qualified, f"partition {p.bound.text()} (the spec has no "
                          "partitions list)") for p in hp.partitions]
    out += [Unmanaged(have.qualified, "partition", p.qualified, f"partitioned itself ({p.subpartitioned}); its own "
                      "partitions are not managed") for p in hp.partitions if p.subpartitioned]
    return out


def _yaml_value(v: BoundValue) -> Any:
    if v in (MINVALUE, MAXVALUE):
        return v[1:]  # type: ignore[index]
    return v


def document(t: Table) -> tuple[dict[str, Any], list[Unmanaged]]:
    """`partition_by` and `partitions` for `t`'s spec file, and what they leave out."""
    pt = t.partitioning
    if pt is None:
        return {}, []
    if pt.unmanaged is not None:
        return {}, [Unmanaged(t.qualified, "partitioning", pt.unmanaged, "a partition key with expressions, an "
                              "operator class or a collation (exported as a plain table; the plan leaves it alone)")]
    doc: dict[str, Any] = {"partition_by": {"strategy": pt.strategy, "columns": list(pt.columns)}}
    parts = []
    skipped: list[Unmanaged] = []
    for p in pt.partitions:
        d: dict[str, Any] = {"name": p.name}
        if p.schema != t.schema:
            d["schema"] = p.schema
        b = p.bound
        if b.strategy == "default":
            d["default"] = True
        elif b.strategy == "range":
            d["from"], d["to"] = [_yaml_value(v) for v in b.lower], [_yaml_value(v) for v in b.upper]
        elif b.strategy == "list":
            d["in"] = [_yaml_value(v) for v in b.values]
        elif b.strategy == "hash":
            d["modulus"], d["remainder"] = b.modulus, b.remainder
        else:
            skipped.append(Unmanaged(t.qualified, "partition", p.qualified, f"bound not understood: {b.values}"))
            continue
        if p.subpartitioned:
            skipped.append(Unmanaged(t.qualified, "partition", p.qualified, f"partitioned itself ({p.subpartitioned}); "
                                     "its own partitions are not exported"))
        parts.append(d)
    doc["partitions"] = parts
    return doc, skipped
