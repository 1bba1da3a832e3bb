"""End to end through the UI server: `dagster dev` on a real pipeline, `evolve_pipeline` launched through the
webserver's GraphQL API and polled to success, then the job page opened in headless Chromium, which must render
the op graph (forward ops and rollback ops). The screenshot is kept under test-artifacts/."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrate_assets.local import procs
from tests.cdc import poll_until
from tests.pipeline import ADD_NOTE, Pipeline
from tests.support import column_names

ROOT = Path(__file__).resolve().parents[2]
ARTIFACTS = ROOT / "test-artifacts"
LAUNCH = """
mutation Launch($params: ExecutionParams!) {
  launchRun(executionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
    ... on RunConfigValidationInvalid { errors { message } }
  }
}"""
HANDLES = """query Handles($selector: PipelineSelector!) { pipelineOrError(params: $selector) {
  ... on Pipeline { solidHandles(parentHandleID: "evolve_table") { handleID } } } }"""
STATUS = "query Status($id: ID!) { runOrError(runId: $id) { __typename ... on Run { status } } }"
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync"]


@pytest.fixture
def dagster_dev(pipeline: Pipeline, tmp_path: Path) -> Iterator[str]:
    """`dagster dev` in its own process group (so it can be stopped), on a free port, DAGSTER_HOME in tmp."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    port = procs.free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home), "MIGRATE_ASSETS_CONFIG": str(pipeline.config_path)}
    log_path = tmp_path / "dagster-dev.log"
    log = log_path.open("w")
    proc = subprocess.Popen([str(Path(sys.executable).parent / "dagster"), "dev", "-w", "workspace.yaml", "-h",
                             "127.0.0.1", "-p", str(port)], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def answering() -> bool:
        assert proc.poll() is None, log_path.read_text()
        return httpx.get(f"{url}/server_info", timeout=2).status_code == 200

    try:
        poll_until(answering, 120, f"dagster dev to answer /server_info (log: {log_path})", interval=0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        try:  # its children (webserver, daemon, code server) ignore the first signal now and then
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait(10)
        log.close()


def _gql(url: str, query: str, variables: dict[str, Any]) -> dict[str, Any]:
    r = httpx.post(f"{url}/graphql", json={"query": query, "variables": variables}, timeout=30)
    r.raise_for_status()
    body = r.json()
    assert "errors" not in body, body
    return body["data"]


def test_evolve_pipeline_launched_through_graphql_and_job_page_renders(
        pipeline: Pipeline, dagster_dev: str, tmp_path: Path) -> None:
    params = {"selector": {"repositoryLocationName": "migrate_assets", "repositoryName": "__repository__",
                           "jobName": "evolve_pipeline"},
              "runConfigData": {"ops": {"preflight": {"config": {"change_yaml": ADD_NOTE}}}}}
    launched = _gql(dagster_dev, LAUNCH, {"params": params})["launchRun"]
    assert launched["__typename"] == "LaunchRunSuccess", launched
    run_id = launched["run"]["runId"]

    def finished() -> str | None:
        status = _gql(dagster_dev, STATUS, {"id": run_id})["runOrError"]["status"]
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    status = poll_until(finished, 150, f"run {run_id} to finish", interval=1)
    assert status == "SUCCESS", status
    assert column_names(pipeline.dsn, "public.customers")[-1] == "note"

    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    if chromium is None:
        pytest.skip("Debian chromium is not installed (apt-get install -y chromium): UI rendering not checked")
    page = f"{dagster_dev}/locations/migrate_assets/jobs/evolve_pipeline"
    ARTIFACTS.mkdir(exist_ok=True)
    shot = ARTIFACTS / "evolve_pipeline_job.png"
    common = [chromium, *CHROMIUM_FLAGS, "--window-size=1400,900", "--virtual-time-budget=15000"]
    dom = subprocess.run([*common, f"--user-data-dir={tmp_path / 'chr-dom'}", "--dump-dom", page],
                         capture_output=True, text=True, timeout=120).stdout
    # the job's graph: pre-flight fans out to the per-table saga graph `evolve_table`, whose ops the server lists
    for op in ("preflight", "evolve_table", "evolved_tables", "rolled_back_tables", "evolution_report"):
        assert op in dom, f"op {op} not rendered on {page}"
    selector = {"repositoryLocationName": "migrate_assets", "repositoryName": "__repository__",
                "pipelineName": "evolve_pipeline"}
    handles = _gql(dagster_dev, HANDLES, {"selector": selector})["pipelineOrError"]["solidHandles"]
    assert {h["handleID"] for h in handles} == {f"evolve_table.{op}" for op in (
        "register_schema", "evolve_lakehouse", "apply_ddl", "restart_connector", "verify", "rollback_connector",
        "rollback_ddl", "rollback_lakehouse", "rollback_registry", "evolution_failed")}
    subprocess.run([*common, f"--user-data-dir={tmp_path / 'chr-shot'}", f"--screenshot={shot}", page],
                   capture_output=True, timeout=120, check=True)
    assert shot.stat().st_size > 20_000
