"""kill -9 of a running `evolve` process, then `--rollback RUN` or `--resume RUN` from another process."""

from __future__ import annotations

import json
import os
import signal

import psycopg
import pytest

from tests.evolution.faults import evolve_held_in_ddl
from tests.pipeline import Pipeline
from tests.support import CliResult, run_cli_process

# many quick lock-timeout retries keep the DDL step busy long enough to be killed in it
pytestmark = pytest.mark.pipeline(settings={"retries": {"attempts": 50, "backoff": "0.1s", "max_backoff": "0.2s"},
                                            "lock_timeout": "200ms"})


def cli(p: Pipeline, *args: str) -> CliResult:
    return run_cli_process(*args, config=p.config_path, fmt="json")


def kill_after_lakehouse(p: Pipeline) -> str:
    """Start evolve with the table locked, kill -9 it once the lakehouse step is persisted as done."""
    with evolve_held_in_ddl(p, fmt=None) as (proc, run_id):
        os.kill(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)
    assert proc.returncode == -signal.SIGKILL
    return run_id


def test_rollback_after_kill(pipeline: Pipeline) -> None:
    before = pipeline.layer_state()
    run_id = kill_after_lakehouse(pipeline)
    mid = pipeline.layer_state()
    assert mid["iceberg"] != before["iceberg"] and mid["registry"][0] == before["registry"][0] + 1
    assert mid["db"] == before["db"]  # the killed DDL transaction never committed
    r = cli(pipeline, "evolve", "--rollback", run_id)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["status"] == "rolled_back" and res["run_id"] == run_id
    after = pipeline.layer_state()
    assert after["iceberg"] == before["iceberg"] and after["db"] == before["db"]
    assert after["registry"][0] == before["registry"][0]


def test_resume_after_kill(pipeline: Pipeline) -> None:
    run_id = kill_after_lakehouse(pipeline)
    with pipeline.writer(rate=100) as w:
        r = cli(pipeline, "evolve", "--resume", run_id)
        assert r.code == 0, r.err + r.out
    res = json.loads(r.out)
    assert res["status"] == "succeeded"
    assert [s["status"] for s in res["steps"]] == ["done"] * 5
    assert "note" in {f.name for f in pipeline.iceberg().schema().fields}
    v = cli(pipeline, "verify")
    assert v.code == 0, v.out
    pipeline.assert_no_event_lost(w.ids)


def test_rollback_probes_steps_whose_effect_landed_before_the_crash(pipeline: Pipeline) -> None:
    """The kill can land between a layer's commit and the saga persisting it: --rollback must look."""
    before = pipeline.layer_state()
    run_id = kill_after_lakehouse(pipeline)
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        (steps,) = conn.execute("SELECT steps FROM migrate_assets_evolutions WHERE run_id = %s", (run_id,)).fetchone()
        rewritten = [s for s in steps if s["id"] in ("registry", "lakehouse")]
        assert len(rewritten) == 2, steps  # else this would quietly test a plain rollback
        for s in rewritten:
            s["status"], s["result"] = "running", {}  # as if the process died before saving them
        conn.execute("UPDATE migrate_assets_evolutions SET steps = %s WHERE run_id = %s", (json.dumps(steps), run_id))
    r = cli(pipeline, "evolve", "--rollback", run_id)
    assert r.code == 0, r.err
    res = json.loads(r.out)
    assert res["status"] == "rolled_back"
    by = {s["layer"]: s for s in res["steps"]}
    assert by["lakehouse"]["status"] == "compensated" and by["schema_registry"]["status"] == "compensated"
    after = pipeline.layer_state()
    assert after["iceberg"] == before["iceberg"] and after["registry"][0] == before["registry"][0]
