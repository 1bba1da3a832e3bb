"""The corpus through every command that takes user SQL: `plan`, `apply --dry-run`, `apply` (spec defaults and
index predicates), `expand --dry-run`, `expand`, `evolve --dry-run`, `evolve` (change-file `default`, `up`, `down`,
`backfill`), against a real database with a canary.

Hostile payloads are refused before anything is sent for them, so each command gets all payloads of a group in
one file (every problem is reported at once) and must name each one's file, line and key; the canary and the
catalog must be exactly as before. Side-effecting payloads must pass plan and dry runs without running.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migrate_assets.config import load_config
from migrate_assets.resources import database
from migrate_assets.resources.postgres import PostgresSource
from migrate_assets.schema.sqltext import check_expression
from tests.security.conftest import ITEM_COLUMNS, assert_canary_alive, snapshot
from tests.security.corpus import LEGIT, NO_SUBQUERY, REJECTED, UNRUN
from tests.support import run_cli

SPEC_COMMANDS = (("plan",), ("apply", "--dry-run"), ("apply", "--auto-approve"))
#: a spec file is refused at load time when any default fails the offline check, so the payloads only Postgres
#: refuses in a default or predicate get a file of their own
SPEC_OFFLINE = {k: v for k, v in {**REJECTED, **NO_SUBQUERY}.items() if check_expression(v)}
SPEC_PARSE = {k: v for k, v in REJECTED.items() if not check_expression(v)}
CHANGE_COMMANDS = (("expand", "--dry-run"), ("expand",), ("evolve", "--dry-run"), ("evolve",))


def project(tmp_path: Path, dsn: str) -> Path:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    cfg = tmp_path / "migrate.yaml"
    # a pipeline with no layer configured: evolve runs on the database alone
    cfg.write_text(f"database: {{dsn: '{dsn}'}}\nschemas: schemas/\nlock_timeout: 1s\n"
                   "retries: {attempts: 1, backoff: 10ms}\npipelines:\n  - table: public.items\n")
    return cfg


def spec_defaults(payloads: dict[str, str]) -> tuple[str, dict[str, tuple[int, str]]]:
    """A new table `corpus` with one text column per payload as its default; (line, key) of each default."""
    lines = ["table: corpus", "columns:", "  - {name: id, type: integer, primary_key: true}"]
    where: dict[str, tuple[int, str]] = {}
    for i, (name, text) in enumerate(payloads.items(), 1):
        lines.append(f"  - {{name: {name}, type: text, nullable: true, default: {json.dumps(text)}}}")
        where[name] = (len(lines), f"columns[{i}].default")
    return "\n".join(lines) + "\n", where


def spec_predicates(payloads: dict[str, str]) -> tuple[str, dict[str, tuple[int, str]]]:
    """A new table with one partial index per payload as its WHERE; (line, key) of each."""
    lines = ["table: corpus_ix", "columns:", "  - {name: id, type: integer, primary_key: true}",
             "  - {name: v, type: text, nullable: true}", "indexes:"]
    where: dict[str, tuple[int, str]] = {}
    for i, (name, text) in enumerate(payloads.items()):
        lines.append(f"  - {{name: ix_{i}, columns: [v], where: {json.dumps(text)}}}")
        where[name] = (len(lines), f"indexes[{i}].where")
    return "\n".join(lines) + "\n", where


def change_file(payloads: dict[str, str], role: str) -> tuple[str, dict[str, tuple[int, str]]]:
    """Operations on `items`, one per payload, the payload in `role` (default, backfill, up, down, not_null)."""
    assert len(payloads) <= ITEM_COLUMNS
    lines = ["table: items", "operations:"]
    where: dict[str, tuple[int, str]] = {}
    for i, (name, text) in enumerate(payloads.items()):
        v = json.dumps(text)
        op, key = {
            "default": (f"add_column: {{name: d{i}, type: text, nullable: true, default: {v}}}", "add_column.default"),
            "backfill": (f"add_column: {{name: d{i}, type: text, nullable: true, backfill: {v}}}",
                         "add_column.backfill"),
            "up": (f"change_type: {{column: c{i}, to_type: varchar(200), up: {v}}}", "change_type.up"),
            "down": (f"change_type: {{column: c{i}, to_type: varchar(200), down: {v}}}", "change_type.down"),
            "not_null": (f"set_not_null: {{column: c{i}, backfill: {v}}}", "set_not_null.backfill"),
        }[role]
        lines.append(f"  - {op}")
        where[name] = (len(lines), f"operations[{i}].{key}")
    return "\n".join(lines) + "\n", where


def run_json(capsys: pytest.CaptureFixture[str], cfg: Path, *argv: str) -> tuple[int, Any]:
    r = run_cli(capsys, *argv, config=cfg, fmt="json")
    return r.code, r.doc


def assert_refused(code: int, doc: Any, file: Path, where: dict[str, tuple[int, str]], cmd: tuple[str, ...]) -> None:
    assert code == 2, (cmd, doc)
    assert len(where) >= 5  # the group is not empty
    got = {(Path(p["file"]).name, p["line"], p["key"]) for p in doc["error"]["problems"]}
    for name, (line, key) in where.items():
        assert (file.name, line, key) in got, (cmd, name, sorted(got))


@pytest.mark.parametrize(("group", "payloads"), [("offline", SPEC_OFFLINE), ("postgres", SPEC_PARSE)])
def test_spec_defaults_and_predicates_are_refused_by_plan_and_apply(
    tmp_path: Path, canary_db: str, capsys: pytest.CaptureFixture[str], group: str, payloads: dict[str, str]
) -> None:
    cfg = project(tmp_path, canary_db)
    before = snapshot(canary_db)
    for build in (spec_defaults, spec_predicates):
        text, where = build(payloads)
        spec = tmp_path / "schemas" / "c.yaml"
        spec.write_text(text)
        for cmd in SPEC_COMMANDS:
            code, doc = run_json(capsys, cfg, *cmd)
            assert_refused(code, doc, spec, where, cmd)
        spec.unlink()
    assert_canary_alive(canary_db, before)


@pytest.mark.parametrize("role", ["default", "backfill", "up", "down", "not_null"])
def test_change_file_expressions_are_refused_by_expand_and_evolve(
    tmp_path: Path, canary_db: str, capsys: pytest.CaptureFixture[str], role: str
) -> None:
    cfg = project(tmp_path, canary_db)
    # (a blank value is refused by the change-file structure check, before the others are looked at)
    payloads = {k: v for k, v in {**REJECTED, **(NO_SUBQUERY if role == "default" else {})}.items() if v.strip()}
    text, where = change_file(payloads, role)
    cf = tmp_path / "change.yaml"
    cf.write_text(text)
    before = snapshot(canary_db)
    for cmd in CHANGE_COMMANDS:
        code, doc = run_json(capsys, cfg, *cmd, str(cf))
        assert_refused(code, doc, cf, where, cmd)
    assert_canary_alive(canary_db, before)


def test_side_effects_never_run_in_plan_or_dry_runs(
    tmp_path: Path, canary_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """nextval, pg_sleep, lo_import, dblink_exec, query_to_xml … are valid defaults: planned, never run."""
    cfg = project(tmp_path, canary_db)
    text, _ = spec_defaults(UNRUN)
    (tmp_path / "schemas" / "c.yaml").write_text(text)
    cf = tmp_path / "change.yaml"
    cf.write_text(change_file(UNRUN, "default")[0])
    before = snapshot(canary_db)
    start = time.monotonic()
    for cmd in (("plan",), ("apply", "--dry-run"), ("expand", "--dry-run", str(cf)), ("evolve", "--dry-run", str(cf))):
        code, doc = run_json(capsys, cfg, *cmd)
        assert code == 0, (cmd, doc)
    assert time.monotonic() - start < 30  # not one pg_sleep(30)
    assert_canary_alive(canary_db, before)  # sequence, large objects, canary: untouched


def test_legitimate_expressions_work_end_to_end(
    tmp_path: Path, canary_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = project(tmp_path, canary_db)
    text, _ = spec_defaults(LEGIT)
    (tmp_path / "schemas" / "c.yaml").write_text(text)
    code, doc = run_json(capsys, cfg, "apply", "--auto-approve")
    assert code == 0, doc
    code, doc = run_json(capsys, cfg, "plan", "--check")
    assert code == 0 and doc["changes"] == [], [c["description"] for c in doc["changes"]]  # Postgres' spelling of each default matches the spec's
    cf = tmp_path / "change.yaml"
    cf.write_text(change_file(LEGIT, "default")[0])
    code, doc = run_json(capsys, cfg, "evolve", str(cf))
    assert code == 0 and doc["status"] == "succeeded", doc
    with psycopg.connect(canary_db, autocommit=True) as conn:
        conn.execute("INSERT INTO corpus (id) VALUES (1)")
        row = conn.execute("SELECT injection_inside_literal, dollar_literal_with_injection, unicode_escape, "
                           "doubled_quote FROM corpus").fetchone()
        assert row == ("a'; DROP TABLE canary; --", "'); DROP TABLE canary; --", "A", "it's")
        assert conn.execute("SELECT d1 FROM items WHERE id = 1").fetchone() == ("a'; DROP TABLE canary; --",)
        assert conn.execute("SELECT * FROM canary").fetchall() == [(1, "still here")]


def test_evolve_refuses_an_add_column_backfill_naming_file_and_line(
    tmp_path: Path, canary_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """expand honours `add_column.backfill`; evolve adds a column in one ALTER and would silently drop it."""
    cfg = project(tmp_path, canary_db)
    cf = tmp_path / "change.yaml"
    cf.write_text("table: items\noperations:\n  - add_column: {name: extra, type: text, nullable: true,\n"
                  "                   backfill: \"'x'\"}\n")
    before = snapshot(canary_db)
    for cmd in (("evolve", "--dry-run"), ("evolve",)):
        code, doc = run_json(capsys, cfg, *cmd, str(cf))
        assert code == 2, doc
        (p,) = doc["error"]["problems"]
        assert (Path(p["file"]).name, p["key"]) == ("change.yaml", "operations[0].add_column.backfill"), p
        assert p["line"] in (3, 4) and "backfill" in p["message"]
    assert_canary_alive(canary_db, before)
    code, doc = run_json(capsys, cfg, "expand", "--dry-run", str(cf))
    assert code == 0, doc


def test_change_file_type_errors_name_file_line_and_key(
    tmp_path: Path, canary_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    cfg = project(tmp_path, canary_db)
    cf = tmp_path / "change.yaml"
    cf.write_text("table: items\noperations:\n  - add_column: {name: extra, type: integr, nullable: true}\n")
    for cmd in (("evolve", "--dry-run"), ("expand", "--dry-run")):
        code, doc = run_json(capsys, cfg, *cmd, str(cf))
        assert code == 2, doc
        (p,) = doc["error"]["problems"]
        assert (Path(p["file"]).name, p["line"], p["key"]) == ("change.yaml", 3, "operations[0].add_column.type")
        assert "<type>" not in json.dumps(doc)
    # a type Postgres knows but the pipeline cannot carry: evolve names the line too (not "<type map>")
    cf.write_text("table: items\noperations:\n  - add_column: {name: extra, type: tsquery, nullable: true}\n")
    code, doc = run_json(capsys, cfg, "evolve", "--dry-run", str(cf))
    assert code == 2 and doc["error"]["type"] == "UnsupportedTypeError", doc
    (p,) = doc["error"]["problems"]
    assert (Path(p["file"]).name, p["line"], p["key"]) == ("change.yaml", 3, "operations[0].add_column.type")
    assert "no mapping" in p["message"]


def test_plan_table_unknown_is_a_usage_error(tmp_path: Path, canary_db: str,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    cfg = project(tmp_path, canary_db)
    (tmp_path / "schemas" / "c.yaml").write_text(spec_defaults({"legit": "'x'"})[0])
    code, doc = run_json(capsys, cfg, "plan", "--table", "no_such_table")
    assert code == 2 and "no_such_table" in doc["error"]["message"] and doc["error"]["problems"][0]["key"] == "--table"
    code, doc = run_json(capsys, cfg, "plan", "--table", "corpus")
    assert code == 0 and len(doc["changes"]) == 1
    # with --allow-drop-table a table the database has (and no spec lists) may be named
    code, doc = run_json(capsys, cfg, "plan", "--allow-drop-table", "--table", "canary")
    assert code == 0 and [c["kind"] for c in doc["changes"]] == ["drop_table"]


def test_read_only_connections_refuse_writes(tmp_path: Path, canary_db: str) -> None:
    cfg = load_config(project(tmp_path, canary_db + "?options=-c%20search_path%3Dpublic"))
    with database.connect(cfg, read_only=True) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("on",)
        assert conn.execute("SHOW search_path").fetchone() == ("public",)  # the DSN's own options are kept
        with pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
            conn.execute("DROP TABLE canary")
    with database.connect(cfg) as conn:
        assert conn.execute("SHOW default_transaction_read_only").fetchone() == ("off",)
    source = PostgresSource(cfg.database.dsn, read_only=True)  # evolve --dry-run and verify
    with source.connect() as conn, pytest.raises(psycopg.errors.ReadOnlySqlTransaction):
        conn.execute("DELETE FROM canary")
    assert snapshot(canary_db)["canary"] == [(1, "still here")]


def test_evolve_of_a_table_joining_the_pipeline_checks_its_spec(
    tmp_path: Path, canary_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`evolve` without a change file creates pipeline tables from their specs: their defaults pass the same gate."""
    cfg = project(tmp_path, canary_db)
    cfg.write_text(cfg.read_text().replace("public.items", "public.corpus"))
    text, where = spec_defaults(SPEC_PARSE)
    spec = tmp_path / "schemas" / "c.yaml"
    spec.write_text(text)
    before = snapshot(canary_db)
    for cmd in (("evolve", "--dry-run"), ("evolve",)):
        code, doc = run_json(capsys, cfg, *cmd)
        assert_refused(code, doc, spec, where, cmd)
    assert_canary_alive(canary_db, before)


def test_an_expression_is_embedded_as_one_bracketed_operand(
    tmp_path: Path, canary_db: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """`DEFAULT 1 IS NULL` does not parse (a DEFAULT takes a restricted expression); `DEFAULT (1 IS NULL)` does.
    Every checked expression goes into DDL bracketed, in plan/apply and in evolve alike."""
    cfg = project(tmp_path, canary_db)
    (tmp_path / "schemas" / "f.yaml").write_text(
        "table: flags\ncolumns:\n  - {name: id, type: integer, primary_key: true}\n"
        "  - {name: b, type: boolean, nullable: true, default: \"1 IS NULL\"}\n")
    code, doc = run_json(capsys, cfg, "apply", "--auto-approve")
    assert code == 0, doc
    code, doc = run_json(capsys, cfg, "plan", "--check")
    assert code == 0 and doc["changes"] == [], doc
    cf = tmp_path / "change.yaml"
    cf.write_text("table: items\noperations:\n  - add_column: {name: f, type: boolean, nullable: true, "
                  "default: \"c0 IS NULL OR true\"}\n")
    code, doc = run_json(capsys, cfg, "evolve", str(cf))
    assert code == 2 and 'column "c0" does not exist' in doc["error"]["message"], doc  # a default reads no column
    cf.write_text("table: items\noperations:\n  - add_column: {name: f, type: boolean, nullable: true, "
                  "default: \"1 IS NULL\"}\n")
    for cmd in (("evolve",), ("expand",)):
        code, doc = run_json(capsys, cfg, *cmd, str(cf))
        if cmd == ("expand",):
            assert code == 2 and "already exists" in doc["error"]["message"], doc  # evolve added it
        else:
            assert code == 0 and doc["status"] == "succeeded", doc
    with psycopg.connect(canary_db, autocommit=True) as conn:
        assert conn.execute("SELECT DISTINCT f FROM items").fetchall() == [(False,)]
