"""`PostgresSource` against the stack's real PostgreSQL (and, for slots, a real Debezium connector)."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator

import psycopg
import pytest

from migrate_assets.errors import LayerRequestError, LayerUnreachableError, LockTimeoutError, TransientError
from migrate_assets.evolution.actions import RunContext, wait_slot
from migrate_assets.evolution.layers import SourceColumn
from migrate_assets.local import procs
from migrate_assets.local.stack import StackInfo
from migrate_assets.resources import KafkaConnectClient, PostgresSource
from migrate_assets.resources.postgres import HEARTBEAT_PREFIX
from tests.cdc import delete_connector, poll_until, read_values, stack_debezium_config

pytestmark = pytest.mark.stack


@pytest.fixture
def source(stack_dsn: str) -> PostgresSource:
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE public.orders (id bigserial PRIMARY KEY, amount numeric(10,2) NOT NULL, "
            "note varchar(20), placed timestamptz DEFAULT now(), tags text[])"
        )
    return PostgresSource(stack_dsn, attempts=3, backoff=0.05, max_backoff=0.2)


def test_columns_use_the_canonical_spelling(source: PostgresSource) -> None:
    assert source.columns("orders") == [
        SourceColumn("id", "bigint", False),
        SourceColumn("amount", "numeric(10,2)", False),
        SourceColumn("note", "character varying(20)", True),
        SourceColumn("placed", "timestamp with time zone", True),
        SourceColumn("tags", "text[]", True),
    ]
    assert source.columns("public.orders") == source.columns("orders")
    assert source.columns("absent") is None


def test_fingerprint_is_stable_and_follows_the_shape(source: PostgresSource) -> None:
    before = source.fingerprint("orders")
    assert before == source.fingerprint("public.orders")
    with psycopg.connect(source.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO orders (amount) VALUES (1.5)")  # data does not change the shape
    assert source.fingerprint("orders") == before
    source.execute_ddl(["ALTER TABLE orders ALTER COLUMN note SET DEFAULT 'x'"], lock_timeout=1)
    assert source.fingerprint("orders") != before
    assert source.fingerprint("absent") != before


def test_execute_ddl_returns_a_commit_lsn_not_past_the_current_one(source: PostgresSource) -> None:
    start = source.current_lsn()
    result = source.execute_ddl(
        [
            "ALTER TABLE orders ADD COLUMN discount numeric(10,2)",
            "ALTER TABLE orders ALTER COLUMN note TYPE text",
        ],
        lock_timeout=1,
    )
    assert result.attempts == 1
    assert start < result.commit_lsn <= source.current_lsn()
    cols = {c.name: c.type for c in source.columns("orders") or []}
    assert cols["discount"] == "numeric(10,2)" and cols["note"] == "text"


def test_execute_ddl_failure_rolls_back_every_statement(source: PostgresSource) -> None:
    with pytest.raises(LayerRequestError) as err:
        source.execute_ddl(["ALTER TABLE orders ADD COLUMN x int", "ALTER TABLE orders ADD COLUMN x int"], 1)
    assert err.value.code == "42701"
    assert "x" not in {c.name for c in source.columns("orders") or []}


def test_a_held_lock_is_retried_then_reported_and_nothing_changes(source: PostgresSource) -> None:
    before = source.fingerprint("orders")
    locked, release = threading.Event(), threading.Event()

    def hold() -> None:
        with psycopg.connect(source.dsn) as conn:  # a transaction left open by "another application"
            conn.execute("SELECT count(*) FROM orders")  # ACCESS SHARE, conflicts with ALTER TABLE
            locked.set()
            release.wait(30)

    holder = threading.Thread(target=hold)
    holder.start()
    try:
        assert locked.wait(10)
        t0 = time.monotonic()
        with pytest.raises(LockTimeoutError) as err:
            source.execute_ddl(["ALTER TABLE orders ADD COLUMN blocked int"], lock_timeout=0.2)
        elapsed = time.monotonic() - t0
    finally:
        release.set()
        holder.join()
    assert isinstance(err.value, TransientError)
    assert err.value.attempts == 3 and err.value.table == "orders"
    assert "AccessShareLock" in str(err.value) and "lock" in str(err.value)
    assert elapsed >= 3 * 0.2  # every attempt really waited for the lock
    assert source.fingerprint("orders") == before
    # the lock gone, the same DDL goes through
    assert source.execute_ddl(["ALTER TABLE orders ADD COLUMN blocked int"], lock_timeout=0.2).attempts == 1


def test_unreachable_database_is_a_layer_error() -> None:
    dead = PostgresSource(f"postgresql://postgres@127.0.0.1:{procs.free_port()}/postgres", connect_timeout=2)
    for call in (dead.current_lsn, lambda: dead.columns("t"), dead.write_heartbeat):
        with pytest.raises(LayerUnreachableError) as err:
            call()
        assert err.value.layer == "source_db"


@pytest.fixture
def connector(stack_info: StackInfo, source: PostgresSource) -> Iterator[tuple[str, str, str]]:
    """A running Debezium connector on `orders`: (name, slot name, topic prefix)."""
    cfg = stack_debezium_config(stack_info, source.dsn, ["public.orders"])
    name = "pg-" + uuid.uuid4().hex[:6]
    client = KafkaConnectClient(stack_info.connect_url)
    client.create(name, cfg)
    try:
        client.wait_running(name, 60)
        yield name, cfg["slot.name"], cfg["topic.prefix"]
    finally:
        delete_connector(stack_info.connect_url, name, source.dsn)


def test_slot_progress_heartbeat_and_ddl_lsn(
    stack_info: StackInfo, source: PostgresSource, connector: tuple[str, str, str]
) -> None:
    """One connector for both checks (a Debezium start costs ~7 s here)."""
    _, slot_name, prefix = connector
    assert source.slot("no_such_slot") is None
    slot = poll_until(lambda: (s := source.slot(slot_name)) and s.active and s, 60, "slot active")
    assert slot.confirmed_flush_lsn is not None and slot.restart_lsn is not None

    # idle table: a LSN taken now is passed once heartbeats give Debezium something to confirm
    # (measured here: ~1-1.5 s with offset.flush.interval.ms=1000; without heartbeats not within 6 s)
    fresh = source.current_lsn()

    def passed(target: int) -> bool:
        source.write_heartbeat()
        s = source.slot(slot_name)
        return bool(s and s.confirmed_flush_lsn is not None and s.confirmed_flush_lsn >= target)

    poll_until(lambda: passed(fresh), 30, "confirmed_flush_lsn past a fresh LSN (heartbeats only)", 0.3)

    # a DDL and a write: Debezium confirms only up to the last transaction *before* its newest record, so
    # the write alone does not carry the slot past the DDL for sure; the heartbeat (a record of its own) does
    result = source.execute_ddl(["ALTER TABLE orders ADD COLUMN extra int"], lock_timeout=1)
    assert result.commit_lsn > fresh
    with psycopg.connect(source.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO orders (amount, extra) VALUES (2.5, 7)")
    ctx = RunContext(source=source)
    reached = wait_slot(ctx, slot_name, result.commit_lsn, 30, "the DDL")
    assert reached >= result.commit_lsn and source.slot(slot_name).active  # type: ignore[union-attr]
    # a LSN the slot cannot reach in time (far in the future) -> TransientError naming the lag
    with pytest.raises(TransientError, match=r"lag \d+ bytes"):
        wait_slot(ctx, slot_name, source.current_lsn() + 2**40, 0.5, "the future")
    with pytest.raises(TransientError, match="slot missing"):
        wait_slot(ctx, "no_such_slot", 0, 0.5, "nothing")

    # what moved the offsets: each heartbeat became a Debezium record on <topic.prefix>.message
    messages = read_values(stack_info.bootstrap, f"{prefix}.message", stack_info.registry_url)
    assert messages and all(m["message"]["prefix"] == HEARTBEAT_PREFIX for m in messages)
