"""One op per saga step (the graph `evolve_table` in jobs/evolve.py): red where the evolution failed, and
re-executable.

Each op runs its planned step through the engine's saga (jobs/stepwise.py) and reports the layer it changed as an
asset observation carrying the layer's new columns. When the step fails, *that* op fails: first the saga undoes
the table's completed layers in reverse order, inside the op (each undo is a log line; the restored layers are
observed again), then the op raises `Failure` with the error, every layer's state and what a re-execution will
do. The ops after it do not run. With `on_failure: hold` in the launch config nothing is undone: the layers wait.

Dagster's "Re-execute from failure" runs the failed op and the ops after it again, fed the evolution run ids of
the first run. The op then looks at that evolution:

* held, or left mid-step by a process that died: the saga's resume — a step left `running` is probed in its
  layer (landed: counted as done), and the steps go on from where they stopped;
* rolled back: the change is retried — pre-flight of that table again (the layers may have moved since), a new
  evolution run (the Dagster run's tags say `old:new` under `migrate_assets/retried`), and the failed op runs its
  steps from the first up to its own, since the ops before it are not re-executed;
* its undo did not finish (`rollback_failed`): refused, naming the layers and the job that finishes the undo.
"""


from collections.abc import Callable
from typing import Any

from dagster import Failure, In, MetadataValue, OpDefinition, OpExecutionContext, Out, Output, op

from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.errors import DataLossRefused, EvolutionFailedError
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.layers import STEP_ORDER, Layer
from migrate_assets.evolution.preflight import resolve_target
from migrate_assets.evolution.store import EvolutionStore, RunRecord, StepState
from migrate_assets.evolution.undo import left_for_rollback
from migrate_assets.jobs.common import OP_RETRY, engine_errors, md_table
from migrate_assets.jobs.evolve_launch import (
    EVOLUTION_RUN_TAG,
    LAUNCH_TAGS,
    ON_FAILURE_TAG,
    RETRIED_TAG,
    EvolveConfig,
    plan_tables,
    steps_md,
)
from migrate_assets.jobs.fanout import layer_guard
from migrate_assets.jobs.observe import OF_ENGINE_LAYER, observe_layers
from migrate_assets.jobs.stepwise import rollback_record, run_step

#: the engine's step ids in order (registry, lakehouse, ddl, connector, verify)
STEP_IDS = [layer.step for layer in STEP_ORDER]


def log_step(context: OpExecutionContext) -> Callable[[StepState], None]:
    def log(st: StepState) -> None:
        extra = st.compensation or st.error or (f"{st.seconds:.2f}s" if st.status == "done" else "")
        context.log.info(f"step {st.id} ({st.layer}): {st.status}" + (f" — {extra}" if extra else ""))

    return log


def step_metadata(rec: RunRecord, st: StepState) -> dict[str, Any]:
    data = evo.result_dict(rec)
    step = next(s for s in data["steps"] if s["layer"] == st.layer)
    return {
        "evolution_run": rec.run_id, "table": rec.table, "layer": st.layer, "status": st.status,
        "action": step["action"], "seconds": st.seconds, "attempts": st.attempts, "error": st.error or "",
        "compensation": st.compensation or step["compensation"], "steps": MetadataValue.md(steps_md(data)),
    }


def layers_md(rec: RunRecord) -> str:
    return md_table(["step", "layer", "state", "compensation", "error"],
                    [[s.id, s.layer, s.status, s.compensation or "", s.error or ""] for s in rec.steps])


# ------------------------------------------------------------------------------------------------------------
# what a (re-)executed op finds
# ------------------------------------------------------------------------------------------------------------


def inherit_launch_tags(context: OpExecutionContext) -> dict[str, str]:
    """The run's tags, with the launch tags of the run it re-executes copied in when missing (a re-execution
    starts without them): the evolution runs, tables, change and `on_failure` stay on every run of a launch."""
    run = context.instance.get_run_by_id(context.run_id) or context.dagster_run
    tags = dict(run.tags)
    parent = context.instance.get_run_by_id(run.parent_run_id) if run.parent_run_id else None
    if parent is not None:
        missing = {k: v for k, v in parent.tags.items() if k in LAUNCH_TAGS and k not in tags}
        if missing:
            context.instance.add_run_tags(context.run_id, missing)
            tags.update(missing)
    return tags


def _retry(context: OpExecutionContext, rec: RunRecord, project: MigrateProjectResource,
           store: EvolutionStore) -> RunRecord:
    """A re-execution met a rolled-back evolution: plan the table's change again and start a new evolution."""
    run_config: dict[str, Any] = dict(context.run_config)
    raw = ((run_config.get("ops") or {}).get("preflight") or {}).get("config") or {}
    with engine_errors(f"retry of the rolled-back evolution {rec.run_id} of {rec.table}: pre-flight"):
        ((_report, new),) = plan_tables(EvolveConfig(**raw), project, context.log.info, only=rec.table)
        new.status = "running"
        store.save(new)
    tags = inherit_launch_tags(context)
    ids = [new.run_id if r == rec.run_id else r for r in tags.get(EVOLUTION_RUN_TAG, "").split(",") if r]
    retried = [x for x in tags.get(RETRIED_TAG, "").split(",") if x] + [f"{rec.run_id}:{new.run_id}"]
    context.instance.add_run_tags(context.run_id, {EVOLUTION_RUN_TAG: ",".join(ids), RETRIED_TAG: ",".join(retried)})
    context.log.info(f"evolution {rec.run_id} of {rec.table} was rolled back: the change is retried as evolution "
                     f"{new.run_id} (pre-flight passed again); this op runs its steps from the first")
    return new


def _refusal(rec: RunRecord, why: str, then: str) -> Failure:
    return Failure(description=f"{rec.table}: evolution {rec.run_id} is {rec.status}: {why}; {then}",
                   allow_retries=False, metadata={"table": rec.table, "evolution_run": rec.run_id,
                                                  "status": rec.status, "layers": MetadataValue.md(layers_md(rec))})


def ready_record(context: OpExecutionContext, rec: RunRecord, project: MigrateProjectResource,
                 store: EvolutionStore) -> RunRecord:
    """The evolution this op goes on with: the one it was handed (to run or resume), or — in a re-execution of a
    rolled-back one — a new one retrying the change. An evolution whose undo did not finish is refused."""
    if rec.status == "rolled_back":
        if context.dagster_run.parent_run_id:
            return _retry(context, rec, project, store)
        raise _refusal(rec, "it was undone outside this run", "launch the change again to make it")
    if rec.status == "rollback_failed":
        raise _refusal(rec, "some layers still hold the change (see `layers`)",
                       f"run rollback_evolution with run_id {rec.run_id} to finish the undo, then re-execute from "
                       "failure again to retry the change")
    return rec


# ------------------------------------------------------------------------------------------------------------
# a failed step: undo (unless held), then fail the op
# ------------------------------------------------------------------------------------------------------------


def held(context: OpExecutionContext) -> bool:
    return inherit_launch_tags(context).get(ON_FAILURE_TAG) == "hold"


def undo_completed(context: OpExecutionContext, rec: RunRecord, ctx: RunContext, store: EvolutionStore,
                   project: MigrateProjectResource) -> None:
    """Compensate every completed layer of the failed evolution in reverse order, under the lock an undo of all
    layers needs; an undo that would lose data is refused by the engine and left for rollback_evolution."""
    if held(context):
        context.log.warning(f"on_failure: hold — the layers of {rec.table} are left as they are for a re-execution "
                            f"(resume) or rollback_evolution (run_id {rec.run_id})")
        return
    context.log.info(f"{rec.table}: step {rec.failed_step} failed; undoing the completed layers in reverse order")
    with layer_guard(project.load(), rec, "all", ctx, undo=True):
        try:
            rollback_record(rec, ctx, store, project.retry_policy(), log_step(context))
        except DataLossRefused as exc:
            left_for_rollback(rec, exc)
            store.save(rec)


def next_move(rec: RunRecord, hold: bool) -> str:
    """What a person does next, in Dagster's words."""
    if rec.status == "rolled_back":
        return ("every completed layer was undone. Re-execute from failure retries the change (pre-flight again, "
                "a new evolution run)")
    if rec.status == "rollback_failed":
        return (f"some layers are not undone yet (see `layers`): run rollback_evolution with run_id {rec.run_id} "
                "once they are reachable; Re-execute from failure after that retries the change")
    if hold:
        return (f"the layers are left as they are (on_failure: hold). Re-execute from failure resumes evolution "
                f"{rec.run_id} at step {rec.failed_step}; rollback_evolution with run_id {rec.run_id} undoes it")
    return (f"the undo was refused (see the error). Re-execute from failure resumes evolution {rec.run_id} at step "
            f"{rec.failed_step}; rollback_evolution with run_id {rec.run_id} and allow_data_loss undoes it")


def step_failure(rec: RunRecord, hold: bool) -> Failure:
    err = EvolutionFailedError(rec.run_id, rec.failed_step or "?", rec.error or "")
    nxt = next_move(rec, hold)
    return Failure(description=f"{rec.table}: {err} — {rec.status}. {nxt}", allow_retries=False, metadata={
        "table": rec.table, "evolution_run": rec.run_id, "status": rec.status, "failed_step": rec.failed_step or "",
        "error": rec.error or "", "next": nxt, "layers": MetadataValue.md(layers_md(rec)),
        "steps": MetadataValue.md(steps_md(evo.result_dict(rec)))})


# ------------------------------------------------------------------------------------------------------------
# the op factory
# ------------------------------------------------------------------------------------------------------------


def _guard_step(rec: RunRecord, step_id: str) -> str:
    """The step whose layer lock covers everything this op runs: its own, or — when it also runs an earlier
    connector step (a retry or resume) — the connector's, whose hold is the strongest."""
    upto = STEP_IDS[:STEP_IDS.index(step_id) + 1]
    conn = Layer.CONNECTOR.step
    pending = {s.id for s in rec.steps if s.status != "done"}
    return conn if conn in upto and conn in pending and step_id != conn else step_id


def _observe(context: OpExecutionContext, project: MigrateProjectResource, rec: RunRecord, ctx: RunContext,
             changed: list[str], name: str) -> None:
    layers = [OF_ENGINE_LAYER[s.layer] for s in rec.steps if s.id in changed and s.layer in OF_ENGINE_LAYER]
    if not layers:
        return
    cfg = project.load()
    for obs in observe_layers(project.target(rec.table), ctx, project.asset_keys(), layers,
                              cfg.schema_registry is not None, context.log.warning,
                              evolution_run=rec.run_id, reported_by=name):
        context.log_event(obs)


def forward_op(name: str, step_id: str, doc: str, pool: str | None = None) -> OpDefinition:
    @op(name=name, description=doc, ins={"run": In(str)}, pool=pool, retry_policy=OP_RETRY, tags={"layer": step_id},
        out=Out(str, description="the evolution run id, to the next layer (a retry hands on the new run)"))
    def _forward(context: OpExecutionContext, run: str, project: MigrateProjectResource) -> Output[str]:
        with engine_errors(name):
            store = project.store()
            try:
                inherit_launch_tags(context)
                rec = ready_record(context, store.load(run), project, store)
                if step_id not in {s.id for s in rec.steps}:
                    skipped = ", ".join(rec.plan.get("skipped_layers", [])) or "none"
                    context.log.info(f"{name}: no {step_id} step in the plan (skipped layers: {skipped})")
                    return Output(rec.run_id, metadata={"evolution_run": rec.run_id, "table": rec.table,
                                                        "status": "skipped", "skipped_layers": skipped})
                before = {s.id: s.status for s in rec.steps}
                ctx = project.run_context(log=context.log.info)
                if step_id == Layer.VERIFY.step:  # also the other tables a new enum label carried (`verify:<t>`)
                    evo.attach_verifier(ctx, [resolve_target(project.target(rec.table), ctx), *(
                        resolve_target(t, ctx) for t in project.targets() if t.table != rec.table)])
                with layer_guard(project.load(), rec, _guard_step(rec, step_id), ctx):
                    st = run_step(rec, step_id, ctx, store, project.retry_policy(), log_step(context))
                if rec.failed_step:
                    undo_completed(context, rec, ctx, store, project)
            finally:
                store.close()
        changed = [s.id for s in rec.steps if s.status != before[s.id] and s.status in ("done", "compensated")]
        _observe(context, project, rec, ctx, changed, name)
        if rec.failed_step:
            raise step_failure(rec, held(context))
        return Output(rec.run_id, metadata=step_metadata(rec, st))

    return _forward
