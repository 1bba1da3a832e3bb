"""The catalog read that overlaps spec validation (`planner.Prefetch`): its result is used only for exactly the
plan's scope, a wrong guess or a failed read costs a second read and never a wrong plan, and the connection is
never left to a running thread."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.planner import PlanOptions, Prefetch, build_plan, scope_of, select_tables
from migrate_assets.schema.spec import parse_spec_text

SPECS = """
- table: pf_a
  columns:
    - {name: id, type: bigint, primary_key: true}
    - {name: note, type: text}
- table: pf_b
  columns:
    - {name: id, type: bigint, primary_key: true}
- view: pf_v
  definition: SELECT pf_b.id FROM pf_b
"""


@pytest.fixture
def conn(module_dsn: str):
    with psycopg.connect(module_dsn, autocommit=True) as c:
        c.execute("DROP VIEW IF EXISTS pf_v")
        c.execute("DROP TABLE IF EXISTS pf_a, pf_b")
        c.execute("CREATE TABLE pf_a (id bigint PRIMARY KEY)")  # `note` is missing: the plan adds it
        c.execute("CREATE TABLE pf_b (id bigint PRIMARY KEY)")
        c.execute("CREATE VIEW pf_v AS SELECT pf_b.id FROM pf_b")
        yield c


def test_scope_of_keys_is_the_scope_select_tables_gives() -> None:
    desired = parse_spec_text(SPECS, "s.yaml")
    for opts in (PlanOptions(), PlanOptions(only_tables=("pf_b",)), PlanOptions(allow_drop_table=True)):
        assert scope_of([t.key for t in desired], opts) == select_tables(desired, opts)[1]


def test_a_prefetch_of_the_right_scope_is_used_and_plans_the_same(conn: psycopg.Connection) -> None:
    desired = parse_spec_text(SPECS, "s.yaml")
    plain = build_plan(conn, desired)
    with Prefetch(conn, [("public", "pf_b"), ("public", "pf_a")], PlanOptions()) as pre:
        assert pre.result(select_tables(desired, PlanOptions())[1], PlanOptions().ignore) is not None
        overlapped = build_plan(conn, desired, prefetch=pre)
        assert pre.views is not None and ("public", "pf_v") in pre.views  # read with the tables
    assert [c.kind for c in overlapped.changes] == [c.kind for c in plain.changes] != []
    assert overlapped.fingerprint == plain.fingerprint
    assert not any(c.kind.endswith("view") for c in overlapped.changes)  # the declared view is the live one


def test_a_wrong_guess_is_not_used_and_the_plan_reads_again(conn: psycopg.Connection) -> None:
    desired = parse_spec_text(SPECS, "s.yaml")
    plain = build_plan(conn, desired)
    with Prefetch(conn, [("public", "pf_b")], PlanOptions()) as pre:  # pf_a was not guessed
        assert pre.result(select_tables(desired, PlanOptions())[1], PlanOptions().ignore) is None
        overlapped = build_plan(conn, desired, prefetch=pre)
    assert overlapped.fingerprint == plain.fingerprint
    assert [c.kind for c in overlapped.changes] == [c.kind for c in plain.changes] != []


def test_a_failed_read_falls_back_to_the_plan_s_own_read(conn: psycopg.Connection, module_dsn: str) -> None:
    desired = parse_spec_text(SPECS, "s.yaml")
    plain = build_plan(conn, desired)
    gone = psycopg.connect(module_dsn, autocommit=True)
    gone.close()  # the prefetch's read fails at once
    with Prefetch(gone, [t.key for t in desired], PlanOptions()) as pre:
        assert pre.result(select_tables(desired, PlanOptions())[1], PlanOptions().ignore) is None
        overlapped = build_plan(conn, desired, prefetch=pre)
    assert overlapped.fingerprint == plain.fingerprint
    assert [c.kind for c in overlapped.changes] == [c.kind for c in plain.changes] != []


def test_refused_specs_stop_the_read_and_leave_the_connection_usable(conn: psycopg.Connection) -> None:
    with pytest.raises(SpecError), Prefetch(conn, [("public", "pf_a")], PlanOptions()) as pre:
        parse_spec_text("table: x\ncolumns: 3\n", "bad.yaml")
    assert not pre._thread.is_alive()
    assert conn.execute("SELECT 1").fetchone() == (1,)
