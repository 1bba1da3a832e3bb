"""The saga knows the Apache Iceberg sink a pipeline names: pre-flight refuses a sink that would race the lakehouse
step or miss the table (exit 3, the sink, key and value named, nothing changed)."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, cast

import httpx
import psycopg
import pytest

from migrate_assets.errors import SafetyRefusal
from migrate_assets.evolution.actions import CreateIcebergTable, IcebergUpdate, RunContext
from migrate_assets.evolution.layers import IcebergOp, SourceColumn
from migrate_assets.evolution.memory import MemoryConnector, MemoryLakehouse, MemorySource
from migrate_assets.evolution.planner import EvolutionPlan, PipelineTarget, PlannedStep
from migrate_assets.evolution.sink import SINK_CLASS, check_sink, verify_sink
from migrate_assets.local import iceberg
from migrate_assets.local.stack import StackInfo
from tests.cdc import poll_until, start_connector
from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import run_cli

TARGET = PipelineTarget("public.t", "src", "p.public.t-value", "ns.t", sink="lake-sink")
GOOD = {"connector.class": SINK_CLASS, "topics": "p.public.t", "iceberg.tables": "ns.other, ns.t",
        "iceberg.tables.evolve-schema-enabled": "false", "iceberg.tables.auto-create-enabled": "false"}


class _Connect:
    def __init__(self, cfg: dict[str, str]) -> None:
        self.cfg = cfg

    def config(self, name: str) -> dict[str, str]:
        assert name == "lake-sink"
        return self.cfg


def _plan(*actions: Any) -> EvolutionPlan:
    steps = tuple(PlannedStep(f"s{i}", a.layer, a, True, None, "undo") for i, a in enumerate(actions))
    return EvolutionPlan("public.t", (), steps)


def _check(cfg: dict[str, str], plan: EvolutionPlan) -> list[tuple[str, str]]:
    ctx = RunContext(source=cast(Any, None), connector=cast(Any, _Connect(cfg)))
    return check_sink(TARGET, plan, ctx)


UPDATE = IcebergUpdate(identifier="ns.t", ops=(IcebergOp("add_column", "note", "string"),), expected_schema_id=0)
CREATE = CreateIcebergTable(identifier="ns.t", columns=(("id", "int"),))


def test_a_sink_that_leaves_the_schema_to_the_saga_passes() -> None:
    checks = _check(GOOD, _plan(UPDATE))
    assert len(checks) == 1 and "lake-sink writes ns.t" in checks[0][1]


@pytest.mark.parametrize(("change", "plan", "key", "value"), [
    ({"iceberg.tables.evolve-schema-enabled": "TRUE"}, _plan(UPDATE), "iceberg.tables.evolve-schema-enabled", "false"),
    ({"iceberg.tables.auto-create-enabled": "true"}, _plan(CREATE), "iceberg.tables.auto-create-enabled", "false"),
    ({"iceberg.tables": "ns.other"}, _plan(UPDATE), "iceberg.tables", "ns.other,ns.t"),
    ({"topics": "p.public.u"}, _plan(UPDATE), "topics", "p.public.u,p.public.t"),
    ({"connector.class": "io.debezium.connector.postgresql.PostgresConnector"}, _plan(UPDATE), "connector.class",
     SINK_CLASS),
])
def test_a_racing_or_misrouted_sink_is_refused_naming_the_setting(
    change: dict[str, str], plan: EvolutionPlan, key: str, value: str
) -> None:
    with pytest.raises(SafetyRefusal) as err:
        _check({**GOOD, **change}, plan)
    assert err.value.exit_code == 3
    assert f"set {key}={value} on lake-sink" in str(err.value)


def test_auto_create_only_matters_when_the_saga_creates_the_table() -> None:
    assert _check({**GOOD, "iceberg.tables.auto-create-enabled": "true"}, _plan(UPDATE))
    assert _check({**GOOD, "iceberg.tables": "", "iceberg.tables.dynamic-enabled": "true",
                   "iceberg.tables.route-field": "_table"}, _plan(UPDATE))


# -- on the real stack -------------------------------------------------------------------------------------------


@pytest.fixture
def evolving_sink(pipeline: Pipeline, stack_info: StackInfo) -> Iterator[str]:
    """An Iceberg sink on the pipeline's topic and table that evolves the table's schema itself."""
    name = f"{pipeline.name}-sink"
    cfg = iceberg.sink_connector_config(stack_info.iceberg_properties, name, pipeline.topic, pipeline.iceberg_table,
                                        pipeline.registry_url)
    cfg["iceberg.tables.evolve-schema-enabled"] = "true"
    start_connector(pipeline.connect_url, name, cfg, timeout=90)
    # it evolves the table on its first commit (the envelope's `_cdc` field): let that happen before the test
    # compares schemas, so the comparison sees only what the refused evolve did
    poll_until(lambda: pipeline.iceberg().current_snapshot() is not None, 90, "the sink's first commit")
    yield name
    httpx.delete(f"{pipeline.connect_url}/connectors/{name}", timeout=30)


def test_preflight_refuses_a_sink_that_evolves_the_table_itself(
    pipeline: Pipeline, evolving_sink: str, capsys: pytest.CaptureFixture[str]
) -> None:
    entry = {**pipeline.pipeline_entry(pipeline.table), "sink": evolving_sink}
    pipeline.write_config(pipelines=[entry])
    schema_before = pipeline.iceberg().schema()
    versions_before = httpx.get(f"{pipeline.registry_url}/subjects/{pipeline.subject}/versions", timeout=10).json()

    ran = run_cli(capsys, "evolve", str(change_file(pipeline.tmp, ADD_NOTE)), config=pipeline.config_path,
                  fmt="json")
    assert ran.code == 3, ran.doc
    text = ran.out + ran.err
    assert evolving_sink in text and "iceberg.tables.evolve-schema-enabled=false" in text

    with psycopg.connect(pipeline.dsn) as conn:
        cols = [r[0] for r in conn.execute(
            "SELECT column_name FROM information_schema.columns WHERE table_name = %s", (pipeline.table,))]
    assert "note" not in cols
    assert pipeline.iceberg().schema() == schema_before
    assert httpx.get(f"{pipeline.registry_url}/subjects/{pipeline.subject}/versions", timeout=10).json() == \
        versions_before


@pytest.fixture
def sink(pipeline: Pipeline, stack_info: StackInfo) -> Iterator[str]:
    """An Iceberg sink that leaves the table's schema to the saga, named in the pipeline's entry."""
    name = f"{pipeline.name}-sink"
    cfg = iceberg.sink_connector_config(stack_info.iceberg_properties, name, pipeline.topic, pipeline.iceberg_table,
                                        pipeline.registry_url)
    start_connector(pipeline.connect_url, name, cfg, timeout=90)
    pipeline.write_config(pipelines=[{**pipeline.pipeline_entry(pipeline.table), "sink": name}])
    yield name
    httpx.delete(f"{pipeline.connect_url}/connectors/{name}", timeout=30)


def test_evolve_with_a_named_sink_then_verify_reads_the_new_column_back(
    pipeline: Pipeline, sink: str, capsys: pytest.CaptureFixture[str]
) -> None:
    ran = run_cli(capsys, "evolve", str(change_file(pipeline.tmp, ADD_NOTE)), config=pipeline.config_path,
                  fmt="json")
    assert ran.code == 0, ran.doc
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, note) VALUES (200, 'after', 'filled')")

    ran = run_cli(capsys, "verify", "--progress-bound", "60", config=pipeline.config_path, fmt="json")
    assert ran.code == 0, ran.doc
    verdict = ran.doc["tables"][0]["layers"]["sink"]
    assert verdict["status"] == "consistent", verdict
    assert "holds the source's 6 rows" in verdict["notes"][0] and "note=1" in verdict["notes"][0]
    rows = [r for r in pipeline.iceberg().scan().to_arrow().to_pylist() if r["id"] == 200]
    assert [r["note"] for r in rows] == ["filled"]  # what verify counted is the value written after the change

    # a stopped sink: verify reports its lag as drift, in rows and in values of the new column
    httpx.put(f"{pipeline.connect_url}/connectors/{sink}/pause", timeout=10).raise_for_status()
    poll_until(lambda: httpx.get(f"{pipeline.connect_url}/connectors/{sink}/status", timeout=10).json()
               ["connector"]["state"] == "PAUSED", 30, "the sink paused")
    ran = run_cli(capsys, "verify", "--progress-bound", "3", config=pipeline.config_path, fmt="json")
    assert ran.code == 4, ran.doc
    assert "PAUSED" in " ".join(ran.doc["tables"][0]["layers"]["sink"]["differences"])


# -- verify: a FAILED sink task is restarted once, and said so ------------------------------------------------


def _sink_world(state: str) -> tuple[RunContext, MemoryConnector]:
    source = MemorySource({"public.t": [SourceColumn("id", "integer", False)]})
    source.values[("public.t", None)] = 3
    lake = MemoryLakehouse()
    lake.add_table("ns.t", [("id", "int")])
    lake.values[("ns.t", None)] = 3
    conn = MemoryConnector(source)
    conn.add("lake-sink", GOOD)
    conn.connectors["lake-sink"].state = state
    return RunContext(source=source, lakehouse=lake, connector=conn), conn


def test_verify_restarts_a_failed_sink_task_and_reports_it() -> None:
    ctx, conn = _sink_world("FAILED")
    status, differences, notes = verify_sink(TARGET, ctx, [], bound=1.0, restart_failed=True)
    assert (status, differences) == ("consistent", ())
    assert conn.connectors["lake-sink"].restarts == 1
    assert "had a FAILED task" in notes[0] and "RUNNING again" in notes[0] and "lag 0" in notes[1]


def test_plain_verify_reports_a_failed_sink_and_changes_nothing() -> None:
    ctx, conn = _sink_world("FAILED")
    status, differences, _ = verify_sink(TARGET, ctx, [], bound=1.0)
    assert status == "drift" and "is FAILED" in differences[0] and "--restart-failed-sink" in differences[0]
    assert conn.connectors["lake-sink"].restarts == 0


def test_verify_leaves_a_paused_sink_alone() -> None:
    ctx, conn = _sink_world("PAUSED")
    status, differences, _ = verify_sink(TARGET, ctx, [], bound=1.0, restart_failed=True)
    assert status == "drift" and "is PAUSED" in differences[0]
    assert conn.connectors["lake-sink"].restarts == 0
