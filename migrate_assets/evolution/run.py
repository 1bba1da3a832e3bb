"""Entry points shared by the CLI and the Dagster ops: evolve, resume, rollback, and the result shape.

The JSON shape of a run (SPEC §8): `{"run_id", "status": succeeded|rolled_back|failed|dry_run, "steps": [{"layer",
"action", "status", "compensation", "reversible", "seconds"}], "error"}`; `failed` also covers a rollback that
could not undo every layer (`rollback_failed` in the store).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.layers import Layer, lsn_to_int
from migrate_assets.evolution.planner import EvolutionPlan, PipelineTarget, Policy
from migrate_assets.evolution.preflight import (
    PreflightReport,
    joining,
    preflight,
    preflight_join_table,
    preflight_new_table,
)
from migrate_assets.evolution.results import ConnectorSynced
from migrate_assets.evolution.saga import RetryPolicy, Saga, new_run_id
from migrate_assets.evolution.store import EvolutionStore, RunRecord, StepState
from migrate_assets.evolution.verify import verify_table
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.schema.model import Table


def attach_verifier(ctx: RunContext, targets: list[PipelineTarget]) -> None:
    by_table = {t.table: t for t in targets}

    def verifier(table: str, c: RunContext) -> list[str]:
        target = by_table.get(table, PipelineTarget(table))
        # the restart of this table's connector, when the run restarted another connector than its own table's
        synced = (c.result(f"{Layer.CONNECTOR.step}:{target.connector}", ConnectorSynced)
                  or c.result(Layer.CONNECTOR.step, ConnectorSynced))
        proved = lsn_to_int(synced.progress_lsn) if synced is not None else None
        return verify_table(target, c, progress_bound=c.bounds.progress, progress_target=proved,
                            sink_data=False).differences()

    ctx.verifier = verifier


def evolve(change: ChangeSet, target: PipelineTarget, ctx: RunContext, policy: Policy,
           store: EvolutionStore | None, retry: RetryPolicy, dry_run: bool = False,
           on_step: Callable[[StepState], None] | None = None) -> tuple[PreflightReport, RunRecord]:
    return _execute(preflight(change, target, ctx, policy), ctx, store, retry, dry_run, on_step)


def evolve_new_table(table: Table | None, target: PipelineTarget, ctx: RunContext, policy: Policy,
                     store: EvolutionStore | None, retry: RetryPolicy, dry_run: bool = False,
                     on_step: Callable[[StepState], None] | None = None) -> tuple[PreflightReport, RunRecord]:
    """A table joins the pipeline: created from its spec (`table`), or already there with rows (`None`)."""
    if table is None:
        report = preflight_join_table(target, ctx, policy)
    else:
        report = preflight_new_table(table, target, ctx, policy)
    return _execute(report, ctx, store, retry, dry_run, on_step)


def tables_to_add(targets: list[PipelineTarget], specs: list[Table],
                  ctx: RunContext) -> list[tuple[PipelineTarget, Table | None]]:
    """What `evolve` without a change does (CLI and Dagster job alike): every pipeline table declared in the specs
    but absent from the database is created from its spec, then every existing pipeline table its connector does
    not capture yet joins (spec `None`), in `pipelines` order."""
    by_name = {t.qualified: t for t in specs}
    pending: list[tuple[PipelineTarget, Table | None]] = [
        (t, by_name[t.table]) for t in targets if t.table in by_name and ctx.source.columns(t.table) is None]
    return pending + [(t, None) for t in targets if joining(t, ctx)]


def _execute(report: PreflightReport, ctx: RunContext, store: EvolutionStore | None, retry: RetryPolicy,
             dry_run: bool, on_step: Callable[[StepState], None] | None) -> tuple[PreflightReport, RunRecord]:
    """After pre-flight: stop there for a dry run, else run the plan as a saga."""
    attach_verifier(ctx, report.targets)
    if dry_run:
        rec = RunRecord(new_run_id(), report.plan.table, "dry_run", report.plan.to_dict(),
                        [StepState(s.id, s.layer) for s in report.plan.steps])
        return report, rec
    return report, Saga(ctx, store, retry, on_step).start(report.plan)


def resume(run_id: str, targets: list[PipelineTarget], ctx: RunContext, store: EvolutionStore,
           retry: RetryPolicy, on_step: Callable[[StepState], None] | None = None,
           dry_run: bool = False, record: RunRecord | None = None) -> RunRecord:
    """Finish a persisted run; a step the crash left `running` is probed first (landed: counted as done). A run
    whose undo has begun is refused (RunNotResumableError); `dry_run` says what would run and writes nothing.
    `record`: the run as already loaded (its plan rebased on the live connector config, `app.fanout.guard`)."""
    rec = record or store.load(run_id)
    attach_verifier(ctx, targets)
    ctx.resuming = True
    saga = Saga(ctx, store, retry, on_step)
    if dry_run:
        preview, would = saga.preview_resume(rec)
        return _with_plan(preview, would)
    return saga.run(rec)


def rollback(run_id: str, ctx: RunContext, store: EvolutionStore, retry: RetryPolicy,
             on_step: Callable[[StepState], None] | None = None, dry_run: bool = False,
             record: RunRecord | None = None) -> RunRecord:
    """Compensate a persisted run (steps left `running` are probed); `dry_run` says what would be undone.
    `record`: the run as already loaded (its plan rebased on the live connector config, `app.fanout.guard`)."""
    rec = record or store.load(run_id)
    saga = Saga(ctx, store, retry, on_step)
    if dry_run:
        preview, would = saga.preview_rollback(rec)
        return _with_plan(preview, would)
    return saga.rollback(rec)


def _with_plan(rec: RunRecord, would: list[str]) -> RunRecord:
    rec.plan = {**rec.plan, "dry_run_actions": would}
    return rec


#: what a person does next, by stored status (the run id is filled in)
NEXT = {
    "interrupted": "the run was interrupted; its state is saved: `migrate-assets evolve --rollback {run}` undoes "
                   "it, `migrate-assets evolve --resume {run}` finishes it (both probe the step that was running)",
    "running": "the run did not finish: `migrate-assets evolve --rollback {run}` undoes it, "
               "`migrate-assets evolve --resume {run}` finishes it",
    "rollback_failed": "some layers are not undone yet (see each step's compensation): run "
                       "`migrate-assets evolve --rollback {run}` again once they are reachable",
    "failed": "a step failed and its layers were left for the rollback: `migrate-assets evolve --rollback {run}`",
}


def result_dict(rec: RunRecord) -> dict[str, Any]:
    plan = EvolutionPlan.from_dict(rec.plan)
    status = {"rollback_failed": "failed", "running": "failed", "interrupted": "failed"}.get(rec.status, rec.status)
    steps = []
    for p in plan.steps:
        st = rec.step(p.id)
        steps.append({
            "layer": p.layer, "action": p.action.describe(), "status": st.status,
            "compensation": st.compensation or p.compensation, "reversible": p.reversible,
            "seconds": st.seconds, "attempts": st.attempts, "error": st.error, "result": st.result,
        })
    out: dict[str, Any] = {
        "run_id": rec.run_id, "status": status, "run_status": rec.status, "table": rec.table, "steps": steps,
        "layers": {s["layer"]: s["status"] for s in steps},
        "failed_step": rec.failed_step, "error": rec.error,
        "skipped_layers": list(plan.skipped_layers), "warnings": list(plan.warnings)}
    if rec.status in NEXT:
        out["next"] = NEXT[rec.status].format(run=rec.run_id)
    if "dry_run_actions" in rec.plan:
        out["dry_run_actions"] = list(rec.plan["dry_run_actions"])
    return out
