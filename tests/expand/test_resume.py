"""kill -9 during the backfill, then expand again: it resumes from the persisted cursor and completes."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import psycopg

from tests.expand.conftest import change, cli, expand, make_items, status

ROWS = 50_000
CHANGE = "table: items\noperations:\n  - change_type: {column: amount, to_type: bigint}\n"


def test_kill_9_during_backfill_then_resume(
    fresh_dsn: str, project: Path, tmp_path: Path, cli_env: dict[str, str]
) -> None:
    make_items(fresh_dsn, ROWS)
    cf = tmp_path / "change.yaml"
    cf.write_text(CHANGE)
    proc = subprocess.Popen(
        cli("--config", str(project), "expand", str(cf), "--batch-size", "500", "--batch-delay", "200ms"),
        env=cli_env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    done_at_kill = 0  # 200 ms between batches: ~20 s of backfill left when the kill lands, not ~2 s
    try:
        deadline = time.monotonic() + 60
        with psycopg.connect(fresh_dsn, autocommit=True) as conn:
            while True:
                assert proc.poll() is None, proc.communicate()
                assert time.monotonic() < deadline, "the backfill cursor never moved"
                ok = conn.execute("SELECT to_regclass('migrate_assets_operations') IS NOT NULL").fetchone()
                if ok and ok[0]:
                    row = conn.execute("SELECT rows_done FROM migrate_assets_operations").fetchone()
                    if row and row[0] >= 2000:
                        done_at_kill = int(row[0])
                        break
                time.sleep(0.01)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    assert proc.returncode == -signal.SIGKILL
    with psycopg.connect(fresh_dsn) as conn:
        phase, cursor, done = conn.execute(
            "SELECT phase, backfill_cursor, rows_done FROM migrate_assets_operations"
        ).fetchone() or ("", None, 0)
        assert phase == "expanding" and done < ROWS and cursor is not None
        (missing,) = conn.execute("SELECT count(*) FROM items WHERE _ma_new_amount IS NULL").fetchone() or (
            0,
        )
        assert missing > 0
    ch = change(CHANGE, str(cf))
    assert not status(fresh_dsn, ch).safe_to_contract
    res = expand(fresh_dsn, ch, batch_size=5000)
    assert res["status"] == "expanded" and res["resumed"] is True
    # visited exactly once in total: the killed batch was rolled back together with its cursor update
    assert res["backfill"]["rows_visited"] == ROWS and res["backfill"]["rows_total"] == ROWS
    assert done_at_kill <= done
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT count(*), count(_ma_new_amount) FROM items").fetchone() == (ROWS, ROWS)
        assert conn.execute("SELECT rows_done, phase FROM migrate_assets_operations").fetchone() == (
            ROWS,
            "expanded",
        )
    st = status(fresh_dsn, ch)
    assert (st.rows_to_backfill, st.mismatched_rows, st.safe_to_contract) == (0, 0, True)
