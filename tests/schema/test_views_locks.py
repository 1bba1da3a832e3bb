# ruff: noqa: S608 - the SQL here is built from the tests' own constant names
"""View hazards against what Postgres does: each transactional view change runs in an open transaction and the
locks our backend holds on relations that existed before are read from pg_locks. `access_exclusive_lock` is
declared exactly when one is held; a change without `long_running` runs no query over the table's rows."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.schema.plan import Hazard
from tests.schema.helpers import converge, execute, plan

TABLE = """
- table: {t}
  columns:
    - {{name: id, type: int, primary_key: true}}
    - {{name: amount, type: {amount}}}
"""

CASES = [
    # (name, view documents before, view documents after, amount type after)
    ("create", "", "- view: {t}_v\n  definition: SELECT id, amount FROM {t}\n", "int"),
    ("replace", "- view: {t}_v\n  definition: SELECT id FROM {t}\n",
     "- view: {t}_v\n  definition: SELECT id, amount FROM {t}\n", "int"),
    ("rebuild", "- view: {t}_v\n  definition: SELECT id, amount FROM {t}\n",
     "- view: {t}_v\n  definition: SELECT amount FROM {t}\n", "int"),
    ("options", "- view: {t}_v\n  definition: SELECT id FROM {t}\n",
     "- view: {t}_v\n  definition: SELECT id FROM {t}\n  options: {{security_barrier: true}}\n", "int"),
    ("comment", "- view: {t}_v\n  definition: SELECT id FROM {t}\n",
     "- view: {t}_v\n  definition: SELECT id FROM {t}\n  comment: hello\n", "int"),
    ("matview", "", "- view: {t}_m\n  materialized: true\n  definition: SELECT sum(amount) AS s FROM {t}\n", "int"),
    ("dependents", "- view: {t}_v\n  definition: SELECT id, amount FROM {t}\n",
     "- view: {t}_v\n  definition: SELECT id, amount FROM {t}\n", "bigint"),
]  # fmt: skip


@pytest.mark.parametrize(("name", "before", "after", "amount"), CASES, ids=[c[0] for c in CASES])
def test_view_hazards_match_pg_locks(module_dsn: str, name: str, before: str, after: str, amount: str) -> None:
    t = f"lk_{name}"
    converge(module_dsn, TABLE.format(t=t, amount="int") + before.format(t=t))
    execute(module_dsn, f"INSERT INTO {t} SELECT g, g FROM generate_series(1, 100) g")
    p = plan(module_dsn, TABLE.format(t=t, amount=amount) + after.format(t=t))
    changes = [c for c in p.changes if c.transactional]
    assert changes, name
    with psycopg.connect(module_dsn) as conn:  # one open transaction, rolled back
        existing = {r[0] for r in conn.execute("SELECT oid FROM pg_class WHERE relname LIKE %s", [t + "%"])}
        conn.commit()
        held: set[tuple[int, str]] = set()
        for change in changes:
            for stmt in change.sql:
                conn.execute(stmt.encode())
            now = {(r[0], r[1]) for r in conn.execute(
                "SELECT l.relation, l.mode FROM pg_locks l WHERE l.pid = pg_backend_pid() AND l.relation IS NOT NULL")}
            ael = {rel for rel, mode in now - held if mode == "AccessExclusiveLock" and rel in existing}
            held = now
            assert bool(ael) == (Hazard.ACCESS_EXCLUSIVE_LOCK in change.hazards), (change.description, now)
        conn.rollback()
    if name == "dependents":
        assert [c.kind for c in changes] == ["drop_view", "alter_type", "create_view"]
    if name == "matview":  # creating it runs the query: long-running, declared
        assert Hazard.LONG_RUNNING in changes[0].hazards
