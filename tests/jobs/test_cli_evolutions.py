"""Evolutions run from the CLI appear in Dagster (issue 19 item 4c): the `cli_evolutions` sensor reads the run store
past its cursor and asks for an observation of the evolved table's assets; that run records the new columns. A real
`migrate-assets evolve` and `evolve --rollback` against a real pipeline (local stack)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from dagster import DagsterInstance, RunRequest, SensorResult, build_sensor_context, job, op

from migrate_assets.definitions import build_definitions
from migrate_assets.evolution.store import EvolutionStore
from migrate_assets.jobs.automation import AFTER_EVOLUTION_TAG
from migrate_assets.jobs.evolve_launch import EVOLUTION_RUN_TAG
from tests.jobs.conftest import columns_of, project_for
from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import run_cli

KEYS = {"source": ("pipeline", "customers", "source"), "registry": ("pipeline", "customers", "registry"),
        "iceberg": ("pipeline", "customers", "iceberg")}


def _latest_run(p: Pipeline) -> str:
    store: EvolutionStore = project_for(p.config_path).store()
    try:
        return store.recent(1)[0][0]
    finally:
        store.close()


def test_cli_evolution_is_observed_by_the_sensor(module_pipeline: Pipeline, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    p = module_pipeline
    project = project_for(p.config_path)
    defs = build_definitions(project=project)
    sensor = defs.resolve_sensor_def("cli_evolutions")
    observe = defs.resolve_job_def("observe_pipeline_schemas")
    instance = DagsterInstance.ephemeral()

    def tick(cursor: str | None) -> SensorResult:
        with build_sensor_context(instance=instance, cursor=cursor, resources={"project": project},
                                  definitions=defs) as ctx:
            result = sensor(ctx)
        assert isinstance(result, SensorResult)
        return result

    first = tick(None)  # starts at the store's newest run: history is not replayed
    assert not first.run_requests and first.cursor
    assert not tick(first.cursor).run_requests

    ran = run_cli(capsys, "evolve", str(change_file(tmp_path, ADD_NOTE)), config=p.config_path, fmt="json")
    assert ran.code == 0, ran
    evolution = _latest_run(p)

    seen = tick(first.cursor)
    (request,) = seen.run_requests or []
    assert isinstance(request, RunRequest) and request.tags[AFTER_EVOLUTION_TAG] == evolution
    assert {tuple(k.path) for k in request.asset_selection or []} == set(KEYS.values())
    assert {(tuple(k.asset_key.path), k.name) for k in request.asset_check_keys or []} == \
        {(k, "layers_consistent") for k in KEYS.values()}
    subset = observe.get_subset(asset_selection=set(request.asset_selection or []),
                                asset_check_selection=set(request.asset_check_keys or []))
    result = subset.execute_in_process(instance=instance, tags=request.tags)
    assert result.success
    assert [e.passed for e in result.get_asset_check_evaluations()] == [True] * 3
    for e in result.get_asset_observation_events():
        obs = e.asset_observation_data.asset_observation
        assert "note" in columns_of(obs), (obs.asset_key, columns_of(obs))
    assert len(result.get_asset_observation_events()) == 3
    assert not tick(seen.cursor).run_requests  # the same run is not asked for twice

    # an evolution a Dagster run made (its id in the run's tag) is left to that run, which observed it itself
    @op
    def nothing() -> None:
        pass

    @job
    def tagged() -> None:
        nothing()

    ran = run_cli(capsys, "evolve", "--rollback", evolution, "--allow-data-loss", config=p.config_path, fmt="json")
    assert ran.code == 0, ran
    tagged.execute_in_process(instance=instance, tags={EVOLUTION_RUN_TAG: f"other,{evolution}"})
    after_rollback = tick(seen.cursor)
    assert not after_rollback.run_requests
    assert "a Dagster run's" in str(after_rollback.skip_reason), after_rollback.skip_reason
    assert json.loads(after_rollback.cursor or "null") != json.loads(seen.cursor or "null")
