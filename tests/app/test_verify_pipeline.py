"""The verify use case (`migrate_assets.app.verify`) on in-memory layers: the one recipe of the CLI, the Dagster
job and the asset check — a verdict per table and layer, and one typed error whose exit code says drift (4) or a
layer that could not be read (1)."""

from __future__ import annotations

from typing import Any

from migrate_assets.app.verify import verdict_error, verify_pipeline
from migrate_assets.errors import LayerUnreachableError
from migrate_assets.evolution.layers import IcebergOp
from migrate_assets.evolution.planner import PipelineTarget
from tests.app.stack import TARGETS, stack

ALL = list(TARGETS.values())


def test_an_untouched_pipeline_is_consistent() -> None:
    s = stack()
    s.source.add_slot("s")
    res = verify_pipeline(ALL, s.context(), progress_bound=0.5)
    assert res.verdict == "consistent" and res.error() is None, res.to_dict()
    doc = res.to_dict()
    assert doc["consistent"] and [t["table"] for t in doc["tables"]] == ["public.t", "public.u"]


def test_an_extra_iceberg_column_is_drift_exit_4() -> None:
    s = stack()
    s.source.add_slot("s")
    st = s.lakehouse.state("lake.u")
    assert st is not None
    s.lakehouse.apply("lake.u", (IcebergOp("add_column", "sneaky", type="string"),), st.schema_id)
    res = verify_pipeline(ALL, s.context(), progress_bound=0.5)
    err = res.error()
    assert res.verdict == "drift" and err is not None and err.exit_code == 4
    assert "public.u/lakehouse" in str(err) and "sneaky" in str(err)
    assert [t["consistent"] for t in res.to_dict()["tables"]] == [True, False]


def test_a_layer_that_cannot_be_read_is_exit_1_not_drift() -> None:
    s = stack()
    s.source.add_slot("s")
    s.registry.fail("latest", LayerUnreachableError("schema registry", "connection refused"), times=100)
    res = verify_pipeline([TARGETS["public.t"]], s.context(), progress_bound=0.5)
    err = res.error()
    assert res.verdict == "unreachable" and err is not None and err.exit_code == 1
    assert res.to_dict()["tables"][0]["unreachable"] == ["schema_registry"]


def test_the_topic_probe_joins_the_verdict() -> None:
    s = stack()
    s.source.add_slot("s")
    seen: list[str] = []

    def probe(t: PipelineTarget, _ctx: Any) -> dict[str, Any]:
        seen.append(t.table)
        return {"status": "drift", "differences": ["no event in topic"]} if t.table == "public.u" else \
            {"status": "consistent", "differences": []}

    res = verify_pipeline(ALL, s.context(), progress_bound=0.5, probe=probe)
    assert seen == ["public.t", "public.u"]
    tables = res.to_dict()["tables"]
    assert tables[1]["layers"]["topic_probe"]["status"] == "drift" and not tables[1]["consistent"]
    assert res.verdict == "drift"


def test_the_verdict_of_stored_json_tables() -> None:
    def table(**layers: str) -> dict:
        return {"table": "public.t", "layers": {k: {"status": v, "differences": []} for k, v in layers.items()}}

    assert verdict_error([table(source_db="consistent", lakehouse="skipped")]) is None
    drift = verdict_error([table(lakehouse="drift")])
    assert drift is not None and drift.exit_code == 4
    down = verdict_error([table(lakehouse="drift"), table(schema_registry="unreachable")])
    assert down is not None and down.exit_code == 1 and "drift in the layers that answered" in str(down)
