"""`evolve` on a real pipeline (PostgreSQL + Debezium + registry + Iceberg): hostile change-file expressions are
refused before any layer is touched, a volatile default is never run by a dry run, and a legitimate default
that merely *contains* an injection in its literal goes through every layer as text.

One pipeline for the whole file: everything refused is refused in one run per command (all payloads in one file).
"""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from tests.pipeline import Pipeline
from tests.security.conftest import assert_canary_alive, snapshot
from tests.security.corpus import CANARY, CANARY_SEQ, REJECTED, UNRUN
from tests.support import run_cli


def _canary(dsn: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(f"CREATE TABLE {CANARY} (id int PRIMARY KEY, note text)")
        conn.execute(f"INSERT INTO {CANARY} VALUES (1, 'still here')")  # noqa: S608
        conn.execute(f"CREATE SEQUENCE {CANARY_SEQ}")


def _change(tmp: Path, payloads: dict[str, str]) -> tuple[Path, dict[str, int]]:
    lines = ["table: public.customers", "operations:"]
    line_of: dict[str, int] = {}
    for i, (name, text) in enumerate(payloads.items()):
        lines.append(f"  - add_column: {{name: d{i}, type: text, nullable: true, default: {json.dumps(text)}}}")
        line_of[name] = len(lines)
    path = tmp / "change.yaml"
    path.write_text("\n".join(lines) + "\n")
    return path, line_of


def test_evolve_refuses_hostile_expressions_and_never_runs_volatile_ones(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    _canary(pipeline.dsn)
    cfg = pipeline.config_path
    layers, db = pipeline.layer_state(), snapshot(pipeline.dsn)

    hostile = {k: v for k, v in REJECTED.items() if v.strip()}
    cf, line_of = _change(pipeline.tmp, hostile)
    for cmd in (("evolve", "--dry-run"), ("evolve",)):
        r = run_cli(capsys, *cmd, str(cf), config=cfg, fmt="json")
        assert r.code == 2, r.doc
        got = {(p["line"], p["key"]) for p in r.doc["error"]["problems"]}
        assert {(line, f"operations[{i}].add_column.default") for i, line in enumerate(line_of.values())} <= got
    assert pipeline.layer_state() == layers
    assert_canary_alive(pipeline.dsn, db)

    cf, _ = _change(pipeline.tmp, {"nextval": UNRUN["nextval"]})
    r = run_cli(capsys, "evolve", "--dry-run", str(cf), config=cfg, fmt="json")
    assert r.code == 0 and r.doc["status"] == "dry_run", r.doc
    assert pipeline.layer_state() == layers
    assert_canary_alive(pipeline.dsn, db)  # the sequence did not move

    cf, _ = _change(pipeline.tmp, {"literal": "'a''; DROP TABLE canary; --'"})
    r = run_cli(capsys, "evolve", str(cf), config=cfg, fmt="json")
    assert r.code == 0 and r.doc["status"] == "succeeded", r.doc
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO customers (id, name) VALUES (900, 'x')")
        assert conn.execute("SELECT d0 FROM customers WHERE id = 900").fetchone() == ("a'; DROP TABLE canary; --",)
    assert pipeline.row_events(900)[-1]["after"]["d0"] == "a'; DROP TABLE canary; --"
    assert snapshot(pipeline.dsn)["canary"] == [(1, "still here")]
