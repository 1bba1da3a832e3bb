"""FOREIGN KEY, CHECK, UNIQUE and PRIMARY KEY constraints in specs: planned online, converging, hazards as
Postgres behaves (pg_locks, relfilenode), drops breaking with a lossless inverse, bad references refused."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.plan import Hazard
from tests.schema.helpers import apply, converge, execute, plan, scalar

BASE = """
- table: customers
  columns:
    - {name: id, type: int, primary_key: true}
    - {name: region, type: text}
    - {name: code, type: text, nullable: true}
- table: orders
  columns:
    - {name: id, type: bigint}
    - {name: customer_id, type: int}
    - {name: region, type: text}
    - {name: amount, type: 'numeric(10,2)'}
    - {name: note, type: text, nullable: true}
  primary_key: {name: orders_pk, columns: [id]}
"""

FULL = BASE.replace("""    - {name: code, type: text, nullable: true}
""", """    - {name: code, type: text, nullable: true}
  unique:
    - {name: customers_region_id_key, columns: [region, id]}
    - {name: customers_code_key, columns: [code], nulls_not_distinct: true, deferrable: true, initially_deferred: true}
""") + """  foreign_keys:
    - name: orders_customer_fk
      columns: [customer_id, region]
      references: {table: customers, columns: [id, region]}
      on_delete: cascade
      on_update: set null
      match: full
      deferrable: true
      initially_deferred: true
  checks:
    - {name: orders_amount_positive, expression: amount > 0}
    - {name: orders_note_short, expression: 'length(note) < 100', no_inherit: true}
"""


def _seed(dsn: str) -> None:
    converge(dsn, BASE)
    execute(dsn, "INSERT INTO customers SELECT g, 'r' || (g % 3), 'c' || g FROM generate_series(1, 50) g",
            "INSERT INTO orders SELECT g, 1 + g % 50, 'r' || ((1 + g % 50) % 3), g, NULL FROM generate_series(1, 200) g")


def test_constraints_converge_online_and_take_rows(fresh_dsn: str) -> None:
    _seed(fresh_dsn)
    p = converge(fresh_dsn, FULL)
    kinds = [(c.kind, c.transactional) for c in p.changes]
    assert ("add_unique", False) in kinds and ("add_foreign_key", False) in kinds  # needs the key built first
    assert ("add_check", True) in kinds and ("validate_constraint", False) in kinds
    assert all("NOT VALID" in c.sql[0] for c in p.changes if c.kind in ("add_check", "add_foreign_key"))
    assert kinds.index(("add_unique", False)) < kinds.index(("add_foreign_key", False))
    defs = dict(execute_rows(fresh_dsn, "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint "
                                        "WHERE conrelid IN ('orders'::regclass, 'customers'::regclass)"))
    assert defs["orders_customer_fk"] == ("FOREIGN KEY (customer_id, region) REFERENCES customers(id, region) MATCH FULL "
                                          "ON UPDATE SET NULL ON DELETE CASCADE DEFERRABLE INITIALLY DEFERRED")
    assert defs["customers_code_key"] == "UNIQUE NULLS NOT DISTINCT (code) DEFERRABLE INITIALLY DEFERRED"
    assert defs["orders_note_short"] == "CHECK ((length(note) < 100)) NO INHERIT"
    assert defs["orders_pk"] == "PRIMARY KEY (id)"
    assert scalar(fresh_dsn, "SELECT bool_and(convalidated) FROM pg_constraint WHERE conrelid = 'orders'::regclass")
    execute(fresh_dsn, "INSERT INTO customers VALUES (1000, 'x', 'c')", "INSERT INTO orders VALUES (1000, 1000, 'x', 1, 'n')")
    with pytest.raises(psycopg.errors.CheckViolation):
        execute(fresh_dsn, "INSERT INTO orders VALUES (1001, 1000, 'x', -1, NULL)")


def test_new_tables_get_their_constraints_in_one_transaction(fresh_dsn: str) -> None:
    p = converge(fresh_dsn, FULL)
    assert all(c.transactional for c in p.changes)  # new tables: nothing to build online
    assert [c.kind for c in p.changes if c.kind == "add_foreign_key"] == ["add_foreign_key"]
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'orders'::regclass") == 4
    execute(fresh_dsn, "INSERT INTO customers VALUES (1, 'a', NULL)", "INSERT INTO orders VALUES (1, 1, 'a', 5, NULL)")


def execute_rows(dsn: str, query: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return conn.execute(query.encode()).fetchall()


def _locks(conn: psycopg.Connection, *tables: str) -> dict[str, set[str]]:
    rows = conn.execute("SELECT relation::regclass::text, mode FROM pg_locks WHERE pid = pg_backend_pid() AND granted "
                        "AND relation = ANY(%s::regclass[])", [list(tables)]).fetchall()
    out: dict[str, set[str]] = {t: set() for t in tables}
    for rel, mode in rows:
        out[rel].add(mode)
    return out


def test_online_hazards_match_pg_locks(fresh_dsn: str) -> None:
    """Each statement of the online path, run in an open transaction on tables with rows: the lock modes Postgres
    takes match the hazards (ACCESS EXCLUSIVE only where claimed), and nothing is rewritten."""
    _seed(fresh_dsn)
    p = plan(fresh_dsn, FULL)
    filenodes = {t: scalar(fresh_dsn, "SELECT pg_relation_filenode(%s::regclass)", t) for t in ("orders", "customers")}
    seen = set()
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        for change in p.changes:
            for stmt in change.sql:
                if "CONCURRENTLY" in stmt:  # cannot run in a transaction: run it, then look at the next statement
                    conn.execute(stmt.encode())
                    continue
                with conn.transaction():
                    conn.execute(stmt.encode())
                    locks = _locks(conn, "orders", "customers")
                aex = any("AccessExclusiveLock" in m for m in locks.values())
                assert (Hazard.ACCESS_EXCLUSIVE_LOCK in change.hazards) == aex, (stmt, locks, change.hazards)
                if change.kind == "validate_constraint":
                    assert "ShareUpdateExclusiveLock" in locks["orders"] and Hazard.LONG_RUNNING in change.hazards
                if change.kind == "add_foreign_key":
                    assert "ShareRowExclusiveLock" in locks["orders"] and "ShareRowExclusiveLock" in locks["customers"]
                seen.add(change.kind)
    assert {"add_unique", "add_foreign_key", "add_check", "validate_constraint"} <= seen
    for t, node in filenodes.items():
        assert scalar(fresh_dsn, "SELECT pg_relation_filenode(%s::regclass)", t) == node
    assert plan(fresh_dsn, FULL).empty


def test_dropping_a_listed_constraint_is_breaking_and_reversible(fresh_dsn: str) -> None:
    converge(fresh_dsn, FULL)
    fewer = FULL.replace("    - {name: orders_amount_positive, expression: amount > 0}\n", "")
    fewer = fewer.replace("  foreign_keys:\n", "  foreign_keys: []\n  old_fks:\n").split("  old_fks:")[0] + \
        FULL.split("  checks:")[1].join(["  checks:", ""]).replace("    - {name: orders_amount_positive, expression: amount > 0}\n", "")
    p = plan(fresh_dsn, fewer)
    by = {c.kind: c for c in p.changes}
    assert set(by) == {"drop_check", "drop_foreign_key"}, [c.description for c in p.changes]
    assert all(Hazard.REMOVES_CONSTRAINT in c.hazards and c.breaking and c.inverse_sql for c in p.changes)
    apply(fresh_dsn, p, on_breaking_change="warn")
    assert plan(fresh_dsn, fewer).empty
    for c in p.changes:  # the inverse gives back exactly what was there
        execute(fresh_dsn, *(c.inverse_sql or ()))
    assert plan(fresh_dsn, FULL).empty


def test_constraints_without_a_list_stay_unmanaged(fresh_dsn: str) -> None:
    converge(fresh_dsn, FULL)
    p = plan(fresh_dsn, BASE)  # no unique/foreign_keys/checks lists: the live ones are listed, never dropped
    assert p.empty, [c.description for c in p.changes]
    kinds = {(u.kind, u.name) for u in p.unmanaged}
    assert {("foreign_key", "orders_customer_fk"), ("check", "orders_amount_positive"),
            ("unique", "customers_code_key"), ("unique", "customers_region_id_key")} <= kinds


def test_changed_check_expression_is_replaced_but_equal_spellings_are_not(fresh_dsn: str) -> None:
    converge(fresh_dsn, FULL)
    respelled = FULL.replace("expression: amount > 0", "expression: '(AMOUNT > 0::numeric)'")
    assert plan(fresh_dsn, respelled).empty
    changed = FULL.replace("expression: amount > 0", "expression: amount >= 1")
    p = converge(fresh_dsn, changed)
    assert [c.kind for c in p.changes] == ["drop_check", "add_check", "validate_constraint"]


BAD = [
    ("references: {table: customers, columns: [id, region]}", "references: {table: nowhere, columns: [id, region]}",
     "neither in the spec files nor in the database", "foreign_keys[0].references"),
    ("references: {table: customers, columns: [id, region]}", "references: {table: customers, columns: [id, nope]}",
     "unknown column(s) nope", "foreign_keys[0].references.columns"),
    ("references: {table: customers, columns: [id, region]}", "references: {table: customers, columns: [region, code]}",
     "no PRIMARY KEY or UNIQUE constraint", "foreign_keys[0].references.columns"),
    ("expression: amount > 0", "expression: amount > nosuchcolumn", "nosuchcolumn", "checks[0].expression"),
    ("columns: [customer_id, region]", "columns: [customer_id, nope]", "unknown column 'nope'", "foreign_keys[0].columns[1]"),
]


@pytest.mark.parametrize(("old", "new", "message", "key"), BAD, ids=["table", "column", "not_unique", "check", "own_column"])
def test_bad_references_are_exit_2_naming_file_line_and_key(fresh_dsn: str, old: str, new: str, message: str, key: str) -> None:
    _seed(fresh_dsn)
    bad = FULL.replace(old, new)
    with pytest.raises(SpecError) as exc:
        p = plan(fresh_dsn, bad)
        apply(fresh_dsn, p)
    assert exc.value.exit_code == 2
    hits = [pr for pr in exc.value.problems if message in pr.message]
    assert hits and hits[0].file == "spec.yaml" and hits[0].line and hits[0].key.startswith("[1]." + key.split(".")[0]), \
        exc.value.problems
    assert key in hits[0].key
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_constraint WHERE conrelid = 'orders'::regclass") == 1
