"""The protections of evolving several tables at once, for every front end (the Dagster `evolve_pipeline` job runs
one saga per table in parallel branches; `migrate-assets evolve` runs several change files one after another, and
another process may evolve another table of the same database meanwhile). The registry subjects and Iceberg tables of two
tables are disjoint, so those layers need nothing; the source database and the connector are shared:

- **Disjoint plans.** Two tables of one launch may not touch the same object (source table, subject, Iceberg
  table, connector filter entry): pre-flight refuses such a launch before anything changes.
- **Connector config.** A plan carries the connector's whole old and new config, read at pre-flight. When two
  tables of one launch change the same connector, the second write would drop the first table's change, and one
  table's rollback would drop the other's. So each config change is *rebased*: the plan's diff (old → new, or
  new → old to undo) is applied to the config the connector has right now.
- **Restart safety.** A connector restart is only safe once the slot has passed every DDL of the database
  (SPEC §6), also the DDL of *another* branch. One advisory lock per database orders them: an op that rewrites a
  connector's config holds it exclusively, and waits for the slot to pass the LSN current when it got the lock;
  the DDL, connector (no restart) and verify ops of tables with a connector hold it shared, so no DDL commits and
  no verify reads a restarting connector while a restart is under way. Shared holders run in parallel.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import TYPE_CHECKING, Literal, Protocol

from migrate_assets.errors import MigrateAssetsError, Problem, TransientError, UsageError
from migrate_assets.evolution.actions import (
    ConnectorSync,
    RunContext,
)
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.planner import EvolutionPlan
from migrate_assets.evolution.store import RunRecord
from migrate_assets.expand.ops import ChangeSet

if TYPE_CHECKING:
    from migrate_assets.config import ProjectConfig

LockMode = Literal["exclusive", "shared"]
#: seconds an op waits for the layer lock (a restart holds it for the slot catch-up, RUNNING and progress bounds)
LOCK_WAIT = 300.0


# ------------------------------------------------------------------------------------------------------------
# one launch, several tables
# ------------------------------------------------------------------------------------------------------------


def refuse_duplicate_tables(changes: Sequence[ChangeSet]) -> None:
    """Two changes to one table in one launch would race each other's plans: refused before anything runs."""
    seen: dict[str, ChangeSet] = {}
    problems = []
    for c in changes:
        first = seen.setdefault(c.qualified, c)
        if first is not c:
            problems.append(Problem(file=c.source, key="table", line=c.line_of(("table",)),
                                    message=f"{c.qualified} is already changed by {first.source} in this launch: "
                                            "merge the two changes into one, or launch them one after the other"))
    if problems:
        raise UsageError(problems)


def _touches(plan: EvolutionPlan) -> set[tuple[str, ...]]:
    """Every object a plan changes, except the connector itself (its config changes are rebased, see above)."""
    return {obj for step in plan.steps for obj in step.action.touches()}


def refuse_overlapping_plans(plans: Sequence[EvolutionPlan], file: str) -> None:
    """The branches of one launch run in parallel and roll back on their own: their objects must be disjoint."""
    owner: dict[tuple[str, ...], str] = {}
    problems = []
    for plan in plans:
        for obj in sorted(_touches(plan)):
            other = owner.setdefault(obj, plan.table)
            if other != plan.table:
                problems.append(Problem(file=file, key=plan.table,
                                        message=f"{plan.table} and {other} would both change {obj[0]} {obj[1]}: "
                                                "evolve them in separate launches"))
    if problems:
        raise UsageError(problems)


# ------------------------------------------------------------------------------------------------------------
# connector config: apply the plan's diff to the live config
# ------------------------------------------------------------------------------------------------------------


def _items(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def apply_config_diff(live: dict[str, str], base: dict[str, str], target: dict[str, str]) -> dict[str, str]:
    """`live` with the change from `base` to `target`: changed keys take their new value, and comma-separated
    `*.list` keys gain and lose exactly the entries the change adds and removes (other entries stay)."""
    out = dict(live)
    for key in sorted(set(base) | set(target)):
        old, new = base.get(key), target.get(key)
        if old == new:
            continue
        if key.endswith(".list"):
            removed = set(_items(old)) - set(_items(new))
            entries = [x for x in _items(out.get(key)) if x not in removed]
            entries += [x for x in _items(new) if x not in _items(old) and x not in entries]
            if entries:
                out[key] = ",".join(entries)
            else:
                out.pop(key, None)
        elif new is None:
            out.pop(key, None)
        else:
            out[key] = new
    return out


def connector_action(rec: RunRecord) -> ConnectorSync | None:
    step = next((s for s in EvolutionPlan.from_dict(rec.plan).steps if s.id == Layer.CONNECTOR.step), None)
    return step.action if step is not None and isinstance(step.action, ConnectorSync) else None


def rebase_connector(rec: RunRecord, live: dict[str, str], undo: bool) -> None:
    """Rewrite the connector step of `rec`'s plan (in memory; the stored plan keeps what pre-flight read) so that
    running it (or, with `undo`, its inverse) applies only this table's change to the `live` config."""
    action = connector_action(rec)
    if action is None or action.new_config is None or action.old_config is None:
        return
    old, new = dict(action.old_config), dict(action.new_config)
    if undo:  # the inverse puts back `old_config`: make that "live without this change"
        old, new = apply_config_diff(live, new, old), live
    else:
        old, new = live, apply_config_diff(live, old, new)
    step = next(s for s in rec.plan["steps"] if s["id"] == Layer.CONNECTOR.step)
    step["action"] = {**step["action"], "old_config": [list(p) for p in sorted(old.items())],
                      "new_config": [list(p) for p in sorted(new.items())]}


# ------------------------------------------------------------------------------------------------------------
# the layer lock
# ------------------------------------------------------------------------------------------------------------


def lock_mode(rec: RunRecord, step_id: str, undo: bool = False) -> LockMode | None:
    """Which hold of the layer lock running (or undoing) `step_id` of this run needs; None: no lock. `all`: every
    layer at once (rolling back a whole persisted run)."""
    action = connector_action(rec)
    if action is None:
        return None  # no connector to restart: nothing to order
    if step_id == "all":
        return lock_mode(rec, Layer.CONNECTOR.step, undo) or "shared"
    if step_id == Layer.CONNECTOR.step:
        if undo and rec.step(Layer.CONNECTOR.step).status not in ("done", "compensation_failed", "compensating", "running"):
            return None
        return "exclusive" if action.new_config is not None else "shared"
    return "shared" if step_id in (Layer.SOURCE_DB.step, Layer.VERIFY.step) else None


class LayerLock(Protocol):
    """The database's evolution layer lock: `hold(mode)` blocks until it is held (TransientError after a bound)."""

    def hold(self, mode: LockMode) -> AbstractContextManager[None]: ...


def _lock_key(dbname: str) -> int:
    digest = hashlib.sha256(f"migrate-assets\0evolve layers\0{dbname}".encode()).digest()
    return int.from_bytes(digest[:8], "big") & 0x7FFF_FFFF_FFFF_FFFF


class DatabaseLayerLock:
    """The layer lock as a PostgreSQL advisory lock of the source database, on a connection of its own (a killed
    process never leaves it behind)."""

    def __init__(self, cfg: ProjectConfig, wait: float = LOCK_WAIT) -> None:
        self.cfg, self.wait = cfg, wait

    @contextmanager
    def hold(self, mode: LockMode) -> Iterator[None]:
        from psycopg import errors as pgerrors

        from migrate_assets.resources import database
        from migrate_assets.schema.session import session_timeouts

        fn = "pg_advisory_lock" if mode == "exclusive" else "pg_advisory_lock_shared"
        with database.connect(self.cfg, "migrate-assets evolve layer lock") as conn:
            key = _lock_key(conn.info.dbname)
            try:
                with session_timeouts(conn, lock_timeout=self.wait):
                    conn.execute(f"SELECT {fn}(%s)", (key,))
            except (pgerrors.LockNotAvailable, pgerrors.QueryCanceled):
                raise TransientError(f"the evolution layer lock ({mode}, key {key}) was not free within "
                                     f"{self.wait:.0f}s: another table's connector restart or DDL holds it") from None
            yield  # closing the connection releases the lock


@contextmanager
def layer_lock(cfg: ProjectConfig, mode: LockMode | None, wait: float = LOCK_WAIT) -> Iterator[None]:
    """Hold the database's evolution layer lock (`mode`) for the block (None: no lock)."""
    if mode is None:
        yield
        return
    with DatabaseLayerLock(cfg, wait).hold(mode):
        yield


@contextmanager
def guard(lock: LayerLock, rec: RunRecord, step_id: str, ctx: RunContext, undo: bool = False) -> Iterator[None]:
    """Run (or undo) `step_id` of `rec` (`all`: the whole run) under the layer lock it needs. Under the exclusive
    hold the connector's config change is rebased on the live config, and the slot must also pass the LSN current
    now — every DDL committed before the lock, this table's or another's (`RunContext.lock_lsn`)."""
    mode = lock_mode(rec, step_id, undo)
    if mode is None:
        yield
        return
    with lock.hold(mode):
        action = connector_action(rec)
        if mode == "exclusive" and action is not None and ctx.connector is not None:
            try:
                live = ctx.connector.config(action.name)
            except MigrateAssetsError as exc:  # its step fails on the same error, reported with the others
                ctx.log(f"connector {action.name}: live config not read, its step runs as planned: {exc}")
            else:
                rebase_connector(rec, live, undo)
            ctx.lock_lsn = ctx.source.current_lsn()
        yield


def layer_guard(cfg: ProjectConfig, rec: RunRecord, step_id: str, ctx: RunContext,
                undo: bool = False) -> AbstractContextManager[None]:
    """`guard` with the project's database lock (what one Dagster op per step holds)."""
    return guard(DatabaseLayerLock(cfg), rec, step_id, ctx, undo)


__all__ = ["LOCK_WAIT", "DatabaseLayerLock", "LayerLock", "apply_config_diff", "guard", "layer_guard",
           "layer_lock", "lock_mode", "rebase_connector", "refuse_duplicate_tables", "refuse_overlapping_plans"]
