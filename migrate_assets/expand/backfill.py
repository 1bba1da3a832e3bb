"""Batched, resumable backfill that runs entirely inside PostgreSQL.

Rows are visited in primary-key order — by key ranges (`key > lo AND key <= hi`) for a single dense integer key,
and by keyset pagination for any other orderable key, including composite ones — up to the last key that existed
when expand started: rows inserted later are written through the trigger and need no backfill, so the backfill
always terminates under write load. Each batch is one short transaction that updates the rows that still need
work; the cursor in the state table never gets ahead of the committed batches, so a crash loses at most the work
since the last saved cursor and a re-run continues from there.

What makes it as fast as one blocking `UPDATE` while writers keep their latency (issue 21, measured in
benchmarks/bench_backfill.py): for a single dense integer key, two sessions each run their stripe of key ranges
as one `DO` block that commits every batch itself, so no client round trip sits between batches (on a busy
machine each one costs a scheduler wake-up) and the batch statement is planned once; batches are sized by time
(~15 ms), not rows, so a writer never waits long behind a batch's row locks; backfill sessions commit
asynchronously (safe: see `_session`); and they set `migrate_assets.backfill = on`, which the sync trigger's WHEN
clause skips, so no PL/pgSQL runs per backfilled row (the table's other triggers still fire). The persisted
cursor is the watermark of committed batches (see `ranges`), written by the coordinating session. Any other key
is walked by keyset pagination, one batch and its cursor per transaction. `lock_timeout` bounds every wait for a
row a writer holds; a batch that times out (or deadlocks) is retried with backoff from the last committed batch.
"""

from __future__ import annotations

import contextlib
import logging
import queue
import secrets
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
from migrate_assets.expand.ranges import Watermark, chunk_width, first_key_of, next_batch_size
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
    """A backfill session: bounded lock waits, the sync trigger skipped (its WHEN reads BACKFILL_GUC), NOTICEs
    delivered, and asynchronous commit. The latter is safe because the backfill is idempotent and resumable: the
    cursor is only ever saved after (keyset: with) the batches it covers, so its commit record follows theirs in
    the WAL, and a crash, which can only lose a tail of the WAL, never keeps a cursor without its batches. A
    re-run visits the lost batches again from the older cursor and writes the same values. Nothing else runs in
    these sessions."""
    set_timeouts(conn, local=False, lock_timeout=lock_timeout)
    conn.execute(
        "SELECT set_config(%s, 'on', false), set_config('synchronous_commit', 'off', false), "
        "set_config('client_min_messages', 'notice', false)",  # the range workers' progress comes as NOTICEs
        (BACKFILL_GUC,),
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
    conn.execute("RESET client_min_messages")
    conn.commit()


def _connect_like(conn: psycopg.Connection[Any]) -> psycopg.Connection[Any] | None:
    """Another session to the same database as `conn` (None, logged, when the server refuses one more)."""
    try:
        params = {**conn.info.get_parameters(), "password": conn.info.password}
        return psycopg.connect(make_conninfo(**{k: v for k, v in params.items() if v}), autocommit=True)
    except psycopg.OperationalError as exc:
        log.warning("backfill: a second worker could not connect (%s); going on with fewer", exc)
        return None


def range_block(
    plan: ExpandPlan, *, lo: int, base: int, chunk: int, stride: int, top: int, size: int, target: float,
    delay: float,
) -> sql.Composed:
    """The body of one range worker's `DO` block: it walks its stripe of chunks (see `ranges`) in batches, each
    committed on its own (`COMMIT` inside `DO`, allowed at top level) and announced by a NOTICE
    `migrate_assets backfill LO HI UPDATED VISITED`. The whole loop runs in the server: no round trip per batch,
    and its statements are planned once (PL/pgSQL caches their plans).

    When the backfill only fills new columns of rename/change_type pairs, every row is updated unconditionally:
    rows the trigger already synced get the same value again, which is cheaper than testing every row. With
    `target` > 0 each batch is sized to take about `target` seconds (the rule of `ranges.next_batch_size`);
    `delay` pauses after each batch. `#variable_conflict use_column`: a user's column named like a variable of
    the block is still the column.
    """
    tbl = sql.Identifier(plan.table.schema, plan.table.name)
    rng = sql.SQL("{k} > _ma_lo AND {k} <= _ma_hi").format(k=sql.Identifier(plan.backfill.pk[0][0]))
    sets = sql.SQL(", ").join(
        sql.SQL("{} = {}").format(sql.Identifier(c), e) for c, e in plan.backfill.assignments
    )
    if plan.backfill.rewrite_all:
        work = sql.SQL(
            "UPDATE {t} SET {s} WHERE {r}; GET DIAGNOSTICS _ma_upd = ROW_COUNT; _ma_seen := _ma_upd;"
        ).format(t=tbl, s=sets, r=rng)
    else:
        work = sql.SQL(
            "SELECT count(*) INTO _ma_seen FROM {t} WHERE {r}; UPDATE {t} SET {s} WHERE {r} AND ({p}); "
            "GET DIAGNOSTICS _ma_upd = ROW_COUNT;"
        ).format(t=tbl, s=sets, r=rng, p=plan.backfill.pending or sql.SQL("true"))
    lit = sql.Literal
    return sql.SQL("""#variable_conflict use_column
DECLARE
  _ma_lo bigint := {lo}; _ma_hi bigint; _ma_end bigint; _ma_size bigint := {size};
  _ma_t0 timestamptz; _ma_upd bigint; _ma_seen bigint;
BEGIN
  WHILE _ma_lo < {top} LOOP
    _ma_end := least({base} + ((_ma_lo - {base}) / {chunk} + 1) * {chunk}, {top});
    WHILE _ma_lo < _ma_end LOOP
      _ma_hi := least(_ma_lo + _ma_size, _ma_end);
      _ma_t0 := clock_timestamp();
      {work}
      COMMIT;
      RAISE NOTICE 'migrate_assets backfill % % % %', _ma_lo, _ma_hi, _ma_upd, _ma_seen;
      IF {target} > 0 THEN
        _ma_size := greatest(100, least(200000, _ma_size * 2, greatest(_ma_size / 2, (_ma_size * {target}
                    / greatest(extract(epoch FROM clock_timestamp() - _ma_t0), 0.0001))::bigint)));
      END IF;
      _ma_lo := _ma_hi;
      IF {delay} > 0 AND _ma_lo < {top} THEN PERFORM pg_sleep({delay}); END IF;
    END LOOP;
    _ma_lo := _ma_end + ({stride} - 1) * {chunk};
  END LOOP;
END""").format(lo=lit(lo), size=lit(max(1, size)), top=lit(top), base=lit(base), chunk=lit(chunk),
                 work=work, target=lit(float(target)), delay=lit(float(delay)), stride=lit(stride))


_NOTICE = "migrate_assets backfill "


def _run_block(conn: psycopg.Connection[Any], body: sql.Composed) -> None:
    """`DO $tag$ body $tag$` with a random tag the body does not contain (user expressions may quote with $…$)."""
    text = body.as_string(conn)
    tag = f"$ma_{secrets.token_hex(8)}$"
    while tag in text:  # pragma: no cover - 64 random bits
        tag = f"$ma_{secrets.token_hex(8)}$"
    conn.execute(f"DO {tag}\n{text}\n{tag}".encode())


@dataclass
class _Pace:
    """How a worker sizes its batches: fixed (`target` 0) or by time, and the pause after each batch."""

    size: int
    target: float
    delay: float

    def after(self, took: float) -> None:
        if self.target > 0:
            self.size = next_batch_size(self.size, took, self.target)


Report = tuple[int, int, int, int]  # lo, hi, rows updated, rows visited of one committed batch


def _range_worker(
    conn: psycopg.Connection[Any],
    plan: ExpandPlan,
    worker: int,
    stripes: tuple[int, int, int, int],
    pace: _Pace,
    retry: Callable[[Callable[[int], None]], None],
    report: queue.Queue[Report | BaseException | None],
) -> None:
    """Run this worker's `DO` block until its stripe is done; after a retryable error, run it again from the
    last batch it committed (the NOTICEs say which)."""
    base, chunk, stride, top = stripes
    first = first_key_of(worker, base, chunk)
    last: list[int] = []  # hi of the last committed batch

    def on_notice(diag: psycopg.errors.Diagnostic) -> None:
        msg = diag.message_primary or ""
        if msg.startswith(_NOTICE):
            lo, hi, upd, seen = (int(x) for x in msg[len(_NOTICE):].split())
            last[:] = [hi]
            report.put((lo, hi, upd, seen))

    def attempt(_: int) -> None:
        lo = last[0] if last else first
        if last and (lo - base) % chunk == 0:  # its chunk is done: on to its next one
            lo += (stride - 1) * chunk
        _run_block(conn, range_block(plan, lo=lo, base=base, chunk=chunk, stride=stride, top=top,
                                     size=pace.size, target=pace.target, delay=pace.delay))

    conn.add_notice_handler(on_notice)
    try:
        while first < top:
            before = list(last)
            try:
                retry(attempt)
                break
            except TransientError:
                if last == before:  # retried `attempts` times without committing a batch
                    raise
    except BaseException as exc:  # handed to the coordinating thread, which raises it
        report.put(exc)
    finally:
        conn.remove_notice_handler(on_notice)
        report.put(None)


def _parallel_ranges(
    conn: psycopg.Connection[Any],
    plan: ExpandPlan,
    mark: Watermark,
    top: int,
    paces: list[_Pace],
    lock_timeout: float,
    save: Callable[[int, int], sql.Composed],
    retry: Callable[[Callable[[int], None]], None],
    on_batch: Callable[[int, int], None],
) -> None:
    """One `DO` worker per pace, each on its own session, on striped chunks of the key space; this thread reports
    progress and persists the watermark on `conn` (after the batches it covers committed: never ahead of the data).
    The first error ends the run and is raised here; the other workers end when their session closes."""
    conns = [c for c in (_connect_like(conn) for _ in paces) if c is not None]
    if not conns:
        raise TransientError(f"backfill of {plan.change.qualified}: no session for a worker could be opened")
    stripes = (mark.key, chunk_width(mark.key, top, len(conns)), len(conns), top)
    report: queue.Queue[Report | BaseException | None] = queue.Queue()
    threads = [
        threading.Thread(target=_range_worker, args=(c, plan, i, stripes, p, retry, report), daemon=True,
                         name=f"backfill-{i}")
        for i, (c, p) in enumerate(zip(conns, paces, strict=False))
    ]
    saved = mark.key
    last_save = time.monotonic()

    def persist(force: bool = False) -> None:
        """Save the watermark when it moved by a chunk, or at all in the last 0.2 s (or when `force`)."""
        nonlocal saved, last_save
        key, rows = mark.snapshot()
        if key > saved and (force or key - saved >= stripes[1] or time.monotonic() - last_save >= 0.2):
            conn.execute(save(key, rows))
            saved, last_save = key, time.monotonic()

    try:
        for c in conns:
            _session(c, lock_timeout)
        for t in threads:
            t.start()
        running = len(threads)
        while running:
            item = report.get()
            if item is None:
                running -= 1
            elif isinstance(item, BaseException):
                raise item
            else:
                lo, hi, upd, seen = item
                mark.committed(lo, hi, seen)
                on_batch(upd, seen)
                persist()
        persist(force=True)
    finally:
        for c, t in zip(conns, threads, strict=True):  # a worker still in its DO block is cancelled
            if t.is_alive():
                with contextlib.suppress(psycopg.Error):
                    c.cancel_safe()
            c.close()
        for t in threads:
            t.join(30)


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
            mark = Watermark(top if start_key is None else start_key, done)

            def save(key: int, rows: int) -> sql.Composed:
                return state.watermark_statement(state_schema, qualified, plan.fingerprint, key, rows)

            paces = [_Pace(batch_size, batch_seconds, batch_delay) for _ in range(max(1, workers))]
            _parallel_ranges(conn, plan, mark, top, paces, lock_timeout, save, retry, on_batch)
            if mark.key != top:  # pragma: no cover - every worker ended without error, so the stripes are done
                raise RuntimeError(f"backfill of {qualified} stopped at key {mark.key}, not {top}")
            conn.execute(save(top, mark.rows))  # the cursor at the last key (a no-op when already saved)
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
