"""Migration file discovery and the SQL scanner (pure: no database)."""

from __future__ import annotations

from pathlib import Path

import pytest

from migrate_assets.errors import MigrationFileError
from migrate_assets.versioned import sqltext
from migrate_assets.versioned.files import checksum, load_migrations


def write(d: Path, files: dict[str, str | bytes]) -> Path:
    d.mkdir(parents=True, exist_ok=True)
    for name, body in files.items():
        (d / name).write_bytes(body if isinstance(body, bytes) else body.encode())
    return d


def problems(d: Path) -> dict[str, str]:
    with pytest.raises(MigrationFileError) as info:
        load_migrations(d)
    assert info.value.exit_code == 2
    return {Path(p.file).name: p.message for p in info.value.problems}


def test_valid_directory_pairs_up_and_down(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        {
            "002_add_col.up.sql": "ALTER TABLE t ADD c int;",
            "001_init.up.sql": "CREATE TABLE t (id int);",
            "001_init.down.sql": "DROP TABLE t;",
            "010_idx.up.sql": "-- migrate: no-transaction\nCREATE INDEX CONCURRENTLY i ON t (c);",
            "README.md": "notes",
            ".gitkeep": "",
        },
    )
    (d / "sub").mkdir()
    ms = load_migrations(d)
    assert [m.version for m in ms] == [1, 2, 10]
    assert ms[0].description == "init" and ms[0].down_sql == "DROP TABLE t;"
    assert ms[1].down_sql is None and ms[1].down_checksum is None
    assert ms[2].no_transaction and not ms[0].no_transaction


def test_checksum_normalises_line_endings_and_bom() -> None:
    lf = checksum(b"CREATE TABLE t (id int);\nSELECT 1;\n")
    assert checksum(b"CREATE TABLE t (id int);\r\nSELECT 1;\r\n") == lf
    assert checksum(b"CREATE TABLE t (id int);\rSELECT 1;\r") == lf
    assert checksum(b"\xef\xbb\xbfCREATE TABLE t (id int);\nSELECT 1;\n") == lf
    assert checksum(b"CREATE TABLE t (id int);\nSELECT 2;\n") != lf
    assert len(lf) == 64 and lf == lf.lower()


def test_all_problems_are_reported_at_once(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        {
            "001_a.up.sql": "SELECT 1;",
            "1_b.up.sql": "SELECT 2;",  # same version as 001
            "002_orphan.down.sql": "SELECT 1;",  # down without up
            "003_empty.up.sql": "  -- only a comment\n/* and a block */\n;\n",
            "004-init.up.sql": "SELECT 1;",
            "005_init.sql": "SELECT 1;",
            "006_a.UP.sql": "SELECT 1;",
            "init.up.sql": "SELECT 1;",
            "007_a.b.up.sql": "SELECT 1;",
            "008_tx.up.sql": "BEGIN;\nCREATE TABLE x (id int);\nCOMMIT;\n",
            "009_dir.up.sql": "-- migrate: no-transacton\nSELECT 1;",
            "010_x.up.sql": "SELECT 1;",
            "010_y.down.sql": "SELECT 1;",  # description differs
            "011_bad.up.sql": b"SELECT '\xff';",
            "99999999999999999999_big.up.sql": "SELECT 1;",
            "000_zero.up.sql": "SELECT 1;",
        },
    )
    got = problems(d)
    assert "duplicate version 1" in got["1_b.up.sql"] and "001_a.up.sql" in got["1_b.up.sql"]
    assert "without an up" in got["002_orphan.down.sql"]
    assert "empty up" in got["003_empty.up.sql"]
    for near_miss in ("004-init.up.sql", "005_init.sql", "006_a.UP.sql", "init.up.sql", "007_a.b.up.sql"):
        assert "looks like a migration" in got[near_miss], near_miss
    assert "'COMMIT'" in got["008_tx.up.sql"] or "'BEGIN'" in got["008_tx.up.sql"]
    assert "unknown directive" in got["009_dir.up.sql"]
    assert "differs" in got["010_y.down.sql"]
    assert "UTF-8" in got["011_bad.up.sql"]
    assert "bigint" in got["99999999999999999999_big.up.sql"]
    assert "reserved" in got["000_zero.up.sql"]
    assert "001_a.up.sql" not in got and "010_x.up.sql" not in got
    assert len(got) == 14


def test_missing_directory_is_invalid_input(tmp_path: Path) -> None:
    got = problems(tmp_path / "nope")
    assert "does not exist" in got["nope"]


def test_transaction_control_allowed_in_no_transaction_file_and_inside_bodies(tmp_path: Path) -> None:
    d = write(
        tmp_path,
        {
            "001_fn.up.sql": (
                "CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$\nBEGIN\n  RETURN 1;\nEND;\n$$;\n"
                "CREATE FUNCTION g() RETURNS int LANGUAGE sql BEGIN ATOMIC SELECT 1; SELECT CASE WHEN true "
                "THEN 2 END; END;\n"
                "SELECT 'COMMIT;';\nROLLBACK TO SAVEPOINT s;\n"
            ),
            "002_nt.up.sql": "-- migrate: no-transaction\nCOMMIT;\nVACUUM t;",
        },
    )
    assert [m.version for m in load_migrations(d)] == [1, 2]


def test_split_statements_respects_quotes_comments_and_dollar_quotes() -> None:
    script = (
        "-- header; not a statement\n"
        "CREATE TABLE \"a;b\" (v text DEFAULT 'x;y');\n"
        "/* block; /* nested; */ still comment; */\n"
        "INSERT INTO t VALUES (E'it\\'s; fine');\n"
        "DO $body$ BEGIN PERFORM 1; END $body$;\n"
        "SELECT 1"
    )
    stmts = sqltext.split_statements(script)
    assert len(stmts) == 4
    assert stmts[0].text.startswith("CREATE TABLE") and stmts[0].text.endswith(");")
    assert stmts[2].text.startswith("DO $body$") and stmts[3].text == "SELECT 1"
    assert script[stmts[1].start :].startswith("INSERT")


def test_locate_maps_position_to_line_and_statement() -> None:
    script = "CREATE TABLE a (id int);\n\nSELECT 1;\nSELEC 2;\n"
    pos = script.index("SELEC 2") + 1
    assert sqltext.locate(script, pos) == (4, 3)


def test_is_empty() -> None:
    assert sqltext.is_empty("  \n-- x\n/* y */ ;;\n")
    assert not sqltext.is_empty("-- x\nSELECT 1")
