"""Pipeline tables guarded against versioned migrations: each pending script is tried in a rolled-back
transaction first, on a real PostgreSQL database (each test gets its own)."""

from __future__ import annotations

import time
from pathlib import Path

import psycopg
import pytest

from migrate_assets.errors import MigrationFailedError, PipelineTableChangeRefused
from migrate_assets.versioned import MigrationRunner
from migrate_assets.versioned.guard import Script, describe, shape_of, trial
from tests.support import column_names
from tests.versioned.test_runner import state, write

PIPE = "public.customers"


@pytest.fixture
def db(fresh_dsn: str) -> str:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id int PRIMARY KEY, name text NOT NULL)")
        conn.execute("INSERT INTO customers VALUES (1, 'a')")
    return fresh_dsn


def runner(dsn: str, d: Path) -> MigrationRunner:
    return MigrationRunner(dsn, d, lock_timeout=1.0, pipeline_tables=[PIPE])


def test_a_migration_changing_a_pipeline_table_is_refused_and_nothing_runs(db: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {
        "001_other.up.sql": "CREATE TABLE other (id int);\n",
        "002_note.up.sql": "-- looks harmless\nALTER TABLE customers ADD COLUMN note text;\n",
        "003_more.up.sql": "CREATE TABLE more (id int);\n",
    })
    with pytest.raises(PipelineTableChangeRefused) as err:
        runner(db, d).up()
    assert err.value.exit_code == 3
    assert err.value.changes == (("002_note.up.sql", PIPE, "column note added (text)"),)
    assert "002_note.up.sql" in str(err.value) and PIPE in str(err.value) and "nothing was changed" in str(err.value)
    assert column_names(db, PIPE) == ["id", "name"]
    assert state(db) == []  # not even the harmless 001 ran
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT to_regclass('public.other')").fetchone() == (None,)


def test_postgres_decides_what_a_script_does_even_inside_a_do_block(db: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"001_sneaky.up.sql": (
        "DO $$ BEGIN EXECUTE 'ALTER TABLE ' || 'custo' || 'mers ALTER COLUMN id TYPE bigint'; END $$;\n")})
    with pytest.raises(PipelineTableChangeRefused) as err:
        runner(db, d).up()
    assert err.value.changes == (("001_sneaky.up.sql", PIPE, "column id type: integer -> bigint"),)


def test_rows_indexes_and_other_tables_pass(db: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {
        "001_rows.up.sql": "INSERT INTO customers VALUES (2, 'b'); UPDATE customers SET name = 'c' WHERE id = 1;\n",
        "002_other.up.sql": "CREATE TABLE other (id int);\n",
        "003_other_col.up.sql": "ALTER TABLE other ADD COLUMN x int;\n",  # depends on 002 in the same trial
        "004_index.up.sql": ("-- migrate: no-transaction\n"
                             "CREATE INDEX CONCURRENTLY customers_name ON customers (name);\n"),
    })
    report = runner(db, d).up()
    assert [s.version for s in report.steps] == [1, 2, 3, 4]
    assert report.pipeline_changes == ()
    assert report.trial_ms is not None and report.trial_overhead_ms is not None
    assert column_names(db, "public.other") == ["id", "x"]
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT to_regclass('public.customers_name')").fetchone() != (None,)


def test_rename_drop_and_replica_identity_are_changes(db: str, tmp_path: Path) -> None:
    cases = {
        "ALTER TABLE customers RENAME TO clients;": "table dropped or renamed",
        "ALTER TABLE customers RENAME COLUMN name TO full_name;": "column full_name added (text)",
        "ALTER TABLE customers REPLICA IDENTITY FULL;": "replica identity: d -> f",
        "ALTER TABLE customers ALTER COLUMN name DROP NOT NULL;": "column name not null: True -> False",
    }
    for i, (stmt, expected) in enumerate(cases.items(), start=1):
        d = write(tmp_path / f"m{i}", {f"00{i}_x.up.sql": stmt + "\n"})
        with pytest.raises(PipelineTableChangeRefused) as err:
            runner(db, d).up()
        assert expected in err.value.changes[0][2], (stmt, err.value.changes)
    assert column_names(db, PIPE) == ["id", "name"]


def test_allow_pipeline_drift_runs_and_reports_the_change(db: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"001_note.up.sql": "ALTER TABLE customers ADD COLUMN note text;\n",
                               "001_note.down.sql": "ALTER TABLE customers DROP COLUMN note;\n"})
    report = runner(db, d).up(allow_pipeline_drift=True)
    assert [s.version for s in report.steps] == [1]
    assert [(t.file, t.tables) for t in report.pipeline_changes] == [
        ("001_note.up.sql", {PIPE: ["column note added (text)"]})]
    assert column_names(db, PIPE) == ["id", "name", "note"]
    # down scripts are guarded the same way
    with pytest.raises(PipelineTableChangeRefused) as err:
        runner(db, d).down()
    assert err.value.changes == (("001_note.down.sql", PIPE, "column note dropped or renamed"),)
    assert column_names(db, PIPE) == ["id", "name", "note"]
    assert runner(db, d).down(allow_pipeline_drift=True).steps[0].version == 1
    assert column_names(db, PIPE) == ["id", "name"]


def test_a_script_that_fails_in_the_trial_never_runs(db: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"001_ok.up.sql": "CREATE TABLE other (id int);\n",
                               "002_bad.up.sql": "CREATE TABLE other2 (id int);\nSELECT 1/0;\n"})
    with pytest.raises(MigrationFailedError) as err:
        runner(db, d).up()
    assert err.value.file == "002_bad.up.sql" and "division by zero" in str(err.value)
    assert [v for v, _ in state(db)] == [1]  # what passed the trial ran, as without the guard
    with psycopg.connect(db) as conn:
        assert conn.execute("SELECT to_regclass('public.other2')").fetchone() == (None,)


def test_a_script_needing_an_earlier_commit_is_tried_again_after_it(db: str, tmp_path: Path) -> None:
    # a new enum value cannot be used in the transaction that added it: the one-transaction trial fails at
    # 002, so 001 runs first and 002 (with 003) is tried again on its commit: 003 is refused before 002 runs
    with psycopg.connect(db, autocommit=True) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('ok'); CREATE TABLE moods (m mood)")
    d = write(tmp_path / "m", {"001_enum.up.sql": "ALTER TYPE mood ADD VALUE 'happy';\n",
                               "002_use.up.sql": "INSERT INTO moods VALUES ('happy');\n",
                               "003_pipe.up.sql": "ALTER TABLE customers ADD COLUMN m mood;\n"})
    with pytest.raises(PipelineTableChangeRefused) as err:
        runner(db, d).up()
    assert err.value.committed == 1 and "1 earlier migration(s)" in str(err.value)
    assert [v for v, _ in state(db)] == [1]
    d = write(tmp_path / "m", {"003_pipe.up.sql": "CREATE TABLE m3 (m mood);\n"})
    assert [s.version for s in runner(db, d).up().steps] == [2, 3]
    assert column_names(db, PIPE) == ["id", "name"]


def test_no_transaction_files_never_send_their_transaction_control(db: str, tmp_path: Path) -> None:
    d = write(tmp_path / "m", {"001_nt.up.sql": ("-- migrate: no-transaction\nBEGIN;\nCREATE TABLE t1 (id int);\n"
                                                 "COMMIT;\nALTER TABLE customers ADD COLUMN z int;\n")})
    with pytest.raises(PipelineTableChangeRefused):
        runner(db, d).up()
    with psycopg.connect(db) as conn:  # the COMMIT in the file did not end the trial's transaction
        assert conn.execute("SELECT to_regclass('public.t1')").fetchone() == (None,)
    assert column_names(db, PIPE) == ["id", "name"]


def test_the_trial_costs_a_few_ms_per_migration(db: str, tmp_path: Path) -> None:
    """The guard's own cost (catalog reads, rollback), beside the scripts' run time: printed for the report."""
    scripts = [Script(f"{i:03d}_t.up.sql", f"CREATE TABLE t{i} (id int, v text);", False) for i in range(100)]
    with psycopg.connect(db, autocommit=True) as conn:
        t0 = time.perf_counter()
        res = trial(conn, scripts, [PIPE, "public.other", "public.absent"], lock_timeout=1.0)
        whole = (time.perf_counter() - t0) * 1000
        assert res.checked == 100 and not res.touches and res.failed is None
        assert conn.execute("SELECT to_regclass('public.t0')").fetchone() == (None,)
        before = shape_of(conn, [PIPE, "public.absent"])
    assert before["public.absent"] is None and describe(before[PIPE], before[PIPE]) == []
    per = res.overhead_ms / 100
    print(f"\ntrial of 100 migrations: {whole:.0f} ms in all, guard overhead {per:.2f} ms per migration")
    assert per < 50
