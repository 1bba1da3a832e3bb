"""The saga on in-memory layers, in milliseconds: every operation × layer × failure point, resume, probe and
rollback of a persisted run, and a run record in the form the first releases stored. The same paths run on the
real services in test_faults.py, test_crash.py and test_evolve_stack.py."""

from __future__ import annotations

import json
from typing import Any

import pytest

from migrate_assets.errors import RuntimeFailure, TransientError
from migrate_assets.evolution.layers import STEP_ORDER, IcebergOp, Layer
from migrate_assets.evolution.memory import MemoryStore
from migrate_assets.evolution.planner import EvolutionPlan, Policy
from migrate_assets.evolution.run import evolve, resume, rollback
from migrate_assets.evolution.saga import Saga
from migrate_assets.evolution.store import RunRecord, StepState
from tests.evolution.memory_stack import CONFIG, FAST, TARGET, MemoryStack, change, stack

WARN = Policy(on_breaking_change="warn", allow_irreversible=True)
#: (name, change-file operation, policy, whether the source DDL can be undone)
OPERATIONS = [
    ("add_column", "add_column: {name: note, type: text, nullable: true}", Policy(), True),
    ("widen_type", "change_type: {column: amount, to_type: bigint}", Policy(), True),
    ("rename_column", "rename_column: {from: email, to: mail}", WARN, True),
    ("set_not_null", "set_not_null: {column: email, backfill: \"''\"}", WARN, False),
    ("drop_column", "drop_column: {column: email}", WARN, False),
]
#: the layer method each step's forward action calls to make its change
EFFECT = {Layer.SCHEMA_REGISTRY: "register", Layer.LAKEHOUSE: "apply", Layer.SOURCE_DB: "execute_ddl",
          Layer.CONNECTOR: "put_config"}
FORWARD = [layer for layer in STEP_ORDER if layer is not Layer.VERIFY]
#: a column include list makes every change update the connector's config (and restart it safely)
COLUMN_FILTER = {**CONFIG, "column.include.list": "public.t.id,public.t.email,public.t.amount"}


class Crash(BaseException):
    """The process dies: nothing in the saga catches it, the run record keeps the step `running`."""


def _layer(s: MemoryStack, layer: Layer) -> Any:
    return {Layer.SCHEMA_REGISTRY: s.registry, Layer.LAKEHOUSE: s.lakehouse, Layer.SOURCE_DB: s.source,
            Layer.CONNECTOR: s.connector}[layer]


def _planned(op: str, policy: Policy) -> dict[Layer, bool]:
    """The layers the change's plan has a step for, and whether that step calls the layer's EFFECT method."""
    _, rec = evolve(change(op), TARGET, stack(COLUMN_FILTER).context(), policy, None, FAST, dry_run=True)
    plan = EvolutionPlan.from_dict(rec.plan)
    return {Layer(p.layer): getattr(p.action, "new_config", True) is not None for p in plan.steps}


def _assert_undone(s: MemoryStack, before: dict[str, Any], ddl_ran: bool, reversible: bool) -> None:
    after = s.state()
    assert after[Layer.SCHEMA_REGISTRY][0] == before[Layer.SCHEMA_REGISTRY][0]  # latest version
    assert after[Layer.LAKEHOUSE][0] == before[Layer.LAKEHOUSE][0]  # current schema id
    assert after[Layer.CONNECTOR] == before[Layer.CONNECTOR]
    if reversible or not ddl_ran:
        assert [c.name for c in after[Layer.SOURCE_DB]] == [c.name for c in before[Layer.SOURCE_DB]]
        assert {c.name: c.type for c in after[Layer.SOURCE_DB]} == {c.name: c.type for c in before[Layer.SOURCE_DB]}


@pytest.mark.parametrize("name,op,policy,reversible", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_every_operation_succeeds_and_verifies(name: str, op: str, policy: Policy, reversible: bool) -> None:
    s = stack(COLUMN_FILTER)
    _, rec = evolve(change(op), TARGET, s.context(), policy, None, FAST)
    assert rec.status == "succeeded", rec.error
    assert {st.status for st in rec.steps} == {"done"} and len(rec.steps) >= 4
    assert s.connector.connectors["c"].restarts == (1 if name in ("add_column", "rename_column") else 0)


@pytest.mark.parametrize("layer", FORWARD, ids=str)
@pytest.mark.parametrize("name,op,policy,reversible", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_semantic_failure_compensates_every_done_layer(layer: Layer, name: str, op: str, policy: Policy,
                                                       reversible: bool) -> None:
    s = stack(COLUMN_FILTER)
    before = s.state()
    _layer(s, layer).fail(EFFECT[layer], RuntimeFailure("injected"))
    _, rec = evolve(change(op), TARGET, s.context(), policy, None, FAST)
    planned = _planned(op, policy)
    if not planned.get(layer):
        assert rec.status == "succeeded"  # no step (or no config change) for this layer: the fault never fires
        return
    assert rec.status == "rolled_back" and rec.failed_step == layer.step
    statuses = {st.id: st.status for st in rec.steps}
    done_before = [x for x in FORWARD[:FORWARD.index(layer)] if x in planned]
    assert all(statuses[x.step] == "compensated" for x in done_before), statuses
    assert statuses[layer.step] == "failed"
    assert all(statuses[x.step] == "skipped" for x in STEP_ORDER[STEP_ORDER.index(layer) + 1:] if x in planned)
    _assert_undone(s, before, Layer.SOURCE_DB in done_before, reversible)


@pytest.mark.parametrize("layer", FORWARD, ids=str)
@pytest.mark.parametrize("name,op,policy,reversible", OPERATIONS[:2], ids=[o[0] for o in OPERATIONS[:2]])
def test_transient_failure_is_retried(layer: Layer, name: str, op: str, policy: Policy, reversible: bool) -> None:
    s = stack(COLUMN_FILTER)
    _layer(s, layer).fail(EFFECT[layer], TransientError("blip"))
    _, rec = evolve(change("add_column: {name: note, type: text, nullable: true}"), TARGET, s.context(), policy,
                    None, FAST)
    assert rec.status == "succeeded", rec.error
    assert rec.step(layer.step).attempts == 2


@pytest.mark.parametrize("layer", FORWARD, ids=str)
@pytest.mark.parametrize("name,op,policy,reversible", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_crash_after_the_effect_is_probed_and_rolled_back(layer: Layer, name: str, op: str, policy: Policy,
                                                          reversible: bool) -> None:
    s = stack(COLUMN_FILTER)
    before = s.state()
    store = MemoryStore()
    ctx = s.context()
    _, rec = evolve(change(op), TARGET, ctx, policy, store, FAST, dry_run=True)
    _layer(s, layer).fail(EFFECT[layer], Crash(), after=True)
    try:
        Saga(ctx, store, FAST).start(EvolutionPlan.from_dict(rec.plan), rec.run_id)
    except Crash:
        pass
    crashed = store.load(rec.run_id)
    if not _planned(op, policy).get(layer):
        assert crashed.status == "succeeded"  # no step (or no config change) for this layer: never fired
        return
    assert crashed.step(layer.step).status == "running"
    out = rollback(rec.run_id, s.context(), store, FAST)
    assert out.status == "rolled_back", out.error
    assert out.step(layer.step).status == "compensated", "the probe found the effect"
    _assert_undone(s, before, FORWARD.index(layer) >= FORWARD.index(Layer.SOURCE_DB), reversible)


@pytest.mark.parametrize("name,op,policy,reversible", OPERATIONS, ids=[o[0] for o in OPERATIONS])
def test_drift_found_by_verify_rolls_back_everything(name: str, op: str, policy: Policy, reversible: bool) -> None:
    s = stack()
    before = s.state()

    def sneak(st: StepState) -> None:
        if st.id == Layer.VERIFY.step and st.status == "running":
            ice = s.lakehouse.state("lake.t")
            assert ice is not None
            s.lakehouse.apply("lake.t", (IcebergOp("add_column", "sneaky", type="string"),), ice.schema_id)

    _, rec = evolve(change(op), TARGET, s.context(), policy, None, FAST, on_step=sneak)
    assert rec.status == "rolled_back" and rec.failed_step == Layer.VERIFY.step
    assert "sneaky" in (rec.error or "")
    after = s.state()
    assert after[Layer.SCHEMA_REGISTRY][0] == before[Layer.SCHEMA_REGISTRY][0]
    assert after[Layer.CONNECTOR] == before[Layer.CONNECTOR]
    # the lakehouse undo reverts our own ops and keeps the other writer's column (a deleted column stays gone)
    kept = [f.name for f in before[Layer.LAKEHOUSE][1] if name != "drop_column" or f.name != "email"]
    assert [f.name for f in after[Layer.LAKEHOUSE][1]] == [*kept, "sneaky"]
    if reversible:
        assert after[Layer.SOURCE_DB] == before[Layer.SOURCE_DB]


def test_resume_after_a_crash_between_steps_finishes_the_run() -> None:
    s = stack(COLUMN_FILTER)
    store = MemoryStore()
    ctx = s.context()
    _, rec = evolve(change(OPERATIONS[0][1]), TARGET, ctx, Policy(), store, FAST, dry_run=True)
    s.source.fail("execute_ddl", Crash())  # dies before the DDL: registry and lakehouse are done
    try:
        Saga(ctx, store, FAST).start(EvolutionPlan.from_dict(rec.plan), rec.run_id)
    except Crash:
        pass
    crashed = store.load(rec.run_id)
    assert [st.status for st in crashed.steps] == ["done", "done", "running", "pending", "pending"]
    out = resume(rec.run_id, [TARGET], s.context(), store, FAST)
    assert out.status == "succeeded", out.error
    assert s.registry.versions(TARGET.subject or "") == [1, 2], "resume did not register again"
    assert "note" in [c.name for c in s.source.tables["public.t"]]


def test_compensation_failure_is_reported_and_the_other_layers_still_undone() -> None:
    s = stack(COLUMN_FILTER)
    before = s.state()
    s.source.fail("execute_ddl", RuntimeFailure("injected"))
    s.registry.fail("soft_delete", RuntimeFailure("registry refuses"), times=5)
    _, rec = evolve(change(OPERATIONS[0][1]), TARGET, s.context(), Policy(), None, FAST)
    assert rec.status == "rollback_failed"
    assert rec.step(Layer.SCHEMA_REGISTRY.step).status == "compensation_failed"
    assert "registry refuses" in (rec.step(Layer.SCHEMA_REGISTRY.step).compensation or "")
    assert rec.step(Layer.LAKEHOUSE.step).status == "compensated"
    assert s.state()[Layer.LAKEHOUSE][0] == before[Layer.LAKEHOUSE][0]


OLD_RECORD = {  # written by the code before the Layer enum (step ids and layer names as plain strings)
    "run_id": "20260101-000000-abcdef", "table_name": "public.t", "status": "running", "error": None,
    "failed_step": None,
    "steps": [
        {"id": "registry", "layer": "schema_registry", "status": "done", "result": {"version": 2, "id": 2,
         "created": True}, "error": None, "attempts": 1, "seconds": 0.1, "compensation": None,
         "compensation_result": {}},
        {"id": "lakehouse", "layer": "lakehouse", "status": "pending", "result": {}, "error": None, "attempts": 0,
         "seconds": 0.0, "compensation": None, "compensation_result": {}},
    ],
}


def test_a_run_record_in_the_old_form_still_loads_and_rolls_back() -> None:
    s = stack()
    ctx = s.context()
    _, planned = evolve(change(OPERATIONS[0][1]), TARGET, ctx, Policy(), None, FAST, dry_run=True)
    plan = json.loads(json.dumps(planned.plan))  # as stored: plain strings only
    plan["steps"] = plan["steps"][:2]
    assert [(p["id"], p["layer"]) for p in plan["steps"]] == [("registry", "schema_registry"),
                                                               ("lakehouse", "lakehouse")]
    registered = s.registry.register(TARGET.subject or "", plan["steps"][0]["action"]["schema"])
    assert registered.version == 2
    store = MemoryStore()
    store.rows[OLD_RECORD["run_id"]] = json.dumps({**OLD_RECORD, "plan": plan})  # type: ignore[dict-item]
    rec = store.load(str(OLD_RECORD["run_id"]))
    loaded = EvolutionPlan.from_dict(rec.plan)
    assert [p.layer for p in loaded.steps] == [Layer.SCHEMA_REGISTRY, Layer.LAKEHOUSE]
    assert Layer.of("registry") is Layer.SCHEMA_REGISTRY and Layer.of("ddl") is Layer.SOURCE_DB
    out = rollback(rec.run_id, ctx, store, FAST)
    assert out.status == "rolled_back"
    assert s.registry.versions(TARGET.subject or "") == [1]
    assert json.loads(store.rows[rec.run_id])["steps"][0]["layer"] == "schema_registry"


def test_layer_strings_stay_what_json_output_shows() -> None:
    assert [str(x) for x in STEP_ORDER] == ["schema_registry", "lakehouse", "source_db", "connector", "verify"]
    assert [x.step for x in STEP_ORDER] == ["registry", "lakehouse", "ddl", "connector", "verify"]
    assert json.dumps({Layer.SOURCE_DB: Layer.CONNECTOR}) == '{"source_db": "connector"}'
    rec = RunRecord("r", "public.t", "running", {}, [StepState(Layer.SOURCE_DB.step, Layer.SOURCE_DB)])
    assert json.loads(json.dumps(rec.steps[0].__dict__))["layer"] == "source_db"
