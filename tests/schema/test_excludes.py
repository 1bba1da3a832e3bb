"""EXCLUDE constraints in specs: added (under ACCESS EXCLUSIVE: no NOT VALID exists for them), converging, refusing
rows that overlap, replaced when changed, unmanaged without an `excludes` list, exported and planned back clean."""

from __future__ import annotations

import psycopg
import pytest
import yaml

from migrate_assets.errors import SpecError
from migrate_assets.schema.export import table_document
from migrate_assets.schema.introspect import introspect
from migrate_assets.schema.plan import Hazard
from tests.schema.helpers import converge, execute, plan, scalar

BASE = """
- table: bookings
  columns:
    - {name: id, type: int, primary_key: true}
    - {name: room, type: int}
    - {name: lo, type: int}
    - {name: hi, type: int}
    - {name: cancelled, type: boolean, default: 'false'}
"""

FULL = BASE + """  excludes:
    - name: bookings_no_overlap
      elements:
        - {expression: 'int4range(lo, hi)', operator: '&&'}
      where: NOT cancelled
      deferrable: true
    - name: bookings_room_once
      using: btree
      elements:
        - {column: room, operator: '='}
"""


def test_excludes_converge_and_refuse_overlaps(fresh_dsn: str) -> None:
    converge(fresh_dsn, BASE)
    execute(fresh_dsn, "INSERT INTO bookings SELECT g, g, g * 10, g * 10 + 5, false FROM generate_series(1, 100) g")
    p = converge(fresh_dsn, FULL)
    adds = [c for c in p.changes if c.kind == "add_exclude"]
    assert len(adds) == 2 and all(c.transactional for c in adds)
    assert all(set(c.hazards) == {Hazard.ACCESS_EXCLUSIVE_LOCK, Hazard.LONG_RUNNING} for c in adds)
    assert all("NOT VALID" not in c.sql[0] and "EXCLUDE USING" in c.sql[0] for c in adds)
    assert scalar(fresh_dsn, "SELECT pg_get_constraintdef(oid) FROM pg_constraint WHERE conname = 'bookings_no_overlap'") \
        == "EXCLUDE USING gist (int4range(lo, hi) WITH &&) WHERE ((NOT cancelled)) DEFERRABLE"
    with pytest.raises(psycopg.errors.ExclusionViolation):
        execute(fresh_dsn, "INSERT INTO bookings VALUES (1000, 1000, 12, 20, false)")  # overlaps [10,15)
    with pytest.raises(psycopg.errors.ExclusionViolation):
        execute(fresh_dsn, "INSERT INTO bookings VALUES (1001, 1, 5000, 5001, false)")  # room 1 taken
    execute(fresh_dsn, "INSERT INTO bookings VALUES (1002, 1002, 12, 20, true)",  # cancelled: outside the WHERE
            "INSERT INTO bookings VALUES (1003, 1003, 5000, 5010, false)")
    assert scalar(fresh_dsn, "SELECT count(*) FROM bookings") == 102
    # inverse drops it again
    assert all(c.inverse_sql and "DROP CONSTRAINT" in c.inverse_sql[0] for c in adds)


def test_changed_exclude_is_replaced_and_without_a_list_is_unmanaged(fresh_dsn: str) -> None:
    converge(fresh_dsn, FULL)
    p = plan(fresh_dsn, BASE)
    assert p.empty, [c.description for c in p.changes]
    assert {("exclusion", "bookings_no_overlap"), ("exclusion", "bookings_room_once")} <= {
        (u.kind, u.name) for u in p.unmanaged}
    p = converge(fresh_dsn, FULL.replace("      where: NOT cancelled\n", ""))
    assert [c.kind for c in p.changes] == ["drop_exclude", "add_exclude"]
    assert p.changes[0].inverse_sql and "EXCLUDE USING gist" in p.changes[0].inverse_sql[0]
    p = converge(fresh_dsn, BASE + "  excludes: []\n")
    assert sorted(c.kind for c in p.changes) == ["drop_exclude", "drop_exclude"]
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_constraint WHERE contype = 'x'") == 0


def test_export_round_trip(fresh_dsn: str) -> None:
    converge(fresh_dsn, FULL)
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        live = introspect(conn, ["public"])[("public", "bookings")]
    doc, skipped = table_document(live)
    assert not [u for u in skipped if u.kind == "exclusion"]
    assert [x["name"] for x in doc["excludes"]] == ["bookings_no_overlap", "bookings_room_once"]
    p = plan(fresh_dsn, yaml.safe_dump([doc]))
    assert p.empty and not [u for u in p.unmanaged if u.kind == "exclusion"], [c.description for c in p.changes]


@pytest.mark.parametrize(("old", "new", "message", "key"), [
    ("operator: '&&'", "operator: '&&; DROP TABLE x'", "expected an operator", "excludes[0].elements[0].operator"),
    ("operator: '&&'", "operator: '&&--'", "expected an operator", "excludes[0].elements[0].operator"),
    ("column: room", "column: nope", "unknown column 'nope'", "excludes[1].elements[0].column"),
    ("where: NOT cancelled", "where: NOT nosuchcolumn", "nosuchcolumn", "excludes[0].where"),
], ids=["operator", "comment", "column", "where"])
def test_bad_excludes_are_exit_2_naming_the_key(fresh_dsn: str, old: str, new: str, message: str, key: str) -> None:
    converge(fresh_dsn, BASE)
    with pytest.raises(SpecError) as exc:
        plan(fresh_dsn, FULL.replace(old, new))
    assert exc.value.exit_code == 2
    hits = [pr for pr in exc.value.problems if message in pr.message]
    assert hits and hits[0].file == "spec.yaml" and hits[0].line and key in hits[0].key, exc.value.problems
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_constraint WHERE contype = 'x'") == 0


def test_docs_example_refuses_a_double_booking(fresh_dsn: str) -> None:
    from pathlib import Path

    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    block = next(b for b in doc.split("```yaml\n")[1:] if "excludes:" in b).split("```")[0]
    converge(fresh_dsn, block)
    execute(fresh_dsn, "INSERT INTO bookings VALUES (1, 7, '[2026-01-01,2026-01-03)', false)",
            "INSERT INTO bookings VALUES (2, 8, '[2026-01-01,2026-01-03)', false)")  # another room
    with pytest.raises(psycopg.errors.ExclusionViolation):
        execute(fresh_dsn, "INSERT INTO bookings VALUES (3, 7, '[2026-01-02,2026-01-04)', false)")
    execute(fresh_dsn, "INSERT INTO bookings VALUES (4, 7, '[2026-01-02,2026-01-04)', true)")  # cancelled
    assert plan(fresh_dsn, block).empty


def test_hazard_matches_pg_locks_and_no_rewrite(fresh_dsn: str) -> None:
    """ADD CONSTRAINT … EXCLUDE holds ACCESS EXCLUSIVE on the table and builds a new index (the hazard says so);
    the table itself is not rewritten."""
    converge(fresh_dsn, BASE)
    execute(fresh_dsn, "INSERT INTO bookings SELECT g, g, g * 10, g * 10 + 5, false FROM generate_series(1, 100) g")
    p = plan(fresh_dsn, FULL)
    node = scalar(fresh_dsn, "SELECT pg_relation_filenode('bookings'::regclass)")
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        for change in p.changes:
            with conn.transaction():
                for stmt in change.sql:
                    conn.execute(stmt.encode())
                modes = {r[0] for r in conn.execute(
                    "SELECT mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted "
                    "AND relation = 'bookings'::regclass").fetchall()}
            assert change.kind == "add_exclude" and "AccessExclusiveLock" in modes, (change.kind, modes)
            assert Hazard.ACCESS_EXCLUSIVE_LOCK in change.hazards and Hazard.LONG_RUNNING in change.hazards
    assert scalar(fresh_dsn, "SELECT pg_relation_filenode('bookings'::regclass)") == node
    assert plan(fresh_dsn, FULL).empty
