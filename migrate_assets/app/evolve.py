"""Use cases: evolve one or many pipeline tables, resume and roll back a stored run — for every front end.

`plan_changes` / `plan_new_tables` run the pre-flight of every table of a launch before any table changes
anything, refusing two changes of one table and plans that touch the same object (`app.fanout`). `evolve_tables`
then runs the tables' sagas one after another, each for its whole run under the evolution layer lock
(`app.fanout.guard`: exclusive when the plan changes the connector's config — the change rebased on the live
config under the lock — shared otherwise), so that a CLI run and a Dagster run (or two CLI runs) on one database
never restart a connector under another table's DDL. The Dagster job holds the same guard per step (one op each).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from contextlib import nullcontext
from dataclasses import dataclass
from typing import TYPE_CHECKING

from migrate_assets.app.fanout import LayerLock, guard, refuse_duplicate_tables, refuse_overlapping_plans
from migrate_assets.errors import UsageError
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.planner import EvolutionPlan, PipelineTarget, Policy
from migrate_assets.evolution.preflight import PreflightReport
from migrate_assets.evolution.saga import RetryPolicy, Saga
from migrate_assets.evolution.store import EvolutionStore, RunRecord, StepState
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.schema.model import Table

if TYPE_CHECKING:
    from migrate_assets.config import ProjectConfig

OnStep = Callable[[StepState], None]


@dataclass(frozen=True, slots=True)
class PlannedTable:
    """One table of a launch after its pre-flight: the checks and the plan, as a `dry_run` run record."""

    report: PreflightReport
    record: RunRecord

    @property
    def table(self) -> str:
        return self.record.table


@dataclass(frozen=True, slots=True)
class EvolveOutcome:
    #: each table's run in launch order (for a dry run: its plan), up to the first that did not succeed
    runs: tuple[PlannedTable, ...]
    #: tables whose turn never came because an earlier table's run did not succeed
    not_started: tuple[str, ...] = ()

    @property
    def succeeded(self) -> bool:
        return not self.not_started and all(p.record.status in ("succeeded", "dry_run") for p in self.runs)


def plan_changes(changes: Sequence[ChangeSet], ctx: RunContext, target_of: Callable[[str], PipelineTarget],
                 policy: Policy, retry: RetryPolicy, file: str) -> list[PlannedTable]:
    """Pre-flight of every change (reads and checks only): one change per table, disjoint plans, every check
    passed — or the launch stops here with nothing changed. `file` names the launch in a refusal."""
    refuse_duplicate_tables(changes)
    planned = [PlannedTable(*evo.evolve(c, target_of(c.qualified), ctx, policy, None, retry, dry_run=True))
               for c in changes]
    refuse_overlapping_plans([p.report.plan for p in planned], file)
    return planned


def plan_new_tables(pending: Sequence[tuple[PipelineTarget, Table | None]], ctx: RunContext, policy: Policy,
                    retry: RetryPolicy, file: str) -> list[PlannedTable]:
    """Pre-flight of tables joining the pipeline (`evolution.run.tables_to_add`): created from their spec, or
    already there (spec None)."""
    if not pending:
        raise UsageError("nothing to evolve: every pipeline table exists and is captured; give a CHANGE_FILE "
                         "for changes to existing tables", file=file)
    planned = [PlannedTable(*evo.evolve_new_table(spec, target, ctx, policy, None, retry, dry_run=True))
               for target, spec in pending]
    refuse_overlapping_plans([p.report.plan for p in planned], file)
    return planned


def evolve_tables(planned: Sequence[PlannedTable], ctx: RunContext, store: EvolutionStore | None,
                  retry: RetryPolicy, lock: LayerLock | None, on_step: OnStep | None = None,
                  dry_run: bool = False) -> EvolveOutcome:
    """Run each planned table's saga in launch order under the layer lock it needs (`lock` None: no lock, for
    a store-less test); the first table that does not succeed (rolled back, failed) ends the launch. A dry run
    returns the plans."""
    if dry_run:
        return EvolveOutcome(tuple(planned))
    done: list[PlannedTable] = []
    for i, p in enumerate(planned):
        evo.attach_verifier(ctx, p.report.targets)
        rec = p.record
        with guard(lock, rec, "all", ctx) if lock is not None else nullcontext():
            rec = Saga(ctx, store, retry, on_step).start(EvolutionPlan.from_dict(rec.plan), rec.run_id)
        done.append(PlannedTable(p.report, rec))
        if rec.status != "succeeded":
            return EvolveOutcome(tuple(done), tuple(q.table for q in planned[i + 1:]))
    return EvolveOutcome(tuple(done))


def resume_run(run_id: str, targets: list[PipelineTarget], ctx: RunContext, store: EvolutionStore,
               retry: RetryPolicy, lock: LayerLock | None, on_step: OnStep | None = None,
               dry_run: bool = False) -> RunRecord:
    """Finish a stored run under the layer lock (its connector change rebased on the live config)."""
    if dry_run:
        return evo.resume(run_id, targets, ctx, store, retry, on_step, dry_run=True)
    rec = store.load(run_id)
    with guard(lock, rec, "all", ctx) if lock is not None else nullcontext():
        return evo.resume(run_id, targets, ctx, store, retry, on_step, record=rec)


def rollback_run(run_id: str, ctx: RunContext, store: EvolutionStore, retry: RetryPolicy, lock: LayerLock | None,
                 on_step: OnStep | None = None, dry_run: bool = False) -> RunRecord:
    """Undo a stored run under the layer lock (its connector undo rebased on the live config: another table's
    change made since stays)."""
    if dry_run:
        return evo.rollback(run_id, ctx, store, retry, on_step, dry_run=True)
    rec = store.load(run_id)
    with guard(lock, rec, "all", ctx, undo=True) if lock is not None else nullcontext():
        return evo.rollback(run_id, ctx, store, retry, on_step, record=rec)



@dataclass(frozen=True, slots=True)
class ChangeHazards:
    """What `plan` would say of a change's DDL, read from the live table before anything runs."""

    #: each operation's hazards by the declarative side's rules (`schema/hazards.py`), through its own plain DDL
    hazards: tuple[str, ...] = ()
    #: a primary-key column changes: the topic's key schema changes too
    key_changes: bool = False
    #: the hazards of the DDL that undoes it (and, for a rollback, the values it would lose: `app.step_hazards`)
    undo_hazards: tuple[str, ...] = ()


def change_hazards(cfg: ProjectConfig, change: ChangeSet) -> ChangeHazards:
    """The hazards of `change` on the live table; none when the table cannot be read or an operation is refused
    (pre-flight then reports why)."""
    from migrate_assets.resources.database import connect
    from migrate_assets.schema.introspect import introspect
    from migrate_assets.schema.ops.shape import TableShape

    try:
        with connect(cfg, "migrate-assets", read_only=True) as conn:
            live = introspect(conn, [change.schema], [(change.schema, change.table)]).get(
                (change.schema, change.table))
        if live is None:
            return ChangeHazards()
        shape = TableShape(live)
        hazards: list[str] = []
        for op in change.operations:
            hazards += [str(h) for h in op.plain(shape.table).hazards if str(h) not in hazards]
            op.effects(shape)
    except Exception:  # noqa: BLE001 - pre-flight reports an unreadable table or a refused operation itself
        return ChangeHazards()
    after = {c.name: c.type for c in shape.table.columns}
    pk = live.primary_key.columns if live.primary_key else ()
    before = {c.name: c.type for c in live.columns}
    return ChangeHazards(tuple(hazards), any(after.get(c) != before.get(c) for c in pk))
