"""Run records written before typed step results (issue 13 item 3) still load, render, resume and roll back.

`data/run_records_v1.json` was written by the code of commit fa37a1b on the in-memory layers (the memory stack
of test_saga_fast, `add_column note` with a column include list): a succeeded run, a rolled-back run with each compensation's result, and a
run that died while its DDL step was `running`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from migrate_assets.evolution import results as r
from migrate_assets.evolution.layers import IcebergOp
from migrate_assets.evolution.memory import MemoryStore
from migrate_assets.evolution.planner import EvolutionPlan
from migrate_assets.evolution.run import result_dict, resume, rollback
from migrate_assets.evolution.store import EvolutionStore
from tests.evolution.memory_stack import CONFIG, FAST, TARGET, MemoryStack, stack

RECORDS: dict[str, Any] = json.loads((Path(__file__).parent / "data" / "run_records_v1.json").read_text())
COLUMN_FILTER = {**CONFIG, "column.include.list": "public.t.id,public.t.email,public.t.amount"}


def _stored(name: str) -> MemoryStore:
    store = MemoryStore()
    row = RECORDS[name]["row"]
    store.rows[row["run_id"]] = json.dumps(row)
    return store


@pytest.mark.parametrize("name", ["succeeded", "rolled_back"])
def test_an_old_record_loads_and_renders_as_it_did(name: str) -> None:
    store = _stored(name)
    row = RECORDS[name]["row"]
    rec = store.load(row["run_id"])
    assert json.loads(json.dumps(result_dict(rec))) == RECORDS[name]["result"]
    assert EvolutionPlan.from_dict(rec.plan).to_dict() == row["plan"]  # every action reads back as planned
    assert json.loads(json.dumps(EvolutionStore.row(rec))) == row  # saved again: the same stored form


def _crashed() -> tuple[MemoryStack, MemoryStore, str]:
    """The layers as the crashed run left them: registry v2 and the Iceberg update landed, no DDL."""
    s = stack(COLUMN_FILTER)
    store = _stored("crashed")
    row = RECORDS["crashed"]["row"]
    registry, lakehouse = (step["action"] for step in row["plan"]["steps"][:2])
    assert s.registry.register(registry["subject"], registry["schema"]).version == 2
    ops = tuple(IcebergOp(**o) for o in lakehouse["ops"])
    s.lakehouse.apply(lakehouse["identifier"], ops, lakehouse["expected_schema_id"])
    return s, store, row["run_id"]


def test_an_old_interrupted_record_rolls_back() -> None:
    before = stack(COLUMN_FILTER).state()
    s, store, run_id = _crashed()
    rec = rollback(run_id, s.context(), store, FAST)
    assert rec.status == "rolled_back", [(st.id, st.status, st.compensation) for st in rec.steps]
    assert [st.status for st in rec.steps] == ["compensated", "compensated", "failed", "skipped", "skipped"]
    after = s.state()
    assert after["schema_registry"][0] == before["schema_registry"][0] == 1
    assert after["lakehouse"] == before["lakehouse"]
    assert after["source_db"] == before["source_db"]


def test_an_old_interrupted_record_resumes() -> None:
    s, store, run_id = _crashed()
    rec = resume(run_id, [TARGET], s.context(), store, FAST)
    assert rec.status == "succeeded", rec.error
    assert s.registry.versions(TARGET.subject or "") == [1, 2], "the stored registry result was reused"
    assert "note" in [c.name for c in s.source.tables["public.t"]]
    assert s.connector.connectors["c"].restarts == 1


RESULTS = [  # (typed result, its stored form: the keys the first run records were written with)
    (r.SchemaRegistered(2, 7, True), {"version": 2, "id": 7, "created": True}),
    (r.VersionDeleted(True), {"deleted": True}),
    (r.VersionDeleted(False, "already gone"), {"deleted": False, "reason": "already gone"}),
    (r.IcebergUpdated(1, 0, None), {"schema_id": 1, "previous_schema_id": 0, "previous_snapshot_id": None}),
    (r.IcebergReverted(False, reason="gone"), {"reverted": False, "reason": "gone"}),
    (r.IcebergReverted(True, 0, 5, how="already"), {"reverted": True, "schema_id": 0, "snapshot_id": 5,
                                                      "how": "already"}),
    (r.IcebergReverted(False, 3, 5, how="inverse", kept=("x stays long",)),
     {"reverted": False, "schema_id": 3, "snapshot_id": 5, "how": "inverse", "kept": ["x stays long"]}),
    (r.IcebergTableCreated(0), {"schema_id": 0, "created": True}),
    (r.IcebergTableDropped(), {"dropped": True}),
    (r.DdlApplied(99, 1), {"commit_lsn": 99, "attempts": 1}),
    (r.DdlApplied(99, probed=True), {"commit_lsn": 99, "probed": True}),
    (r.ConnectorSynced(True, probed=True), {"restarted": True, "probed": True}),
    (r.ConnectorSynced(False, "0/1", "0/2", "0/3", "RUNNING", ()),
     {"restarted": False, "ddl_lsn": "0/1", "caught_up_lsn": "0/2", "progress_lsn": "0/3", "state": "RUNNING",
      "snapshot_requested": []}),
    (r.Verified(consistent=True), {"consistent": True}),
    (r.Verified(skipped_check=True), {"skipped": True}),
]


@pytest.mark.parametrize(("result", "stored"), RESULTS, ids=lambda x: type(x).__name__)
def test_a_step_result_is_stored_in_the_old_shape_and_read_back(result: r.StepResult, stored: dict) -> None:
    assert result.to_dict() == stored
    assert type(result).from_dict(json.loads(json.dumps(stored))) == result


def test_an_undo_that_must_wait_is_told_apart_from_one_with_nothing_to_do() -> None:
    wait = r.VersionDeleted(False, f"{r.UNDO_WAITS}: the connector has not emitted the rows")
    assert wait.waiting and wait.skipped
    gone = r.VersionDeleted(False, "already gone")
    assert gone.waiting is None and gone.skipped == "already gone"
    assert r.VersionDeleted(True).waiting is None and r.VersionDeleted(True).skipped is None
