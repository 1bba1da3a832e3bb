"""Property over partitions and sequences: random pairs A → B of a range-partitioned table (some yearly partitions, a
default partition or not, an index or not, a column more or not) and a sequence with random options: apply(plan(A)),
rows routed to every partition, then apply(plan(B)) converges (a second plan is empty), the live partitions and
bounds are B's, and no row is lost (a partition B leaves out is detached with its rows).

`SCHEMA_PARTITION_EXAMPLES` sets the count."""

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

EXAMPLES = int(os.environ.get("SCHEMA_PARTITION_EXAMPLES", "10"))
YEARS = list(range(2020, 2027))


@st.composite
def state(draw: st.DrawFn) -> dict[str, Any]:
    return {
        "years": sorted(draw(st.sets(st.sampled_from(YEARS), min_size=1, max_size=5))),
        "default": draw(st.booleans()),
        "index": draw(st.booleans()),
        "extra": draw(st.booleans()),
        "seq": {"as": draw(st.sampled_from(["integer", "bigint"])), "increment": draw(st.sampled_from([1, 2, 7])),
                "cache": draw(st.integers(1, 5)), "cycle": draw(st.booleans()),
                "maxvalue": draw(st.sampled_from([None, 1_000_000]))},
    }


def spec(schema: str, s: dict[str, Any]) -> str:
    cols = [{"name": "id", "type": "bigint"}, {"name": "at", "type": "date"}, {"name": "v", "type": "int", "nullable": True}]
    if s["extra"]:
        cols.append({"name": "note", "type": "text", "nullable": True, "default": "'-'"})
    parts: list[dict[str, Any]] = [{"name": f"m_{y}", "from": [f"{y}-01-01"], "to": [f"{y + 1}-01-01"]} for y in s["years"]]
    if s["default"]:
        parts.append({"name": "m_rest", "default": True})
    table = {"schema": schema, "table": "m", "columns": cols, "primary_key": ["id", "at"],
             "partition_by": {"strategy": "range", "columns": ["at"]}, "partitions": parts}
    if s["index"]:
        table["indexes"] = [{"name": "m_v_idx", "columns": ["v"]}]
    seq = {"sequence": f"{schema}.ids", **{k: v for k, v in s["seq"].items() if v is not None}}
    return json.dumps([seq, table])


_counter = itertools.count()


def _converge(conn: psycopg.Connection, schema: str, s: dict[str, Any]) -> None:
    desired = parse_spec_text(spec(schema, s), "spec.yaml")
    opts = PlanOptions(default_schema=schema)
    p = build_plan(conn, desired, opts)
    assert not p.refusals, p.refusals
    apply_plan(conn, p, ApplyOptions(on_breaking_change="warn", attempts=1))
    again = build_plan(conn, desired, opts)
    assert again.empty, [c.description + " :: " + "; ".join(c.sql) for c in again.changes] + list(again.refusals)
    rows = conn.execute("SELECT c.relname, pg_get_expr(c.relpartbound, c.oid) FROM pg_inherits i JOIN pg_class c "
                        "ON c.oid = i.inhrelid WHERE i.inhparent = %s::regclass", [f'"{schema}".m']).fetchall()
    want = {f"m_{y}": f"FOR VALUES FROM ('{y}-01-01') TO ('{y + 1}-01-01')" for y in s["years"]}
    if s["default"]:
        want["m_rest"] = "DEFAULT"
    assert dict(rows) == want
    valid = conn.execute("SELECT bool_and(x.indisvalid) FROM pg_index x JOIN pg_class c ON c.oid = x.indexrelid "
                         "WHERE c.relnamespace = %s::regnamespace", [schema]).fetchone()
    assert valid == (True,)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(a=state(), b=state())
def test_random_partition_pairs_converge_and_keep_every_row(module_dsn: str, a: dict[str, Any], b: dict[str, Any]) -> None:
    schema = f"p{next(_counter)}"
    with psycopg.connect(module_dsn, autocommit=True) as conn:
        conn.execute(f'CREATE SCHEMA "{schema}"'.encode())
        try:
            _converge(conn, schema, a)
            # rows in every partition of A (none in its default partition: B may give those dates a partition of
            # their own, which Postgres only attaches when the default partition holds none of them)
            conn.execute(f'INSERT INTO "{schema}".m (id, at, v) SELECT g, make_date(y, 1 + mod(g, 12), 1), g '  # noqa: S608
                         f'FROM unnest(%s::int[]) y, generate_series(1, 20) g'.encode(), [a["years"]])
            total = 20 * len(a["years"])
            _converge(conn, schema, b)
            kept = conn.execute(f'SELECT count(*) FROM "{schema}".m'.encode()).fetchone()  # noqa: S608
            gone = [y for y in a["years"] if y not in b["years"]]
            detached = sum(conn.execute(f'SELECT count(*) FROM "{schema}".m_{y}'.encode()).fetchone()[0]  # type: ignore[index]  # noqa: S608
                           for y in gone)
            assert kept is not None and kept[0] + detached == total
            for y in b["years"]:
                conn.execute(f"INSERT INTO \"{schema}\".m (id, at) VALUES (100000 + {y}, '{y}-06-01')".encode())  # noqa: S608
            if b["default"]:
                conn.execute(f"INSERT INTO \"{schema}\".m (id, at) VALUES (1, '1999-01-01')".encode())  # noqa: S608
            conn.execute(f"SELECT nextval('\"{schema}\".ids')".encode())  # noqa: S608
        finally:
            conn.execute(f'DROP SCHEMA "{schema}" CASCADE'.encode())
