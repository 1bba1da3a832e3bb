"""Run the saga one step at a time, so each evolution step (and each compensation) is its own Dagster op.

Built only on the engine's public `Saga` API; no Dagster here. The saga's own behaviour is kept: retries with its
`RetryPolicy`, state persisted after every transition, results of earlier steps fed to later ones (the connector
step needs the DDL's commit LSN). What changes is *who* compensates: instead of the saga undoing every layer inside
the failing step, the failure is reported and the job's rollback ops compensate one layer each, in reverse order.
"""

from __future__ import annotations

from collections.abc import Callable

from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.planner import EvolutionPlan
from migrate_assets.evolution.saga import RetryPolicy, Saga
from migrate_assets.evolution.store import EvolutionStore, RunRecord, StepState


class _ForwardOnly(Saga):
    """A saga whose forward failure leaves compensation to the caller (the rollback ops)."""

    def compensate(self, rec: RunRecord, plan: EvolutionPlan | None = None) -> RunRecord:
        rec.status = "failed"
        self._save(rec)
        return rec


def plan_of(rec: RunRecord) -> EvolutionPlan:
    return EvolutionPlan.from_dict(rec.plan)


def run_step(rec: RunRecord, step_id: str, ctx: RunContext, store: EvolutionStore, retry: RetryPolicy,
             on_step: Callable[[StepState], None] | None = None) -> StepState:
    """Run the plan up to and including `step_id` (earlier steps must be done); returns that step's state.

    Idempotent: a step already done is not run again, so Dagster may retry the op safely.
    """
    steps = rec.plan["steps"]
    idx = next(i for i, s in enumerate(steps) if s["id"] == step_id)
    last = idx == len(steps) - 1
    # a view of the record whose plan ends at this step; it shares the step states with `rec`
    view = RunRecord(rec.run_id, rec.table, rec.status, {**rec.plan, "steps": steps[: idx + 1]}, rec.steps,
                     rec.error, rec.failed_step)
    _ForwardOnly(ctx, store, retry, on_step).run(view)
    rec.error, rec.failed_step = view.error, view.failed_step
    rec.status = view.status if (view.status == "failed" or last) else "running"
    store.save(rec)
    return rec.step(step_id)


def compensate_step(rec: RunRecord, step_id: str, ctx: RunContext, store: EvolutionStore, retry: RetryPolicy,
                    on_step: Callable[[StepState], None] | None = None) -> StepState:
    """Undo one layer's completed step with the inverse its action returns; other layers are untouched."""
    plan = plan_of(rec)
    only = EvolutionPlan(plan.table, plan.operations, tuple(s for s in plan.steps if s.id == step_id),
                         plan.skipped_layers, plan.breaking, plan.warnings)
    for st in rec.steps:  # once compensation begins, steps that never ran never will (as in Saga.compensate)
        if st.status == "pending":
            st.status = "skipped"
    Saga(ctx, store, retry, on_step).compensate(rec, only)
    rec.status = final_status(rec)
    store.save(rec)
    return rec.step(step_id)


def final_status(rec: RunRecord) -> str:
    """rollback_failed when a layer could not be undone, failed while a layer still waits for its undo."""
    states = {s.status for s in rec.steps}
    if states & {"compensation_failed", "compensating", "running"}:
        return "rollback_failed"
    return "failed" if "done" in states else "rolled_back"
