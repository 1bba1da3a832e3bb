"""Running a plan: policy check first, then one transaction, then concurrent index builds.

Order of events: breaking-change policy and refusals are checked before connecting to anything that could
change; inside the transaction the live fingerprint is re-read and compared with the plan's (stale plans are
refused, database untouched); every DDL statement runs under `SET LOCAL lock_timeout` and the whole
transaction is retried with exponential backoff and jitter on SQLSTATE 55P03; `CREATE/DROP INDEX
CONCURRENTLY` statements run after commit, one at a time, each retried the same way (an index left INVALID
by a failed build is dropped before the retry).
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import errors as pgerrors
from psycopg import sql

from migrate_assets.errors import (
    BreakingChangeBlocked,
    ExpandContractRequired,
    LockTimeoutError,
    RuntimeFailure,
    StalePlanError,
    UnsafeChangeRefused,
)
from migrate_assets.schema.diff import TableKey
from migrate_assets.schema.plan import Change, Plan
from migrate_assets.schema.planner import live_tables, scope_fingerprint
from migrate_assets.schema.retry import backoff_delay

log = logging.getLogger(__name__)

#: breaking changes that expand–contract can carry (SPEC §5 operations)
EXPANDABLE_KINDS = frozenset({"rename_column", "alter_type", "drop_column"})


@dataclass(frozen=True)
class ApplyOptions:
    on_breaking_change: str = "block"  #: block | warn | expand_contract
    lock_timeout: float = 2.0
    statement_timeout: float = 0.0
    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0
    ignore: frozenset[TableKey] = frozenset()


@dataclass
class ApplyResult:
    applied: list[Change] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)
    attempts: int = 0
    seconds: float = 0.0
    dry_run: bool = False


def check_policy(plan: Plan, policy: str) -> list[str]:
    """Raise when the plan may not run under `policy`; return the warnings to report otherwise."""
    if plan.refusals:
        raise UnsafeChangeRefused(plan.refusals)
    breaking = plan.breaking
    if not breaking:
        return []
    described = [f"{c.description} [{', '.join(h.value for h in c.hazards)}]" for c in breaking]
    if policy == "warn":
        return [f"breaking change applied (on_breaking_change=warn): {d}" for d in described]
    if policy == "expand_contract":
        column_changes = [d for c, d in zip(breaking, described, strict=True) if c.kind in EXPANDABLE_KINDS]
        if column_changes:
            raise ExpandContractRequired(column_changes)
    raise BreakingChangeBlocked(described)


def _sleep_for(attempt: int, opts: ApplyOptions) -> float:
    return backoff_delay(attempt + 1, opts.backoff, opts.max_backoff)


def _ms(seconds: float) -> str:
    return f"{int(seconds * 1000)}ms"


def _holders(conn: psycopg.Connection, table: str) -> str:
    try:
        rows = conn.execute(
            "SELECT pid, mode FROM pg_locks WHERE relation = to_regclass(%s) AND granted AND pid <> pg_backend_pid()",
            [table],
        ).fetchall()
    except psycopg.Error:
        return ""
    return ", ".join(f"pid {p} holds {m}" for p, m in rows)


def apply_plan(
    conn: psycopg.Connection,
    plan: Plan,
    opts: ApplyOptions = ApplyOptions(),
    *,
    dry_run: bool = False,
    on_attempt: Callable[[int], None] | None = None,
) -> ApplyResult:
    """Apply `plan` on `conn` (an autocommit connection). See the module docstring for the guarantees."""
    result = ApplyResult(dry_run=dry_run)
    result.warnings = check_policy(plan, opts.on_breaking_change)
    start = time.perf_counter()
    if not conn.autocommit:
        conn.autocommit = True
    if dry_run:  # read-only: no DDL, no table locks
        actual = scope_fingerprint(live_tables(conn, plan.scope, opts.ignore), plan.scope)
        if actual != plan.fingerprint:
            raise StalePlanError(plan.fingerprint, actual)
        result.applied = list(plan.changes)
        result.seconds = time.perf_counter() - start
        return result
    tx = [c for c in plan.changes if c.transactional]
    conc = [c for c in plan.changes if not c.transactional]
    last: tuple[str, str] = ("", "")
    for attempt in range(opts.attempts):
        result.attempts = attempt + 1
        if on_attempt:
            on_attempt(attempt + 1)
        try:
            with conn.transaction():
                conn.execute(sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_ms(opts.lock_timeout))))
                conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(_ms(opts.statement_timeout))))
                live = live_tables(conn, plan.scope, opts.ignore)
                actual = scope_fingerprint(live, plan.scope)
                if actual != plan.fingerprint:
                    raise StalePlanError(plan.fingerprint, actual)
                for change in tx:
                    for stmt in change.sql:
                        last = (change.table, stmt)
                        conn.execute(stmt.encode())
            break
        except pgerrors.LockNotAvailable:
            if attempt + 1 >= opts.attempts:
                raise LockTimeoutError(last[0], opts.lock_timeout, attempt + 1, last[1], _holders(conn, last[0])) from None
            delay = _sleep_for(attempt, opts)
            log.warning("lock timeout on %s (attempt %d/%d); retrying in %.2fs", last[0], attempt + 1, opts.attempts, delay)
            time.sleep(delay)
        except pgerrors.QueryCanceled as exc:
            raise RuntimeFailure(f"statement_timeout exceeded on {last[0]} ({last[1]}): {exc}") from None
        except psycopg.Error as exc:
            raise RuntimeFailure(f"apply failed on {last[0]}; the transaction was rolled back: {exc} (statement: {last[1]})") from None
    result.applied.extend(tx)
    for change in conc:
        _run_concurrent(conn, change, opts)
        result.applied.append(change)
    result.seconds = time.perf_counter() - start
    return result


def _run_concurrent(conn: psycopg.Connection, change: Change, opts: ApplyOptions) -> None:
    conn.execute(sql.SQL("SET lock_timeout = {}").format(sql.Literal(_ms(opts.lock_timeout))))
    conn.execute(sql.SQL("SET statement_timeout = {}").format(sql.Literal(_ms(opts.statement_timeout))))
    try:
        for stmt in change.sql:
            for attempt in range(opts.attempts):
                try:
                    conn.execute(stmt.encode())
                    break
                except pgerrors.LockNotAvailable:
                    if change.kind == "add_index" and change.inverse_sql:
                        conn.execute(change.inverse_sql[0].encode())  # drop the INVALID leftover
                    if attempt + 1 >= opts.attempts:
                        raise LockTimeoutError(change.table, opts.lock_timeout, attempt + 1, stmt, _holders(conn, change.table)) from None
                    time.sleep(_sleep_for(attempt, opts))
                except psycopg.Error as exc:
                    if change.kind == "add_index" and change.inverse_sql:
                        try:
                            conn.execute(change.inverse_sql[0].encode())
                        except psycopg.Error:
                            pass
                    raise RuntimeFailure(
                        f"{change.description} failed after the main transaction committed: {exc} (statement: {stmt})"
                    ) from None
    finally:
        conn.execute("RESET lock_timeout")
        conn.execute("RESET statement_timeout")
