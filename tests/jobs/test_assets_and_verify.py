"""Schema-state assets, their checks and `verify_pipeline` on a real pipeline; drift made out-of-band fails them."""

from __future__ import annotations

import psycopg
from dagster import AssetKey, materialize

from migrate_assets.assets import pipeline_assets
from migrate_assets.config import load_config
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
    mat = result.asset_materializations_for_node("__".join(key))
    schema = mat[0].metadata["dagster/column_schema"].value
    return [(c.name, c.type) for c in schema.columns]


def _checks(result) -> dict[str, bool]:  # type: ignore[no-untyped-def]
    return {e.check_name: e.passed for e in result.get_asset_check_evaluations()}


def test_assets_checks_and_verify_catch_out_of_band_drift(module_pipeline: Pipeline) -> None:
    p = module_pipeline
    (p.tmp / "schemas").mkdir(exist_ok=True)
    (p.tmp / "schemas" / "customers.yaml").write_text(SPEC)
    p.write_config(schemas=[str(p.tmp / "schemas")])
    assets, checks = pipeline_assets(load_config(str(p.config_path)))
    assert {a.key for a in assets} == {AssetKey(["pipeline", "customers", layer])
                                       for layer in ("source", "registry", "iceberg")}
    resources = {"project": project_for(p.config_path)}

    res = materialize([*assets, *checks], resources=resources)
    assert res.success
    assert _columns(res, ["pipeline", "customers", "source"]) == [("id", "integer"), ("name", "text"),
                                                                  ("amount", "integer")]
    assert _columns(res, ["pipeline", "customers", "registry"]) == [("id", "int"), ("name", "string"),
                                                                    ("amount", "int")]
    assert [n for n, _ in _columns(res, ["pipeline", "customers", "iceberg"])] == ["id", "name", "amount"]
    assert _checks(res) == {"matches_declared_spec": True, "layers_consistent": True}
    req = nightly_verify.evaluate_tick(__import__("dagster").build_schedule_context()).run_requests[0]  # type: ignore[index]
    ok = verify_pipeline.execute_in_process(run_config=req.run_config or {}, resources=resources)
    assert ok.output_for_node("verify_layers")["consistent"] is True

    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE public.customers ADD COLUMN sneaky text")  # out of band: no other layer knows
    try:
        res = materialize([*assets, *checks], resources=resources)
        assert _checks(res) == {"matches_declared_spec": False, "layers_consistent": False}
        spec_eval = next(e for e in res.get_asset_check_evaluations() if e.check_name == "matches_declared_spec")
        assert "sneaky" in spec_eval.metadata["plan"].value
        drift = verify_pipeline.execute_in_process(resources=resources, raise_on_error=False)
        assert not drift.success
        failure = drift.failure_data_for_node("verify_layers")
        assert "column sneaky missing" in failure.error.message  # type: ignore[union-attr]
        assert "| public.customers | lakehouse | drift |" in \
            failure.user_failure_data.metadata["verify"].value  # type: ignore[union-attr]
    finally:
        with psycopg.connect(p.dsn, autocommit=True) as conn:
            conn.execute("ALTER TABLE public.customers DROP COLUMN sneaky")
