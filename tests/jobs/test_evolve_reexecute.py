"""Dagster's "Re-execute from failure" on `evolve_pipeline`, with a real held lock (local stack), one table.

The failed op is `apply_ddl`, red where it happened. Re-executed from failure once the lock is released:
a rolled-back evolution (the default `on_failure: rollback`) is retried as a new evolution — pre-flight again, every
step run by the failed op from the first — and a held one (`on_failure: hold`) is resumed where it stopped, the
same evolution run going on. Runs are executed in process on a persistent test instance, as the UI would.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
from dagster import (
    DagsterInstance,
    JobDefinition,
    ReexecutionOptions,
    build_reconstructable_job,
    execute_job,
    instance_for_test,
)

from migrate_assets.config import load_config
from migrate_assets.definitions import build_definitions
from migrate_assets.jobs.evolve_launch import EVOLUTION_RUN_TAG, RETRIED_TAG
from migrate_assets.resources import project as projectlib
from tests.jobs.conftest import columns_of, observations, ops_with, steps_with
from tests.pipeline import Pipeline

ROOT = Path(__file__).resolve().parents[2]
KEY = "public_customers"


def evolve_job(config_path: str) -> JobDefinition:
    """`evolve_pipeline` as the code location defines it (reconstructable: a re-execution loads it again)."""
    return build_definitions(config_path).get_job_def("evolve_pipeline")


def _job(p: Pipeline) -> Any:
    return build_reconstructable_job("tests.jobs.test_evolve_reexecute", "evolve_job",
                                     reconstructable_kwargs={"config_path": str(p.config_path)},
                                     reconstructor_working_directory=str(ROOT))


def _add(column: str) -> str:
    return f"table: public.customers\noperations:\n  - add_column: {{name: {column}, type: text, nullable: true}}\n"


def _tags(instance: DagsterInstance, run_id: str) -> dict[str, str]:
    run = instance.get_run_by_id(run_id)
    assert run is not None
    return dict(run.tags)


def _record(p: Pipeline, run_id: str) -> Any:
    store = projectlib.store(load_config(str(p.config_path)))
    try:
        return store.load(run_id)
    finally:
        store.close()


@contextmanager
def _failed_with_lock_held(p: Pipeline, instance: DagsterInstance, **config: Any) -> Iterator[Any]:
    """A run of the change while a session holds a lock on the table; released when the block ends."""
    holder = psycopg.connect(p.dsn)
    holder.execute("SELECT count(*) FROM public.customers")  # ACCESS SHARE held: the ALTER cannot get its lock
    try:
        with execute_job(_job(p), instance, raise_on_error=False,
                         run_config={"ops": {"preflight": {"config": config}}}) as res:
            yield res
    finally:
        holder.rollback()
        holder.close()


def test_reexecute_from_failure_retries_a_rolled_back_change(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    before = p.layer_state()
    with instance_for_test() as instance:
        with _failed_with_lock_held(p, instance, change_yaml=_add("memo")) as first:
            assert not first.success
            assert ops_with(first, "STEP_FAILURE") == ["apply_ddl"]  # red where it happened
        old = _tags(instance, first.run_id)[EVOLUTION_RUN_TAG]
        assert _record(p, old).status == "rolled_back"
        assert p.layer_state()["db"] == before["db"]
        # the lock is released: Re-execute from failure runs apply_ddl and what follows it again
        opts = ReexecutionOptions.from_failure(first.run_id, instance)
        with execute_job(_job(p), instance, reexecution_options=opts, raise_on_error=False) as again:
            assert again.success, [e.message for e in again.all_events if e.event_type_value == "STEP_FAILURE"]
            assert steps_with(again, "STEP_SUCCESS") == [f"evolve_table.{op}[{KEY}]" for op in (
                "apply_ddl", "restart_connector", "verify")] + ["evolution_report"]
            new = again.output_for_node("evolve_table", "evolved")[KEY]
            run = instance.get_run_by_id(again.run_id)
            assert run is not None and run.parent_run_id == first.run_id
            assert run.tags[EVOLUTION_RUN_TAG] == new and run.tags[RETRIED_TAG] == f"{old}:{new}"
            # the failed op ran the retried evolution's steps from the first: it observed every layer it changed
            seen = {e.asset_key.path[-1]: columns_of(e) for e in observations(again)
                    if e.step_key == f"evolve_table.apply_ddl[{KEY}]"}
        assert set(seen) == {"registry", "iceberg", "source"} and all("memo" in c for c in seen.values())
    assert new != old
    assert _record(p, new).status == "succeeded" and _record(p, old).status == "rolled_back"
    after = p.layer_state()
    assert [c[0] for c in after["db"]][-1] == "memo" and "memo" in [f[1] for f in after["iceberg"][1]]


def test_reexecute_from_failure_resumes_a_held_evolution(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    before = p.layer_state()
    with instance_for_test() as instance:
        with _failed_with_lock_held(p, instance, change_yaml=_add("memo2"), on_failure="hold") as first:
            assert not first.success and ops_with(first, "STEP_FAILURE") == ["apply_ddl"]
            fail = first.failure_data_for_node("evolve_table.apply_ddl").user_failure_data  # type: ignore[union-attr]
        rid = _tags(instance, first.run_id)[EVOLUTION_RUN_TAG]
        rec = _record(p, rid)
        # held: nothing undone, the completed layers keep the change for the resume
        assert rec.status == "failed"
        assert {s.id: s.status for s in rec.steps} == {"registry": "done", "lakehouse": "done", "ddl": "failed",
                                                       "connector": "pending", "verify": "pending"}
        assert fail.description is not None and f"Re-execute from failure resumes evolution {rid}" in \
            fail.description
        assert "memo2" in [f[1] for f in p.layer_state()["iceberg"][1]]
        assert p.layer_state()["db"] == before["db"]
        opts = ReexecutionOptions.from_failure(first.run_id, instance)
        with execute_job(_job(p), instance, reexecution_options=opts, raise_on_error=False) as again:
            assert again.success, [e.message for e in again.all_events if e.event_type_value == "STEP_FAILURE"]
            assert again.output_for_node("evolve_table", "evolved") == {KEY: rid}  # the same evolution went on
            assert RETRIED_TAG not in _tags(instance, again.run_id)
    rec = _record(p, rid)
    assert rec.status == "succeeded" and [s.attempts for s in rec.steps][:2] == [1, 1]  # not run again
    assert [c[0] for c in p.layer_state()["db"]][-1] == "memo2"


def test_reexecute_from_failure_says_why_not_when_the_undo_did_not_finish(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    with instance_for_test() as instance:
        with _failed_with_lock_held(p, instance, change_yaml=_add("memo3")) as first:
            assert not first.success
        rid = _tags(instance, first.run_id)[EVOLUTION_RUN_TAG]
        rec = _record(p, rid)
        store = projectlib.store(load_config(str(p.config_path)))
        try:  # as a compensation that could not reach a layer leaves it
            rec.status = "rollback_failed"
            store.save(rec)
        finally:
            store.close()
        before = p.layer_state()
        opts = ReexecutionOptions.from_failure(first.run_id, instance)
        with execute_job(_job(p), instance, reexecution_options=opts, raise_on_error=False) as again:
            assert not again.success and ops_with(again, "STEP_FAILURE") == ["apply_ddl"]
            fail = again.failure_data_for_node("evolve_table.apply_ddl").user_failure_data  # type: ignore[union-attr]
    assert fail.description is not None
    assert f"evolution {rid} is rollback_failed" in fail.description
    assert f"run rollback_evolution with run_id {rid}" in fail.description
    assert p.layer_state() == before  # nothing retried, nothing changed
