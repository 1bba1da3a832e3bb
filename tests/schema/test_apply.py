"""The runner: policies, stale plans, NOT NULL on tables with rows, lock timeouts with retries."""

from __future__ import annotations

import threading

import psycopg
import pytest

from migrate_assets.errors import (
    BreakingChangeBlocked,
    ExpandContractRequired,
    LockTimeoutError,
    StalePlanError,
    UnsafeChangeRefused,
)
from migrate_assets.schema.apply import ApplyOptions, apply_plan
from migrate_assets.schema.planner import PlanOptions, build_plan
from tests.schema.helpers import apply, converge, execute, plan, scalar, tables

V1 = "table: t\ncolumns: [{name: id, type: int, primary_key: true}, {name: a, type: text, nullable: true}]\n"
V2_DROP = "table: t\ncolumns: [{name: id, type: int, primary_key: true}, {name: b, type: int, nullable: true}]\n"


def _columns(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        rows = conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 't'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum")
        return [r[0] for r in rows.fetchall()]


def test_block_refuses_everything_and_names_each_breaking_change(fresh_dsn: str) -> None:
    converge(fresh_dsn, V1)
    p = plan(fresh_dsn, V2_DROP)
    assert not p.safe and [c.kind for c in p.breaking] == ["drop_column"]
    with pytest.raises(BreakingChangeBlocked) as exc:
        apply(fresh_dsn, p, on_breaking_change="block")
    assert exc.value.exit_code == 3 and "drop column public.t.a" in str(exc.value) and "deletes_data" in str(exc.value)
    assert plan(fresh_dsn, V2_DROP).fingerprint == p.fingerprint  # database untouched (b was not added either)
    assert _columns(fresh_dsn) == ["id", "a"]


def test_warn_applies_and_reports(fresh_dsn: str) -> None:
    converge(fresh_dsn, V1)
    result = apply(fresh_dsn, plan(fresh_dsn, V2_DROP), on_breaking_change="warn")
    assert len(result.warnings) == 1 and "drop column public.t.a" in result.warnings[0]
    assert _columns(fresh_dsn) == ["id", "b"]


def test_expand_contract_refuses_column_changes_pointing_to_expand(fresh_dsn: str) -> None:
    converge(fresh_dsn, V1)
    with pytest.raises(ExpandContractRequired) as exc:
        apply(fresh_dsn, plan(fresh_dsn, V2_DROP), on_breaking_change="expand_contract")
    assert "migrate-assets expand" in str(exc.value) and exc.value.exit_code == 3
    execute(fresh_dsn, "CREATE TABLE gone (x int)")
    p = plan(fresh_dsn, V1, allow_drop_table=True)
    assert [c.kind for c in p.changes] == ["drop_table"]
    with pytest.raises(BreakingChangeBlocked):
        apply(fresh_dsn, p, on_breaking_change="expand_contract")
    assert _columns(fresh_dsn) == ["id", "a"]


def test_stale_plan_is_refused_and_nothing_changes(fresh_dsn: str) -> None:
    converge(fresh_dsn, V1)
    p = plan(fresh_dsn, V1.replace("nullable: true}", "nullable: true}, {name: c, type: int, nullable: true}"))
    execute(fresh_dsn, "ALTER TABLE t ADD COLUMN sneaky int")
    with pytest.raises(StalePlanError) as exc:
        apply(fresh_dsn, p)
    assert exc.value.exit_code == 3 and exc.value.expected == p.fingerprint
    assert _columns(fresh_dsn) == ["id", "a", "sneaky"]


def test_not_null_column_on_table_with_rows(fresh_dsn: str) -> None:
    converge(fresh_dsn, V1)
    execute(fresh_dsn, "INSERT INTO t VALUES (1, 'x'), (2, NULL)")
    no_default = V1.replace("nullable: true}", "nullable: true}, {name: n, type: int}")
    p = plan(fresh_dsn, no_default)
    assert p.refusals and "has rows" in p.refusals[0] and not p.safe
    with pytest.raises(UnsafeChangeRefused):
        apply(fresh_dsn, p)
    assert _columns(fresh_dsn) == ["id", "a"]
    with_default = V1.replace("nullable: true}", "nullable: true}, {name: n, type: int, default: '5'}, {name: u, type: uuid, default: gen_random_uuid()}")
    converge(fresh_dsn, with_default)
    assert scalar(fresh_dsn, "SELECT count(DISTINCT u) FROM t WHERE n = 5") == 2
    execute(fresh_dsn, "DELETE FROM t")
    assert [c.kind for c in converge(fresh_dsn, with_default.replace("default: '5'}", "default: '5'}, {name: m, type: int}")).changes] == ["add_column"]


def test_set_not_null_with_nulls_fails_cleanly_and_rolls_back(fresh_dsn: str) -> None:
    converge(fresh_dsn, V1)
    execute(fresh_dsn, "INSERT INTO t VALUES (1, NULL)")
    p = plan(fresh_dsn, V1.replace("{name: a, type: text, nullable: true}", "{name: a, type: text}") + "comment: c\n")
    from migrate_assets.errors import RuntimeFailure

    with pytest.raises(RuntimeFailure, match="rolled back"):
        apply(fresh_dsn, p)
    assert scalar(fresh_dsn, "SELECT obj_description('t'::regclass)") is None  # the comment change was rolled back too


class _LockHolder(threading.Thread):
    """Holds a lock on `t` in its own session until `release` is set."""

    def __init__(self, dsn: str, mode: str) -> None:
        super().__init__(daemon=True)
        self.dsn, self.mode = dsn, mode
        self.locked, self.release, self.done = threading.Event(), threading.Event(), threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.dsn) as conn:
            conn.execute(f"LOCK TABLE t IN {self.mode} MODE".encode())
            self.locked.set()
            self.release.wait(30)
            conn.rollback()
        self.done.set()


@pytest.mark.parametrize("mode", ["ACCESS EXCLUSIVE", "SHARE"])
def test_lock_timeout_retries_then_fails_clearly(fresh_dsn: str, mode: str) -> None:
    converge(fresh_dsn, V1)
    p = plan(fresh_dsn, V1.replace("nullable: true}", "nullable: true}, {name: c, type: int, nullable: true}"))
    holder = _LockHolder(fresh_dsn, mode)
    holder.start()
    assert holder.locked.wait(10)
    attempts: list[int] = []
    try:
        with psycopg.connect(fresh_dsn, autocommit=True) as conn, pytest.raises(LockTimeoutError) as exc:
            apply_plan(conn, p, ApplyOptions(lock_timeout=0.1, attempts=3, backoff=0.01), on_attempt=attempts.append)
    finally:
        holder.release.set()
        holder.join(10)
    assert attempts == [1, 2, 3]
    msg = str(exc.value)
    assert "lock_timeout=0.1s" in msg and "public.t" in msg and "3 attempt" in msg and "holds" in msg
    assert _columns(fresh_dsn) == ["id", "a"]


def test_lock_released_during_retries_succeeds(fresh_dsn: str) -> None:
    converge(fresh_dsn, V1)
    p = plan(fresh_dsn, V1.replace("nullable: true}", "nullable: true}, {name: c, type: int, nullable: true}"))
    holder = _LockHolder(fresh_dsn, "ACCESS EXCLUSIVE")
    holder.start()
    assert holder.locked.wait(10)

    def on_attempt(n: int) -> None:
        if n == 3:  # two attempts timed out: let the holder go
            holder.release.set()
            assert holder.done.wait(10)

    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        result = apply_plan(conn, p, ApplyOptions(lock_timeout=0.1, attempts=5, backoff=0.01), on_attempt=on_attempt)
    assert result.attempts == 3
    assert _columns(fresh_dsn) == ["id", "a", "c"]


def test_plan_json_round_trip(fresh_dsn: str) -> None:
    from migrate_assets.schema.plan import Plan

    p = plan(fresh_dsn, V1)
    back = Plan.from_json(p.to_json())
    assert back == p
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        again = build_plan(conn, tables(V1), PlanOptions(), scope=back.scope)
    assert again.changes == p.changes and again.fingerprint == p.fingerprint
