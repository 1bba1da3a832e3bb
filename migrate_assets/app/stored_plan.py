"""Use case: apply a stored plan (`migrate-assets plan --format json > plan.json`, reviewed, then applied).

A stored plan is applied only while it is still true: the live tables in its scope must have the fingerprint it
was computed from (else `StalePlanError`, exit 3, nothing changed), and planning the same scope again from the
spec files must give the same changes (else `PlanMismatchError`). Every front end that applies a stored plan
(the CLI's `apply --plan`, a Dagster job given a plan file) goes through `replan_stored`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from migrate_assets.errors import InvalidInputError, PlanMismatchError, Problem, StalePlanError

if TYPE_CHECKING:
    import psycopg

    from migrate_assets.config import ProjectConfig
    from migrate_assets.schema.apply import ApplyResult
    from migrate_assets.schema.model import Table
    from migrate_assets.schema.plan import Plan
    from migrate_assets.schema.planner import PlanOptions


def read_stored_plan(path: str | Path) -> Plan:
    """The plan in `path`; an unreadable or malformed file is bad input (exit 2) naming the file."""
    from migrate_assets.schema.plan import Plan

    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise InvalidInputError([Problem(file=str(path), message=f"cannot read plan file: {exc}")]) from None
    return Plan.from_json(text, str(path))


def replan_stored(conn: psycopg.Connection[Any], stored: Plan, desired: Sequence[Table], opts: PlanOptions,
                  file: str) -> Plan:
    """The plan to apply in place of `stored`, planned again now over its scope: refused when the live tables
    moved since it was computed (stale) or when the specs now ask for other changes (mismatch)."""
    from migrate_assets.schema.planner import build_plan, live_tables, scope_fingerprint

    actual = scope_fingerprint(live_tables(conn, stored.scope, opts.ignore), stored.scope)
    if actual != stored.fingerprint:
        raise StalePlanError(stored.fingerprint, actual)
    plan = build_plan(conn, desired, opts, scope=stored.scope)
    mine = [(c.kind, c.sql) for c in plan.changes]
    theirs = [(c.kind, c.sql) for c in stored.changes]
    if mine != theirs or plan.refusals != stored.refusals:
        raise PlanMismatchError(file, f"{len(theirs)} stored change(s) vs {len(mine)} planned now")
    return plan


def plan_to_apply(conn: psycopg.Connection[Any], desired: Sequence[Table], opts: PlanOptions,
                  stored_file: str | None = None) -> Plan:
    """What an apply runs: the stored plan in `stored_file` while it is still true (`replan_stored`: stale or
    mismatched is refused, nothing changed), or without one the plan made now."""
    if stored_file is None:
        from migrate_assets.schema.planner import build_plan

        return build_plan(conn, desired, opts)
    return replan_stored(conn, read_stored_plan(stored_file), desired, opts, stored_file)


@dataclass(frozen=True, slots=True)
class StoredPlanApplied:
    plan: Plan
    result: ApplyResult
    #: breaking column changes handed to expand–contract (table, change file)
    expanded: tuple[dict[str, Any], ...]


def apply_stored_plan(conn: psycopg.Connection[Any], cfg: ProjectConfig, path: str, desired: list[Table],
                      opts: PlanOptions, dry_run: bool = False,
                      approve: Callable[[Plan], None] | None = None) -> StoredPlanApplied:
    """Check the stored plan in `path` (`replan_stored`), let `approve` see it (it raises to refuse; not asked on
    a dry run or for an empty plan), and apply it under the project's `on_breaking_change`."""
    from migrate_assets.resources import database

    plan = replan_stored(conn, read_stored_plan(path), desired, opts, path)
    if approve is not None and not dry_run and plan.changes:
        approve(plan)
    plan, result, expanded = database.apply_schema(conn, cfg, plan, desired, opts, dry_run=dry_run)
    return StoredPlanApplied(plan, result, tuple(expanded))
