"""The CLI's output contract on every path (issue 12): with `--format json` stdout holds exactly one JSON
document — for `--help`, an unreachable database, a malformed DSN, and SIGINT/SIGTERM — and no traceback;
text output shows control characters from identifiers escaped, never raw."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from migrate_assets.cli import build_parser
from migrate_assets.cli.output import Result, SafeFormatter, emit_result, safe_text
from tests.cdc import poll_until
from tests.cli.test_migrations_cli import SLOW, blocked_on_gate, gate_closed, project
from tests.support import cli_argv, run_cli, run_cli_process

MARKER = "Zq9secretMARKER"


def _commands() -> list[list[str]]:
    """Every command and sub-command path of the parser."""
    import argparse

    out: list[list[str]] = []

    def walk(parser: argparse.ArgumentParser, path: list[str]) -> None:
        for action in parser._actions:
            if isinstance(action, argparse._SubParsersAction):
                for name, sub in action.choices.items():
                    out.append([*path, name])
                    walk(sub, [*path, name])

    walk(build_parser(), [])
    return out


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _one_document(out: str) -> dict:
    doc = json.loads(out)  # raises if there is anything but one document
    assert isinstance(doc, dict)
    return doc


@pytest.mark.parametrize("path", [[], *_commands()], ids=lambda p: " ".join(p) or "top")
def test_help_in_json_is_one_document(capsys: pytest.CaptureFixture[str], path: list[str]) -> None:
    r = run_cli(capsys, *path, "--help", fmt="json")
    assert r.code == 0
    doc = _one_document(r.out)
    assert doc["command"] == " ".join(["migrate-assets", *path]) and "usage:" in doc["help"]


@pytest.mark.parametrize("args", [["migrations", "status"], ["migrations", "up"], ["migrations", "down"],
                                  ["evolve", "--rollback", "R1"], ["evolve", "--resume", "R1"],
                                  ["evolve", "--rollback", "R1", "--dry-run"]])
def test_unreachable_database_is_one_json_error(tmp_path: Path, args: list[str]) -> None:
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database:\n  dsn: postgresql://u:{MARKER}@127.0.0.1:{_closed_port()}/db\n")
    (tmp_path / "migrations").mkdir()
    r = run_cli_process(*args, config=cfg, fmt="json", timeout=60)
    assert r.code == 1, r
    doc = _one_document(r.out)
    assert doc["exit_code"] == 1 and "unreachable" in doc["error"]["message"]
    assert "Traceback" not in r.err and MARKER not in r.out + r.err


@pytest.mark.parametrize("dsn", [f"postgresql://:{MARKER}%zz@127.0.0.1:1/db", f"postgresql://u:{MARKER}@[::1:1/db",
                                 f"host=127.0.0.1 password={MARKER} sslmode=bogus"])
def test_malformed_dsn_is_one_json_error_without_the_password(tmp_path: Path, dsn: str) -> None:
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(json.dumps({"database": {"dsn": dsn}}))
    (tmp_path / "migrations").mkdir()
    for args in (["migrations", "status"], ["evolve", "--rollback", "R1"]):
        r = run_cli_process(*args, config=cfg, fmt="json", timeout=60)
        assert r.code in (1, 2), r
        doc = _one_document(r.out)
        assert doc["exit_code"] == r.code
        assert "Traceback" not in r.err and MARKER not in r.out + r.err, r


@pytest.mark.parametrize(("sig", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_mid_command_prints_one_json_document(fresh_dsn: str, tmp_path: Path, sig: int, code: int) -> None:
    cfg = project(tmp_path, fresh_dsn, SLOW, lock_wait="60s", lock_timeout="60s")
    with gate_closed(fresh_dsn):
        proc = subprocess.Popen(cli_argv("migrations", "up", config=cfg, fmt="json"), stdout=subprocess.PIPE,
                                stderr=subprocess.PIPE, text=True)
        poll_until(lambda: blocked_on_gate(fresh_dsn), 60, "the run blocked mid-migration")
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    doc = _one_document(out)
    assert doc["exit_code"] == code and doc["error"]["signal"] == signal.Signals(sig).name
    assert "Traceback" not in err


def test_control_characters_are_escaped_in_text_output(fresh_dsn: str, tmp_path: Path) -> None:
    evil = "evil\x1b[2J\x9b\u202e"
    cfg = project(tmp_path, fresh_dsn, {f"001_{evil}.up.sql": "SELECT 1;\n"})
    r = run_cli_process("migrations", "status", config=cfg, timeout=60)
    assert r.code == 0, r
    assert "\x1b" not in r.out and "\x9b" not in r.out and "\u202e" not in r.out
    assert "evil\\x1b[2J\\x9b\\u202e" in r.out
    j = run_cli_process("migrations", "status", config=cfg, fmt="json", timeout=60)
    assert j.out.isascii() and "\x1b" not in j.out  # JSON escapes them itself
    assert _one_document(j.out)["pending"][0]["description"] == evil  # and keeps the name exact


def test_safe_text_escapes_and_keeps_layout(capsys: pytest.CaptureFixture[str]) -> None:
    import logging

    line = SafeFormatter("%(message)s").format(logging.makeLogRecord({"msg": "table %s", "args": ("a\x1b[2Jb",)}))
    assert line == "table a\\x1b[2Jb"
    assert safe_text("a\tb\nc") == "a\tb\nc"
    assert safe_text("t\x1b]0;pwned\x07\x7f") == "t\\x1b]0;pwned\\x07\\x7f"
    assert safe_text("ünïcødé 表") == "ünïcødé 表"
    emit_result(Result({"t": "x\x1bq"}, text=lambda d: d["t"]), "text")
    assert capsys.readouterr().out == "x\\x1bq\n"
