"""The code location loads without any service running and passes Dagster's own validation."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from dagster import AssetKey

from migrate_assets.definitions import build_definitions

ROOT = Path(__file__).resolve().parent.parent
JOBS = {"schema_plan", "schema_apply", "migrations_up", "migrations_down", "migrations_status", "expand",
        "expand_status", "contract", "abort_expand", "evolve_pipeline", "rollback_evolution", "verify_pipeline"}


def test_workspace_validates() -> None:
    env = {k: v for k, v in os.environ.items() if k != "MIGRATE_ASSETS_CONFIG"}
    out = subprocess.run([str(Path(sys.executable).parent / "dagster"), "definitions", "validate", "-w",
                          "workspace.yaml"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "All code locations passed validation" in out.stdout + out.stderr


def test_definitions_hold_every_job_schedule_sensor_and_the_example_assets() -> None:
    defs = build_definitions(str(ROOT / "examples" / "migrate.yaml"))
    repo = defs.get_repository_def()
    assert JOBS <= {j.name for j in repo.get_all_jobs()}
    assert {s.name for s in repo.schedule_defs} == {"nightly_verify", "nightly_drift_check"}
    assert {s.name for s in repo.sensor_defs} == {"spec_files_changed", "expand_ready", "evolution_failed_rollback",
                                                  "connector_failed"}
    keys = set(repo.asset_graph.get_all_asset_keys())
    assert {AssetKey(["pipeline", "customers", x]) for x in ("source", "registry", "iceberg")} <= keys
    job = defs.get_job_def("evolve_pipeline")
    assert sorted(n.name for n in job.graph.nodes) == sorted([
        "preflight", "evolve_table", "evolved_tables", "rolled_back_tables", "evolution_report"])
    # preflight fans out per table: the per-table saga is a graph mapped over its dynamic output ...
    assert job.graph.dependency_structure.get_upstream_dynamic_output_for_node("evolve_table").output_def.name == \
        "runs"
    table = job.graph.node_named("evolve_table").definition
    assert sorted(n.name for n in table.nodes) == sorted([  # type: ignore[attr-defined]
        "register_schema", "evolve_lakehouse", "apply_ddl", "restart_connector", "verify",
        "rollback_connector", "rollback_ddl", "rollback_lakehouse", "rollback_registry", "evolution_failed"])
    # ... in which the rollback branch hangs off verify's `failed` output, in reverse layer order
    structure = table.dependency_structure  # type: ignore[attr-defined]
    deps = {n: sorted(f"{o.node_name}.{o.output_def.name}"
                      for outs in structure.input_to_upstream_outputs_for_node(n).values() for o in outs)
            for n in ("register_schema", "verify", "rollback_connector", "rollback_ddl", "rollback_lakehouse",
                      "rollback_registry", "evolution_failed")}
    assert deps == {
        "register_schema": [],  # the graph's input: one run id per table
        "verify": ["restart_connector.run"],
        "rollback_connector": ["verify.failed"],
        "rollback_ddl": ["rollback_connector.result"],
        "rollback_lakehouse": ["rollback_ddl.result"],
        "rollback_registry": ["rollback_lakehouse.result"],
        "evolution_failed": ["rollback_registry.result"],
    }


def test_a_broken_project_file_still_loads_the_jobs(tmp_path: Path) -> None:
    bad = tmp_path / "migrate.yaml"
    bad.write_text("database: {dsn: ${NO_SUCH_VARIABLE_ANYWHERE}}\n")
    defs = build_definitions(str(bad))
    assert JOBS <= {j.name for j in defs.get_repository_def().get_all_jobs()}
    assert not list(defs.get_repository_def().asset_graph.get_all_asset_keys())
