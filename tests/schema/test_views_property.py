# ruff: noqa: S608 - the SQL here is built from the tests' own constant names
"""Property over views: random pairs A → B of a table whose columns change type or go away, a chain of declared
views over it (one materialized, with an index) and views no spec declares reading it: apply(plan(A)), rows and
the undeclared views are added, then apply(plan(B)) converges (a second plan is empty), every declared view is
B's, every undeclared view is still there with its definition, and an INSERT works. The one pair that must not
converge — an undeclared view reading a column B drops — is refused, naming the view, and changes nothing.

`SCHEMA_VIEW_EXAMPLES` sets the count."""

from __future__ import annotations

import itertools
import json
import os
from typing import Any

import psycopg
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from migrate_assets.schema.apply import ApplyOptions, apply_plan
from migrate_assets.schema.planner import PlanOptions, build_plan
from migrate_assets.schema.spec import parse_spec_text

EXAMPLES = int(os.environ.get("SCHEMA_VIEW_EXAMPLES", "12"))
AMOUNT = ["int", "bigint", "numeric(12,2)"]
NOTE = [None, "text", "varchar(30)"]
V_AMOUNT = ["SELECT id, amount FROM t", "SELECT id, amount, qty FROM t", "SELECT id, amount FROM t WHERE qty > 0"]
M_SUM = ["SELECT qty, sum(amount) AS s FROM t GROUP BY qty", "SELECT qty, max(amount) AS s FROM t GROUP BY qty"]


@st.composite
def state(draw: st.DrawFn) -> dict[str, Any]:
    note = draw(st.sampled_from(NOTE))
    views: dict[str, dict[str, Any]] = {}
    if draw(st.booleans()):
        views["v_amount"] = {"definition": draw(st.sampled_from(V_AMOUNT))}
        if draw(st.booleans()):
            views["v_big"] = {"definition": "SELECT id, amount FROM v_amount WHERE amount > 5"}
    if note and draw(st.booleans()):
        views["v_note"] = {"definition": "SELECT id, note FROM t", "comment": draw(st.sampled_from([None, "notes"]))}
    if draw(st.booleans()):
        views["m_sum"] = {"definition": draw(st.sampled_from(M_SUM)), "materialized": True,
                          "indexes": [{"name": "m_sum_qty", "columns": ["qty"], "unique": draw(st.booleans())}]}
    return {"amount": draw(st.sampled_from(AMOUNT)), "note": note, "views": views}


def spec(schema: str, s: dict[str, Any]) -> str:
    cols = [{"name": "id", "type": "int", "primary_key": True}, {"name": "amount", "type": s["amount"]},
            {"name": "qty", "type": "int"}]
    if s["note"]:
        cols.append({"name": "note", "type": s["note"], "nullable": True})
    docs: list[dict[str, Any]] = [{"schema": schema, "table": "t", "columns": cols}]
    for name, v in s["views"].items():
        docs.append({"schema": schema, "view": name, **{k: x for k, x in v.items() if x is not None}})
    return json.dumps(docs)


_counter = itertools.count()


def _plan(conn: psycopg.Connection, text: str, schema: str):  # type: ignore[no-untyped-def]
    return build_plan(conn, parse_spec_text(text, "spec.yaml"), PlanOptions(default_schema=schema))


def _views(conn: psycopg.Connection, schema: str) -> dict[str, str]:
    rows = conn.execute("SELECT c.relname, c.relkind::text || pg_get_viewdef(c.oid) FROM pg_class c "
                        "WHERE c.relnamespace = %s::regnamespace AND c.relkind IN ('v', 'm')", [schema]).fetchall()
    return {str(a): str(b) for a, b in rows}


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(a=state(), b=state())
@example(  # found by this test: Postgres read the new views over the old column type (casts to numeric stayed)
    a={"amount": "numeric(12,2)", "note": None, "views": {}},
    b={"amount": "int", "note": None, "views": {"v_amount": {"definition": "SELECT id, amount FROM t"},
       "v_big": {"definition": "SELECT id, amount FROM v_amount WHERE amount > 5"}}})
def test_random_view_pairs_converge(module_dsn: str, a: dict[str, Any], b: dict[str, Any]) -> None:
    schema = f"pv{next(_counter)}"
    opts = ApplyOptions(on_breaking_change="warn", attempts=1)
    with psycopg.connect(module_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        try:
            apply_plan(conn, _plan(conn, spec(schema, a), schema), opts)
            assert _plan(conn, spec(schema, a), schema).empty
            conn.execute(f'INSERT INTO "{schema}".t (id, amount, qty) SELECT g, g, g % 3 FROM generate_series(1, 30) g'.encode())
            # views no spec declares: over the table, over a declared view, over the column that may go away
            undeclared = {"u_twice": f'CREATE VIEW "{schema}".u_twice AS SELECT id, amount * 2 AS twice FROM "{schema}".t'}
            if "v_amount" in a["views"]:
                undeclared["u_top"] = f'CREATE VIEW "{schema}".u_top AS SELECT id FROM "{schema}".v_amount'
            if a["note"]:
                undeclared["u_note"] = f'CREATE VIEW "{schema}".u_note AS SELECT note FROM "{schema}".t'
            for stmt in undeclared.values():
                conn.execute(stmt.encode())
            before = _views(conn, schema)
            p = _plan(conn, spec(schema, b), schema)
            if a["note"] and not b["note"]:  # u_note reads a column B drops: refused, named, nothing changes
                assert any(f"{schema}.u_note" in r and "would be lost" in r for r in p.refusals), p.refusals
                return
            assert not p.refusals, p.refusals
            apply_plan(conn, p, opts)
            again = _plan(conn, spec(schema, b), schema)
            assert again.empty, [c.description for c in again.changes] + list(again.refusals)
            after = _views(conn, schema)
            for name in undeclared:  # still there, reading the same (a new column type shows in casts only)
                assert name in after and after[name].split("FROM")[-1] == before[name].split("FROM")[-1]
            for name, v in b["views"].items():
                assert after[name][0] == ("m" if v.get("materialized") else "v")
            conn.execute(f'INSERT INTO "{schema}".t (id, amount, qty) VALUES (1000, 7, 1)'.encode())
            assert conn.execute(f'SELECT count(*) FROM "{schema}".u_twice'.encode()).fetchone() == (31,)
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
