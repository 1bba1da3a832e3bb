"""Undo never loses data (issue 14): the whole-run check before any layer is undone.

Every inverse probes its own layer for what it would lose (`Action.losses`: non-null values of a column it would
drop, rows of a table it would drop) and refuses to run without `RunContext.allow_data_loss`. That alone would
stop an undo half-way — one layer undone, the next refused — so before a compensation starts, `refuse_data_loss`
asks every inverse still to run and refuses the whole undo (`DataLossRefused`, exit 3) before anything is
changed, naming each layer, column and count.

The automatic compensation of a failed forward run is held to the same rule, probed, not assumed: right after our
own DDL a new column is empty only if it has no default and no row was written since. A refused compensation
leaves every completed step `done` and the run `failed`, its error naming the losses and the command that
finishes the undo (`evolve --rollback RUN --allow-data-loss`).
"""

from __future__ import annotations

from migrate_assets.errors import DataLoss, DataLossRefused
from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.planner import EvolutionPlan
from migrate_assets.evolution.store import RunRecord

#: step states whose effect is in the layer and still to be undone
TO_UNDO = ("done", "compensation_failed", "compensating")


def undo_losses(rec: RunRecord, plan: EvolutionPlan, ctx: RunContext) -> list[DataLoss]:
    """What undoing every completed step of the run would lose now, probed in each layer."""
    out: list[DataLoss] = []
    for step in reversed(plan.steps):
        st = rec.step(step.id)
        if st.status not in TO_UNDO:
            continue
        inverse = step.action.inverse_of(st.result)
        if inverse is not None:
            out += inverse.losses(ctx)
    return out


def refuse_data_loss(rec: RunRecord, plan: EvolutionPlan, ctx: RunContext) -> None:
    """Raise DataLossRefused (nothing undone yet) unless the undo loses nothing or `ctx.allow_data_loss`."""
    if ctx.allow_data_loss:
        return
    losses = undo_losses(rec, plan, ctx)
    if losses:
        raise DataLossRefused(losses, rec.run_id)


def left_for_rollback(rec: RunRecord, refusal: DataLossRefused) -> None:
    """A failed forward run whose compensation was refused: `failed`, its completed steps still `done`, and the
    error says what would be lost and how to finish the undo."""
    rec.status = "failed"
    for st in rec.steps:
        if st.status == "pending":
            st.status = "skipped"
    rec.error = f"{rec.error or 'failed'}; compensation {refusal}"
