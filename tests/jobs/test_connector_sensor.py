"""The FAILED-connector sensor with a connector failed for real: its registry stops while a new schema must be
registered, the task goes FAILED; the sensor asks once for `restart_failed_connector`, which brings it back
(onlyFailed=true) once the registry is up again."""

from __future__ import annotations

import psycopg
import pytest
from dagster import build_sensor_context

from migrate_assets.jobs.automation import connector_failed
from migrate_assets.jobs.evolve import restart_failed_connector
from tests.cdc import connector_running, poll_until
from tests.conftest import Service
from tests.jobs.conftest import project_for
from tests.pipeline import Pipeline, PipelineFactory


@pytest.fixture
def pipeline(make_pipeline: PipelineFactory, private_registry: Service) -> Pipeline:
    """The default pipeline, its converter on a private registry (the test stops that registry)."""
    return make_pipeline(registry_url=private_registry.url)


def _task_failed(p: Pipeline) -> bool:
    import httpx

    body = httpx.get(f"{p.connect_url}/connectors/{p.name}/status", timeout=10).json()
    return any(t["state"] == "FAILED" for t in body.get("tasks", []))


def test_failed_connector_is_restarted_with_only_failed(pipeline: Pipeline, private_registry: Service) -> None:
    p = pipeline
    resources = {"project": project_for(p.config_path)}
    healthy = connector_failed(build_sensor_context(resources=resources))
    assert not healthy.run_requests and "RUNNING" in str(healthy.skip_reason)

    private_registry.stop()
    with psycopg.connect(p.dsn, autocommit=True) as conn:  # a new row shape: the converter must register it
        conn.execute("ALTER TABLE public.customers ADD COLUMN note text")
        conn.execute("INSERT INTO public.customers (id, name, note) VALUES (500, 'x', 'y')")
    poll_until(lambda: _task_failed(p), 90, "task FAILED while the registry is down")

    first = connector_failed(build_sensor_context(resources=resources))
    req = first.run_requests[0]  # type: ignore[index]
    assert req.run_key.startswith(f"restart:{p.name}:")
    assert req.run_config == {"ops": {"restart_failed_tasks": {"config": {"connector": p.name}}}}
    again = connector_failed(build_sensor_context(resources=resources))
    assert [r.run_key for r in again.run_requests or []] == [req.run_key]  # same failure, same key

    private_registry.start()
    res = restart_failed_connector.execute_in_process(run_config=req.run_config, resources=resources)
    assert res.output_for_node("restart_failed_tasks") == "RUNNING"
    assert connector_running(p.connect_url, p.name)
    poll_until(lambda: 500 in p.event_ids(), 60, "the row written while the registry was down")
