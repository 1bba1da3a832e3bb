"""Every evolution step failing for real, under a steady writer: completed layers are compensated in reverse
order, every layer is back to its pre-change schema, verify is consistent again and no CDC event is lost.

A layer that cannot be undone (or asked) yet leaves the run `failed` (`rollback_failed` in the store) with a
`pending` compensation, never a `rolled_back` that hides a change: a later `evolve --rollback RUN` finishes it —
the registry version waits until the connector has emitted the rows written in the new shape."""

from __future__ import annotations

import os
import signal

import psycopg

from migrate_assets.evolution.actions import Bounds
from tests.cdc import connector_running, poll_until
from tests.conftest import Service
from tests.evolution.faults import run_evolve
from tests.pipeline import ADD_NOTE, Pipeline, PipelineFactory
from tests.support import run_cli_process


def _settle_and_check(p: Pipeline, before: dict, writer_ids: list[int]) -> None:
    after = p.layer_state()
    assert after["db"] == before["db"]
    assert after["registry"][0] == before["registry"][0]  # latest version back to the one before
    assert after["iceberg"] == before["iceberg"]
    assert after["connector"] == before["connector"]
    p.assert_no_event_lost(writer_ids)


def _registry_pending_then_rollback(p: Pipeline, before: dict, res: dict, writer_ids: list[int]) -> None:
    """The connector could not drain the rows written in the new shape during the undo: every other layer is
    back, the registry keeps our version for now and the run is not `rolled_back`; once the connector runs, a
    later `--rollback` deletes the version and the run is rolled back."""
    assert res["status"] == "failed" and res["run_status"] == "rollback_failed"
    reg = _layers(res)["schema_registry"]
    assert reg["status"] == "compensation_failed" and reg["compensation"].startswith("pending: not undoable yet")
    assert "--rollback" in res["next"]
    mid = p.layer_state()
    assert mid["db"] == before["db"] and mid["iceberg"] == before["iceberg"]
    assert mid["registry"][0] == before["registry"][0] + 1
    later = run_cli_process("evolve", "--rollback", res["run_id"], config=p.config_path, fmt="json")
    assert later.code == 0, later.err + later.out
    assert later.doc["status"] == "rolled_back"
    assert _layers(later.doc)["schema_registry"]["compensation"].startswith("done: soft-delete")
    _settle_and_check(p, before, writer_ids)


def _layers(res: dict) -> dict[str, dict]:
    return {s["layer"]: s for s in res["steps"]}


def test_registry_stopped_before_register(make_pipeline: PipelineFactory, private_registry: Service) -> None:
    p = make_pipeline(registry_url=private_registry.url)
    before = p.layer_state()
    with p.writer(rate=100) as w:
        res = run_evolve(p, ADD_NOTE, at="registry", fault=private_registry.stop)
    assert res["failed_step"] == "registry"
    assert "schema_registry unreachable" in res["error"]
    assert _layers(res)["schema_registry"]["attempts"] == 3  # retried: the error is transient
    # the registry cannot be asked whether the request landed: not rolled_back until it can
    assert res["status"] == "failed" and res["run_status"] == "rollback_failed"
    assert _layers(res)["schema_registry"]["compensation"].startswith("pending: could not probe")
    private_registry.start()
    later = run_cli_process("evolve", "--rollback", res["run_id"], config=p.config_path, fmt="json")
    assert later.code == 0 and later.doc["status"] == "rolled_back", later.err + later.out
    assert _layers(later.doc)["schema_registry"]["status"] == "failed"  # probed: it never landed
    _settle_and_check(p, before, w.ids)


def test_competing_iceberg_commit_rolls_back_the_registry(pipeline: Pipeline) -> None:
    p = pipeline
    before = p.layer_state()
    with p.writer(rate=100) as w:
        res = run_evolve(p, ADD_NOTE, at="lakehouse", fault=lambda: p.add_iceberg_column("other_team"))
    assert res["status"] == "rolled_back" and res["failed_step"] == "lakehouse"
    steps = _layers(res)
    assert steps["schema_registry"]["status"] == "compensated"
    assert steps["schema_registry"]["compensation"].startswith("done: soft-delete")
    after = p.layer_state()
    assert after["db"] == before["db"] and after["registry"][0] == before["registry"][0]
    names = [f[1] for f in after["iceberg"][1]]
    assert "note" not in names and "other_team" in names  # ours never landed; theirs is theirs
    p.assert_no_event_lost(w.ids)


def test_lock_held_past_retries_compensates_lakehouse_and_registry(pipeline: Pipeline) -> None:
    p = pipeline
    before = p.layer_state()
    holder = psycopg.connect(p.dsn)
    holder.execute("SELECT count(*) FROM public.customers")  # ACCESS SHARE until the transaction ends
    try:
        with p.writer(rate=100) as w:
            res = run_evolve(p, ADD_NOTE)
    finally:
        holder.rollback()
        holder.close()
    assert res["status"] == "rolled_back" and res["failed_step"] == "ddl"
    assert "lock" in res["error"].lower()
    steps = _layers(res)
    assert steps["lakehouse"]["status"] == "compensated" and steps["schema_registry"]["status"] == "compensated"
    assert steps["connector"]["status"] == "skipped"
    _settle_and_check(p, before, w.ids)


def test_worker_killed_before_the_restart_step(make_pipeline: PipelineFactory, private_worker: Service) -> None:
    # a column include list means the new column needs a config update and a (safe) restart
    p = make_pipeline(connect_url=private_worker.url, extra_connector={
        "column.include.list": "public.customers.id,public.customers.name,public.customers.amount"})
    before = p.layer_state()

    def kill_jvm() -> None:
        assert private_worker.pid is not None
        os.kill(private_worker.pid, signal.SIGKILL)
        private_worker.pid = None

    with p.writer(rate=100) as w:
        res = run_evolve(p, ADD_NOTE, at="connector", fault=kill_jvm,
                         bounds=Bounds(slot_catch_up=4, running=10, progress=5))
        assert res["failed_step"] == "connector"
        steps = _layers(res)
        assert [steps[x]["status"] for x in ("source_db", "lakehouse")] == ["compensated"] * 2
        assert steps["connector"]["compensation"].startswith("pending: could not probe")
        private_worker.start()
        poll_until(lambda: connector_running(p.connect_url, p.name), 60, "connector back after the worker restart")
    _registry_pending_then_rollback(p, before, res, w.ids)


def test_slot_that_never_passes_the_ddl_fails_the_step_and_compensates(pipeline: Pipeline) -> None:
    p = pipeline
    before = p.layer_state()
    with p.writer(rate=50) as w:
        # paused (and its task seen PAUSED) as the DDL step starts: every record Connect could still have sent is
        # below the DDL. Pausing only at the connector step let rows after the DDL stream (and their offsets
        # commit) before the pause landed, and the slot passed the DDL.
        res = run_evolve(p, ADD_NOTE, at="ddl", fault=p.pause, bounds=Bounds(slot_catch_up=3, running=10,
                                                                             progress=5))
        assert res["failed_step"] == "connector"
        assert "did not reach" in res["error"]
        p.resume()
    assert _layers(res)["source_db"]["status"] == "compensated"
    _registry_pending_then_rollback(p, before, res, w.ids)


def test_verify_failing_compensates_every_layer(pipeline: Pipeline) -> None:
    p = pipeline
    before = p.layer_state()
    with p.writer(rate=100) as w:  # the fault: an out-of-band Iceberg change that verify must catch
        res = run_evolve(p, ADD_NOTE, at="verify", fault=lambda: p.add_iceberg_column("sneaky"))
    assert res["status"] == "rolled_back" and res["failed_step"] == "verify"
    assert "sneaky" in res["error"]
    assert [s["status"] for s in res["steps"][:4]] == ["compensated"] * 4
    # the lakehouse undo reverts our change only: the out-of-band column is not ours to drop (issue 14)
    assert [f[1] for f in p.layer_state()["iceberg"][1]] == [f[1] for f in before["iceberg"][1]] + ["sneaky"]
    with p.iceberg().update_schema() as upd:
        upd.delete_column("sneaky")
    _settle_and_check(p, before, w.ids)
