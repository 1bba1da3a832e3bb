"""Property over the new kinds: random pairs A → B of two tables with multi-column UNIQUE (NULLS NOT DISTINCT),
CHECK (NO INHERIT, written in several spellings), FOREIGN KEYs (actions, MATCH, DEFERRABLE), featured indexes
(expression, DESC/NULLS, INCLUDE, opclass) and an enum that gains values: apply(plan(A)) then apply(plan(B)) —
with rows in the tables — converge (a second plan is empty) and the live constraints and indexes are B's.

`SCHEMA_KIND_EXAMPLES` sets the count."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import psycopg
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from migrate_assets.schema.apply import ApplyOptions, apply_plan
from migrate_assets.schema.planner import PlanOptions, build_plan
from migrate_assets.schema.spec import parse_spec_text

EXAMPLES = int(os.environ.get("SCHEMA_KIND_EXAMPLES", "25"))
LABELS = ["x", "y", "z", "w"]
CHECKS = {"parent_a_pos": ["a > 0", "(A > 0)", "0 < a"], "parent_k_range": ["k BETWEEN 0 AND 100", "k >= 0 AND k <= 100"]}
INDEXES = {
    "child_b_lower": {"columns": [{"expression": "lower(b)"}]},
    "child_a_desc": {"columns": [{"column": "a", "order": "desc", "nulls": "last"}], "include": ["b"]},
    "child_b_pattern": {"columns": [{"column": "b", "opclass": "text_pattern_ops"}], "where": "b IS NOT NULL"},
    "child_a_b": {"columns": ["a", "b"]},
}
ACTIONS = ["no action", "restrict", "cascade", "set null"]


@st.composite
def state(draw: st.DrawFn, labels: list[str] | None = None) -> dict[str, Any]:
    uniques = []
    if draw(st.booleans()):
        uniques.append({"name": "parent_a_b_key", "columns": ["a", "b"], "nulls_not_distinct": draw(st.booleans())})
    if draw(st.booleans()):
        uniques.append({"name": "parent_k_key", "columns": ["k"]})
    checks = [{"name": n, "expression": draw(st.sampled_from(v)), "no_inherit": draw(st.booleans())}
              for n, v in CHECKS.items() if draw(st.booleans())]
    fks = []
    if draw(st.booleans()):
        deferrable = draw(st.booleans())
        fks.append({"name": "child_parent_fk", "columns": ["parent_id"], "references": {"table": "parent", "columns": ["id"]},
                    "on_delete": draw(st.sampled_from(ACTIONS)), "on_update": draw(st.sampled_from(ACTIONS)),
                    "deferrable": deferrable, "initially_deferred": deferrable and draw(st.booleans())})
    if any(u["name"] == "parent_a_b_key" for u in uniques) and draw(st.booleans()):
        fks.append({"name": "child_ab_fk", "columns": ["a", "b"], "references": {"table": "parent", "columns": ["a", "b"]},
                    "match": draw(st.sampled_from(["simple", "full"]))})
    indexes = [{"name": n, **v} for n, v in INDEXES.items() if draw(st.booleans())]
    base = labels or []
    grown = base + [v for v in LABELS if v not in base and draw(st.booleans())]
    values = [v for v in LABELS if v in grown] if labels is None else sorted(grown, key=LABELS.index)
    if labels is not None:  # B keeps A's values in A's order; new ones go where LABELS puts them
        values = [v for v in LABELS if v in grown]
    return {"uniques": uniques, "checks": checks, "fks": fks, "indexes": indexes, "values": values or ["x"]}


@st.composite
def pair(draw: st.DrawFn) -> tuple[dict[str, Any], dict[str, Any]]:
    a = draw(state())
    b = draw(state(a["values"]))
    return a, b


def spec(schema: str, s: dict[str, Any]) -> str:
    col = {"name": "id", "type": "int", "primary_key": True}
    parent = {"schema": schema, "table": "parent", "columns": [
        col, {"name": "a", "type": "int", "nullable": True}, {"name": "b", "type": "text", "nullable": True},
        {"name": "k", "type": "int", "default": "1"}], "unique": s["uniques"], "checks": s["checks"]}
    child = {"schema": schema, "table": "child", "columns": [
        col, {"name": "parent_id", "type": "int", "nullable": True}, {"name": "a", "type": "int", "nullable": True},
        {"name": "b", "type": "text", "nullable": True}, {"name": "mood", "type": f"{schema}.mood", "nullable": True}],
        "foreign_keys": s["fks"], "indexes": s["indexes"]}
    return json.dumps([{"enum": f"{schema}.mood", "values": s["values"]}, parent, child])


_counter = itertools.count()


def _converge(conn: psycopg.Connection, text: str, schema: str, s: dict[str, Any], kept: set[str]) -> None:
    """`kept`: featured indexes of the previous state that this one does not list (never dropped: unmanaged)."""
    desired = parse_spec_text(text, "spec.yaml")
    opts = PlanOptions(default_schema=schema)
    p = build_plan(conn, desired, opts)
    assert not p.refusals, p.refusals
    apply_plan(conn, p, ApplyOptions(on_breaking_change="warn", attempts=1))
    again = build_plan(conn, desired, opts)
    assert again.empty, [c.description + " :: " + "; ".join(c.sql) for c in again.changes] + list(again.refusals)
    rows = conn.execute("SELECT conname FROM pg_constraint WHERE connamespace = %s::regnamespace AND contype <> 'p'",
                        [schema]).fetchall()
    want = {u["name"] for u in s["uniques"]} | {c["name"] for c in s["checks"]} | {f["name"] for f in s["fks"]}
    assert {r[0] for r in rows} == want
    idx = conn.execute("SELECT c.relname FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE c.relnamespace = %s::regnamespace AND i.indrelid = %s::regclass",
                       [schema, f'"{schema}".child']).fetchall()
    assert {r[0] for r in idx} - {"child_pkey"} == {i["name"] for i in s["indexes"]} | kept
    labels = conn.execute(f'SELECT unnest(enum_range(NULL::"{schema}".mood))::text'.encode()).fetchall()  # noqa: S608
    assert [r[0] for r in labels] == s["values"]


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(ab=pair())
def test_random_pairs_of_new_kinds_converge(module_dsn: str, ab: tuple[dict[str, Any], dict[str, Any]]) -> None:
    a, b = ab
    schema = f"k{next(_counter)}"
    with psycopg.connect(module_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        try:
            _converge(conn, spec(schema, a), schema, a, set())
            conn.execute(f'INSERT INTO "{schema}".parent (id, a, b, k) SELECT g, g, NULL, g FROM generate_series(1, 20) g'.encode())  # noqa: S608
            conn.execute(f'INSERT INTO "{schema}".child (id, parent_id, a, b) SELECT g, g, NULL, NULL FROM generate_series(1, 20) g'.encode())  # noqa: S608
            featured = {i["name"] for i in a["indexes"] if i["name"] != "child_a_b"}
            _converge(conn, spec(schema, b), schema, b, featured - {i["name"] for i in b["indexes"]})
            conn.execute(f'INSERT INTO "{schema}".parent (id, a, b, k) VALUES (100, 100, \'n\', 99)'.encode())  # noqa: S608
            conn.execute(f'INSERT INTO "{schema}".child (id, parent_id, a, b) VALUES (100, 100, 100, \'n\')'.encode())  # noqa: S608
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
