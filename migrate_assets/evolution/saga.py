"""The saga executor: run plan steps in order, retry transient errors, compensate in reverse on failure.

Transient errors (connection refused, HTTP 5xx/409, lock timeout, Iceberg commit conflict — anything raised as
`TransientError`) are retried with exponential backoff and jitter; semantic errors are not. When a step fails
for good, every completed step is compensated in reverse order with the inverse its action returns, and the
result names the failed step, the error and each compensation's outcome. State is persisted after every
transition (EvolutionStore), so `resume` and `rollback` work from another process after a crash.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from migrate_assets.errors import MigrateAssetsError
from migrate_assets.evolution.actions import Action, ConnectorSync, RunContext, is_transient
from migrate_assets.evolution.planner import EvolutionPlan, PlannedStep
from migrate_assets.evolution.store import EvolutionStore, RunRecord, StepState
from migrate_assets.schema.retry import backoff_delay


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, attempt: int) -> float:
        return backoff_delay(attempt, self.backoff, self.max_backoff)


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _attempt(action: Action, ctx: RunContext, retry: RetryPolicy, state: StepState,
             save: Callable[[], None]) -> dict[str, Any]:
    attempt = 0
    while True:
        attempt += 1
        state.attempts = attempt
        try:
            return action.run(ctx)
        except MigrateAssetsError as exc:
            if not is_transient(exc) or attempt >= retry.attempts:
                raise
            wait = retry.delay(attempt)
            ctx.log(f"{state.id}: transient error (attempt {attempt}/{retry.attempts}), retrying in {wait:.2f}s: {exc}")
            state.error = f"attempt {attempt}: {exc}"
            save()
            time.sleep(wait)


class Saga:
    def __init__(self, ctx: RunContext, store: EvolutionStore | None, retry: RetryPolicy,
                 on_step: Callable[[StepState], None] | None = None) -> None:
        self.ctx, self.store, self.retry = ctx, store, retry
        self.on_step = on_step or (lambda _s: None)

    def _save(self, rec: RunRecord) -> None:
        if self.store is not None:
            self.store.save(rec)

    def start(self, plan: EvolutionPlan, run_id: str | None = None) -> RunRecord:
        rec = RunRecord(run_id or new_run_id(), plan.table, "running", plan.to_dict(),
                        [StepState(s.id, s.layer) for s in plan.steps])
        self._save(rec)
        return self.run(rec)

    def run(self, rec: RunRecord, *, stop_after: str | None = None,
            compensate_on_failure: bool = True) -> RunRecord:
        """Run every step not yet done; on a failure compensate all done steps in reverse order.

        `stop_after` runs only up to that step (one Dagster op per step); with `compensate_on_failure=False` a
        failure is recorded and left for the caller to undo layer by layer (`compensate_step`)."""
        plan = EvolutionPlan.from_dict(rec.plan)
        rec.status = "running"
        for step in plan.steps:
            st = rec.step(step.id)
            if st.status == "done":
                self.ctx.results[step.id] = st.result
                continue
            st.status, st.error = "running", None
            self._save(rec)
            self.on_step(st)
            t0 = time.monotonic()
            try:
                st.result = _attempt(step.action, self.ctx, self.retry, st, lambda: self._save(rec))
            except Exception as exc:  # noqa: BLE001 - any failure ends the forward phase
                st.status, st.error, st.seconds = "failed", str(exc), round(time.monotonic() - t0, 3)
                rec.failed_step, rec.error = step.id, f"{type(exc).__name__}: {exc}"
                if not compensate_on_failure:
                    rec.status = "failed"
                self._save(rec)
                self.on_step(st)
                if compensate_on_failure:
                    self.compensate(rec, plan)
                return rec
            st.status, st.seconds = "done", round(time.monotonic() - t0, 3)
            self.ctx.results[step.id] = st.result
            self._save(rec)
            self.on_step(st)
            if step.id == stop_after and step is not plan.steps[-1]:
                self._save(rec)
                return rec
        rec.status = "succeeded"
        self._save(rec)
        return rec

    def compensate(self, rec: RunRecord, plan: EvolutionPlan | None = None) -> RunRecord:
        plan = plan or EvolutionPlan.from_dict(rec.plan)
        self._prepare_undo(rec, plan)
        ok = True
        for step in reversed(plan.steps):
            st = rec.step(step.id)
            if st.status not in ("done", "compensation_failed", "compensating"):
                if st.status == "pending":
                    st.status = "skipped"
                continue
            ok = self._compensate_one(step, st, rec) and ok
        rec.status = "rolled_back" if ok else "rollback_failed"
        self._save(rec)
        return rec

    def _prepare_undo(self, rec: RunRecord, plan: EvolutionPlan) -> None:
        """What an undo may need from the run: earlier results (e.g. the DDL's commit LSN, also after a crash,
        from the persisted record) and the connector's slot."""
        for st in rec.steps:
            if st.result and st.id not in self.ctx.results:
                self.ctx.results[st.id] = st.result
        self.ctx.slot = next((s.action.slot for s in plan.steps if isinstance(s.action, ConnectorSync)), None)

    def compensate_step(self, rec: RunRecord, step_id: str) -> StepState:
        """Undo one layer's completed step (the others untouched); steps that never ran never will."""
        plan = EvolutionPlan.from_dict(rec.plan)
        self._prepare_undo(rec, plan)
        for other in rec.steps:
            if other.status == "pending":
                other.status = "skipped"
        step = next(s for s in plan.steps if s.id == step_id)
        st = rec.step(step_id)
        if st.status in ("done", "compensation_failed", "compensating"):
            self._compensate_one(step, st, rec)
        rec.status = final_status(rec)
        self._save(rec)
        return st

    def _compensate_one(self, step: PlannedStep, st: StepState, rec: RunRecord) -> bool:
        inverse = step.action.inverse(st.result)
        if inverse is None:
            st.status, st.compensation = "compensated", "nothing to undo"
            self._save(rec)
            return True
        st.status = "compensating"
        self._save(rec)
        try:
            res = _attempt(inverse, self.ctx, self.retry, StepState(st.id + ":undo", st.layer), lambda: None)
        except Exception as exc:  # noqa: BLE001 - report and go on with the other layers
            st.status, st.compensation = "compensation_failed", f"failed: {type(exc).__name__}: {exc}"
            self._save(rec)
            self.on_step(st)
            return False
        st.compensation_result = res
        if res.get("deleted") is False and res.get("reason"):
            st.compensation = f"skipped: {res['reason']}"
        else:
            st.compensation = f"done: {inverse.describe()}"
        st.status = "compensated"
        self._save(rec)
        self.on_step(st)
        return True

    def rollback(self, rec: RunRecord) -> RunRecord:
        """Compensate a persisted run. A step left `running` by a crash is probed in its layer: if its effect
        landed (e.g. the Iceberg commit went through just before the kill), it is compensated like a done step."""
        plan = EvolutionPlan.from_dict(rec.plan)
        for step in plan.steps:
            st = rec.step(step.id)
            if st.status == "running":
                found = st.result or step.action.probe(self.ctx)
                st.status, st.result = ("done", found) if found else ("failed", {})
        return self.compensate(rec, plan)


def final_status(rec: RunRecord) -> str:
    """rollback_failed when a layer could not be undone, failed while a layer still waits for its undo."""
    states = {s.status for s in rec.steps}
    if states & {"compensation_failed", "compensating", "running"}:
        return "rollback_failed"
    return "failed" if "done" in states else "rolled_back"
