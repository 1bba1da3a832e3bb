"""The one backoff rule (exponential, capped, jittered between half and all of the step) and the one
Postgres retry loop built on it."""

from typing import NoReturn

import psycopg
import pytest
from hypothesis import given
from hypothesis import strategies as st
from psycopg import errors as pgerrors

from migrate_assets.schema import retry
from migrate_assets.schema.retry import backoff_delay


@given(st.integers(1, 40), st.floats(0.01, 5), st.floats(0.01, 60))
def test_delay_is_capped_and_jittered(attempt: int, base: float, cap: float) -> None:
    step = min(cap, base * 2 ** (attempt - 1))
    d = backoff_delay(attempt, base, cap)
    assert step * 0.5 <= d <= step <= cap


def test_delay_grows_until_the_cap() -> None:
    lows = [min(2.0, 0.1 * 2 ** (a - 1)) * 0.5 for a in range(1, 8)]
    delays = [backoff_delay(a, 0.1, 2.0) for a in range(1, 8)]
    assert all(d >= low for d, low in zip(delays, lows, strict=True))
    assert max(delays) <= 2.0


class _Gaveup(Exception):
    pass


def _no_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    slept: list[float] = []
    monkeypatch.setattr(retry.time, "sleep", slept.append)
    return slept


def _give_up(exc: psycopg.Error, attempts: int) -> NoReturn:
    raise _Gaveup(type(exc).__name__, attempts)


def test_retries_a_lock_timeout_until_it_succeeds(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = _no_sleep(monkeypatch)
    seen: list[int] = []

    def run(attempt: int) -> str:
        seen.append(attempt)
        if attempt < 3:
            raise pgerrors.LockNotAvailable("lock timeout")
        return "done"

    assert retry.retry_postgres(run, what="t", attempts=5, backoff=0.1, max_backoff=1, give_up=_give_up) == "done"
    assert seen == [1, 2, 3] and len(slept) == 2


def test_gives_up_after_the_last_attempt_without_sleeping_again(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = _no_sleep(monkeypatch)

    def run(attempt: int) -> None:
        raise pgerrors.DeadlockDetected("deadlock")

    with pytest.raises(_Gaveup) as err:
        retry.retry_postgres(
            run, what="t", attempts=3, backoff=0.1, max_backoff=1, give_up=_give_up,
            retry_on=(pgerrors.LockNotAvailable, pgerrors.DeadlockDetected),
        )
    assert err.value.args == ("DeadlockDetected", 3) and len(slept) == 2


def test_other_errors_end_the_run_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    slept = _no_sleep(monkeypatch)
    calls: list[int] = []

    def run(attempt: int) -> None:
        calls.append(attempt)
        raise pgerrors.DeadlockDetected("not retried by default")

    def fail(exc: psycopg.Error) -> NoReturn:
        raise ValueError("typed") from None

    with pytest.raises(ValueError, match="typed"):
        retry.retry_postgres(run, what="t", attempts=3, backoff=0.1, max_backoff=1, give_up=_give_up, fail=fail)
    with pytest.raises(pgerrors.DeadlockDetected):
        retry.retry_postgres(run, what="t", attempts=3, backoff=0.1, max_backoff=1, give_up=_give_up)
    assert calls == [1, 1] and slept == []
