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
from migrate_assets.evolution.saga import RetryPolicy, Saga, final_status
from migrate_assets.evolution.store import EvolutionStore, RunRecord, StepState


def plan_of(rec: RunRecord) -> EvolutionPlan:
    return EvolutionPlan.from_dict(rec.plan)


def run_step(rec: RunRecord, step_id: str, ctx: RunContext, store: EvolutionStore, retry: RetryPolicy,
             on_step: Callable[[StepState], None] | None = None) -> StepState:
    """Run the plan up to and including `step_id`; a failure is left to the rollback ops.

    Idempotent: a step already done is not run again, so Dagster may retry the op safely.
    """
    Saga(ctx, store, retry, on_step).run(rec, stop_after=step_id, compensate_on_failure=False)
    return rec.step(step_id)


def compensate_step(rec: RunRecord, step_id: str, ctx: RunContext, store: EvolutionStore, retry: RetryPolicy,
                    on_step: Callable[[StepState], None] | None = None) -> StepState:
    """Undo one layer's completed step with the inverse its action returns; other layers are untouched."""
    return Saga(ctx, store, retry, on_step).compensate_step(rec, step_id)


def rollback_record(rec: RunRecord, ctx: RunContext, store: EvolutionStore, retry: RetryPolicy,
                    on_step: Callable[[StepState], None] | None = None) -> RunRecord:
    """Compensate every completed step of a loaded run (`evolution.run.rollback` for a record already in hand)."""
    return Saga(ctx, store, retry, on_step).rollback(rec)


__all__ = ["compensate_step", "final_status", "plan_of", "rollback_record", "run_step"]
