"""Contract keeps every index and constraint of a retyped column (real PostgreSQL).

`amount integer` carries a btree index, a unique index, a partial index, a UNIQUE constraint, a CHECK and a
FOREIGN KEY; an expand–contract change makes it bigint. Expand builds each on the new column (concurrently, under
a helper name) and its dry run says so instead of warning; after contract the same names and definitions stand
on the bigint column, and the unique index, the CHECK and the FK still refuse what they refused before.
"""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from migrate_assets.errors import TransientError
from migrate_assets.expand import runner, state
from migrate_assets.expand.indexes import index_build, swap_columns
from migrate_assets.schema.sqltext import tokens
from tests.expand.conftest import change, columns, expand, helper_objects

DDL = """
CREATE TABLE limits (amount integer PRIMARY KEY);
INSERT INTO limits SELECT g FROM generate_series(0, 2000) g;
CREATE TABLE ledger (
    id     bigint PRIMARY KEY,
    amount integer NOT NULL CONSTRAINT ledger_amount_positive CHECK (amount >= 0)
           CONSTRAINT ledger_amount_fk REFERENCES limits (amount),
    ref    integer CONSTRAINT ledger_ref_key UNIQUE,
    note   text
);
CREATE INDEX ledger_amount_idx ON ledger (amount);
CREATE UNIQUE INDEX ledger_amount_note_uniq ON ledger (amount, note);
CREATE INDEX ledger_amount_big ON ledger (amount DESC) WHERE amount > 1000;
INSERT INTO ledger SELECT g, g % 2000, g, 'n' || g FROM generate_series(1, 3000) g;
"""

CHANGE = """
table: public.ledger
operations:
  - change_type: {column: amount, to_type: bigint}
  - change_type: {column: ref, to_type: bigint}
"""


def _objects(dsn: str) -> dict[str, Any]:
    """Index name → definition, constraint name → definition (helper objects left out)."""
    with psycopg.connect(dsn) as conn:
        idx = dict(conn.execute(  # type: ignore[arg-type]
            "SELECT c.relname, pg_get_indexdef(i.indexrelid) FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE i.indrelid = 'ledger'::regclass").fetchall())
        cons = dict(conn.execute(  # type: ignore[arg-type]
            "SELECT conname, pg_get_constraintdef(oid) || CASE WHEN convalidated THEN '' ELSE ' (not valid)' END "
            "FROM pg_constraint WHERE conrelid = 'ledger'::regclass AND contype <> 'n'").fetchall())
    return {"indexes": idx, "constraints": cons}


def _refused(dsn: str, statement: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        try:
            conn.execute(statement)  # type: ignore[arg-type]
        except psycopg.errors.IntegrityError as exc:
            return type(exc).__name__
    return "accepted"


def test_swap_touches_only_column_references() -> None:
    toks = tokens('lower(amount) COLLATE "amount" > x.amount AND "Amount"::amount = amount')
    got = swap_columns(toks, 0, len(toks), {"amount": "_ma_new_amount"})
    assert " ".join(got) == ('lower ( "_ma_new_amount" ) COLLATE "amount" > x . amount AND "Amount" :: amount = '
                             '"_ma_new_amount"')
    built = index_build("CREATE UNIQUE INDEX amount ON public.amount USING btree (amount) INCLUDE (amount) "
                        "WHERE (amount > 0)", "_ma_x_r0", {"amount": "n"})
    assert built == ('CREATE UNIQUE INDEX CONCURRENTLY "_ma_x_r0" ON public . amount USING btree ( "n" ) '
                     'INCLUDE ( "n" ) WHERE ( "n" > 0 )')


def test_contract_keeps_indexes_and_constraints_of_a_retyped_column(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute(DDL)  # type: ignore[arg-type]
    before = _objects(fresh_dsn)
    assert len(before["indexes"]) == 5 and len(before["constraints"]) == 4, before
    ch = change(CHANGE)

    with psycopg.connect(fresh_dsn) as conn:
        dry = runner.expand(conn, ch, dry_run=True)
    assert not [w for w in dry["warnings"] if "contract drops" in w], dry["warnings"]
    said = "\n".join(dry["rebuilds"])
    for name in [*before["indexes"], *before["constraints"]]:
        if name not in ("ledger_pkey",):
            assert name in said, (name, said)
    assert sum("CONCURRENTLY" in s for s in dry["sql"]) == 4  # three indexes and the UNIQUE constraint's

    res = expand(fresh_dsn, ch, batch_size=700)
    assert res["status"] == "expanded" and len(res["rebuilds"]) == 6
    with psycopg.connect(fresh_dsn) as conn:  # built and valid on the new column before contract
        rows = conn.execute(
            "SELECT c.relname, i.indisvalid, pg_get_indexdef(i.indexrelid) FROM pg_index i "
            "JOIN pg_class c ON c.oid = i.indexrelid WHERE i.indrelid = 'ledger'::regclass "
            "AND c.relname LIKE '\\_ma\\_%'").fetchall()
        assert len(rows) == 4 and all(valid for _, valid, _ in rows), rows
        assert all("_ma_new_" in d for _, _, d in rows), rows
        unvalidated = conn.execute("SELECT conname FROM pg_constraint WHERE conrelid = 'ledger'::regclass "
                                   "AND conname LIKE '\\_ma\\_%' AND NOT convalidated").fetchall()
        assert unvalidated == []

    with psycopg.connect(fresh_dsn) as conn:
        out = runner.contract(conn, ch)
    assert out["status"] == "contracted"
    assert ("amount", "bigint", True) in columns(fresh_dsn, "ledger")
    assert ("ref", "bigint", False) in columns(fresh_dsn, "ledger")
    after = _objects(fresh_dsn)
    assert after == before  # same names, same definitions (now on the bigint columns)
    assert not [h for h in helper_objects(fresh_dsn) if h.startswith("_ma_")]

    assert _refused(fresh_dsn, "INSERT INTO ledger (id, amount, ref, note) VALUES (9001, 5, 9001, 'n5')") == "UniqueViolation"
    assert _refused(fresh_dsn, "INSERT INTO ledger (id, amount, ref, note) VALUES (9002, 7, 1, 'x')") == "UniqueViolation"
    assert _refused(fresh_dsn, "INSERT INTO ledger (id, amount, ref, note) VALUES (9003, -1, 9003, 'x')") == "CheckViolation"
    assert _refused(fresh_dsn, "INSERT INTO ledger (id, amount, ref, note) VALUES (9004, 5000, 9004, 'x')") == "ForeignKeyViolation"
    assert _refused(fresh_dsn, "INSERT INTO ledger (id, amount, ref, note) VALUES (9005, 1500, 9005, 'x')") == "accepted"


def test_abort_leaves_no_rebuilt_object(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute(DDL)  # type: ignore[arg-type]
    before = _objects(fresh_dsn)
    ch = change(CHANGE)
    expand(fresh_dsn, ch)
    with psycopg.connect(fresh_dsn) as conn:
        out = runner.abort(conn, ch)
    assert out["status"] == "aborted" and out["schema_restored"] is True
    assert _objects(fresh_dsn) == before


RENAME = """
table: public.ledger
operations:
  - rename_column: {from: note, to: memo}
"""


def test_a_build_that_failed_is_resumed_and_a_renamed_column_keeps_its_expression_index(fresh_dsn: str) -> None:
    """A lock held against the CONCURRENTLY build (taken during the backfill) makes expand give up after its
    retries with the change still `expanding`; once the lock is gone, expand again resumes and builds."""
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute(DDL)  # type: ignore[arg-type]
        conn.execute("CREATE INDEX ledger_lower_note ON ledger (lower(note)) INCLUDE (id) WHERE note <> ''")
    ch = change(RENAME)
    holder = psycopg.connect(fresh_dsn)
    opts = runner.Options(lock_timeout=0.2, attempts=2, backoff=0.05, max_backoff=0.1, batch_size=500)

    def take_lock(_: object) -> None:  # conflicts with CREATE INDEX CONCURRENTLY, not with the backfill
        if holder.info.transaction_status == psycopg.pq.TransactionStatus.IDLE:
            holder.execute("LOCK TABLE ledger IN SHARE UPDATE EXCLUSIVE MODE")

    try:
        with psycopg.connect(fresh_dsn) as conn, pytest.raises(TransientError):
            runner.expand(conn, ch, opts, on_progress=take_lock)
        with psycopg.connect(fresh_dsn) as conn:
            st = runner.status(conn, ch)
            assert not st.safe_to_contract
            (invalid,) = conn.execute("SELECT count(*) FROM pg_index WHERE NOT indisvalid").fetchone() or (0,)
            assert invalid == 0  # a failed build leaves no INVALID index behind
    finally:
        holder.rollback()
        holder.close()
    with psycopg.connect(fresh_dsn) as conn:
        res = runner.expand(conn, ch, opts)
    assert res["status"] == "expanded" and res["resumed"] is True
    with psycopg.connect(fresh_dsn) as conn:
        out = runner.contract(conn, ch)
    assert out["status"] == "contracted"
    after = _objects(fresh_dsn)["indexes"]
    assert after["ledger_lower_note"] == ("CREATE INDEX ledger_lower_note ON public.ledger USING btree (lower(memo)) "
                                          "INCLUDE (id) WHERE (memo <> ''::text)")
    assert after["ledger_amount_note_uniq"] == ("CREATE UNIQUE INDEX ledger_amount_note_uniq ON public.ledger "
                                                "USING btree (amount, memo)")
    assert _refused(fresh_dsn, "INSERT INTO ledger (id, amount, ref, memo) VALUES (9001, 5, 9001, 'n5')") \
        == "UniqueViolation"


def test_a_state_table_from_before_rebuilds_is_upgraded(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute(DDL)  # type: ignore[arg-type]
        state.ensure(conn, "public")
        conn.execute("ALTER TABLE migrate_assets_operations DROP COLUMN rebuilds")  # the first release's shape
        conn.commit()
    before = _objects(fresh_dsn)
    ch = change(CHANGE)
    assert expand(fresh_dsn, ch)["status"] == "expanded"
    with psycopg.connect(fresh_dsn) as conn:
        assert runner.contract(conn, ch)["status"] == "contracted"
    assert _objects(fresh_dsn) == before
