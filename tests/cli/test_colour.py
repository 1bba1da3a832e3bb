"""Colour on a terminal only (issue 18, item 4): verdict words bold and coloured when stdout is a (pseudo-)
terminal, plain in a pipe, with `NO_COLOR` set or `TERM=dumb`."""

from __future__ import annotations

import os
import pty
import subprocess
from pathlib import Path

import psycopg
import pytest

from migrate_assets.cli.style import RED, RESET, colourise
from tests.cli.test_schema_cli import project
from tests.support import cli_argv, run_on_terminal

SPEC = "table: t\ncolumns:\n  - {name: id, type: integer, primary_key: true}\n"  # drops `email`: breaking


def _plan_on_a_terminal(cfg: str, env: dict[str, str]) -> str:
    return run_on_terminal(cli_argv("plan", config=cfg), terminal=("stdout",), env=env)[1]


def test_verdicts_coloured_on_a_terminal_only(tmp_path: Path, fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE t (id integer PRIMARY KEY, email text)")
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": SPEC})
    env = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "TERM")}
    shown = _plan_on_a_terminal(cfg, env)
    assert f"{RED}BREAKING{RESET}" in shown, shown
    plain = _plan_on_a_terminal(cfg, {**env, "NO_COLOR": "1"})
    assert "BREAKING" in plain and "\x1b[" not in plain
    assert "\x1b[" not in _plan_on_a_terminal(cfg, {**env, "TERM": "dumb"})
    piped = subprocess.run(cli_argv("plan", config=cfg), capture_output=True, text=True, env=env, timeout=60)
    assert "BREAKING" in piped.stdout and "\x1b[" not in piped.stdout


def test_colourise_needs_a_terminal(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.delenv("TERM", raising=False)
    master, slave = pty.openpty()
    with open(slave, "w") as tty, open(tmp_path / "f", "w") as file:
        assert colourise("a BREAKING b", tty) == f"a {RED}BREAKING{RESET} b"
        assert colourise("NON-BREAKING xBREAKING", tty) == "NON-BREAKING xBREAKING"  # whole words only
        assert colourise("a BREAKING b", file) == "a BREAKING b"
        monkeypatch.setenv("NO_COLOR", "1")
        assert colourise("a BREAKING b", tty) == "a BREAKING b"
    os.close(master)
