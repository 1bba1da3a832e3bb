"""Specs stay true after `evolve --resume RUN` (issue 16 follow-up): an evolve killed (-9) inside its DDL step is
resumed from another process; the resumed run writes its change back into the spec as a plain evolve does — only
the changed column, comments kept — and `plan --check` is 0. Real stack; the unit half reads a stored plan's
operations (renames chained, a drop after a rename)."""

from __future__ import annotations

import os
import signal

import pytest

from migrate_assets.app.spec_writeback import touched_by
from tests.app.test_schema_apply_stack import SPEC
from tests.evolution.faults import evolve_held_in_ddl
from tests.pipeline import Pipeline
from tests.support import column_names, run_cli, run_cli_process

#: many quick lock-timeout retries keep the DDL step busy long enough to be killed in it (as tests/evolution/test_crash)
SETTINGS = {"retries": {"attempts": 50, "backoff": "0.1s", "max_backoff": "0.2s"}, "lock_timeout": "200ms"}


def test_a_resumed_evolve_writes_its_change_back_into_the_spec(pipeline: Pipeline,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    d = pipeline.tmp / "schemas"
    d.mkdir()
    spec = d / "customers.yaml"
    spec.write_text(SPEC)
    pipeline.write_config(schemas=[str(d)], **SETTINGS)
    assert run_cli(capsys, "plan", "--check", config=pipeline.config_path).code == 0
    with evolve_held_in_ddl(pipeline, fmt=None) as (proc, run_id):
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    assert spec.read_text() == SPEC  # the killed process wrote nothing back
    r = run_cli_process("evolve", "--resume", run_id, config=pipeline.config_path, fmt="json")
    assert r.code == 0, r.err + r.out
    assert r.doc["status"] == "succeeded", r.doc
    assert r.doc["spec"]["status"] == "written", r.doc["spec"]
    assert "note" in column_names(pipeline.dsn, "public.customers")
    assert spec.read_text() == SPEC + "  - {name: note, type: text, nullable: true}\n"  # comments kept
    assert run_cli(capsys, "plan", "--check", config=pipeline.config_path).code == 0
    again = run_cli_process("evolve", "--resume", run_id, config=pipeline.config_path, fmt="json")
    assert again.code == 0 and again.doc["spec"]["status"] == "unchanged", again.doc  # nothing left to write


def test_a_stored_plans_operations_name_the_columns_it_changed() -> None:
    touched, dropped, renames = touched_by([
        {"add_column": {"name": "note", "type": "text", "nullable": True}},
        {"rename_column": {"from": "a", "to": "b"}},
        {"rename_column": {"from": "b", "to": "c"}},
        {"change_type": {"column": "amount", "to_type": "bigint"}},
        {"rename_column": {"from": "x", "to": "y"}},
        {"drop_column": {"column": "y"}},
    ])
    assert touched == {"note", "c", "amount"}
    assert dropped == {"x"} and renames == {"a": "c"}
    assert touched_by([{"create_table": {"table": "public.t", "columns": ["id"]}}]) == (set(), set(), {})
