"""`evolve --resume/--rollback` on a real pipeline (issue 12 items 2 and 5, issue 14 item 5): dry runs of both
change no layer and no record (snapshots of every layer before and after, Dagster's dry runs too); a rolled-back
run is never resumed; two processes never work on one run (the second is refused naming the holder); SIGINT and
SIGTERM mid-run end in one JSON document and a run that --rollback / --resume completes."""

from __future__ import annotations

import json
import signal
import subprocess
from typing import Any

import httpx
import psycopg
import pytest

from migrate_assets.jobs.evolve import evolve_pipeline, rollback_evolution
from tests.cdc import live_connector_config, poll_until
from tests.evolution.faults import evolve_held_in_ddl, run_steps
from tests.jobs.conftest import project_for
from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import CliResult, cli_argv, run_cli_process, table_columns

# many quick lock-timeout retries keep a DDL (or an inverse DDL) busy while the table is locked
pytestmark = pytest.mark.pipeline(settings={"retries": {"attempts": 60, "backoff": "0.1s", "max_backoff": "0.2s"},
                                            "lock_timeout": "200ms"})


def cli(p: Pipeline, *args: str) -> CliResult:
    return run_cli_process(*args, config=p.config_path, fmt="json")


def snapshot(p: Pipeline) -> dict[str, Any]:
    """Every layer as plain data: source columns, every registry version of the subject, the Iceberg schema id,
    snapshot id and fields, the connector's config and status, and every stored run record."""
    reg = httpx.get(f"{p.registry_url}/subjects/{p.subject}/versions", timeout=10).json()
    table = p.iceberg()
    status = httpx.get(f"{p.connect_url}/connectors/{p.name}/status", timeout=10).json()
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('public.migrate_assets_evolutions')").fetchone()
        runs = conn.execute("SELECT run_id, status, steps::text, updated_at FROM migrate_assets_evolutions "
                            "ORDER BY run_id").fetchall() if exists and exists[0] else []
    current = table.current_snapshot()
    return {
        "source": table_columns(p.dsn, f"public.{p.table}"),
        "registry_versions": reg,
        "iceberg": (table.metadata.current_schema_id, current.snapshot_id if current else None,
                    [(f.field_id, f.name, str(f.field_type)) for f in table.schema().fields]),
        "connector": (live_connector_config(p.connect_url, p.name),
                      status["connector"]["state"], [t["state"] for t in status["tasks"]]),
        "runs": runs,
    }


def evolved(p: Pipeline) -> str:
    r = cli(p, "evolve", str(change_file(p.tmp, ADD_NOTE)))
    assert r.code == 0, r.err + r.out
    return str(r.doc["run_id"])


def test_dry_runs_of_rollback_and_resume_change_nothing_and_an_undone_run_is_not_resumed(pipeline: Pipeline) -> None:
    p = pipeline
    run_id = evolved(p)
    before = snapshot(p)
    dry = cli(p, "evolve", "--rollback", run_id, "--dry-run")
    assert dry.code == 0, dry.err
    assert dry.doc["status"] == "dry_run" and any("undo" in a for a in dry.doc["dry_run_actions"])
    resume_dry = cli(p, "evolve", "--resume", run_id, "--dry-run")
    assert resume_dry.code == 0 and resume_dry.doc["dry_run_actions"] == []  # a succeeded run has nothing to do
    resources = {"project": project_for(p.config_path)}
    job_dry = rollback_evolution.execute_in_process(
        run_config={"ops": {"rollback_run": {"config": {"run_id": run_id, "dry_run": True}}}}, resources=resources)
    assert job_dry.success and job_dry.output_for_node("rollback_run")["status"] == "dry_run"
    plan_dry = evolve_pipeline.execute_in_process(
        run_config={"ops": {"preflight": {"config": {"change_yaml": ADD_NOTE.replace("note", "note2"),
                                                     "dry_run": True}}}}, resources=resources)
    assert plan_dry.success
    assert snapshot(p) == before  # every layer, and the run records (updated_at included)

    undone = cli(p, "evolve", "--rollback", run_id)
    assert undone.code == 0 and undone.doc["status"] == "rolled_back", undone.err
    after_undo = snapshot(p)
    for args in (["--resume", run_id], ["--resume", run_id, "--dry-run"]):
        r = cli(p, "evolve", *args)
        assert r.code == 3, r
        assert r.doc["error"]["type"] == "RunNotResumableError" and "rolled_back" in r.doc["error"]["message"]
    assert snapshot(p) == after_undo  # the refused resume re-applied nothing


def test_resume_dry_run_after_a_crash_changes_nothing_then_resume_finishes(pipeline: Pipeline) -> None:
    p = pipeline
    with evolve_held_in_ddl(p) as (proc, run_id):
        proc.kill()
        proc.communicate(timeout=10)
    before = snapshot(p)
    dry = cli(p, "evolve", "--resume", run_id, "--dry-run")
    assert dry.code == 0, dry.err
    assert [a.split(":")[0] for a in dry.doc["dry_run_actions"]] == ["ddl", "connector", "verify"]
    rb_dry = cli(p, "evolve", "--rollback", run_id, "--dry-run")
    assert rb_dry.code == 0 and rb_dry.doc["status"] == "dry_run"
    assert snapshot(p) == before
    done = cli(p, "evolve", "--resume", run_id)
    assert done.code == 0 and done.doc["status"] == "succeeded", done.err + done.out


def _holder_pid(dsn: str, run_id: str) -> int | None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("SELECT l.pid FROM pg_locks l JOIN pg_stat_activity a USING (pid) WHERE "
                           "l.locktype = 'advisory' AND l.granted AND a.application_name = %s",
                           (f"migrate-assets run {run_id}",)).fetchone()
    return int(row[0]) if row else None


def test_a_second_rollback_or_resume_of_a_run_in_use_is_refused_naming_the_holder(pipeline: Pipeline) -> None:
    p = pipeline
    run_id = evolved(p)
    # the first rollback's inverse DDL must outlast two polls and two whole CLI runs: the module's 60 retries
    # (~20 s) could run out on a loaded machine, the most the config allows (100) give ~35 s; releasing the lock
    # ends the wait anyway
    p.write_config(retries={"attempts": 100, "backoff": "0.1s", "max_backoff": "0.2s"}, lock_timeout="200ms")
    holder = psycopg.connect(p.dsn)
    holder.execute("SELECT count(*) FROM public.customers")  # the inverse DDL retries its lock timeout meanwhile
    try:
        first = subprocess.Popen(cli_argv("evolve", "--rollback", run_id, config=p.config_path, fmt="json"),
                                 stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        pid = poll_until(lambda: _holder_pid(p.dsn, run_id), 60, "the first rollback holding the run's lock")
        poll_until(lambda: run_steps(p.dsn)[run_id].get("ddl") == "compensating", 60, "the inverse DDL running")
        for args in (["--rollback", run_id], ["--resume", run_id]):
            second = cli(p, "evolve", *args)
            assert second.code == 3, second
            err = second.doc["error"]
            assert err["type"] == "RunLockedError" and f"pid {pid}" in err["holder"]
            assert f"migrate-assets run {run_id}" in err["holder"] and "client" in err["holder"]
        assert run_steps(p.dsn)[run_id]["ddl"] == "compensating"  # the refused ones touched nothing
    finally:
        holder.rollback()
        holder.close()
    out, err = first.communicate(timeout=120)
    assert first.returncode == 0, err
    assert json.loads(out)["status"] == "rolled_back"
    assert "note" not in [c[0] for c in table_columns(p.dsn, "public.customers")]


@pytest.mark.parametrize(("sig", "code", "then"), [(signal.SIGINT, 130, "--rollback"),
                                                   (signal.SIGTERM, 143, "--resume")])
def test_signal_mid_evolve_ends_in_one_document_and_a_run_that_finishes(pipeline: Pipeline, sig: int, code: int,
                                                                        then: str) -> None:
    p = pipeline
    before = snapshot(p)
    with evolve_held_in_ddl(p) as (proc, run_id):
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=60)
    assert proc.returncode == code, err
    doc = json.loads(out)  # exactly one document
    assert doc["run_id"] == run_id and doc["interrupted"] == signal.Signals(sig).name
    assert doc["run_status"] == "interrupted" and doc["record"] == {"saved": True, "spill_file": None}
    assert doc["layers"]["schema_registry"] == doc["layers"]["lakehouse"] == "done"
    assert doc["layers"]["source_db"] == "running" and then in doc["next"]
    assert run_steps(p.dsn)[run_id]["ddl"] == "running"
    r = cli(p, "evolve", then, run_id)
    assert r.code == 0, r.err + r.out
    after = snapshot(p)
    if then == "--rollback":
        assert r.doc["status"] == "rolled_back"
        assert after["source"] == before["source"] and after["iceberg"][2] == before["iceberg"][2]
        assert after["connector"] == before["connector"]
        assert after["registry_versions"] == before["registry_versions"]
    else:
        assert r.doc["status"] == "succeeded" and [s["status"] for s in r.doc["steps"]] == ["done"] * 5
        assert "note" in [c[0] for c in after["source"]]


def test_resume_probes_steps_whose_effect_landed_before_the_crash(pipeline: Pipeline) -> None:
    """issue 14 item 5 on the real stack: the kill lands between a layer's commit and the saved `done`."""
    p = pipeline
    with evolve_held_in_ddl(p) as (proc, run_id):
        proc.kill()
        proc.communicate(timeout=10)
    versions = httpx.get(f"{p.registry_url}/subjects/{p.subject}/versions", timeout=10).json()
    schema_id = p.iceberg().metadata.current_schema_id
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        (steps,) = conn.execute("SELECT steps FROM migrate_assets_evolutions WHERE run_id = %s", (run_id,)).fetchone()
        for s in steps:
            if s["id"] in ("registry", "lakehouse"):
                s["status"], s["result"] = "running", {}  # as if the process died before saving them
        conn.execute("UPDATE migrate_assets_evolutions SET steps = %s WHERE run_id = %s", (json.dumps(steps), run_id))
    r = cli(p, "evolve", "--resume", run_id)
    assert r.code == 0, r.err + r.out
    assert r.doc["status"] == "succeeded" and [s["status"] for s in r.doc["steps"]] == ["done"] * 5
    # probed as landed, not registered or committed a second time
    assert httpx.get(f"{p.registry_url}/subjects/{p.subject}/versions", timeout=10).json() == versions
    assert p.iceberg().metadata.current_schema_id == schema_id
    assert cli(p, "verify").code == 0
