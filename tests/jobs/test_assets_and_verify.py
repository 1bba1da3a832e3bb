"""Schema-state assets, their checks and `verify_pipeline` on a real pipeline; drift made out-of-band fails them."""

from __future__ import annotations

from typing import Any

import psycopg
from dagster import AssetKey

from migrate_assets.assets import pipeline_assets
from migrate_assets.config import load_config
from migrate_assets.definitions import build_definitions
from migrate_assets.jobs.automation import nightly_verify
from migrate_assets.jobs.evolve import verify_pipeline
from tests.jobs.conftest import project_for
from tests.pipeline import Pipeline

SPEC = """
table: customers
columns:
  - {name: id, type: integer, primary_key: true}
  - {name: name, type: text}
  - {name: amount, type: integer, nullable: true}
"""


def _columns(result, key: list[str]) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    obs = [e.event_specific_data.asset_observation for e in result.all_events  # type: ignore[union-attr]
           if e.event_type_value == "ASSET_OBSERVATION"]
    schema = next(o for o in obs if o.asset_key == AssetKey(key)).metadata["dagster/column_schema"].value
    return [(c.name, c.type) for c in schema.columns]


def _checks(result) -> dict[tuple[str, str], bool]:  # type: ignore[no-untyped-def]
    return {(e.asset_key.path[-1], e.check_name): e.passed for e in result.get_asset_check_evaluations()}


def _observe(p: Pipeline, resources: dict) -> Any:  # type: ignore[type-arg]
    """The observation job the schedule and sensor launch, over every pipeline asset and its checks."""
    job = build_definitions(str(p.config_path)).resolve_job_def("observe_pipeline_schemas")
    return job.execute_in_process(resources=resources)


def test_assets_checks_and_verify_catch_out_of_band_drift(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    (p.tmp / "schemas").mkdir(exist_ok=True)
    (p.tmp / "schemas" / "customers.yaml").write_text(SPEC)
    p.write_config(schemas=[str(p.tmp / "schemas")])
    assets, _ = pipeline_assets(load_config(str(p.config_path)))
    assert {k for a in assets for k in a.keys} == {AssetKey(["pipeline", "customers", layer])
                                       for layer in ("source", "registry", "iceberg")}
    resources = {"project": project_for(p.config_path)}

    assert all(a.is_observable and not a.is_materializable for a in assets)
    res = _observe(p, resources)
    assert res.success
    assert _columns(res, ["pipeline", "customers", "source"]) == [("id", "integer"), ("name", "text"),
                                                                  ("amount", "integer")]
    assert _columns(res, ["pipeline", "customers", "registry"]) == [("id", "int"), ("name", "string"),
                                                                    ("amount", "int")]
    assert [n for n, _ in _columns(res, ["pipeline", "customers", "iceberg"])] == ["id", "name", "amount"]
    assert _checks(res) == {("source", "matches_declared_spec"): True, ("source", "layers_consistent"): True,
                            ("registry", "layers_consistent"): True, ("iceberg", "layers_consistent"): True}
    req = nightly_verify.evaluate_tick(__import__("dagster").build_schedule_context()).run_requests[0]  # type: ignore[index]
    ok = verify_pipeline.execute_in_process(run_config=req.run_config or {}, resources=resources)
    assert ok.output_for_node("verify_layers")["consistent"] is True

    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE public.customers ADD COLUMN sneaky text")  # out of band: no other layer knows
    try:
        res = _observe(p, resources)
        assert _columns(res, ["pipeline", "customers", "source"])[-1] == ("sneaky", "text")
        assert _checks(res) == {("source", "matches_declared_spec"): False, ("source", "layers_consistent"): False,
                                ("registry", "layers_consistent"): False, ("iceberg", "layers_consistent"): False}
        spec_eval = next(e for e in res.get_asset_check_evaluations() if e.check_name == "matches_declared_spec")
        assert "sneaky" in spec_eval.metadata["plan"].value
        assert spec_eval.description.startswith("drift: the live table differs from its YAML spec")
        lake = next(e for e in res.get_asset_check_evaluations() if e.asset_key.path[-1] == "iceberg")
        assert lake.metadata["status"].value == "drift" and "sneaky" in lake.metadata["differences"].value
        drift = verify_pipeline.execute_in_process(resources=resources, raise_on_error=False)
        assert not drift.success
        failure = drift.failure_data_for_node("verify_layers")
        assert "column sneaky missing" in failure.error.message  # type: ignore[union-attr]
        assert "| public.customers | lakehouse | drift |" in \
            failure.user_failure_data.metadata["verify"].value  # type: ignore[union-attr]
    finally:
        with psycopg.connect(p.dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE public.customers DROP COLUMN sneaky")
