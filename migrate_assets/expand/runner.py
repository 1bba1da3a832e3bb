"""Thin I/O around the pure planner: expand, status, contract, abort (SPEC §5).

Every function takes one psycopg connection (not autocommit, idle: an open transaction on it is rolled back)
that it uses for the whole run and holds a
session-level advisory lock per table on it, so two processes never expand, contract or abort the same table at
once. DDL runs in short transactions under `lock_timeout`, retried with backoff when a lock is not available.
The plan is rebuilt from the state table (resolved operations + pre-expand shape), so any process can continue
an expand, contract it or abort it.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

from migrate_assets.errors import (
    ExpandConflictError,
    ExpandFailedError,
    ExpandStateError,
    LockNotAcquiredError,
    NotSafeToContractError,
    TransientError,
)
from migrate_assets.expand import backfill as bf
from migrate_assets.expand import indexes, shape, state
from migrate_assets.expand.ops import ChangeSet, op_from_dict, op_to_dict
from migrate_assets.expand.planner import ExpandPlan, Statement, plan_expand
from migrate_assets.expand.status import ExpandStatus, compute_status, trigger_state
from migrate_assets.expand.validate import validate_change
from migrate_assets.schema.retry import retry_postgres
from migrate_assets.schema.session import set_timeouts

log = logging.getLogger(__name__)
T = TypeVar("T")


@dataclass(frozen=True)
class Options:
    state_schema: str = "public"
    batch_size: int = bf.DEFAULT_BATCH_SIZE
    batch_delay: float = 0.0
    batch_seconds: float = bf.DEFAULT_BATCH_SECONDS
    workers: int = bf.DEFAULT_WORKERS
    lock_timeout: float = 2.0
    attempts: int = 5
    backoff: float = 0.5
    max_backoff: float = 30.0


def render(conn: psycopg.Connection[Any] | None, statements: Sequence[Statement]) -> list[str]:
    return [s.as_string(conn) + ";" for s in statements]


@contextmanager
def table_lock(conn: psycopg.Connection[Any], table: str) -> Iterator[None]:
    key = f"migrate_assets.expand:{table}"
    (got,) = conn.execute("SELECT pg_try_advisory_lock(hashtext(%s))", (key,)).fetchone() or (False,)
    conn.commit()
    if not got:
        raise LockNotAcquiredError(0, 0.0, f"another expand/contract/abort of {table} is running")
    try:
        yield
    finally:
        if not conn.closed:
            conn.rollback()
            conn.execute("SELECT pg_advisory_unlock(hashtext(%s))", (key,))
            conn.commit()


def _retry(conn: psycopg.Connection[Any], opts: Options, what: str, fn: Callable[[], T]) -> T:
    """Run `fn` in a transaction with lock_timeout; retry when a lock is not available (or on a deadlock)."""

    def attempt(_: int) -> T:
        with conn.transaction():
            set_timeouts(conn, local=True, lock_timeout=opts.lock_timeout)
            return fn()

    def give_up(exc: psycopg.Error, attempts: int) -> NoReturn:
        raise TransientError(f"{what}: {exc} (after {attempts} attempts)") from exc

    def fail(exc: psycopg.Error) -> NoReturn:
        raise ExpandFailedError(what, exc.diag.message_primary or str(exc), exc.diag.sqlstate) from exc

    return retry_postgres(
        attempt,
        what=what,
        attempts=opts.attempts,
        backoff=opts.backoff,
        max_backoff=opts.max_backoff,
        give_up=give_up,
        fail=fail,
        retry_on=(pgerr.LockNotAvailable, pgerr.DeadlockDetected),
    )


def _run(conn: psycopg.Connection[Any], statements: Sequence[Statement]) -> None:
    for s in statements:
        conn.execute(s)


def plan_from_state(st: state.OperationState, change: ChangeSet) -> ExpandPlan:
    """The plan exactly as expand computed it, from what the state table recorded."""
    resolved = ChangeSet(
        schema=change.schema,
        table=change.table,
        operations=tuple(op_from_dict(o) for o in st.operations),
        source=st.source,
        locations=change.locations,
        lines=change.lines,
    )
    return plan_expand(
        resolved,
        shape.from_json(st.table_info),
        refs={k: tuple(v) for k, v in st.refs.items()},
        volatile_defaults=frozenset(st.volatile_defaults),
        fingerprint=st.fingerprint,
    )


def _idle(conn: psycopg.Connection[Any]) -> None:
    """The runner owns the connection: an open transaction on it is rolled back."""
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()


def _ensure(conn: psycopg.Connection[Any], opts: Options) -> None:
    """Create the state table on first change (read-only commands and dry runs never create it)."""
    _idle(conn)
    state.ensure(conn, opts.state_schema)


def _get(conn: psycopg.Connection[Any], change: ChangeSet, opts: Options) -> state.OperationState | None:
    st = state.get(conn, opts.state_schema, change.qualified, change.fingerprint())
    conn.rollback()
    return st


def plan_change(conn: psycopg.Connection[Any], change: ChangeSet, opts: Options | None = None) -> ExpandPlan:
    """Validate against the live table (or the recorded shape of an expand in progress) and plan."""
    opts = opts or Options()
    _idle(conn)
    st = _get(conn, change, opts)
    if st is not None and st.phase in state.ACTIVE:
        return plan_from_state(st, change)
    v = validate_change(conn, change)
    return plan_expand(
        v.change,
        v.table,
        refs=v.refs,
        volatile_defaults=v.volatile_defaults,
        fingerprint=change.fingerprint(),
    )


def expand(
    conn: psycopg.Connection[Any],
    change: ChangeSet,
    opts: Options | None = None,
    *,
    dry_run: bool = False,
    cdc_tracked: bool = False,
    on_progress: bf.ProgressFn | None = None,
) -> dict[str, Any]:
    """Expand (idempotent): add new columns + sync trigger, backfill; a re-run continues or does nothing."""
    opts = opts or Options()
    _idle(conn)
    table, fp = change.qualified, change.fingerprint()
    st = _get(conn, change, opts)
    if st is not None and st.phase == "contracted":
        return _expand_result(plan_from_state(st, change), "already_contracted", cdc_tracked)
    other = state.active(conn, opts.state_schema, table)
    conn.rollback()
    if other is not None and other.fingerprint != fp:
        raise ExpandConflictError(table, other.fingerprint, other.source)
    if st is not None and st.phase == "expanded":
        return _expand_result(plan_from_state(st, change), "already_expanded", cdc_tracked,
                              indexes.from_state(st.rebuilds))
    if dry_run:
        plan = plan_change(conn, change, opts)
        rebuilds, left = indexes.discover(conn, plan)
        conn.rollback()
        res = _expand_result(plan, "dry_run", cdc_tracked, rebuilds, left)
        res["sql"] = render(conn, [s for step in plan.expand_steps for s in step.forward]) + [
            s + ";" for r in rebuilds for s in (r.build, r.validate) if s]
        return res
    with table_lock(conn, table):
        st = _get(conn, change, opts)
        if st is None or st.phase not in state.ACTIVE:
            v = validate_change(conn, change)
            plan = plan_expand(
                v.change, v.table, refs=v.refs, volatile_defaults=v.volatile_defaults, fingerprint=fp
            )
            for w in plan.warnings:
                log.warning("%s: %s", table, w)

            def ddl() -> None:
                pre = shape.table_fingerprint(conn, change.schema, change.table)
                rebuilds, left = indexes.discover(conn, plan)  # before the new columns exist
                for w in left:
                    log.warning("%s: %s", table, w)
                # Writers wait from the first statement that locks the table (ADD COLUMN) to COMMIT, so that
                # window holds round trips only: the state row is built before it, and the steps go in one
                # pipeline (one round trip, not one per statement: on a busy machine each costs a wake-up)
                record: dict[str, Any] = dict(
                    table=table,
                    fp=fp,
                    source=change.source,
                    operations=[op_to_dict(o) for o in plan.change.operations],
                    table_info=shape.to_json(plan.table),
                    refs={k: list(v) for k, v in v.refs.items()},
                    volatile_defaults=sorted(v.volatile_defaults),
                    pre_fingerprint=pre,
                    rows_total=0,
                    rebuilds=[r.to_dict() for r in rebuilds],
                )
                with conn.pipeline():
                    for step in plan.expand_steps:
                        for stmt in step.forward:
                            conn.execute(stmt)
                maxkey = bf.last_key(conn, plan)  # an index lookup: the ACCESS EXCLUSIVE lock is held
                state.insert(conn, opts.state_schema, backfill_max=maxkey if plan.backfill.needed else None,
                             **record)

            _ensure(conn, opts)  # only now: a change Postgres rejected leaves no trace at all
            _retry(conn, opts, f"expand {table}", ddl)
            log.info("%s: expand DDL committed (%d steps)", table, len(plan.expand_steps))
            resumed = False
        else:
            plan = plan_from_state(st, change)
            resumed = True
            log.info("%s: resuming expand %s (backfill cursor %s)", table, fp, st.backfill_cursor)
        progress = bf.run_backfill(
            conn,
            plan,
            state_schema=opts.state_schema,
            batch_size=opts.batch_size,
            batch_delay=opts.batch_delay,
            batch_seconds=opts.batch_seconds,
            workers=opts.workers,
            lock_timeout=opts.lock_timeout,
            attempts=opts.attempts,
            backoff=opts.backoff,
            max_backoff=opts.max_backoff,
            on_progress=on_progress,
        )
        now = _get(conn, change, opts)
        rebuilt = indexes.from_state(now.rebuilds if now else None)
        indexes.build(conn, change.schema, change.table, rebuilt, lock_timeout=opts.lock_timeout,
                      attempts=opts.attempts, backoff=opts.backoff, max_backoff=opts.max_backoff)
        with conn.transaction():
            state.set_phase(conn, opts.state_schema, table, fp, "expanded")
    res = _expand_result(plan, "expanded", cdc_tracked, rebuilt)
    res["resumed"] = resumed
    res["backfill"] = {
        "rows_visited": progress.rows_done,
        "rows_total": progress.rows_total,
        "rows_updated": progress.rows_updated,
        "batches": progress.batches,
        "seconds": round(progress.seconds, 3),
        "rows_per_second": round(progress.rows_per_second, 1),
    }
    return res


def _expand_result(plan: ExpandPlan, status: str, cdc_tracked: bool, rebuilds: Sequence[indexes.Rebuild] = (),
                   left: Sequence[str] = ()) -> dict[str, Any]:
    return {
        "table": plan.change.qualified,
        "fingerprint": plan.fingerprint,
        "status": status,
        "operations": [
            {"index": o.index, "kind": o.kind, "summary": o.summary, "new_columns": list(o.new_columns)}
            for o in plan.ops
        ],
        "new_columns": list(plan.new_physical_columns),
        "trigger": plan.trigger if any(o.pair or o.fill for o in plan.ops) else None,
        "warnings": [*plan.warnings, *left],
        "rebuilds": [r.describe() for r in rebuilds],
        "cdc": {
            "tracked": cdc_tracked,
            "new_columns_emitted": list(plan.new_physical_columns) if cdc_tracked else [],
        },
    }


def status(conn: psycopg.Connection[Any], change: ChangeSet, opts: Options | None = None) -> ExpandStatus:
    opts = opts or Options()
    _idle(conn)
    st = _get(conn, change, opts)
    plan = plan_from_state(st, change) if st is not None else plan_change(conn, change, opts)
    return compute_status(conn, plan, st)


def _contract_ready(conn: psycopg.Connection[Any], change: ChangeSet, opts: Options,
                    force: bool) -> tuple[Any, ExpandPlan, ExpandStatus] | None:
    """The change's state, plan and status when it may be contracted now (None: already contracted)."""
    _idle(conn)
    table, fp = change.qualified, change.fingerprint()
    st = _get(conn, change, opts)
    if st is None:
        raise NotSafeToContractError(f"{table}: change {fp} was never expanded; run expand first")
    if st.phase == "contracted":
        return None
    if st.phase == "aborted":
        raise ExpandStateError(f"{table}: change {fp} was aborted; expand it again first")
    plan = plan_from_state(st, change)
    stat = compute_status(conn, plan, st)
    if not stat.safe_to_contract and not force:
        raise NotSafeToContractError(f"{table}: not safe to contract: " + "; ".join(stat.reasons))
    return st, plan, stat


def contract_transaction(conn: psycopg.Connection[Any], change: ChangeSet, opts: Options | None = None, *,
                         force: bool = False) -> dict[str, Any]:
    """Contract as ONE transaction's statements, for another engine to run (the evolution saga's DDL step of a
    pipeline table): the NOT NULL guards validated, the old shape dropped, the state row marked contracted.
    A NULL left in a column that must become NOT NULL fails the transaction (nothing changes) instead of being
    reported before it, as `contract` does. `statements` is empty when the change is already contracted."""
    opts = opts or Options()
    table, fp = change.qualified, change.fingerprint()
    ready = _contract_ready(conn, change, opts, force)
    conn.rollback()
    if ready is None:
        return {"table": table, "fingerprint": fp, "status": "already_contracted", "statements": []}
    st, plan, stat = ready
    body = [s for step in plan.contract_prepare for s in step.forward] + list(plan.contract_statements)
    body += indexes.finish_statements(indexes.from_state(st.rebuilds))
    body.append(state.set_phase_sql(opts.state_schema, table, fp, "contracted"))
    return {"table": table, "fingerprint": fp, "status": "ready", "safe_to_contract": stat.safe_to_contract,
            "forced": force and not stat.safe_to_contract, "statements": [s.as_string(conn) for s in body]}


def contract(
    conn: psycopg.Connection[Any],
    change: ChangeSet,
    opts: Options | None = None,
    *,
    force: bool = False,
    dry_run: bool = False,
) -> dict[str, Any]:
    """Refuse unless safe (or forced); then validate NOT NULL guards and contract in one transaction."""
    opts = opts or Options()
    table, fp = change.qualified, change.fingerprint()
    ready = _contract_ready(conn, change, opts, force)
    if ready is None:
        return {"table": table, "fingerprint": fp, "status": "already_contracted", "sql": []}
    st, plan, stat = ready
    prepare = [s for step in plan.contract_prepare for s in step.forward]
    main = list(plan.contract_statements) + indexes.finish_statements(indexes.from_state(st.rebuilds))
    if dry_run:
        return {
            "table": table,
            "fingerprint": fp,
            "status": "dry_run",
            "sql": render(conn, prepare + main),
            "safe_to_contract": stat.safe_to_contract,
        }
    with table_lock(conn, table):
        for step in plan.contract_prepare:
            try:
                _retry(
                    conn,
                    opts,
                    f"contract {table}: {step.description}",
                    functools.partial(_run, conn, step.forward),
                )
            except ExpandFailedError as exc:
                if (
                    exc.sqlstate != "23514"
                ):  # check_violation: NULLs left in a column that must become NOT NULL
                    raise
                for undo in plan.contract_prepare:
                    _retry(
                        conn,
                        opts,
                        "undo contract preparation",
                        functools.partial(_run, conn, undo.inverse),
                    )
                raise NotSafeToContractError(f"{table}: {step.description}: {exc}") from exc

        def run() -> None:
            for s in main:
                conn.execute(s)
            state.set_phase(conn, opts.state_schema, table, fp, "contracted")

        _retry(conn, opts, f"contract {table}", run)
    log.info("%s: contracted %s", table, fp)
    return {
        "table": table,
        "fingerprint": fp,
        "status": "contracted",
        "forced": force and not stat.safe_to_contract,
        "sql": render(conn, prepare + main),
    }


def abort(
    conn: psycopg.Connection[Any], change: ChangeSet, opts: Options | None = None, *, dry_run: bool = False
) -> dict[str, Any]:
    """Undo an expand completely; the result says whether the table's schema fingerprint is the pre-expand one."""
    opts = opts or Options()
    _idle(conn)
    table, fp = change.qualified, change.fingerprint()
    st = _get(conn, change, opts)
    if st is None:
        return {"table": table, "fingerprint": fp, "status": "not_expanded", "sql": []}
    if st.phase == "contracted":
        raise ExpandStateError(f"{table}: change {fp} is already contracted; it cannot be aborted")
    plan = plan_from_state(st, change)
    stmts = list(plan.abort_statements)
    if st.phase == "aborted":
        return {
            "table": table,
            "fingerprint": fp,
            "status": "already_aborted",
            "sql": [],
            "schema_restored": _restored(conn, plan, st),
        }
    if dry_run:
        return {"table": table, "fingerprint": fp, "status": "dry_run", "sql": render(conn, stmts)}
    with table_lock(conn, table):

        def run() -> None:
            for s in stmts:
                conn.execute(s)
            state.set_phase(conn, opts.state_schema, table, fp, "aborted")

        _retry(conn, opts, f"abort {table}", run)
        restored = _restored(conn, plan, st)
    if not restored:
        log.warning("%s: schema after abort differs from before expand", table)
    return {
        "table": table,
        "fingerprint": fp,
        "status": "aborted",
        "schema_restored": restored,
        "sql": render(conn, stmts),
    }


def _restored(conn: psycopg.Connection[Any], plan: ExpandPlan, st: state.OperationState) -> bool:
    """Whether the pre-expand table is back with none of expand's trigger and CHECK constraints left (schema's
    table model, which the fingerprint covers, has neither: they are looked up by the names the plan gave them)."""
    t = plan.table
    live = shape.read_live(conn, t.schema, t.name)
    if live is None:
        conn.rollback()
        return False
    (checks_left,) = conn.execute(
        "SELECT EXISTS (SELECT FROM pg_constraint WHERE conrelid = %s::regclass AND conname = ANY(%s))",
        (sql.Identifier(t.schema, t.name).as_string(conn), [o.check for o in plan.ops if o.check]),
    ).fetchone() or (True,)
    trigger_left, _ = trigger_state(conn, plan)
    conn.rollback()
    return not (checks_left or trigger_left) and shape.restored(live, st)


__all__ = [
    "Options",
    "abort",
    "contract",
    "expand",
    "plan_change",
    "plan_from_state",
    "render",
    "status",
]
