"""`migrate-assets migrations ...`: exit codes, JSON shape, bad input, and the lock and crash safety for real
(separate processes on one database)."""

from __future__ import annotations

import json
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import psycopg
import pytest

from tests.cdc import poll_until
from tests.support import cli_argv, run_cli

# 002 reads `gate`, which the test keeps locked until it has seen what it wants to see: the run holding the
# advisory lock is then provably mid-migration, however far apart the two processes happened to start
SLOW = {
    "001_effects.up.sql": "CREATE TABLE effects (version int NOT NULL);\nINSERT INTO effects VALUES (1);\n",
    "002_a.up.sql": "SELECT count(*) FROM gate;\nINSERT INTO effects VALUES (2);\n",
    "003_b.up.sql": "SELECT pg_sleep(0.2);\nINSERT INTO effects VALUES (3);\n",
    "004_c.up.sql": "CREATE TABLE t4 (id int);\nINSERT INTO effects VALUES (4);\n",
}


@contextmanager
def gate_closed(dsn: str) -> Iterator[psycopg.Connection]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE gate (id int)")
        conn.execute("BEGIN")
        conn.execute("LOCK TABLE gate IN ACCESS EXCLUSIVE MODE")
        try:
            yield conn
        finally:
            conn.execute("ROLLBACK")


def blocked_on_gate(dsn: str) -> bool:
    return bool(
        query(
            dsn,
            "SELECT 1 FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE '%FROM gate%' "
            "AND pid <> pg_backend_pid()",
        )
    )


def waiting_for_advisory_lock(dsn: str) -> bool:
    return bool(query(dsn, "SELECT 1 FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"))


def project(tmp_path: Path, dsn: str, files: dict[str, str], **settings: str) -> Path:
    mig = tmp_path / "migrations"
    mig.mkdir(exist_ok=True)
    for name, body in files.items():
        (mig / name).write_text(body)
    settings = {"migrations": "migrations/", **settings}
    extra = "".join(f"{k}: {v}\n" for k, v in settings.items())
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database:\n  dsn: {dsn}\n{extra}")
    return cfg


def cli(cfg: Path, *args: str) -> subprocess.Popen[str]:
    """`migrations ARGS` started as a separate process (JSON output), not waited for."""
    return subprocess.Popen(cli_argv("migrations", *args, config=cfg, fmt="json"), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def query(dsn: str, q: str) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn) as conn:
        return conn.execute(q).fetchall()


def test_two_concurrent_runs_apply_each_migration_exactly_once(fresh_dsn: str, tmp_path: Path) -> None:
    cfg = project(tmp_path, fresh_dsn, SLOW, lock_wait="60s", lock_timeout="60s")
    with gate_closed(fresh_dsn) as gate:
        procs = [cli(cfg, "up"), cli(cfg, "up")]
        # one run is inside migration 002, the other is queued on the advisory lock: a real contention
        poll_until(lambda: blocked_on_gate(fresh_dsn), 60, "a run to reach migration 002", interval=0.05)
        poll_until(lambda: waiting_for_advisory_lock(fresh_dsn), 60, "the other run to wait for the lock",
                   interval=0.05)
        assert [p.poll() for p in procs] == [None, None]
        gate.execute("ROLLBACK")
        outs = [p.communicate(timeout=60) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    applied = sorted(len(json.loads(o)["steps"]) for o, _ in outs)
    assert applied == [0, 4]  # one run did everything, the other found nothing left after waiting
    assert query(fresh_dsn, "SELECT version, count(*) FROM effects GROUP BY 1 ORDER BY 1") == [
        (v, 1) for v in range(1, 5)
    ]
    assert query(fresh_dsn, "SELECT count(*), count(DISTINCT version) FROM schema_migrations") == [(4, 4)]


def test_loser_with_short_lock_wait_fails_with_the_lock_message(fresh_dsn: str, tmp_path: Path) -> None:
    cfg = project(tmp_path, fresh_dsn, SLOW, lock_wait="0.5s", lock_timeout="60s")
    with gate_closed(fresh_dsn) as gate:
        # the winner first, seen inside 002, then the loser: started together, the loser's 0.5 s could run out
        # before the winner had applied 001 and reached the gate on a loaded machine
        winner = cli(cfg, "up")
        poll_until(lambda: blocked_on_gate(fresh_dsn), 60, "the first run inside 002", interval=0.05)
        loser = cli(cfg, "up")
        loser_out, loser_err = loser.communicate(timeout=60)
        assert loser.returncode == 1, loser_err
        assert "another migration run holds the lock" in loser_err and "held by pid" in loser_err
        assert "migrate-assets migrations" in loser_err  # the holder's application_name
        assert json.loads(loser_out)["error"]["type"] == "LockNotAcquiredError"
        assert winner.poll() is None and blocked_on_gate(fresh_dsn)
        assert query(fresh_dsn, "SELECT version FROM schema_migrations") == [(1,)]
        gate.execute("ROLLBACK")
        out, err = winner.communicate(timeout=60)
    assert winner.returncode == 0, err
    assert query(fresh_dsn, "SELECT version, count(*) FROM effects GROUP BY 1 ORDER BY 1") == [
        (v, 1) for v in range(1, 5)
    ]


def test_kill_9_during_a_migration_leaves_nothing_and_next_up_succeeds(
    fresh_dsn: str, tmp_path: Path
) -> None:
    files = {
        "001_first.up.sql": "CREATE TABLE first (id int);\n",
        "002_slow.up.sql": "CREATE TABLE crash_t (id int);\nSELECT pg_sleep(30);\n",
    }
    cfg = project(tmp_path, fresh_dsn, files)
    proc = cli(cfg, "up")
    running: list[int] = []

    def migration_running() -> bool:
        rows = query(
            fresh_dsn,
            "SELECT pid FROM pg_stat_activity WHERE state = 'active' AND query LIKE '%pg_sleep(30)%' "
            "AND pid <> pg_backend_pid()",
        )
        running[:] = [int(r[0]) for r in rows]  # type: ignore[call-overload]
        return bool(rows)

    poll_until(migration_running, 30, "the slow migration to start", interval=0.05)
    proc.kill()  # SIGKILL: no cleanup at all on the client side
    proc.wait(timeout=10)
    pid = running[0]
    # the server notices the dead client (client_connection_check_interval) and aborts the transaction
    poll_until(
        lambda: not query(fresh_dsn, f"SELECT 1 FROM pg_stat_activity WHERE pid = {pid}"),  # noqa: S608
        15,
        "the killed client's backend to end",
        interval=0.05,
    )
    assert query(fresh_dsn, "SELECT to_regclass('crash_t')") == [(None,)]
    assert query(fresh_dsn, "SELECT version FROM schema_migrations ORDER BY 1") == [(1,)]
    (tmp_path / "migrations" / "002_slow.up.sql").write_text("CREATE TABLE crash_t (id int);\n")
    proc = cli(cfg, "up")
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 0, err
    assert [s["version"] for s in json.loads(out)["steps"]] == [2]
    assert query(fresh_dsn, "SELECT version FROM schema_migrations ORDER BY 1") == [(1,), (2,)]


def test_status_json_shape_and_exit_codes(
    fresh_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    files = {
        "001_a.up.sql": "CREATE TABLE a (id int);\n",
        "001_a.down.sql": "DROP TABLE a;\n",
        "003_c.up.sql": "CREATE TABLE c (id int);\n",
    }
    cfg = str(project(tmp_path, fresh_dsn, files))
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "json", "migrations", "status")
    doc = json.loads(out)
    assert code == 0 and doc["current"] is None and [p["version"] for p in doc["pending"]] == [1, 3]
    assert set(doc) >= {"current", "applied", "pending", "missing", "mismatched", "out_of_order"}
    assert query(fresh_dsn, "SELECT to_regclass('schema_migrations')") == [(None,)]  # status creates nothing

    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "json", "migrations", "up")
    assert code == 0 and [s["version"] for s in json.loads(out)["steps"]] == [1, 3]

    (tmp_path / "migrations" / "002_b.up.sql").write_text("CREATE TABLE b (id int);\n")
    (tmp_path / "migrations" / "001_a.up.sql").write_text("CREATE TABLE a (id bigint);\n")
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "json", "migrations", "status")
    doc = json.loads(out)
    assert doc["current"] == 3
    assert [a["version"] for a in doc["applied"]] == [1, 3]
    assert set(doc["applied"][0]) >= {"version", "description", "checksum", "applied_at"}
    assert [m["version"] for m in doc["mismatched"]] == [1] and [
        m["version"] for m in doc["out_of_order"]
    ] == [2]

    code, out, err = run_cli(capsys, "--config", cfg, "--format", "json", "migrations", "up")
    assert code == 3 and "checksum mismatch" in err and json.loads(out)["exit_code"] == 3
    code, _, _ = run_cli(capsys, "--config", cfg, "migrations", "repair")
    assert code == 0
    code, _, err = run_cli(capsys, "--config", cfg, "migrations", "up")
    assert code == 3 and "--allow-out-of-order" in err
    code, _, err = run_cli(capsys, "--config", cfg, "migrations", "run", "3")
    assert code == 3 and "already applied" in err
    code, out, _ = run_cli(capsys, "--config", cfg, "migrations", "up", "--allow-out-of-order")
    assert code == 0 and "applied 002_b.up.sql" in out
    code, _, err = run_cli(capsys, "--config", cfg, "migrations", "down", "--steps", "2")
    assert code == 3 and "003_c.down.sql" in err
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "markdown", "migrations", "status")
    assert code == 0 and "| 2 | b | applied |" in out


def test_dry_run_prints_sql_and_changes_nothing(
    fresh_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = str(project(tmp_path, fresh_dsn, {"001_a.up.sql": "CREATE TABLE dry_a (id int);\n"}))
    code, out, _ = run_cli(capsys, "--config", cfg, "migrations", "up", "--dry-run")
    assert code == 0 and "CREATE TABLE dry_a" in out and "nothing was changed" in out
    code, out, _ = run_cli(
        capsys, "--config", cfg, "--format", "json", "migrations", "run", "1", "--dry-run"
    )
    assert code == 0 and json.loads(out)["dry_run"] is True and "dry_a" in json.loads(out)["steps"][0]["sql"]
    assert query(
        fresh_dsn, "SELECT count(*) FROM pg_class WHERE relname IN ('dry_a', 'schema_migrations')"
    ) == [(0,)]


BAD_FLAGS = [
    (["down", "--steps", "0"], "--steps"),
    (["down", "--steps", "x"], "--steps"),
    (["down", "--steps", "-1"], "--steps"),
    (["down", "--steps", "1", "--to", "2"], "--to"),
    (["down", "--to", "abc"], "--to"),
    (["up", "--to", "abc"], "--to"),
    (["up", "--to", "1.5"], "--to"),
    (["run"], "V"),
    (["run", "x1"], "V"),
    (["baseline", "-3"], "V"),
    (["up", "--bogus"], "--bogus"),
    (["sideways"], "sideways"),
    ([], "sub-command"),
]


@pytest.mark.parametrize(("args", "named"), BAD_FLAGS, ids=[" ".join(a) or "none" for a, _ in BAD_FLAGS])
def test_bad_flags_exit_2_naming_the_flag(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], named: str
) -> None:
    # the DSN points nowhere: invalid input must be reported before any connection is tried
    cfg = str(project(tmp_path, "postgresql://nobody@127.0.0.1:1/none", {"001_a.up.sql": "SELECT 1;"}))
    code, _, err = run_cli(capsys, "--config", cfg, "migrations", *args)
    assert code == 2, err
    assert named in err


def test_bad_files_exit_2_naming_each_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    files = {
        "001_a.up.sql": "SELECT 1;",
        "1_b.up.sql": "SELECT 1;",
        "001-init.up.sql": "SELECT 1;",
        "002_init.sql": "SELECT 1;",
        "003_a.UP.sql": "SELECT 1;",
        "004_x.down.sql": "SELECT 1;",
        "005_e.up.sql": "-- nothing\n",
    }
    cfg = str(project(tmp_path, "postgresql://nobody@127.0.0.1:1/none", files))
    for sub in (["up"], ["status"], ["up", "--dry-run"]):
        code, out, err = run_cli(capsys, "--config", cfg, "--format", "json", "migrations", *sub)
        assert code == 2
        named = {Path(p["file"]).name for p in json.loads(out)["error"]["problems"]}
        assert named == set(files) - {"001_a.up.sql"}
        assert "1_b.up.sql" in err and "005_e.up.sql" in err


BAD_SETTINGS = [
    ({"lock_table": "a.b.c"}, "lock_table"),
    ({"lock_table": ".x"}, "lock_table"),
    ({"lock_wait": "soon"}, "lock_wait"),
    ({"lock_timeout": "-1s"}, "lock_timeout"),
    ({"migrations": "no/such/dir"}, "does not exist"),
]


@pytest.mark.parametrize(("settings", "named"), BAD_SETTINGS, ids=[n for _, n in BAD_SETTINGS])
def test_bad_settings_exit_2_naming_the_key(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], settings: dict[str, str], named: str
) -> None:
    cfg = project(tmp_path, "postgresql://nobody@127.0.0.1:1/none", {"001_a.up.sql": "SELECT 1;"}, **settings)
    code, _, err = run_cli(capsys, "--config", str(cfg), "migrations", "status")
    assert code == 2, err
    assert named in err
