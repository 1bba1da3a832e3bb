"""Running a plan: policy check first, then one transaction, then concurrent index builds.

Order of events: breaking-change policy and refusals are checked before connecting to anything that could
change; inside the transaction the live fingerprint is re-read and compared with the plan's (stale plans are
refused, database untouched); every DDL statement runs under `SET LOCAL lock_timeout` and the whole
transaction is retried with exponential backoff and jitter on SQLSTATE 55P03; `CREATE/DROP INDEX
CONCURRENTLY` statements run after commit, one at a time, each retried the same way (an index left INVALID
by a failed build is dropped before the retry).
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import NoReturn

import psycopg
from psycopg import errors as pgerrors

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
from migrate_assets.schema.retry import retry_postgres
from migrate_assets.schema.session import lock_holders, session_timeouts, set_timeouts

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
    _apply_transactional(conn, plan, tx, opts, result, on_attempt)
    result.applied.extend(tx)
    for change in conc:
        _run_concurrent(conn, change, opts)
        result.applied.append(change)
    result.seconds = time.perf_counter() - start
    return result


def _apply_transactional(
    conn: psycopg.Connection,
    plan: Plan,
    tx: list[Change],
    opts: ApplyOptions,
    result: ApplyResult,
    on_attempt: Callable[[int], None] | None,
) -> None:
    """The fingerprint check and every transactional change in one transaction, retried whole on 55P03."""
    last: tuple[str, str] = ("", "")  # (table, statement) running when an error came

    def attempt(n: int) -> None:
        nonlocal last
        result.attempts = n
        if on_attempt:
            on_attempt(n)
        with conn.transaction():
            set_timeouts(conn, local=True, lock_timeout=opts.lock_timeout, statement_timeout=opts.statement_timeout)
            live = live_tables(conn, plan.scope, opts.ignore)
            actual = scope_fingerprint(live, plan.scope)
            if actual != plan.fingerprint:
                raise StalePlanError(plan.fingerprint, actual)
            for change in tx:
                for stmt in change.sql:
                    last = (change.table, stmt)
                    conn.execute(stmt.encode())

    def give_up(_: psycopg.Error, attempts: int) -> NoReturn:
        raise LockTimeoutError(last[0], opts.lock_timeout, attempts, last[1], lock_holders(conn, last[0])) from None

    def fail(exc: psycopg.Error) -> NoReturn:
        if isinstance(exc, pgerrors.QueryCanceled):
            raise RuntimeFailure(f"statement_timeout exceeded on {last[0]} ({last[1]}): {exc}") from None
        raise RuntimeFailure(f"apply failed on {last[0]}; the transaction was rolled back: {exc} (statement: {last[1]})") from None

    retry_postgres(
        attempt, what=lambda: f"apply on {last[0]}", attempts=opts.attempts, backoff=opts.backoff,
        max_backoff=opts.max_backoff, give_up=give_up, fail=fail,
    )


def _run_concurrent(conn: psycopg.Connection, change: Change, opts: ApplyOptions) -> None:
    with session_timeouts(conn, lock_timeout=opts.lock_timeout, statement_timeout=opts.statement_timeout):
        for stmt in change.sql:
            _run_concurrent_statement(conn, change, stmt, opts)


def _run_concurrent_statement(conn: psycopg.Connection, change: Change, stmt: str, opts: ApplyOptions) -> None:
    """One autocommit statement (CREATE/DROP INDEX CONCURRENTLY), retried on 55P03."""

    def attempt(_: int) -> None:
        try:
            conn.execute(stmt.encode())
        except psycopg.Error:
            if change.kind in ("add_index", "add_unique", "add_primary_key") and change.inverse_sql:
                with contextlib.suppress(psycopg.Error):  # drop the INVALID leftover a failed build leaves
                    conn.execute(change.inverse_sql[-1].encode())
            raise

    def give_up(_: psycopg.Error, attempts: int) -> NoReturn:
        raise LockTimeoutError(change.table, opts.lock_timeout, attempts, stmt, lock_holders(conn, change.table)) from None

    def fail(exc: psycopg.Error) -> NoReturn:
        raise RuntimeFailure(
            f"{change.description} failed after the main transaction committed: {exc} (statement: {stmt})"
        ) from None

    retry_postgres(
        attempt, what=change.description, attempts=opts.attempts, backoff=opts.backoff,
        max_backoff=opts.max_backoff, give_up=give_up, fail=fail,
    )
