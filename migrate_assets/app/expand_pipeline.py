"""Expand–contract that the CDC pipeline follows (issue 16 item 5), for tables listed in `pipelines:`.

* `expand`: before the helper columns (`_ma_*`) exist, the connector stops publishing them — its
  `column.exclude.list` gains `<schema>\\.<table>\\._ma_.*`, through the evolution saga's connector step (restart
  only once the slot has passed everything written so far, then RUNNING *and* slot progress required; undone by
  the saga if it fails). The registry and Iceberg never see a helper column. The backfill still writes every
  row once, so Debezium emits one update event per row (bounded: exactly one, paced by `--batch-size` and
  `--batch-delay`); with the helpers excluded, each such event carries the row's published columns unchanged,
  which an upserting sink writes as the same row again.
* `contract`: one evolution saga, planned by the same pre-flight `evolve` uses for the change's operations
  (registry version, Iceberg update, connector step, verify, each compensated in reverse on failure), whose
  DDL step is the contract itself — NOT NULL guards validated, old shape dropped, helpers renamed or dropped,
  the expand state marked contracted — in one transaction (`expand.runner.contract_transaction`).

Tables outside `pipelines:` keep the plain expand–contract. The exclusion stays after contract: it matches only
helper names, which exist only while a change is expanded.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import replace
from typing import Any

from migrate_assets.config import ProjectConfig
from migrate_assets.errors import ChangeFileError, Problem, SafetyRefusal
from migrate_assets.expand.naming import PREFIX, is_helper
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.schema.ops.base import shape_of
from migrate_assets.schema.yamlsrc import format_path


class BeforeExpand:
    """The source layer as it was before the change was expanded, for planning its contract as a saga: the
    helper columns and the columns the change itself added (an added column, a rename's new name) are left
    out of `columns`; every other call goes to the real source."""

    def __init__(self, inner: Any, change: ChangeSet) -> None:
        self._inner = inner
        self._table = change.qualified
        self._new = set(shape_of(*change.operations).new_names)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._inner, name)

    def columns(self, table: str) -> Any:
        cols = self._inner.columns(table)
        if cols is None or table != self._table:
            return cols
        return [c for c in cols if not is_helper(c.name) and c.name not in self._new]


def helper_pattern(table: str) -> str:
    """The `column.exclude.list` entry that matches every helper column of `schema.table`."""
    schema, name = table.split(".", 1)
    return f"{re.escape(schema)}\\.{re.escape(name)}\\.{re.escape(PREFIX)}.*"


def _target(cfg: ProjectConfig, table: str, ctx: Any) -> Any:
    from migrate_assets.evolution.preflight import resolve_target
    from migrate_assets.resources import project

    return resolve_target(project.target(cfg, table), ctx)


def exclude_helpers(cfg: ProjectConfig, table: str, dry_run: bool = False,
                    on_step: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Make the table's connector skip its helper columns before `expand` adds them (see the module).

    `{"status": "excluded" | "already_excluded" | "no_connector" | "dry_run", "connector", "pattern", "run"}`;
    a connector step that fails is compensated by its saga and raised (nothing was expanded)."""
    from migrate_assets.evolution.actions import ConnectorSync
    from migrate_assets.evolution.filters import captures_column
    from migrate_assets.evolution.layers import Layer
    from migrate_assets.evolution.planner import EvolutionPlan, PlannedStep
    from migrate_assets.evolution.saga import Saga
    from migrate_assets.resources import project

    ctx = project.build_context(cfg)
    target = _target(cfg, table, ctx)
    pattern = helper_pattern(table)
    out: dict[str, Any] = {"connector": target.connector, "pattern": pattern, "run": None}
    if not target.connector or ctx.connector is None:
        return {**out, "status": "no_connector"}
    current = ctx.connector.config(target.connector)
    if not captures_column(current, table, f"{PREFIX}probe"):
        return {**out, "status": "already_excluded"}
    if dry_run:
        return {**out, "status": "dry_run"}
    old = current.get("column.exclude.list")
    new = {**current, "column.exclude.list": f"{old},{pattern}" if old else pattern}
    step = ConnectorSync(name=target.connector, slot=current.get("slot.name", "debezium"),
                         new_config=tuple(sorted(new.items())), old_config=tuple(sorted(current.items())),
                         reason=f"stop publishing the expand helper columns of {table}")
    plan = EvolutionPlan(table, (), (PlannedStep("connector", Layer.CONNECTOR, step, True, None,
                                                 "put the previous connector config back"),))
    store = project.store(cfg)
    try:
        rec = Saga(ctx, store, project.retry_policy(cfg), on_step).start(plan)
    finally:
        store.close()
    if rec.status != "succeeded":
        raise HelperExclusionFailed(f"{table}: the connector could not be told to skip the expand helper columns "
                                    f"(run {rec.run_id}: {rec.error}); nothing was expanded")
    return {**out, "status": "excluded", "run": rec.run_id}


def before_expand(cfg: ProjectConfig, change: ChangeSet, dry_run: bool) -> dict[str, Any] | None:
    """For `expand` of a pipeline table: `exclude_helpers` first (None: not a pipeline table). An operation
    expand–contract cannot run (add_enum_value) is refused before the connector is touched."""
    if cfg.pipeline_for(change.qualified) is None:
        return None
    refused = [Problem(change.source, f"{op.kind} cannot be run as expand–contract: run it with "
                                      "`migrate-assets evolve`", format_path(change.location(i)),
                       change.line_of(change.location(i)))
               for i, op in enumerate(change.operations) if not op.expandable]
    if refused:
        raise ChangeFileError(refused)
    return exclude_helpers(cfg, change.qualified, dry_run=dry_run)


def report_expand(data: dict[str, Any], cdc: dict[str, Any] | None) -> None:
    """The expand report says what the connector publishes: with the helpers excluded, none of them."""
    if cdc is None or cdc["status"] == "no_connector":  # no connector configured: nothing was told
        return
    data["cdc"]["connector"] = cdc
    if cdc["status"] in ("excluded", "already_excluded", "dry_run"):
        data["cdc"]["new_columns_emitted"] = [c for c in data["cdc"]["new_columns_emitted"] if not is_helper(c)]


class HelperExclusionFailed(SafetyRefusal):
    """The connector step before a pipeline table's expand failed (and was undone): expand did not start."""


def contract(cfg: ProjectConfig, change: ChangeSet, *, force: bool = False, dry_run: bool = False,
             on_step: Callable[[Any], None] | None = None) -> dict[str, Any]:
    """Contract a pipeline table's expanded change through the evolution saga (see the module); the report is
    the contract's (`table`, `fingerprint`, `status`: contracted | already_contracted | dry_run | failed,
    `sql`) plus the saga run (`pipeline`: steps per layer)."""
    from migrate_assets.app.evolve import evolve_tables, plan_changes
    from migrate_assets.app.fanout import DatabaseLayerLock
    from migrate_assets.evolution.actions import SourceDdl
    from migrate_assets.evolution.planner import EvolutionPlan
    from migrate_assets.evolution.run import result_dict
    from migrate_assets.evolution.store import RunRecord
    from migrate_assets.expand import runner
    from migrate_assets.resources import database, project
    from migrate_assets.resources.postgres import PostgresSource

    with database.connect(cfg, "migrate-assets", autocommit=False, read_only=dry_run) as conn:
        ready = runner.contract_transaction(conn, change, database.expand_options(cfg), force=force)
    base = {"table": ready["table"], "fingerprint": ready["fingerprint"], "sql": ready["statements"]}
    if ready["status"] == "already_contracted":
        return {**base, "status": "already_contracted"}
    ctx = project.build_context(cfg)
    if dry_run and isinstance(ctx.source, PostgresSource):
        ctx.source.read_only = True
    ctx.source = BeforeExpand(ctx.source, change)  # planned from the shape the change started from
    # the user chose expand–contract and now finishes it: the policy must not send it back to expand
    policy = replace(project.policy(cfg, allow_irreversible=True), on_breaking_change="warn")
    [planned] = plan_changes([change], ctx, lambda t: project.target(cfg, t), policy, project.retry_policy(cfg),
                             change.source)
    plan = EvolutionPlan.from_dict(planned.record.plan)
    steps = []
    for s in plan.steps:
        if isinstance(s.action, SourceDdl):  # the DDL step is the contract itself
            action = SourceDdl(table=s.action.table, statements=tuple(ready["statements"]), inverse_statements=None,
                               lock_timeout=s.action.lock_timeout, expected_fingerprint=s.action.expected_fingerprint)
            s = replace(s, action=action, reversible=False,
                        compensation="none: the old shape is gone once contracted (abort is only before contract)")
        steps.append(s)
    plan = replace(plan, steps=tuple(steps))
    rec = RunRecord(planned.record.run_id, plan.table, "dry_run", plan.to_dict(), list(planned.record.steps))
    planned = replace(planned, record=rec)
    store = None if dry_run else project.store(cfg)
    try:
        outcome = evolve_tables([planned], ctx, store, project.retry_policy(cfg),
                                None if dry_run else DatabaseLayerLock(cfg), on_step, dry_run=dry_run)
    finally:
        if store is not None:
            store.close()
    run = result_dict(outcome.runs[0].record)
    status = "dry_run" if dry_run else ("contracted" if outcome.succeeded else "failed")
    return {**base, "status": status, "forced": ready.get("forced", False), "pipeline": run}
