"""Resume and rollback probe (issue 14 item 5), on in-memory fakes of the layer protocols: a crash after each
layer's effect and before the record is saved, and a lost answer from each non-transactional layer. A landed
effect counts as done: a resume goes on after it (never re-running it), a rollback undoes it. Dry runs of both
change nothing, and a rolled-back run is never resumed."""

from __future__ import annotations

import pytest

from migrate_assets.errors import RunNotResumableError
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.saga import RetryPolicy, Saga
from tests.evolution.memory_stack import NEW_CONFIG, Crash, World, world

RETRY = RetryPolicy(attempts=1, backoff=0.0, max_backoff=0.0)
#: each layer's effect, and the step that makes it
EFFECTS = [("registry.register", "registry"), ("lakehouse.apply", "lakehouse"),
           ("source.execute_ddl", "ddl"), ("connector.put_config", "connector")]


def crashed(effect: str) -> tuple[World, dict, str]:
    """A world whose evolve process died right after `effect` landed (its step still `running` in the store)."""
    w = world()
    before = w.snapshot()
    w.faults.crash.add(effect)
    with pytest.raises(Crash):
        Saga(w.ctx, w.store, RETRY).start(w.plan, run_id="r1")
    w.store.dead = False
    return w, before, "r1"


def evolved(w: World) -> dict:
    return {"source": ["id", "note"], "registry": [1, 2], "iceberg_fields": ["id", "note"], "connector": NEW_CONFIG}


def shape(snap: dict) -> dict:
    return {"source": [c.name for c in snap["source"]], "registry": snap["registry"],
            "iceberg_fields": snap["iceberg"][2], "connector": snap["connector"]}


@pytest.mark.parametrize(("effect", "step"), EFFECTS)
def test_resume_after_a_crash_counts_the_landed_effect_as_done(effect: str, step: str) -> None:
    w, _, run_id = crashed(effect)
    assert w.store.load(run_id).step(step).status == "running"  # the record is behind the layer
    rec = evo.resume(run_id, [], w.ctx, w.store, RETRY)
    assert rec.status == "succeeded", (rec.error, [(s.id, s.status) for s in rec.steps])
    assert [s.status for s in rec.steps] == ["done"] * 5
    assert w.faults.calls[effect] == 1  # probed, never run twice
    assert shape(w.snapshot()) == evolved(w)
    assert w.store.load(run_id).status == "succeeded"


@pytest.mark.parametrize(("effect", "step"), EFFECTS)
def test_rollback_after_a_crash_undoes_the_landed_effect(effect: str, step: str) -> None:
    w, before, run_id = crashed(effect)
    rec = evo.rollback(run_id, w.ctx, w.store, RETRY)
    assert rec.status == "rolled_back", [(s.id, s.status, s.compensation) for s in rec.steps]
    assert rec.step(step).status == "compensated"
    now = w.snapshot()
    assert shape(now) == shape(before)
    assert now["iceberg"][0] == before["iceberg"][0] and now["iceberg"][1] == before["iceberg"][1]


@pytest.mark.parametrize(("effect", "step"), [e for e in EFFECTS if e[0] != "source.execute_ddl"])
def test_lost_answer_of_a_non_transactional_layer_is_undone(effect: str, step: str) -> None:
    """The server applied the request, the answer was lost: the step says `failed`, but its effect is there."""
    w = world()
    before = w.snapshot()
    w.faults.fail.add(effect)
    rec = Saga(w.ctx, w.store, RETRY).start(w.plan, run_id="r2")
    assert rec.failed_step == step and rec.status == "rolled_back"
    assert rec.step(step).status == "compensated", rec.step(step)
    assert shape(w.snapshot()) == shape(before)


@pytest.mark.parametrize(("effect", "step"), [e for e in EFFECTS if e[0] != "source.execute_ddl"])
def test_resume_after_a_lost_answer_goes_on_after_the_landed_step(effect: str, step: str) -> None:
    w = world()
    w.faults.fail.add(effect)
    Saga(w.ctx, w.store, RETRY).run(_stored(w, "r3"), compensate_on_failure=False)
    assert w.store.load("r3").step(step).status == "failed"
    rec = evo.resume("r3", [], w.ctx, w.store, RETRY)
    assert rec.status == "succeeded" and w.faults.calls[effect] == 1
    assert shape(w.snapshot()) == evolved(w)


def _stored(w: World, run_id: str):  # type: ignore[no-untyped-def]
    from migrate_assets.evolution.store import RunRecord, StepState

    rec = RunRecord(run_id, w.plan.table, "running", w.plan.to_dict(), [StepState(s.id, s.layer) for s in w.plan.steps])
    w.store.save(rec)
    return rec


def test_a_rolled_back_run_is_not_resumed() -> None:
    w, before, run_id = crashed("lakehouse.apply")
    evo.rollback(run_id, w.ctx, w.store, RETRY)
    with pytest.raises(RunNotResumableError) as err:
        evo.resume(run_id, [], w.ctx, w.store, RETRY)
    assert err.value.exit_code == 3 and "rolled_back" in str(err.value)
    assert shape(w.snapshot()) == shape(before)


@pytest.mark.parametrize("effect", [e for e, _ in EFFECTS])
def test_dry_runs_of_resume_and_rollback_change_nothing(effect: str) -> None:
    w, _, run_id = crashed(effect)
    snap, stored, saves = w.snapshot(), w.store.rows[run_id], w.store.saves
    rb = evo.rollback(run_id, w.ctx, w.store, RETRY, dry_run=True)
    rs = evo.resume(run_id, [], w.ctx, w.store, RETRY, dry_run=True)
    assert w.snapshot() == snap and w.store.rows[run_id] == stored and w.store.saves == saves
    assert rb.status == rs.status == "dry_run"
    assert any("undo" in a for a in evo.result_dict(rb)["dry_run_actions"])
    assert any(a.startswith("verify: run") for a in evo.result_dict(rs)["dry_run_actions"])
    assert w.faults.calls[effect] == 1


def test_a_record_loaded_before_the_lock_is_read_again_under_it() -> None:
    """Two rollbacks one after the other: the second loaded the record while the first still held the lock; it
    must undo from what the first left (nothing), not from its stale copy (every layer again)."""
    w, before, run_id = crashed("connector.put_config")  # the DDL is `done` in the stale copy
    stale = w.store.load(run_id)
    assert Saga(w.ctx, w.store, RETRY).rollback(w.store.load(run_id)).status == "rolled_back"
    calls = dict(w.faults.calls)
    rec = Saga(w.ctx, w.store, RETRY).rollback(stale)
    assert rec.status == "rolled_back" and w.faults.calls == calls  # no inverse ran twice
    assert shape(w.snapshot()) == shape(before)
