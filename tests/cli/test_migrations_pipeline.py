"""`migrations up` on the real stack: a migration that would change a pipeline table is refused (exit 3, the
file and table named, no layer changed); with --allow-pipeline-drift it runs and the drift is reported."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.pipeline import Pipeline
from tests.support import column_names, run_cli
from tests.versioned.test_runner import state


def _migrations(p: Pipeline) -> Path:
    d = p.tmp / "migrations"
    d.mkdir()
    (d / "001_audit.up.sql").write_text("CREATE TABLE audit (id bigint PRIMARY KEY);\n")
    (d / "002_note.up.sql").write_text("-- a plain ALTER, as a team would write it\n"
                                       "ALTER TABLE public.customers ADD COLUMN note text;\n")
    p.write_config(migrations=str(d))
    return d


def test_migration_touching_a_pipeline_table_is_refused(pipeline: Pipeline,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _migrations(pipeline)
    before = pipeline.layer_state()
    with pipeline.writer(rate=50) as w:
        ran = run_cli(capsys, "migrations", "up", config=pipeline.config_path)
        assert ran.code == 3, ran
        assert "002_note.up.sql" in ran.err and "public.customers" in ran.err and "column note added" in ran.err
        assert "nothing was changed" in ran.err
    assert pipeline.layer_state() == before  # every layer as it was: database, registry, Iceberg, connector
    assert state(pipeline.dsn) == []  # not even 001 ran
    pipeline.assert_no_event_lost(w.ids)
    ran = run_cli(capsys, "migrations", "up", config=pipeline.config_path, fmt="json")
    assert ran.code == 3
    assert ran.doc["error"]["changes"] == [
        {"file": "002_note.up.sql", "table": "public.customers", "change": "column note added (text)"}]


def test_allowed_drift_runs_and_is_reported_right_after(pipeline: Pipeline,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    _migrations(pipeline)
    ran = run_cli(capsys, "migrations", "up", "--allow-pipeline-drift", config=pipeline.config_path, fmt="json")
    assert ran.code == 0, ran
    doc = ran.doc
    assert [s["file"] for s in doc["steps"]] == ["001_audit.up.sql", "002_note.up.sql"]
    assert doc["pipeline_changes"] == [
        {"file": "002_note.up.sql", "table": "public.customers", "changes": ["column note added (text)"]}]
    assert doc["pipeline_check"]["ms"] >= 0
    [drift] = doc["pipeline_drift"]
    assert drift["table"] == "public.customers" and drift["consistent"] is False
    assert any("note" in d for d in drift["layers"]["schema_registry"]["differences"]), drift
    assert "DRIFT" in ran.err and "002_note.up.sql" in ran.err
    assert column_names(pipeline.dsn, "public.customers")[-1] == "note"
