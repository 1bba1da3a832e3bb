"""The fast backfill (issue 21 item 2): two sessions on disjoint key ranges, batches sized by time, a resumable
watermark however the ranges finish, and the table's other triggers still firing for every batch."""

from __future__ import annotations

import threading
from typing import Any

import psycopg
import pytest

from migrate_assets.expand import runner
from migrate_assets.expand.backfill import Progress
from migrate_assets.expand.ranges import Watermark, chunk_width, first_key_of, next_batch_size
from tests.expand.conftest import change, make_items, status

ROWS = 30_000
CHANGE = "table: items\noperations:\n  - change_type: {column: amount, to_type: bigint}\n"


def test_the_watermark_moves_only_over_committed_batches() -> None:
    mark = Watermark(start=0, rows_done=5)
    mark.committed(30, 60, 30)  # worker 1, past worker 0's unfinished (0, 30]
    mark.committed(10, 30, 20)
    assert mark.snapshot() == (0, 5)
    mark.committed(0, 10, 9)
    assert mark.snapshot() == (60, 64)
    mark.committed(60, 100, 40)
    assert mark.snapshot() == (100, 104)


def test_chunks_are_striped_over_the_workers() -> None:
    assert chunk_width(0, 1_000_000, 2) == 50_000  # a crash revisits at most a chunk per worker
    assert chunk_width(0, 30_000, 2) == 1_876 and chunk_width(0, 500, 2) == 1_000
    assert [first_key_of(w, 100, 1_000) for w in range(3)] == [100, 1_100, 2_100]


def test_batch_size_follows_time_within_bounds() -> None:
    assert next_batch_size(1000, 0.030, 0.015) == 500  # twice too slow: halve
    assert next_batch_size(1000, 0.001, 0.015) == 2000  # much too fast: at most double
    assert next_batch_size(1000, 0.010, 0.015) == 1500
    assert next_batch_size(120, 5.0, 0.015) == 100  # one batch stuck behind a lock: never below the floor


@pytest.fixture
def batch_log(fresh_dsn: str) -> str:
    """`items` plus a statement-level trigger that logs the backend of every UPDATE statement on it: a trigger
    of the user's that must keep firing during the backfill (unlike with session_replication_role)."""
    make_items(fresh_dsn, ROWS)
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TABLE batch_log (pid int NOT NULL)")
        conn.execute(
            "CREATE FUNCTION log_batch() RETURNS trigger LANGUAGE plpgsql AS "
            "$$ BEGIN INSERT INTO batch_log VALUES (pg_backend_pid()); RETURN NULL; END $$"
        )
        conn.execute(
            "CREATE TRIGGER log_batch AFTER UPDATE ON items FOR EACH STATEMENT EXECUTE FUNCTION log_batch()"
        )
    return fresh_dsn


def _writer(dsn: str, stop: threading.Event, out: dict[str, Any]) -> None:
    """Old-shape updates all over the key space while the backfill runs."""
    n = 0
    try:
        with psycopg.connect(dsn, autocommit=True) as conn:
            while not stop.is_set():
                conn.execute("UPDATE items SET amount = amount + 1 WHERE id = %s", ((n * 7919) % ROWS + 1,))
                n += 1
    except Exception as exc:  # surfaced by the test
        out["error"] = f"{type(exc).__name__}: {exc}"
    out["updates"] = n


def test_two_workers_backfill_striped_ranges_under_a_writer(batch_log: str) -> None:
    dsn = batch_log
    ch = change(CHANGE)
    stop, out = threading.Event(), {}
    writer = threading.Thread(target=_writer, args=(dsn, stop, out), daemon=True)
    writer.start()
    try:
        with psycopg.connect(dsn) as conn:
            res = runner.expand(conn, ch, runner.Options(batch_size=200, workers=2))
    finally:
        stop.set()
        writer.join(30)
    assert "error" not in out and out["updates"] > 0
    b = res["backfill"]
    assert (b["rows_visited"], b["rows_updated"], b["rows_total"]) == (ROWS, ROWS, ROWS)
    with psycopg.connect(dsn) as conn:
        # every batch was an UPDATE statement the user's trigger saw, from two backfill sessions (plus the writer)
        pids = conn.execute("SELECT pid, count(*) FROM batch_log GROUP BY pid ORDER BY 2 DESC").fetchall()
        counts = sorted(n for _, n in pids)
        counts.remove(out["updates"])  # the writer's session
        assert len(counts) == 2 and sum(counts) == b["batches"]
        assert conn.execute("SELECT count(*) FROM items WHERE _ma_new_amount IS DISTINCT FROM amount").fetchone() \
            == (0,)
        assert conn.execute("SELECT rows_done, backfill_cursor FROM migrate_assets_operations").fetchone() == (
            ROWS, [str(ROWS)])
    st = status(dsn, ch)
    assert (st.rows_to_backfill, st.mismatched_rows, st.safe_to_contract) == (0, 0, True)


class _Crash(Exception):
    pass


def test_a_run_stopped_with_ranges_in_flight_resumes_from_its_watermark(fresh_dsn: str) -> None:
    make_items(fresh_dsn, ROWS)
    ch = change(CHANGE)
    seen: list[Progress] = []

    def crash_after_some(p: Progress) -> None:
        seen.append(p)
        if p.rows_done >= ROWS // 3:
            raise _Crash

    with psycopg.connect(fresh_dsn) as conn, pytest.raises(_Crash):
        runner.expand(conn, ch, runner.Options(batch_size=300, batch_seconds=0, workers=2),
                      on_progress=crash_after_some)
    with psycopg.connect(fresh_dsn) as conn:
        done, cursor = conn.execute("SELECT rows_done, backfill_cursor FROM migrate_assets_operations").fetchone() \
            or (0, None)
        # the persisted cursor lags what finished, never leads it: every row up to it is backfilled
        assert cursor is not None and 0 < done <= seen[-1].rows_done < ROWS and done == int(cursor[0])
        assert conn.execute("SELECT count(*) FROM items WHERE id <= %s AND _ma_new_amount IS NULL",
                            (done,)).fetchone() == (0,)
    with psycopg.connect(fresh_dsn) as conn:
        res = runner.expand(conn, ch, runner.Options(workers=2))
    assert res["resumed"] is True and res["backfill"]["rows_visited"] == ROWS
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT rows_done FROM migrate_assets_operations").fetchone() == (ROWS,)
        assert conn.execute("SELECT count(*) FROM items WHERE _ma_new_amount IS DISTINCT FROM amount").fetchone() \
            == (0,)
