"""CLI conventions (issue 18, item 4): global flags before or after the sub-command, `--version`, `runs list` /
`runs show RUN` over the real run store, and no HTTP client request logs unless `-v`."""

from __future__ import annotations

import logging
from pathlib import Path

import psycopg
import pytest

from migrate_assets import __version__
from migrate_assets.cli import build_parser
from tests.support import run_cli, run_cli_process

CHANGE = "table: public.items\noperations:\n  - add_column: {name: tier, type: text, nullable: true}\n"


@pytest.fixture
def project(tmp_path: Path, fresh_dsn: str) -> tuple[Path, Path]:
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database:\n  dsn: {fresh_dsn}\nlock_timeout: 1s\npipelines:\n  - table: public.items\n")
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, note text)")
    change = tmp_path / "add_tier.yaml"
    change.write_text(CHANGE)
    return cfg, change


def test_runs_list_and_show(capsys: pytest.CaptureFixture[str], project: tuple[Path, Path]) -> None:
    cfg, change = project
    empty = run_cli(capsys, "runs", "list", config=cfg, fmt="json")
    assert empty.code == 0 and empty.doc == {"runs": []}  # no run table yet: no runs, nothing created
    assert "no evolution runs" in run_cli(capsys, "runs", "list", config=cfg).out

    ran = run_cli(capsys, "evolve", str(change), config=cfg, fmt="json")
    assert ran.code == 0, ran.out + ran.err
    run_id = ran.doc["run_id"]

    listed = run_cli(capsys, "runs", "list", config=cfg, fmt="json")
    assert listed.code == 0
    [row] = listed.doc["runs"]
    assert row["run_id"] == run_id and row["table"] == "public.items" and row["status"] == "succeeded"
    assert row["steps_done"] == row["steps"] > 0 and row["created_at"]

    # flags after the sub-command, and a unique prefix of the id
    shown = run_cli(capsys, "runs", "show", run_id[:8], "--format", "json", "--config", str(cfg))
    assert shown.code == 0, shown.err
    assert shown.doc["run_id"] == run_id and shown.doc["status"] == "succeeded"
    assert {s["status"] for s in shown.doc["steps"]} <= {"done", "skipped"}
    assert any(s["layer"] == "source_db" and s["status"] == "done" for s in shown.doc["steps"])
    assert all(isinstance(s["seconds"], int | float) for s in shown.doc["steps"])
    assert "next" not in shown.doc

    text = run_cli(capsys, "runs", "show", run_id, config=cfg)
    assert text.code == 0 and f"run {run_id}: succeeded" in text.out and "source_db" in text.out
    assert "True" not in text.out and "None" not in text.out
    md = run_cli(capsys, "runs", "list", config=cfg, fmt="markdown")
    assert md.code == 0 and md.out.startswith("| run |") and run_id in md.out

    other = run_cli(capsys, "runs", "list", "--table", "public.other", config=cfg, fmt="json")
    assert other.doc == {"runs": []}
    missing = run_cli(capsys, "runs", "show", "nope", config=cfg, fmt="json")
    assert missing.code == 2 and "no evolution run 'nope'" in missing.doc["error"]["message"]


def test_global_flags_after_the_sub_command(capsys: pytest.CaptureFixture[str], project: tuple[Path, Path]) -> None:
    cfg, change = project
    before = run_cli(capsys, "--format", "json", "--config", str(cfg), "evolve", str(change), "--dry-run")
    after = run_cli(capsys, "evolve", str(change), "--dry-run", "--format", "json", "--config", str(cfg))
    mixed = run_cli(capsys, "--format", "text", "evolve", str(change), "--dry-run", "--format=json",
                    f"--config={cfg}")
    for r in (before, after, mixed):
        assert r.code == 0, r.out + r.err
        assert r.doc["status"] == "dry_run" and r.doc["table"] == "public.items"
    (cfg.parent / "migrations").mkdir()
    nested = run_cli(capsys, "migrations", "status", "--format", "json", "-v", "--config", str(cfg))
    assert nested.code == 0 and "pending" in nested.doc
    bad = run_cli(capsys, "runs", "list", "--format", "yaml")
    assert bad.code == 2 and "invalid choice" in bad.err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    r = run_cli(capsys, "--version")
    assert r.code == 0 and r.out.strip() == f"migrate-assets {__version__}"
    j = run_cli(capsys, "--version", "--format", "json")
    assert j.code == 0 and j.doc == {"version": __version__}
    p = run_cli_process("--version", entry_point=True)
    assert p.code == 0 and __version__ in p.out
    # `--version` has its own dest: `migrations run V` keeps its positional `version`
    args = build_parser().parse_args(["migrations", "run", "3"])
    assert args.version == 3 and args.show_version is False


def test_http_request_logs_only_with_verbose(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "--version").code == 0
    for name in ("httpx", "httpx2", "httpcore2", "confluent_kafka"):
        assert logging.getLogger(name).getEffectiveLevel() == logging.WARNING, name
        assert not logging.getLogger(name).isEnabledFor(logging.INFO)
    assert run_cli(capsys, "--version", "-v").code == 0
    assert logging.getLogger("httpx2").isEnabledFor(logging.DEBUG)
