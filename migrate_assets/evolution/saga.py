"""The saga executor: run plan steps in order, retry transient errors, compensate in reverse on failure.

Transient errors (connection refused, HTTP 5xx/409, lock timeout, Iceberg commit conflict — anything raised as
`TransientError`) are retried with exponential backoff and jitter; semantic errors are not. When a step fails
for good, every completed step is compensated in reverse order with the inverse its action returns, and the
result names the failed step, the error and each compensation's outcome. State is persisted after every
transition (EvolutionStore), so `resume` and `rollback` work from another process after a crash.

A step's state can be behind its layer: a crash lands between a layer's commit and the saved `done`, and a
non-transactional layer (registry, lakehouse, connector) can apply a request whose answer was lost (the step
then says `failed`). So before a step that is `running`, or `failed` in a non-transactional layer, is re-run or
skipped, its layer is probed (`Action.probe`): a landed effect counts as done — a resume goes on after it, a
compensation undoes it. An undo that has to wait (the registry version, until the connector has emitted the rows
written in the new shape) stays `compensation_failed`, so the run is not `rolled_back` and a later `--rollback`
finishes it. Every process working on a run holds the run's lock (`EvolutionStore.run_lock`).
"""

from __future__ import annotations

import copy
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

from migrate_assets.errors import DataLossRefused, MigrateAssetsError, RunNotResumableError
from migrate_assets.evolution.actions import Action, ConnectorSync, RunContext, is_transient
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.planner import EvolutionPlan, PlannedStep
from migrate_assets.evolution.results import StepResult
from migrate_assets.evolution.store import EvolutionStore, RunRecord, StepState
from migrate_assets.evolution.undo import left_for_rollback, refuse_data_loss
from migrate_assets.schema.retry import backoff_delay

#: layers whose change is not one transaction: a failed request may still have been applied
NON_TRANSACTIONAL = frozenset({Layer.SCHEMA_REGISTRY, Layer.LAKEHOUSE, Layer.CONNECTOR})
#: step states that mean an undo has begun: such a run is never resumed
UNDO_STATES = frozenset({"compensating", "compensated", "compensation_failed"})


@dataclass(frozen=True)
class RetryPolicy:
    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0

    def delay(self, attempt: int) -> float:
        return backoff_delay(attempt, self.backoff, self.max_backoff)


class RunInterrupted(KeyboardInterrupt):
    """SIGINT/SIGTERM reached a running saga: the record was saved as `interrupted` (best effort) and is here."""

    def __init__(self, rec: RunRecord) -> None:
        super().__init__(rec.run_id)
        self.record = rec


def new_run_id() -> str:
    return time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:6]


def _interrupt_behind(exc: BaseException) -> bool:
    """Did a KeyboardInterrupt (SIGINT, or SIGTERM through the CLI's handler) cause `exc`? A client library may
    turn it into an error of its own (psycopg cancels the query; cleanup in the aborted transaction then fails)."""
    seen: set[int] = set()
    cur: BaseException | None = exc
    while cur is not None and id(cur) not in seen:
        if isinstance(cur, KeyboardInterrupt):
            return True
        seen.add(id(cur))
        cur = cur.__cause__ or cur.__context__
    return False


def _attempt(action: Action[Any], ctx: RunContext, retry: RetryPolicy, state: StepState,
             save: Callable[[], None]) -> StepResult:
    attempt = 0
    while True:
        attempt += 1
        state.attempts = attempt
        try:
            return action.run(ctx)
        except Exception as exc:
            if _interrupt_behind(exc):
                raise KeyboardInterrupt from exc  # an interrupt, not the step's failure: never compensated as one
            if not isinstance(exc, MigrateAssetsError):
                raise
            if not is_transient(exc) or attempt >= retry.attempts:
                raise
            wait = retry.delay(attempt)
            ctx.log(f"{state.id}: transient error (attempt {attempt}/{retry.attempts}), retrying in {wait:.2f}s: {exc}")
            state.error = f"attempt {attempt}: {exc}"
            save()
            time.sleep(wait)


def needs_probe(step: PlannedStep, st: StepState) -> bool:
    """Is the step's state possibly behind its layer?"""
    return st.status == "running" or (st.status == "failed" and step.layer in NON_TRANSACTIONAL)


def refuse_resume(rec: RunRecord) -> None:
    """A run whose undo has begun (deliberately or by compensation) is never resumed."""
    undone = [s.id for s in rec.steps if s.status in UNDO_STATES]
    if rec.status in ("rolled_back", "rollback_failed") or undone:
        detail = f" (undo began on: {', '.join(undone)})" if undone else ""
        raise RunNotResumableError(rec.run_id, rec.status, detail)


class Saga:
    def __init__(self, ctx: RunContext, store: EvolutionStore | None, retry: RetryPolicy,
                 on_step: Callable[[StepState], None] | None = None) -> None:
        self.ctx, self.store, self.retry = ctx, store, retry
        self.on_step = on_step or (lambda _s: None)
        self._locked = 0

    def _save(self, rec: RunRecord) -> None:
        if self.store is not None:
            self.store.save(rec)

    def _save_quietly(self, rec: RunRecord) -> None:
        try:
            self._save(rec)
        except BaseException:  # noqa: BLE001 - on the way out of an interrupt: the caller reports the record
            pass

    @contextmanager
    def lock(self, rec: RunRecord) -> Iterator[None]:
        """The run's lock for the outermost call (a store without locks, or none, means no lock)."""
        run_lock = getattr(self.store, "run_lock", None)
        if self._locked or run_lock is None:
            self._locked += 1
            try:
                yield
            finally:
                self._locked -= 1
            return
        with run_lock(rec.run_id):
            if self.store is not None:  # what the previous holder left: a record loaded before the lock may be stale
                # states only: the plan in hand may be rebased on the live connector config (jobs/fanout.py), and
                # the stored one holds redacted secrets
                fresh = self.store.load(rec.run_id)
                rec.status, rec.steps, rec.error, rec.failed_step = (fresh.status, fresh.steps, fresh.error,
                                                                     fresh.failed_step)
            self._locked += 1
            try:
                yield
            finally:
                self._locked -= 1

    @contextmanager
    def _interruptible(self, rec: RunRecord) -> Iterator[None]:
        """SIGINT/SIGTERM: save the record as `interrupted` (the step in hand stays `running`, to be probed by
        `--resume`/`--rollback`) and raise RunInterrupted with it."""
        try:
            yield
        except RunInterrupted:
            raise
        except KeyboardInterrupt as exc:
            rec.status = "interrupted"
            rec.error = rec.error or "interrupted by a signal"
            self._save_quietly(rec)
            raise RunInterrupted(rec) from exc
        except BaseException:
            if rec.status == "running":
                rec.status = "interrupted"
                self._save_quietly(rec)
            raise

    def start(self, plan: EvolutionPlan, run_id: str | None = None) -> RunRecord:
        rec = RunRecord(run_id or new_run_id(), plan.table, "running", plan.to_dict(),
                        [StepState(s.id, s.layer) for s in plan.steps])
        with self._interruptible(rec):
            self._save(rec)
            with self.lock(rec):
                return self.run(rec)

    def _probe(self, step: PlannedStep, st: StepState) -> StepResult | None:
        """The step's result if its effect is in its layer (None when it is not); raises when the layer cannot
        be asked."""
        return step.action.probe(self.ctx)

    def run(self, rec: RunRecord, *, stop_after: str | None = None,
            compensate_on_failure: bool = True) -> RunRecord:
        """Run every step not yet done; on a failure compensate all done steps in reverse order.

        `stop_after` runs only up to that step (one Dagster op per step); with `compensate_on_failure=False` a
        failure is recorded and left for the caller to undo layer by layer (`compensate_step`)."""
        with self._interruptible(rec), self.lock(rec):
            return self._run(rec, stop_after, compensate_on_failure)

    def _run(self, rec: RunRecord, stop_after: str | None, compensate_on_failure: bool) -> RunRecord:
        plan = EvolutionPlan.from_dict(rec.plan)
        refuse_resume(rec)
        rec.status = "running"
        rec.failed_step = rec.error = None
        for step in plan.steps:
            st = rec.step(step.id)
            if st.status != "done" and needs_probe(step, st):
                was = st.status
                try:
                    found = self._probe(step, st)
                except Exception as exc:  # noqa: BLE001 - cannot tell: the step may have landed, do not re-run
                    st.error = f"could not probe {step.layer} (step was {was}): {exc}"
                    rec.failed_step, rec.error = step.id, f"{type(exc).__name__}: {st.error}"
                    return self._failed(rec, plan, st, compensate_on_failure)
                if found is not None:
                    st.status, st.result, st.error = "done", found.to_dict(), None
                    self._save(rec)
                    self.on_step(st)
                    self.ctx.log(f"{step.id}: was {was}, its effect is in {step.layer}: counted as done")
            if st.status == "done":
                self.ctx.results[step.id] = step.action.read_result(st.result)
                if step.id == stop_after and step is not plan.steps[-1]:
                    return rec
                continue
            st.status, st.error = "running", None
            self._save(rec)
            self.on_step(st)
            t0 = time.monotonic()
            try:
                result = _attempt(step.action, self.ctx, self.retry, st, lambda: self._save(rec))
            except Exception as exc:  # noqa: BLE001 - any failure ends the forward phase
                st.status, st.error, st.seconds = "failed", str(exc), round(time.monotonic() - t0, 3)
                rec.failed_step, rec.error = step.id, f"{type(exc).__name__}: {exc}"
                return self._failed(rec, plan, st, compensate_on_failure)
            st.status, st.seconds, st.result = "done", round(time.monotonic() - t0, 3), result.to_dict()
            self.ctx.results[step.id] = result
            self._save(rec)
            self.on_step(st)
            if step.id == stop_after and step is not plan.steps[-1]:
                self._save(rec)
                return rec
        rec.status = "succeeded"
        self._save(rec)
        return rec

    def _failed(self, rec: RunRecord, plan: EvolutionPlan, st: StepState, compensate: bool) -> RunRecord:
        if not compensate:
            rec.status = "failed"
        self._save(rec)
        self.on_step(st)
        if compensate:
            try:
                self._compensate(rec, plan)
            except DataLossRefused as exc:  # issue 14: nothing undone; `--rollback --allow-data-loss` finishes
                left_for_rollback(rec, exc)
                self._save(rec)
        return rec

    def compensate(self, rec: RunRecord, plan: EvolutionPlan | None = None) -> RunRecord:
        with self._interruptible(rec), self.lock(rec):
            return self._compensate(rec, plan or EvolutionPlan.from_dict(rec.plan))

    def _compensate(self, rec: RunRecord, plan: EvolutionPlan) -> RunRecord:
        self._prepare_undo(rec, plan)
        ok = True
        for step in reversed(plan.steps):  # first learn what landed: a probed step is undone like a done one
            st = rec.step(step.id)
            if needs_probe(step, st):
                ok = self._settle(step, st, rec) and ok
        refuse_data_loss(rec, plan, self.ctx)  # before any layer is undone (evolution.undo)
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

    def _settle(self, step: PlannedStep, st: StepState, rec: RunRecord) -> bool:
        """Before an undo skips a step that is `running` (or `failed` in a non-transactional layer): did its
        effect land? Landed → `done` (so it is undone); not landed → `failed`; cannot tell → left as it is, the
        rollback incomplete (False) so that a later `--rollback` asks again."""
        was = st.status
        try:
            found = self._probe(step, st)
        except Exception as exc:  # noqa: BLE001 - an unreachable layer: report, and go on with the others
            st.compensation = f"pending: could not probe {step.layer} (step was {was}): {exc}"
            self._save(rec)
            self.on_step(st)
            return False
        if found is not None:
            st.status, st.result = "done", found.to_dict()
            self.ctx.results[st.id] = found
            self.ctx.log(f"{st.id}: was {was}, its effect is in {step.layer}: undoing it")
        else:
            st.status = "failed"
            if was == "running":
                st.error = st.error or "interrupted; probed: its effect is not in the layer"
        self._save(rec)
        return True

    def _prepare_undo(self, rec: RunRecord, plan: EvolutionPlan) -> None:
        """What an undo may need from the run: earlier results (e.g. the DDL's commit LSN, also after a crash,
        from the persisted record) and the connector's slot."""
        for step in plan.steps:
            st = rec.step(step.id)
            if st.result and st.id not in self.ctx.results:
                self.ctx.results[st.id] = step.action.read_result(st.result)
        self.ctx.slot = next((s.action.slot for s in plan.steps if isinstance(s.action, ConnectorSync)), None)

    def compensate_step(self, rec: RunRecord, step_id: str) -> StepState:
        """Undo one layer's completed step (the others untouched); steps that never ran never will."""
        with self._interruptible(rec), self.lock(rec):
            plan = EvolutionPlan.from_dict(rec.plan)
            self._prepare_undo(rec, plan)
            for other in rec.steps:
                if other.status == "pending":
                    other.status = "skipped"
            step = next(s for s in plan.steps if s.id == step_id)
            st = rec.step(step_id)
            if needs_probe(step, st):
                self._settle(step, st, rec)
            if st.status in ("done", "compensation_failed", "compensating"):
                self._compensate_one(step, st, rec)
            rec.status = final_status(rec)
            self._save(rec)
            return st

    def _compensate_one(self, step: PlannedStep, st: StepState, rec: RunRecord) -> bool:
        inverse = step.action.inverse_of(st.result)
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
        st.compensation_result = res.to_dict()
        if res.waiting:
            # the undo must wait (the connector has not drained): not done, so a later --rollback does it
            st.status = "compensation_failed"
            st.compensation = f"pending: {res.waiting}; run `migrate-assets evolve --rollback {rec.run_id}` again " \
                              "once the connector runs and has drained"
            self._save(rec)
            self.on_step(st)
            return False
        if res.skipped:
            st.compensation = f"skipped: {res.skipped}"
        else:
            st.compensation = f"done: {inverse.describe()}"
        st.status = "compensated"
        self._save(rec)
        self.on_step(st)
        return True

    def rollback(self, rec: RunRecord) -> RunRecord:
        """Compensate a persisted run. A step left `running` by a crash (or `failed` in a non-transactional
        layer) is probed in its layer: if its effect landed, it is compensated like a done step."""
        return self.compensate(rec)

    # -- dry runs: what --resume / --rollback would do, reading the layers only ----------------------------------

    def preview_rollback(self, rec: RunRecord) -> tuple[RunRecord, list[str]]:
        """A copy of the record with what a rollback would do, and that as text; nothing is written."""
        rec = copy.deepcopy(rec)
        plan = EvolutionPlan.from_dict(rec.plan)
        would = []
        for step in reversed(plan.steps):
            st = rec.step(step.id)
            if needs_probe(step, st):
                was, found = st.status, self._probe(step, st)
                if found is not None:
                    st.status, st.result = "done", found.to_dict()
                would.append(f"{step.id}: was {was}; probed: "
                             + ("its effect is in the layer" if found is not None else "not in the layer"))
            if st.status in ("done", "compensation_failed", "compensating"):
                inverse = step.action.inverse_of(st.result)
                st.compensation = f"would undo: {inverse.describe()}" if inverse else "nothing to undo"
                if inverse is not None:
                    would.append(f"{step.id}: undo: {inverse.describe()}")
        rec.status = "dry_run"
        return rec, would

    def preview_resume(self, rec: RunRecord) -> tuple[RunRecord, list[str]]:
        """A copy of the record with what a resume would do, and that as text; nothing is written."""
        refuse_resume(rec)
        rec = copy.deepcopy(rec)
        plan = EvolutionPlan.from_dict(rec.plan)
        would = []
        for step in plan.steps:
            st = rec.step(step.id)
            if st.status != "done" and needs_probe(step, st):
                found = self._probe(step, st)
                if found is not None:
                    st.status, st.result = "done", found.to_dict()
                    would.append(f"{step.id}: probed: its effect is in the layer, counted as done")
            if st.status != "done":
                would.append(f"{step.id}: run: {step.action.describe()}")
        rec.status = "dry_run"
        return rec, would


def final_status(rec: RunRecord) -> str:
    """rollback_failed when a layer could not be undone, failed while a layer still waits for its undo."""
    states = {s.status for s in rec.steps}
    if states & {"compensation_failed", "compensating", "running"}:
        return "rollback_failed"
    return "failed" if "done" in states else "rolled_back"
