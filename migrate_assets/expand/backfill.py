"""Batched, resumable backfill that runs entirely inside PostgreSQL.

Rows are visited in primary-key order — by key ranges (`key > lo AND key <= hi`, gaps skipped) for a single
dense integer key, and by keyset pagination for any other orderable key, including composite ones — up to the
last key that existed when expand started: rows inserted later are written through the trigger and need no
backfill, so the backfill always terminates under write load. Each batch is one short transaction that updates
the rows that still need work and advances the cursor in the state table, so a crash loses at most the batches
in flight and a re-run continues from there.

What makes it as fast as one blocking `UPDATE` while writers keep their latency (issue 21, measured in
benchmarks/bench_backfill.py): key ranges need no keyset join; each range batch is ONE autocommitted statement
that also moves the cursor; batches are sized by time (~15 ms), not rows, so the per-statement overhead stays
small while a writer never waits long behind a batch's row locks; two sessions backfill disjoint key ranges at
once (see `ranges`); backfill sessions commit asynchronously (safe: see `_session`); and they set
`migrate_assets.backfill = on`, which the sync trigger's WHEN clause skips, so no PL/pgSQL runs per backfilled
row. `lock_timeout` bounds every wait for a row a writer holds; a batch that times out (or deadlocks) is retried
with backoff.
"""

from __future__ import annotations

import logging
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NoReturn, TypeVar

import psycopg
from psycopg import errors as pgerr
from psycopg import sql
from psycopg.conninfo import make_conninfo

from migrate_assets.errors import TransientError
from migrate_assets.expand import state
from migrate_assets.expand.planner import BACKFILL_GUC, ExpandPlan
from migrate_assets.expand.ranges import KeyRanges, next_batch_size
from migrate_assets.schema.retry import retry_postgres
from migrate_assets.schema.session import reset_timeouts, set_timeouts
from migrate_assets.schema.types import parse_type

log = logging.getLogger(__name__)

DEFAULT_BATCH_SIZE = 1000
#: batches are sized to take about this long: a writer that wants a row of the batch in flight waits at most that
DEFAULT_BATCH_SECONDS = 0.015
#: sessions backfilling disjoint key ranges at the same time (a single dense integer key only)
DEFAULT_WORKERS = 2
T = TypeVar("T")


@dataclass(frozen=True)
class Progress:
    rows_done: int
    rows_total: int
    rows_updated: int
    seconds: float
    batches: int

    @property
    def rows_per_second(self) -> float:
        return self.rows_done / self.seconds if self.seconds > 0 else 0.0

    @property
    def fraction(self) -> float:
        return min(1.0, self.rows_done / self.rows_total) if self.rows_total else 1.0


ProgressFn = Callable[[Progress], None]


def _key_tuple(plan: ExpandPlan) -> sql.Composable:
    return sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(k) for k, _ in plan.backfill.pk))


def key_literal(plan: ExpandPlan, values: list[str]) -> sql.Composable:
    """A key as a row of typed literals: queries carry no parameters, so `%` in user expressions is safe."""
    return sql.SQL("({})").format(
        sql.SQL(", ").join(
            sql.SQL("CAST({} AS {})").format(sql.Literal(v), sql.SQL(t.render()))
            for v, (_, t) in zip(values, plan.backfill.pk, strict=True)
        )
    )


def batch_query(
    plan: ExpandPlan, batch_size: int, cursor: list[str] | None, maxkey: list[str]
) -> sql.Composed:
    """One batch: pick the next keys, update those that need work, return counts and the last key."""
    tbl = sql.Identifier(plan.table.schema, plan.table.name)
    keys = [sql.Identifier(k) for k, _ in plan.backfill.pk]
    aliases = [sql.Identifier(f"_ma_k{i}") for i in range(len(keys))]
    lower = (
        sql.SQL("")
        if cursor is None
        else sql.SQL("{} > {} AND ").format(_key_tuple(plan), key_literal(plan, cursor))
    )
    pending = plan.backfill.pending or sql.SQL("true")
    return sql.SQL(
        "WITH batch AS (SELECT {sel} FROM {tbl} WHERE {lower}{kt} <= {kp} ORDER BY {order} LIMIT {n}), "
        "upd AS (UPDATE {tbl} SET {sets} FROM batch WHERE {join} AND ({pending}) RETURNING 1) "
        "SELECT (SELECT count(*) FROM upd), (SELECT count(*) FROM batch), {last} "
        "FROM (SELECT * FROM batch ORDER BY {desc} LIMIT 1) AS last"
    ).format(
        sel=sql.SQL(", ").join(sql.SQL("{} AS {}").format(k, a) for k, a in zip(keys, aliases, strict=True)),
        tbl=tbl,
        lower=lower,
        kt=_key_tuple(plan),
        kp=key_literal(plan, maxkey),
        order=sql.SQL(", ").join(keys),
        n=sql.Literal(batch_size),
        sets=sql.SQL(", ").join(
            sql.SQL("{} = {}").format(sql.Identifier(c), e) for c, e in plan.backfill.assignments
        ),
        join=sql.SQL(" AND ").join(
            sql.SQL("{}.{} = batch.{}").format(tbl, k, a) for k, a in zip(keys, aliases, strict=True)
        ),
        pending=pending,
        last=sql.SQL(", ").join(sql.SQL("last.{}::text").format(a) for a in aliases),
        desc=sql.SQL(", ").join(sql.SQL("{} DESC").format(a) for a in aliases),
    )


_INTEGER_TYPES = frozenset(map(parse_type, ("smallint", "integer", "bigint")))


def integer_key(plan: ExpandPlan) -> bool:
    """A single integer primary key allows plain range batches (no keyset join): the fast path."""
    return len(plan.backfill.pk) == 1 and plan.backfill.pk[0][1] in _INTEGER_TYPES


def range_query(plan: ExpandPlan, lo: int, hi: int, save: sql.Composable | None = None) -> sql.Composed:
    """Update the rows with lo < key <= hi that need work; count them all (same snapshot).

    When the backfill only fills new columns of rename/change_type pairs, every row is updated unconditionally:
    rows the trigger already synced get the same value again, which is cheaper than testing every row. `save`
    (a data-modifying statement using `n.s`, the rows visited) runs in the same statement, so one round trip
    commits the batch together with its cursor.
    """
    tbl = sql.Identifier(plan.table.schema, plan.table.name)
    key, typ = plan.backfill.pk[0]
    rng = sql.SQL("{k} > CAST({lo} AS {t}) AND {k} <= CAST({hi} AS {t})").format(
        k=sql.Identifier(key), lo=sql.Literal(lo), hi=sql.Literal(hi), t=sql.SQL(typ.render())
    )
    sets = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), e) for c, e in plan.backfill.assignments
    )
    seen: sql.Composable
    if plan.backfill.rewrite_all:
        upd = sql.SQL("UPDATE {} SET {} WHERE {} RETURNING 1").format(tbl, sets, rng)
        seen = sql.SQL("(SELECT count(*) FROM upd)")
    else:
        pending = plan.backfill.pending or sql.SQL("true")
        upd = sql.SQL("UPDATE {} SET {} WHERE {} AND ({}) RETURNING 1").format(tbl, sets, rng, pending)
        seen = sql.SQL("(SELECT count(*) FROM {} WHERE {})").format(tbl, rng)
    parts = [
        sql.SQL("upd AS ({})").format(upd),
        sql.SQL("n AS (SELECT (SELECT count(*) FROM upd) AS u, {} AS s)").format(seen),
    ]
    if save is not None:
        parts.append(sql.SQL("saved AS ({})").format(save))
    return sql.SQL("WITH {} SELECT u, s FROM n").format(sql.SQL(", ").join(parts))


def _next_key(conn: psycopg.Connection[Any], plan: ExpandPlan, after: int | None) -> int | None:
    tbl = sql.Identifier(plan.table.schema, plan.table.name)
    key, typ = plan.backfill.pk[0]
    where = (
        sql.SQL("")
        if after is None
        else sql.SQL(" WHERE {} > CAST({} AS {})").format(
            sql.Identifier(key), sql.Literal(after), sql.SQL(typ.render())
        )
    )
    row = conn.execute(sql.SQL("SELECT min({}) FROM {}{}").format(sql.Identifier(key), tbl, where)).fetchone()
    return None if row is None or row[0] is None else int(row[0])


def use_ranges(conn: psycopg.Connection[Any], plan: ExpandPlan, total: int, maxkey: list[str]) -> bool:
    """Range batches when the key is a single integer and dense enough (at least one row per two key values)."""
    if not integer_key(plan) or total == 0:
        return False
    first = _next_key(conn, plan, None)
    return first is not None and total * 2 >= int(maxkey[0]) - first + 1


def _batch(
    conn: psycopg.Connection[Any],
    plan: ExpandPlan,
    batch_size: int,
    cursor: list[str] | None,
    maxkey: list[str],
) -> tuple[int, int, list[str]]:
    """One keyset batch inside the caller's transaction: (rows updated, rows visited, new cursor)."""
    row = conn.execute(batch_query(plan, batch_size, cursor, maxkey)).fetchone()
    if row is None:
        return 0, 0, maxkey
    return int(row[0]), int(row[1]), [str(v) for v in row[2:]]


def last_key(conn: psycopg.Connection[Any], plan: ExpandPlan) -> list[str] | None:
    """The last primary key that exists now (None: empty table); rows above it are the trigger's business."""
    tbl = sql.Identifier(plan.table.schema, plan.table.name)
    keys = sql.SQL(", ").join(
        sql.SQL("{}::text AS {}").format(sql.Identifier(k), sql.Identifier(f"_ma_k{i}"))
        for i, (k, _) in enumerate(plan.backfill.pk)
    )
    order = sql.SQL(", ").join(sql.SQL("{} DESC").format(sql.Identifier(k)) for k, _ in plan.backfill.pk)
    row = conn.execute(sql.SQL("SELECT {} FROM {} ORDER BY {} LIMIT 1").format(keys, tbl, order)).fetchone()
    return None if row is None else [str(v) for v in row]


def count_to(conn: psycopg.Connection[Any], plan: ExpandPlan, maxkey: list[str]) -> int:
    """Rows at or below the recorded last key: the backfill's total (counted outside the DDL transaction)."""
    tbl = sql.Identifier(plan.table.schema, plan.table.name)
    q = sql.SQL("SELECT count(*) FROM {} WHERE {} <= {}").format(
        tbl, _key_tuple(plan), key_literal(plan, maxkey)
    )
    (n,) = conn.execute(q).fetchone() or (0,)
    return int(n)


def _session(conn: psycopg.Connection[Any], lock_timeout: float) -> None:
    """A backfill session: bounded lock waits, the sync trigger skipped (its WHEN reads BACKFILL_GUC), and
    asynchronous commit. The latter is safe here because the backfill is idempotent and resumable: a batch
    commits together with the cursor that covers it, so a crash can only lose the last few batches *and* their
    cursor updates at once (the WAL is replayed in order), and the re-run visits those rows again from the
    older cursor, writing the same values. Nothing else runs in these sessions."""
    set_timeouts(conn, local=False, lock_timeout=lock_timeout)
    conn.execute(
        "SELECT set_config(%s, 'on', false), set_config('synchronous_commit', 'off', false)", (BACKFILL_GUC,)
    )
    conn.commit()


def _end_session(conn: psycopg.Connection[Any], autocommit: bool) -> None:
    if conn.closed:
        return
    conn.rollback()
    conn.autocommit = autocommit
    reset_timeouts(conn, "lock_timeout")
    conn.execute(sql.SQL("RESET {}").format(sql.Identifier(*BACKFILL_GUC.split("."))))
    conn.execute("RESET synchronous_commit")
    conn.commit()


def _connect_like(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any] | None:
    """Another session to the same database as `conn` (None, logged, when the server refuses one more)."""
    try:
        params = {**conn.info.get_parameters(), "password": conn.info.password}
        return psycopg.connect(make_conninfo(**{k: v for k, v in params.items() if v}), autocommit=True)
    except psycopg.OperationalError as exc:
        log.warning("backfill: a second worker could not connect (%s); going on with fewer", exc)
        return None


@dataclass
class _Pace:
    """How a worker sizes its batches: fixed (`target` 0) or by time, and the pause after each batch."""

    size: int
    target: float
    delay: float

    def after(self, took: float) -> None:
        if self.target > 0:
            self.size = next_batch_size(self.size, took, self.target)


class _Stop(Exception):
    """Another worker failed or progress reporting raised: stop claiming ranges."""


def _range_worker(
    conn: psycopg.Connection[Any],
    plan: ExpandPlan,
    ranges: KeyRanges,
    pace: _Pace,
    save: Callable[[int, int], sql.Composed],
    retry: Callable[[Callable[[int], tuple[int, int]]], tuple[int, int]],
    report: queue.Queue[tuple[int, int] | BaseException | None],
    stop: threading.Event,
) -> None:
    """Claim key ranges until none is left: each range is ONE autocommitted statement that also moves the
    persisted cursor to the watermark as it was at claim time (a batch, its cursor: one round trip)."""
    top = ranges.top
    try:
        while not stop.is_set():
            claim = ranges.claim(pace.size)
            if claim is None:
                break
            mark = None if claim.save_cursor is None else save(claim.save_cursor, claim.save_rows)
            query = range_query(plan, claim.lo, claim.hi, mark)

            def one(_: int, query: sql.Composed = query) -> tuple[int, int]:
                row = conn.execute(query).fetchone() or (0, 0)
                return int(row[0]), int(row[1])

            t0 = time.monotonic()
            n_upd, n_seen = retry(one)
            pace.after(time.monotonic() - t0)
            ranges.finish(claim, n_seen)
            if n_seen == 0 and claim.hi < top:  # a gap in the keys: jump to the next existing one
                nxt = _next_key(conn, plan, claim.hi)
                ranges.skip_to(top if nxt is None else nxt - 1)
            report.put((n_upd, n_seen))
            if pace.delay > 0 and not ranges.finished:
                time.sleep(pace.delay)
    except BaseException as exc:  # handed to the coordinating thread, which raises it
        report.put(exc)
    finally:
        report.put(None)


def _parallel_ranges(
    conn: psycopg.Connection[Any],
    plan: ExpandPlan,
    ranges: KeyRanges,
    paces: list[_Pace],
    lock_timeout: float,
    save: Callable[[int, int], sql.Composed],
    retry: Callable[[Callable[[int], tuple[int, int]]], tuple[int, int]],
    on_batch: Callable[[int, int], None],
) -> None:
    """Run one worker per pace on disjoint key ranges (the first on `conn`, the others on their own sessions);
    this thread only reports progress. The first error stops every worker and is raised here."""
    conns = [conn] + [c for c in (_connect_like(conn) for _ in paces[1:]) if c is not None]
    report: queue.Queue[tuple[int, int] | BaseException | None] = queue.Queue()
    stop = threading.Event()
    threads = [
        threading.Thread(
            target=_range_worker, args=(c, plan, ranges, p, save, retry, report, stop), daemon=True,
            name=f"backfill-{i}",
        )
        for i, (c, p) in enumerate(zip(conns, paces, strict=False))
    ]
    failure: BaseException | None = None
    try:
        for c in conns[1:]:
            _session(c, lock_timeout)
        for t in threads:
            t.start()
        running = len(threads)
        while running:
            item = report.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                failure = failure or item
                stop.set()
            elif failure is None:
                try:
                    on_batch(*item)
                except BaseException as exc:
                    failure = exc
                    stop.set()
    finally:
        stop.set()
        for t in threads:
            t.join()
        for c in conns[1:]:
            c.close()
    if failure is not None:
        raise failure


def run_backfill(
    conn: psycopg.Connection[Any],
    plan: ExpandPlan,
    *,
    state_schema: str,
    batch_size: int = DEFAULT_BATCH_SIZE,
    batch_delay: float = 0.0,
    batch_seconds: float = DEFAULT_BATCH_SECONDS,
    workers: int = DEFAULT_WORKERS,
    lock_timeout: float = 2.0,
    attempts: int = 5,
    backoff: float = 0.5,
    max_backoff: float = 30.0,
    on_progress: ProgressFn | None = None,
) -> Progress:
    """Backfill from the cursor recorded in the state table to the recorded last key; returns final progress.

    Batches start at `batch_size` rows and are then sized to take about `batch_seconds` each (0: fixed size),
    which bounds how long a writer can wait behind a batch's row locks. A single dense integer key is split
    between `workers` sessions on disjoint key ranges. `batch_delay` asks for a paced, gentle backfill: one
    worker, fixed-size batches, that pause after each.
    """
    qualified = plan.change.qualified
    st = state.get(conn, state_schema, qualified, plan.fingerprint)
    conn.rollback()
    if st is None:
        raise RuntimeError(f"no expand state for {qualified}")
    if not plan.backfill.needed or st.backfill_max is None:
        return Progress(st.rows_total, st.rows_total, 0, 0.0, 0)
    cursor, maxkey = st.backfill_cursor, st.backfill_max
    done, total, updated, batches = st.rows_done, st.rows_total, 0, 0
    if total == 0:
        total = count_to(conn, plan, maxkey)
        state.set_total(conn, state_schema, qualified, plan.fingerprint, total)
        conn.commit()
    if batch_delay > 0:
        workers, batch_seconds = 1, 0.0
    started = last_log = time.monotonic()
    ranges = use_ranges(conn, plan, total, maxkey)
    start_key = None
    if ranges and cursor != maxkey:
        first = _next_key(conn, plan, None) if cursor is None else None
        start_key = int(cursor[0]) if cursor is not None else (first - 1 if first is not None else None)
    conn.rollback()
    autocommit = conn.autocommit
    conn.autocommit = ranges
    _session(conn, lock_timeout)

    def give_up(exc: psycopg.Error, _: int) -> NoReturn:
        raise TransientError(f"backfill batch of {qualified} kept failing: {exc}") from exc

    def retry(run: Callable[[int], T]) -> T:
        return retry_postgres(
            run,
            what=f"backfill batch of {qualified}",
            attempts=attempts,
            backoff=backoff,
            max_backoff=max_backoff,
            give_up=give_up,
            retry_on=(pgerr.LockNotAvailable, pgerr.DeadlockDetected, pgerr.SerializationFailure),
        )

    def on_batch(n_upd: int, n_seen: int) -> None:
        nonlocal done, updated, batches, last_log
        done += n_seen
        updated += n_upd
        batches += 1
        now = time.monotonic()
        progress = Progress(done, total, updated, now - started, batches)
        if on_progress:
            on_progress(progress)
        if now - last_log >= 5.0:
            last_log = now
            log.info("backfill %s: %d/%d rows (%.0f rows/s)", qualified, done, total, progress.rows_per_second)

    try:
        if on_progress:  # the starting point: a progress line measures its rate and ETA from here
            on_progress(Progress(done, total, updated, 0.0, batches))
        if ranges and cursor != maxkey:
            top = int(maxkey[0])
            keys = KeyRanges(top if start_key is None else start_key, top, done)

            def save(key: int, rows: int) -> sql.Composed:
                return state.watermark_statement(state_schema, qualified, plan.fingerprint, key, rows)

            paces = [_Pace(batch_size, batch_seconds, batch_delay) for _ in range(max(1, workers))]
            _parallel_ranges(conn, plan, keys, paces, lock_timeout, save, retry, on_batch)
            # every range is finished: the final watermark (the cursor at the last key) in its own statement
            conn.execute(save(top, keys.rows_at_watermark))
        else:
            pace = _Pace(batch_size, batch_seconds, batch_delay)

            def batch(_: int) -> tuple[int, int, list[str]]:
                with conn.transaction():
                    n_upd, n_seen, new_cursor = _batch(conn, plan, pace.size, cursor, maxkey)
                    state.save_cursor(conn, state_schema, qualified, plan.fingerprint, new_cursor, n_seen)
                return n_upd, n_seen, new_cursor

            while cursor != maxkey:
                t0 = time.monotonic()
                n_upd, n_seen, cursor = retry(batch)
                pace.after(time.monotonic() - t0)
                on_batch(n_upd, n_seen)
                if batch_delay > 0 and cursor != maxkey:
                    time.sleep(batch_delay)
    finally:
        _end_session(conn, autocommit)
    final = Progress(done, total, updated, time.monotonic() - started, batches)
    log.info(
        "backfill %s finished: %d rows visited, %d updated, %.0f rows/s",
        qualified,
        final.rows_done,
        final.rows_updated,
        final.rows_per_second,
    )
    return final
