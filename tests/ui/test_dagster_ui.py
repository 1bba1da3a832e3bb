"""End to end through the UI server: `dagster dev` on a real pipeline. `evolve_pipeline` is launched through the
webserver's GraphQL API while a session holds a lock on the table: the run fails with `apply_ddl` red. Once the
lock is released, "Re-execute from failure" (the same mutation the UI's button sends) succeeds, and the source
table's asset shows the new column. Headless Chromium renders the failed run, the re-executed run, the asset page
and the job page; the screenshots are kept under test-artifacts/."""

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
import psycopg
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
    # as `make dev` writes it (the DDL pool limited to one op at a time), and no welcome dialog over the pages
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
                                       "concurrency:\n  pools:\n    default_limit: 1\n")
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


REEXECUTE = """
mutation Reexecute($params: ReexecutionParams!) {
  launchPipelineReexecution(reexecutionParams: $params) {
    __typename
    ... on LaunchRunSuccess { run { runId } }
    ... on PythonError { message }
  }
}"""
STEPS = "query Steps($id: ID!) { runOrError(runId: $id) { ... on Run { stepStats { stepKey status } } } }"
OBSERVED = """query Observed($key: AssetKeyInput!) { assetOrError(assetKey: $key) { ... on Asset {
  assetObservations(limit: 1) { metadataEntries { label ... on TableSchemaMetadataEntry {
    schema { columns { name } } } } } } } }"""
SELECTOR = {"repositoryLocationName": "migrate_assets", "repositoryName": "__repository__"}
KEY = "public_customers"


def _finished(url: str, run_id: str) -> str:
    def done() -> str | None:
        status = _gql(url, STATUS, {"id": run_id})["runOrError"]["status"]
        return status if status in ("SUCCESS", "FAILURE", "CANCELED") else None

    return poll_until(done, 180, f"run {run_id} to finish", interval=1)


def _steps(url: str, run_id: str) -> dict[str, str]:
    return {s["stepKey"]: s["status"] for s in _gql(url, STEPS, {"id": run_id})["runOrError"]["stepStats"]}


class Browser:
    """Headless Chromium: a page's DOM after its scripts ran, and its screenshot under test-artifacts/."""

    def __init__(self, tmp: Path) -> None:
        chromium = shutil.which("chromium") or shutil.which("chromium-browser")
        if chromium is None:
            pytest.skip("Debian chromium is not installed (apt-get install -y chromium): UI rendering not checked")
        self.tmp, self.n = tmp, 0
        self.common = [chromium, *CHROMIUM_FLAGS, "--virtual-time-budget=15000"]

    def _profile(self) -> str:
        self.n += 1
        return f"--user-data-dir={self.tmp / f'chr-{self.n}'}"

    def dom(self, page: str) -> str:
        return subprocess.run([*self.common, "--window-size=1400,900", self._profile(), "--dump-dom", page],
                              capture_output=True, text=True, timeout=120).stdout

    def shot(self, page: str, name: str, height: int = 900) -> Path:
        ARTIFACTS.mkdir(exist_ok=True)
        path = ARTIFACTS / name
        subprocess.run([*self.common, f"--window-size=1400,{height}", self._profile(), f"--screenshot={path}",
                        page], capture_output=True, timeout=120, check=True)
        assert path.stat().st_size > 20_000, path
        return path


@pytest.mark.timeout(900)  # dagster dev start, two runs, and each page rendered by a fresh headless Chromium
def test_failed_op_is_red_reexecute_from_failure_succeeds_and_the_asset_shows_the_new_column(
        pipeline: Pipeline, dagster_dev: str, tmp_path: Path) -> None:
    url = dagster_dev
    params = {"selector": {**SELECTOR, "jobName": "evolve_pipeline"},
              "runConfigData": {"ops": {"preflight": {"config": {"change_yaml": ADD_NOTE}}}}}
    holder = psycopg.connect(pipeline.dsn)
    holder.execute("SELECT count(*) FROM public.customers")  # ACCESS SHARE held: the ALTER cannot get its lock
    try:
        launched = _gql(url, LAUNCH, {"params": params})["launchRun"]
        assert launched["__typename"] == "LaunchRunSuccess", launched
        failed = launched["run"]["runId"]
        assert _finished(url, failed) == "FAILURE"
    finally:
        holder.rollback()
        holder.close()
    # red where it happened: apply_ddl failed, the ops before it succeeded, the ones after it never ran
    steps = _steps(url, failed)
    assert steps[f"evolve_table.apply_ddl[{KEY}]"] == "FAILURE", steps
    assert steps[f"evolve_table.register_schema[{KEY}]"] == steps[f"evolve_table.evolve_lakehouse[{KEY}]"] == \
        "SUCCESS"
    assert f"evolve_table.verify[{KEY}]" not in steps or steps[f"evolve_table.verify[{KEY}]"] != "SUCCESS"
    assert "note" not in column_names(pipeline.dsn, "public.customers")

    # the lock is released: the UI's default button, Re-execute from failure
    again = _gql(url, REEXECUTE, {"params": {"parentRunId": failed, "strategy": "FROM_FAILURE"}})
    again = again["launchPipelineReexecution"]
    assert again["__typename"] == "LaunchRunSuccess", again
    rerun = again["run"]["runId"]
    assert _finished(url, rerun) == "SUCCESS"
    steps = _steps(url, rerun)
    assert {k for k, v in steps.items() if v == "SUCCESS"} == {
        f"evolve_table.{op}[{KEY}]" for op in ("apply_ddl", "restart_connector", "verify")} | {"evolution_report"}
    assert column_names(pipeline.dsn, "public.customers")[-1] == "note"
    # the asset of the source table was observed by apply_ddl with the new column
    observed = _gql(url, OBSERVED, {"key": {"path": ["pipeline", "customers", "source"]}})
    entries = observed["assetOrError"]["assetObservations"][0]["metadataEntries"]
    schema = next(e for e in entries if e["label"] == "dagster/column_schema")["schema"]
    assert [c["name"] for c in schema["columns"]][-1] == "note"

    browser = Browser(tmp_path)
    dom = browser.dom(f"{url}/runs/{failed}")
    assert "apply_ddl" in dom, "the failed run's page shows no apply_ddl step"
    browser.shot(f"{url}/runs/{failed}", "evolve_failed_run.png", height=1100)
    browser.shot(f"{url}/runs/{rerun}", "evolve_reexecuted_run.png", height=1100)
    asset_page = f"{url}/assets/pipeline/customers/source"
    browser.shot(asset_page, "asset_source_after_evolve.png")
    # its events: the latest observation (by apply_ddl) with its column schema, the new column last
    events = f"{asset_page}?view=events"
    dom = browser.dom(events)
    assert "apply_ddl" in dom and "note" in dom, f"the observation with the column note is not on {events}"
    browser.shot(events, "asset_source_events_after_evolve.png", height=1400)

    # the job's graph: pre-flight fans out to the per-table saga `evolve_table`, one op per step
    page = f"{url}/locations/migrate_assets/jobs/evolve_pipeline"
    dom = browser.dom(page)
    for op in ("preflight", "evolve_table", "evolution_report"):
        assert op in dom, f"op {op} not rendered on {page}"
    handles = _gql(url, HANDLES, {"selector": {**SELECTOR, "pipelineName": "evolve_pipeline"}})
    assert {h["handleID"] for h in handles["pipelineOrError"]["solidHandles"]} == {
        f"evolve_table.{op}" for op in ("register_schema", "evolve_lakehouse", "apply_ddl", "restart_connector",
                                        "verify")}
    browser.shot(page, "evolve_pipeline_job.png")
