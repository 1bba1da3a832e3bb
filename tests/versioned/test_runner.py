"""The runner against a real PostgreSQL database (each test gets its own empty database)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from migrate_assets.errors import (
    AlreadyAppliedError,
    ChecksumMismatchError,
    IrreversibleChangeError,
    LockNotAcquiredError,
    MigrationFailedError,
    OutOfOrderError,
    UsageError,
)
from migrate_assets.versioned import MigrationRunner, StateTable
from migrate_assets.versioned.lock import lock_key
from tests.support import column_names

BASIC = {
    "001_users.up.sql": "CREATE TABLE users (id int PRIMARY KEY);\n",
    "001_users.down.sql": "DROP TABLE users;\n",
    "002_email.up.sql": "-- add a column\nALTER TABLE users ADD COLUMN email text;\n",
    "002_email.down.sql": "ALTER TABLE users DROP COLUMN email;\n",
    "003_orders.up.sql": "CREATE TABLE orders (id int PRIMARY KEY, user_id int REFERENCES users);\n",
    "003_orders.down.sql": "DROP TABLE orders;\n",
}


def write(d: Path, files: dict[str, str]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (d / name).write_text(body)
    return d


def tables(dsn: str) -> set[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT n.nspname || '.' || c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname NOT IN ('pg_catalog', 'information_schema')"
        ).fetchall()
    return {r[0] for r in rows}


def state(dsn: str, table: str = "public.schema_migrations") -> list[tuple[int, str]]:
    with psycopg.connect(dsn) as conn:
        if conn.execute("SELECT to_regclass(%s)", (table,)).fetchone() == (None,):
            return []
        return [
            (r[0], r[1])
            for r in conn.execute(f"SELECT version, kind FROM {table} ORDER BY applied_seq").fetchall()  # noqa: S608
        ]


def up_failing_after_basic(dsn: str, d: Path, extra: dict[str, str]) -> tuple[MigrationRunner, MigrationFailedError]:
    """BASIC plus `extra`: `up` fails in an `extra` file, and BASIC's three migrations stay applied."""
    runner = MigrationRunner(dsn, write(d, {**BASIC, **extra}))
    with pytest.raises(MigrationFailedError) as info:
        runner.up()
    assert [v for v, _ in state(dsn)] == [1, 2, 3]
    return runner, info.value


def catalog_snapshot(dsn: str) -> list[tuple[object, ...]]:
    """Every user relation, column and index (with validity) — what a dry run must leave untouched."""
    with psycopg.connect(dsn) as conn:
        return (
            conn.execute(
                "SELECT n.nspname, c.relname, c.relkind, a.attname, a.atttypid, "
                "(SELECT count(*) FROM pg_index i WHERE i.indrelid = c.oid AND i.indisvalid) "
                "FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "LEFT JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 "
                "WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') ORDER BY 1, 2, 4"
            ).fetchall()
            + conn.execute("SELECT nspname FROM pg_namespace ORDER BY 1").fetchall()
        )


def test_up_applies_each_pending_migration_once_with_state_rows(fresh_dsn: str, tmp_path: Path) -> None:
    runner = MigrationRunner(fresh_dsn, write(tmp_path, BASIC))
    report = runner.up()
    assert [s.version for s in report.steps] == [1, 2, 3] and report.current == 3
    assert {"public.users", "public.orders", "public.schema_migrations"} <= tables(fresh_dsn)
    with psycopg.connect(fresh_dsn) as conn:
        rows = conn.execute(
            "SELECT version, description, checksum, down_checksum, execution_ms, applied_by, applied_at "
            "FROM schema_migrations ORDER BY version"
        ).fetchall()
    files = runner.load()
    assert [(r[0], r[1], r[2], r[3]) for r in rows] == [
        (m.version, m.description, m.checksum, m.down_checksum) for m in files
    ]
    assert all(r[4] >= 0 and r[5] == "postgres" and r[6] is not None for r in rows)
    again = runner.up()
    assert again.steps == () and again.current == 3
    assert len(state(fresh_dsn)) == 3


def test_up_to_stops_at_the_target(fresh_dsn: str, tmp_path: Path) -> None:
    runner = MigrationRunner(fresh_dsn, write(tmp_path, BASIC))
    assert [s.version for s in runner.up(to=2).steps] == [1, 2]
    assert "public.orders" not in tables(fresh_dsn)
    assert [p.version for p in runner.status().pending] == [3]


def test_checksum_tamper_refuses_before_anything_runs_then_repair(fresh_dsn: str, tmp_path: Path) -> None:
    d = write(tmp_path, BASIC)
    runner = MigrationRunner(fresh_dsn, d)
    runner.up(to=2)
    # line-ending changes are not edits
    (d / "001_users.up.sql").write_bytes(BASIC["001_users.up.sql"].replace("\n", "\r\n").encode())
    assert runner.status().mismatched == ()
    (d / "002_email.up.sql").write_text("ALTER TABLE users ADD COLUMN email varchar(200);\n")
    st = runner.status()
    assert [m.version for m in st.mismatched] == [2]
    with pytest.raises(ChecksumMismatchError) as info:
        runner.up()
    assert info.value.exit_code == 3 and "002_email.up.sql" in str(info.value)
    assert "public.orders" not in tables(fresh_dsn)  # the pending 003 did not run
    repaired = runner.repair()
    assert [s.version for s in repaired.steps] == [2]
    assert runner.status().mismatched == ()
    assert [s.version for s in runner.up().steps] == [3]


def test_out_of_order_is_refused_then_allowed_and_down_follows_application_order(
    fresh_dsn: str, tmp_path: Path
) -> None:
    d = write(tmp_path, {k: v for k, v in BASIC.items() if not k.startswith("002")})
    runner = MigrationRunner(fresh_dsn, d)
    runner.up()
    write(d, {k: v for k, v in BASIC.items() if k.startswith("002")})
    assert [m.version for m in runner.status().out_of_order] == [2]
    with pytest.raises(OutOfOrderError) as info:
        runner.up()
    assert info.value.exit_code == 3 and "002_email.up.sql" in str(info.value)
    assert [v for v, _ in state(fresh_dsn)] == [1, 3]
    assert [s.version for s in runner.up(allow_out_of_order=True).steps] == [2]
    assert [v for v, _ in state(fresh_dsn)] == [1, 3, 2]
    # the most recently applied (2) goes first, although 3 is the higher version
    assert [s.version for s in runner.down().steps] == [2]
    cols = column_names(fresh_dsn, "users")
    assert cols and "email" not in cols and "public.orders" in tables(fresh_dsn)


def test_down_by_steps_and_to(fresh_dsn: str, tmp_path: Path) -> None:
    runner = MigrationRunner(fresh_dsn, write(tmp_path, BASIC))
    runner.up()
    assert [s.version for s in runner.down(steps=2).steps] == [3, 2]
    assert [v for v, _ in state(fresh_dsn)] == [1]
    runner.up()
    report = runner.down(to=1)
    assert [s.version for s in report.steps] == [3, 2] and report.current == 1
    report = runner.down(to=0)
    assert [s.version for s in report.steps] == [1] and report.current is None
    assert tables(fresh_dsn) == {"public.schema_migrations"}
    with pytest.raises(UsageError):
        runner.down(steps=0)


def test_down_without_down_file_changes_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    d = write(tmp_path, BASIC)
    runner = MigrationRunner(fresh_dsn, d)
    runner.up()
    (d / "002_email.down.sql").unlink()
    before = catalog_snapshot(fresh_dsn)
    with pytest.raises(IrreversibleChangeError) as info:
        runner.down(steps=2)
    assert "002_email.down.sql" in str(info.value) and info.value.exit_code == 3
    assert catalog_snapshot(fresh_dsn) == before and len(state(fresh_dsn)) == 3


def test_run_one_version_and_already_applied(fresh_dsn: str, tmp_path: Path) -> None:
    runner = MigrationRunner(fresh_dsn, write(tmp_path, BASIC))
    assert [s.version for s in runner.run(1).steps] == [1]
    assert [v for v, _ in state(fresh_dsn)] == [1]
    with pytest.raises(AlreadyAppliedError) as info:
        runner.run(1)
    assert info.value.exit_code == 3 and "already applied" in str(info.value)
    with pytest.raises(UsageError):
        runner.run(42)
    assert [v for v, _ in state(fresh_dsn)] == [1]


def test_baseline_then_up(fresh_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_dsn) as conn:  # an existing database that predates the tool
        conn.execute("CREATE TABLE users (id int PRIMARY KEY, email text)")
    runner = MigrationRunner(fresh_dsn, write(tmp_path, BASIC))
    assert [s.version for s in runner.baseline(2).steps] == [1, 2]
    assert state(fresh_dsn) == [(1, "baseline"), (2, "baseline")]
    assert [s.version for s in runner.up().steps] == [3]
    with pytest.raises(AlreadyAppliedError):
        runner.baseline(3)
    with pytest.raises(IrreversibleChangeError) as info:
        runner.down(steps=2)  # 3 could be reverted, 2 was never run by us
    assert "baselined" in str(info.value)
    assert len(state(fresh_dsn)) == 3


def test_baseline_beyond_files_records_a_marker(fresh_dsn: str, tmp_path: Path) -> None:
    runner = MigrationRunner(fresh_dsn, write(tmp_path, BASIC))
    runner.baseline(100)
    st = runner.status()
    assert st.current == 100 and st.pending == () and st.missing == ()


def test_no_transaction_file_builds_a_valid_index_concurrently(fresh_dsn: str, tmp_path: Path) -> None:
    files = dict(BASIC)
    files["004_idx.up.sql"] = (
        "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY users_email ON users (email);\n"
        "CREATE INDEX CONCURRENTLY orders_user ON orders (user_id);\n"
    )
    files["004_idx.down.sql"] = (
        "-- migrate: no-transaction\nDROP INDEX CONCURRENTLY users_email;\nDROP INDEX CONCURRENTLY orders_user;\n"
    )
    runner = MigrationRunner(fresh_dsn, write(tmp_path, files))
    runner.up()
    with psycopg.connect(fresh_dsn) as conn:
        valid = conn.execute(
            "SELECT c.relname, i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
            "WHERE c.relname IN ('users_email', 'orders_user') ORDER BY 1"
        ).fetchall()
    assert valid == [("orders_user", True), ("users_email", True)]
    assert [s.version for s in runner.down().steps] == [4]
    assert [v for v, _ in state(fresh_dsn)] == [1, 2, 3]


def test_failure_mid_file_leaves_neither_effects_nor_state_row(fresh_dsn: str, tmp_path: Path) -> None:
    body = (
        "CREATE TABLE audit (id int);\n"
        "INSERT INTO audit VALUES (1);\n"
        "-- the next statement fails at run time\n"
        "INSERT INTO no_such_table VALUES (1);\n"
    )
    runner, err = up_failing_after_basic(
        fresh_dsn, tmp_path, {"004_bad.up.sql": body, "005_later.up.sql": "CREATE TABLE later (id int);\n"}
    )
    msg = str(err)
    assert "004_bad.up.sql" in msg and "line 4" in msg and "statement 3" in msg and "no_such_table" in msg
    assert err.position == body.index("no_such_table") + 1
    assert "3 earlier migration(s)" in msg and err.exit_code == 1
    assert "public.audit" not in tables(fresh_dsn) and "public.later" not in tables(fresh_dsn)
    # the connection was left clean: fixing the file lets the next run go through
    (tmp_path / "004_bad.up.sql").write_text("CREATE TABLE audit (id int);\n")
    assert [s.version for s in runner.up().steps] == [4, 5]


def test_syntax_error_names_file_and_line(fresh_dsn: str, tmp_path: Path) -> None:
    d = write(tmp_path, {"001_ok.up.sql": "CREATE TABLE a (id int);\nCREATE TABEL b (id int);\n"})
    with pytest.raises(MigrationFailedError) as info:
        MigrationRunner(fresh_dsn, d).up()
    assert "001_ok.up.sql" in str(info.value) and "line 2" in str(info.value)
    assert "public.a" not in tables(fresh_dsn) and state(fresh_dsn) == []


def test_dry_run_changes_nothing(fresh_dsn: str, tmp_path: Path) -> None:
    d = write(tmp_path, BASIC)
    runner = MigrationRunner(fresh_dsn, d)
    before = catalog_snapshot(fresh_dsn)
    report = runner.up(dry_run=True)
    assert report.dry_run and [s.version for s in report.steps] == [1, 2, 3]
    assert "CREATE TABLE users" in report.steps[0].sql and "INSERT INTO" in report.steps[0].sql
    runner.baseline(2, dry_run=True)
    runner.run(1, dry_run=True)
    assert catalog_snapshot(fresh_dsn) == before  # not even the state table
    runner.up(to=2)
    before = catalog_snapshot(fresh_dsn), state(fresh_dsn)
    assert "DROP COLUMN email" in runner.down(dry_run=True).steps[0].sql
    runner.down(to=0, dry_run=True)
    runner.up(dry_run=True)
    (d / "001_users.up.sql").write_text("CREATE TABLE users (id bigint PRIMARY KEY);\n")
    assert [s.version for s in runner.repair(dry_run=True).steps] == [1]
    assert (catalog_snapshot(fresh_dsn), state(fresh_dsn)) == before
    assert [m.version for m in runner.status().mismatched] == [1]


def test_lock_held_elsewhere_fails_after_lock_wait_naming_the_holder(fresh_dsn: str, tmp_path: Path) -> None:
    runner = MigrationRunner(fresh_dsn, write(tmp_path, BASIC), lock_wait=0.3)
    with psycopg.connect(fresh_dsn, autocommit=True, application_name="other-deployer") as holder:
        key = lock_key(holder.info.dbname, "public.schema_migrations")
        holder.execute("SELECT pg_advisory_lock(%s)", (key,))
        pid = holder.info.backend_pid
        with pytest.raises(LockNotAcquiredError) as info:
            runner.up()
        msg = str(info.value)
        assert "another migration run holds the lock" in msg
        assert f"pid {pid}" in msg and "other-deployer" in msg
        assert info.value.exit_code == 1 and info.value.waited >= 0.25
        assert tables(fresh_dsn) == set()
        # a different state table has a different key and is not blocked
        other = MigrationRunner(fresh_dsn, tmp_path, StateTable("ops", "migs"), lock_wait=0.3)
        assert len(other.up().steps) == 3
    assert state(fresh_dsn, "ops.migs") == [(1, "migration"), (2, "migration"), (3, "migration")]
    assert lock_key("db", "public.a") != lock_key("db", "public.b") != lock_key("db2", "public.b")


def test_missing_on_disk_is_reported(fresh_dsn: str, tmp_path: Path) -> None:
    d = write(tmp_path, BASIC)
    runner = MigrationRunner(fresh_dsn, d)
    runner.up()
    (d / "003_orders.up.sql").unlink()
    (d / "003_orders.down.sql").unlink()
    st = runner.status()
    assert [r.version for r in st.missing] == [3] and st.current == 3 and st.pending == ()


def test_syntax_error_in_a_later_migration_applies_the_earlier_ones(fresh_dsn: str, tmp_path: Path) -> None:
    typo = "-- typo below\nCREATE TABLE d (id int);\nCREATE TABEL e (id int);\n"
    _, err = up_failing_after_basic(
        fresh_dsn, tmp_path, {"004_typo.up.sql": typo, "005_after.up.sql": "CREATE TABLE f (id int);\n"}
    )
    msg = str(err)
    assert "004_typo.up.sql" in msg and "line 3" in msg and "statement 2" in msg and "syntax error" in msg
    assert err.position == typo.index("TABEL") + 1
    assert {"public.d", "public.f"}.isdisjoint(tables(fresh_dsn))


def test_execution_ms_is_measured_per_migration(fresh_dsn: str, tmp_path: Path) -> None:
    files = {
        "001_slow.up.sql": "SELECT pg_sleep(0.3);\n",
        "002_fast.up.sql": "CREATE TABLE fast (id int);\n",
    }
    MigrationRunner(fresh_dsn, write(tmp_path, files)).up()
    with psycopg.connect(fresh_dsn) as conn:
        ms = dict(conn.execute("SELECT version, execution_ms FROM schema_migrations").fetchall())
    assert ms[1] >= 280 and ms[2] < 200


def test_description_with_quotes_and_backslashes_is_stored_verbatim(fresh_dsn: str, tmp_path: Path) -> None:
    d = write(tmp_path, {"001_it's a \\ test.up.sql": "CREATE TABLE q (id int);\n"})
    MigrationRunner(fresh_dsn, d).up()
    with psycopg.connect(fresh_dsn) as conn:
        assert conn.execute("SELECT description FROM schema_migrations").fetchall() == [("it's a \\ test",)]


def test_state_table_of_the_original_shape_is_upgraded_in_place(fresh_dsn: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_dsn) as conn:  # what the Go package's EnsureLockTable created
        conn.execute(
            "CREATE TABLE schema_migrations (version bigint NOT NULL PRIMARY KEY, "
            "applied_at timestamptz NOT NULL DEFAULT now(), checksum text NOT NULL, "
            "description text NOT NULL DEFAULT '')"
        )
    runner = MigrationRunner(fresh_dsn, write(tmp_path, BASIC))
    files = runner.load()
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute(
            "INSERT INTO schema_migrations (version, checksum, description) VALUES (1, %s, 'users')",
            (files[0].checksum,),
        )
        conn.execute("CREATE TABLE users (id int PRIMARY KEY)")
    assert [s.version for s in runner.up().steps] == [2, 3]
    assert [v for v, _ in state(fresh_dsn)] == [1, 2, 3]
    assert [s.version for s in runner.down(steps=2).steps] == [3, 2]


def test_concurrent_index_without_directive_fails_with_a_hint(fresh_dsn: str, tmp_path: Path) -> None:
    files = {
        "001_t.up.sql": "CREATE TABLE t (id int);\n",
        "002_i.up.sql": "CREATE INDEX CONCURRENTLY t_id ON t (id);\n",
    }
    with pytest.raises(MigrationFailedError) as info:
        MigrationRunner(fresh_dsn, write(tmp_path, files)).up()
    assert "002_i.up.sql" in str(info.value) and "-- migrate: no-transaction" in str(info.value)
    assert [v for v, _ in state(fresh_dsn)] == [1]
