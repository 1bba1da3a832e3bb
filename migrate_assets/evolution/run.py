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
from migrate_assets.evolution.saga import RetryPolicy, Saga, new_run_id
from migrate_assets.evolution.store import EvolutionStore, RunRecord, StepState
from migrate_assets.evolution.verify import verify_table
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.schema.model import Table


def attach_verifier(ctx: RunContext, targets: list[PipelineTarget]) -> None:
    by_table = {t.table: t for t in targets}

    def verifier(table: str, c: RunContext) -> list[str]:
        target = by_table.get(table, PipelineTarget(table))
        proved = c.results.get(Layer.CONNECTOR.step, {}).get("progress_lsn")
        return verify_table(target, c, progress_bound=c.bounds.progress,
                            progress_target=lsn_to_int(proved) if proved else None).differences()

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
    attach_verifier(ctx, [report.snapshot.target])
    if dry_run:
        rec = RunRecord(new_run_id(), report.plan.table, "dry_run", report.plan.to_dict(),
                        [StepState(s.id, s.layer) for s in report.plan.steps])
        return report, rec
    return report, Saga(ctx, store, retry, on_step).start(report.plan)


def resume(run_id: str, targets: list[PipelineTarget], ctx: RunContext, store: EvolutionStore,
           retry: RetryPolicy, on_step: Callable[[StepState], None] | None = None) -> RunRecord:
    rec = store.load(run_id)
    attach_verifier(ctx, targets)
    ctx.resuming = True
    return Saga(ctx, store, retry, on_step).run(rec)


def rollback(run_id: str, ctx: RunContext, store: EvolutionStore, retry: RetryPolicy,
             on_step: Callable[[StepState], None] | None = None) -> RunRecord:
    rec = store.load(run_id)
    return Saga(ctx, store, retry, on_step).rollback(rec)


def result_dict(rec: RunRecord) -> dict[str, Any]:
    plan = EvolutionPlan.from_dict(rec.plan)
    status = {"rollback_failed": "failed", "running": "failed"}.get(rec.status, rec.status)
    steps = []
    for p in plan.steps:
        st = rec.step(p.id)
        steps.append({
            "layer": p.layer, "action": p.action.describe(), "status": st.status,
            "compensation": st.compensation or p.compensation, "reversible": p.reversible,
            "seconds": st.seconds, "attempts": st.attempts, "error": st.error, "result": st.result,
        })
    return {"run_id": rec.run_id, "status": status, "table": rec.table, "steps": steps,
            "failed_step": rec.failed_step, "error": rec.error,
            "skipped_layers": list(plan.skipped_layers), "warnings": list(plan.warnings)}
