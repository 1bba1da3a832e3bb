"""`evolve --dry-run` reads like `plan` (issue 18 item 5): each step's hazards as `plan` tags the same DDL, the DDL
and its inverse SQL, the registry subjects it touches (the key subject too when a primary-key column changes),
no timings for steps that did not run; Markdown puts SQL in fenced blocks (never in table cells) for every
command; text shows no Python values."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from migrate_assets.cli.output import Result, emit_result, fenced, generic_markdown
from migrate_assets.schema import hazards
from migrate_assets.schema.types import parse_type
from tests.pipeline import Pipeline, change_file
from tests.support import run_cli

PK_TO_BIGINT = "table: public.customers\noperations:\n  - change_type: {column: id, to_type: bigint}\n"
PY_VALUES = re.compile(r"\b(True|False|None)\b|=\s*(True|False|None)\b")


def no_sql_in_cells(markdown: str) -> None:
    for line in markdown.splitlines():
        if line.startswith("|"):
            assert "ALTER TABLE" not in line and "CREATE TABLE" not in line, line


def test_a_primary_key_widening_shows_its_hazards_sql_inverse_and_both_subjects(
        pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    cf = str(change_file(pipeline.tmp, PK_TO_BIGINT))
    # what `plan` tags an int → bigint retype with: the declarative side's own rule
    want = [str(h) for h in hazards.alter_type(parse_type("integer"), parse_type("bigint"))]
    assert "rewrites_table" in want and "access_exclusive_lock" in want

    r = run_cli(capsys, "evolve", cf, "--dry-run", config=pipeline.config_path, fmt="json")
    assert r.code == 0, r.err
    doc = json.loads(r.out)
    assert doc["status"] == "dry_run"
    ddl = next(s for s in doc["steps"] if s["layer"] == "source_db")
    assert ddl["hazards"] == want
    assert 'ALTER COLUMN "id" TYPE bigint' in ddl["sql"]
    assert ddl["inverse_sql"] and 'ALTER COLUMN "id" TYPE integer' in ddl["inverse_sql"]
    reg = next(s for s in doc["steps"] if s["layer"] == "schema_registry")
    assert reg["subjects"] == [pipeline.subject, pipeline.subject.removesuffix("-value") + "-key"]

    r = run_cli(capsys, "evolve", cf, "--dry-run", config=pipeline.config_path)
    assert r.code == 0, r.err
    text = r.out
    assert "rewrites_table" in text and "access_exclusive_lock" in text
    assert 'ALTER COLUMN "id" TYPE bigint' in text and 'ALTER COLUMN "id" TYPE integer' in text
    assert pipeline.subject in text and pipeline.subject.removesuffix("-value") + "-key" in text
    assert "(0.00s)" not in text and "s)" not in text.split("dry run", 1)[-1].split("\n", 1)[0]
    assert "no run was recorded" in text and doc["run_id"] not in text  # a dry run's id is never stored
    assert not PY_VALUES.search(text), text

    r = run_cli(capsys, "evolve", cf, "--dry-run", config=pipeline.config_path, fmt="markdown")
    assert r.code == 0, r.err
    md = r.out
    assert "```sql\n" in md and 'ALTER COLUMN "id" TYPE bigint' in md and 'ALTER COLUMN "id" TYPE integer' in md
    assert "rewrites_table" in md and "(0.00s)" not in md
    no_sql_in_cells(md)
    assert not PY_VALUES.search(md), md

    # a column that is not in the key: the value subject only, and an ADD COLUMN's own hazard
    add = str(change_file(pipeline.tmp, "table: public.customers\noperations:\n"
                                        "  - add_column: {name: note, type: text, nullable: true}\n", "add.yaml"))
    r = run_cli(capsys, "evolve", add, "--dry-run", config=pipeline.config_path, fmt="json")
    doc = json.loads(r.out)
    assert next(s for s in doc["steps"] if s["layer"] == "schema_registry")["subjects"] == [pipeline.subject]
    assert next(s for s in doc["steps"] if s["layer"] == "source_db")["hazards"] == ["access_exclusive_lock"]


def test_expand_dry_run_in_markdown_is_markdown_not_its_text(
        pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    cf = str(change_file(pipeline.tmp, "table: public.customers\noperations:\n"
                                       "  - add_column: {name: note2, type: text, nullable: true}\n"))
    text = run_cli(capsys, "expand", cf, "--dry-run", config=pipeline.config_path)
    md = run_cli(capsys, "expand", cf, "--dry-run", config=pipeline.config_path, fmt="markdown")
    assert text.code == md.code == 0, (text.err, md.err)
    assert md.out != text.out and "**" in md.out
    assert "```sql\n" in md.out and "ALTER TABLE" in md.out
    no_sql_in_cells(md.out)
    status = run_cli(capsys, "expand-status", cf, config=pipeline.config_path)
    assert status.code == 0 and "trigger" in status.out, status.err
    assert not PY_VALUES.search(status.out), status.out  # "absent, disabled", not present=False


def test_a_result_without_a_markdown_renderer_prints_markdown(capsys: pytest.CaptureFixture[str]) -> None:
    data = {"table": "public.t", "ok": True, "sql": ["ALTER TABLE t ADD a int", "SELECT '```'"],
            "items": [{"name": "a", "sql": "CREATE TABLE x ()"}], "nested": {"k": [1]}}
    assert emit_result(Result(data, text=lambda d: "TEXT OUTPUT"), "markdown") == 0
    out = capsys.readouterr().out
    assert "TEXT OUTPUT" not in out and out.strip() == generic_markdown(data).strip()
    assert "- **ok**: yes" in out and "````sql\n" in out  # a fence longer than the SQL's own backticks
    no_sql_in_cells(out)
    assert fenced("a ``` b").startswith("````sql\n") and fenced("x").endswith("\n```")


def test_plan_markdown_puts_sql_in_fenced_blocks(tmp_path: Path, fresh_dsn: str,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    from tests.cli.test_schema_cli import GOOD, project

    cfg = project(tmp_path, fresh_dsn, {"t.yaml": GOOD})
    code, out, _ = run_cli(capsys, "--config", cfg, "plan", "--format", "markdown")
    assert code == 0 and "| table | kind |" in out
    assert '```sql\nCREATE TABLE "public"."t"' in out and "```sql\nDROP TABLE" in out  # the SQL and its inverse
    no_sql_in_cells(out)
