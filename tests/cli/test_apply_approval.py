"""`apply` asks before it changes anything (issue 18, item 4): on a real terminal (a pseudo-terminal) it shows the
plan and applies only on `yes`; without a terminal it refuses unless `--auto-approve` (exit 2, nothing changed)."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from tests.cli.test_schema_cli import GOOD, project
from tests.support import cli_argv, run_cli, run_on_terminal


def _table_exists(dsn: str) -> bool:
    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass('public.t')").fetchone() != (None,)


def _on_a_terminal(cfg: str, answer: str) -> tuple[int, str]:
    """`apply` with stdin and stderr on a pseudo-terminal, answering the prompt once it shows."""
    return run_on_terminal(cli_argv("apply", config=cfg), terminal=("stdin", "stderr"),
                           answer=(b"Type 'yes' to apply", answer))


def test_without_a_terminal_apply_needs_auto_approve(tmp_path: Path, fresh_dsn: str,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": GOOD})
    r = run_cli(capsys, "--config", cfg, "apply")
    assert r.code == 2 and "--auto-approve" in r.err and "not one" in r.err
    assert not _table_exists(fresh_dsn)
    j = run_cli(capsys, "--config", cfg, "--format", "json", "apply")
    assert j.code == 2 and j.doc["error"]["problems"][0]["key"] == "--auto-approve"
    assert run_cli(capsys, "--config", cfg, "apply", "--dry-run").code == 0  # a dry run changes nothing: no ask
    assert not _table_exists(fresh_dsn)
    assert run_cli(capsys, "--config", cfg, "apply", "--auto-approve").code == 0
    assert _table_exists(fresh_dsn)


def test_on_a_terminal_apply_shows_the_plan_and_asks(tmp_path: Path, fresh_dsn: str) -> None:
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": GOOD})
    code, shown = _on_a_terminal(cfg, "no")
    assert code == 3, shown
    assert 'CREATE TABLE "public"."t"' in shown and "not approved" in shown
    assert not _table_exists(fresh_dsn)
    code, shown = _on_a_terminal(cfg, "yes")
    assert code == 0, shown
    assert _table_exists(fresh_dsn)
