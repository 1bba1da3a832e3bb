"""Property: for random pairs of schemas A and B, apply(plan(A)) then apply(plan(B)) converge — planning again
yields nothing — and the introspected tables equal B under canonical types.

Each example lives in its own Postgres schema of one module database. `SCHEMA_EXAMPLES` sets the count.
"""

from __future__ import annotations

import itertools
import os
from dataclasses import dataclass

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate_assets.schema.apply import ApplyOptions, apply_plan
from migrate_assets.schema.introspect import introspect
from migrate_assets.schema.model import Table
from migrate_assets.schema.planner import PlanOptions, build_plan
from migrate_assets.schema.spec import parse_spec_text
from migrate_assets.schema.types import parse_type

EXAMPLES = int(os.environ.get("SCHEMA_EXAMPLES", "200"))

#: types that cast into each other (so B may change a column between any two of them)
CASTABLE = ["smallint", "int", "bigint", "numeric(10,2)", "numeric(12,2)", "numeric", "real", "float8", "text",
            "varchar(10)", "varchar(30)", "varchar"]  # fmt: skip
FIXED = ["boolean", "timestamptz", "date", "uuid", "jsonb", "int[]", "text[]", "bytea", "timestamp(3)", "char(2)"]
DEFAULTS = {
    "smallint": ["0", "-1"], "int": ["0", "42", "(1 + 2)"], "bigint": ["7"], "numeric(10,2)": ["1.5", "0"],
    "numeric(12,2)": ["2.25"], "numeric": ["3"], "real": ["0.5"], "float8": ["1e3"], "text": ["'x'", "''", "lower('A')"],
    "varchar(10)": ["'ab'"], "varchar(30)": ["'abc'"], "varchar": ["'v'"], "boolean": ["true", "false"],
    "timestamptz": ["now()", "CURRENT_TIMESTAMP"], "date": ["current_date"], "uuid": ["gen_random_uuid()"],
    "jsonb": ["'{}'::jsonb", "'[]'"], "int[]": ["'{}'"], "text[]": ["'{a}'"], "bytea": ["E'\\\\x00'"],
    "timestamp(3)": ["localtimestamp"], "char(2)": ["'ab'"],
}  # fmt: skip
NAMES = ["id", "a", "B", "sp ace", "select", 'q"t', "zz", "Émoji✓", "col_long_" + "x" * 40]


@dataclass(frozen=True)
class Col:
    name: str
    type: str
    nullable: bool
    default: str | None
    unique: bool


@dataclass(frozen=True)
class Tbl:
    name: str
    cols: tuple[Col, ...]
    pk: tuple[str, ...]
    indexes: tuple[tuple[str, tuple[str, ...], bool], ...]


@st.composite
def column(draw: st.DrawFn, name: str, like: Col | None = None) -> Col:
    if like is not None:  # a column kept from A: same type, or one it casts to
        t = like.type if like.type in FIXED else draw(st.sampled_from(CASTABLE))
    else:
        t = draw(st.sampled_from(CASTABLE + FIXED))
    default = draw(st.none() | st.sampled_from(DEFAULTS[t]))
    return Col(name, t, draw(st.booleans()), default, draw(st.booleans()) if t not in ("jsonb", "int[]", "text[]") else False)


@st.composite
def table(draw: st.DrawFn, name: str, like: Tbl | None = None) -> Tbl:
    names = draw(st.lists(st.sampled_from(NAMES), min_size=1, max_size=5, unique=True))
    old = {c.name: c for c in like.cols} if like else {}
    cols = tuple(draw(column(n, old.get(n))) for n in names)
    btree_ok = [c.name for c in cols if c.type not in ("jsonb", "int[]", "text[]")]
    pk: tuple[str, ...] = ()
    if btree_ok and draw(st.booleans()):
        pk = tuple(draw(st.lists(st.sampled_from(btree_ok), min_size=1, max_size=2, unique=True)))
    cols = tuple(Col(c.name, c.type, c.nullable and c.name not in pk, c.default, c.unique) for c in cols)
    indexes = []
    if btree_ok:
        for i in range(draw(st.integers(0, 2))):
            icols = tuple(draw(st.lists(st.sampled_from(btree_ok), min_size=1, max_size=2, unique=True)))
            indexes.append((f"{name}_ix{i}", icols, draw(st.booleans())))
    return Tbl(name, cols, pk, tuple(indexes))


@st.composite
def schema_pair(draw: st.DrawFn) -> tuple[list[Tbl], list[Tbl]]:
    a = [draw(table(n)) for n in draw(st.lists(st.sampled_from(["t1", "T 2", "order"]), min_size=1, max_size=3, unique=True))]
    by_name = {t.name: t for t in a}
    b_names = draw(st.lists(st.sampled_from(["t1", "T 2", "order", "t4"]), min_size=1, max_size=3, unique=True))
    b = [draw(table(n, by_name.get(n))) for n in b_names]
    return a, b


def yaml_of(schema: str, tables: list[Tbl]) -> str:
    import json

    out = []
    for t in tables:
        cols = []
        for c in t.cols:
            item = {"name": c.name, "type": c.type, "nullable": c.nullable, "unique": c.unique}
            if c.default is not None:
                item["default"] = c.default
            cols.append(item)
        entry: dict[str, object] = {"schema": schema, "table": t.name, "columns": cols}
        if t.pk:
            entry["primary_key"] = list(t.pk)
        if t.indexes:
            entry["indexes"] = [{"name": n, "columns": list(c), "unique": u} for n, c, u in t.indexes]
        out.append(entry)
    return json.dumps(out)  # JSON is YAML


_counter = itertools.count()


def _apply(conn: psycopg.Connection, desired: list[Table], schema: str) -> None:
    opts = PlanOptions(default_schema=schema)
    p = build_plan(conn, desired, opts)
    assert not p.refusals, p.refusals
    apply_plan(conn, p, ApplyOptions(on_breaking_change="warn", attempts=1))
    again = build_plan(conn, desired, opts)
    assert again.empty, [c.description + " :: " + "; ".join(c.sql) for c in again.changes]
    live = introspect(conn, [schema])
    for t in desired:
        lt = live[t.key]
        want = {c.name: (c.type, c.nullable or False) for c in t.columns}
        got = {c.name: (c.type, c.nullable) for c in lt.columns}
        assert got == want
        assert (lt.primary_key.columns if lt.primary_key else ()) == (t.primary_key.columns if t.primary_key else ())
        pk = t.primary_key.columns if t.primary_key else None  # `unique: true` on the key keeps a live twin
        assert sorted(u.columns for u in lt.uniques if not (t.pk_unique and u.columns == pk)) == sorted(u.columns for u in t.uniques)
        assert sorted((i.name, i.columns, i.unique) for i in lt.indexes) == sorted((i.name, i.columns, i.unique) for i in t.indexes)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(pair=schema_pair())
def test_random_pairs_converge(module_dsn: str, pair: tuple[list[Tbl], list[Tbl]]) -> None:
    a, b = pair
    schema = f"p{next(_counter)}"
    with psycopg.connect(module_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        try:
            _apply(conn, parse_spec_text(yaml_of(schema, a), "a.yaml"), schema)
            _apply(conn, parse_spec_text(yaml_of(schema, b), "b.yaml"), schema)
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())


def test_canonical_type_of_every_generated_spelling_parses() -> None:
    for t in CASTABLE + FIXED:
        assert parse_type(t).render()
