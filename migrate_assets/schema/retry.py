"""The one backoff rule of the package and the one loop that applies it to Postgres errors.

Every retry loop (DDL lock timeouts, backfill batches, the saga, the layer clients) waits the same way, so
competing retriers spread out and no wait exceeds its cap.
"""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable
from typing import NoReturn, TypeVar

import psycopg
from psycopg import errors as pgerrors

log = logging.getLogger(__name__)
T = TypeVar("T")

#: SQLSTATE 55P03: `lock_timeout` expired; the default reason to try a transaction again
LOCK_NOT_AVAILABLE: tuple[type[psycopg.Error], ...] = (pgerrors.LockNotAvailable,)


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry `attempt` (1 = the first retry): base·2^(attempt-1), at most `cap`,
    with jitter between half and all of it."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto


def retry_postgres(
    run: Callable[[int], T],
    *,
    what: str | Callable[[], str],
    attempts: int,
    backoff: float,
    max_backoff: float,
    give_up: Callable[[psycopg.Error, int], NoReturn],
    fail: Callable[[psycopg.Error], NoReturn] | None = None,
    retry_on: tuple[type[psycopg.Error], ...] = LOCK_NOT_AVAILABLE,
) -> T:
    """`run(attempt)` (1-based) until it returns, sleeping `backoff_delay` after each `retry_on` error.

    The caller keeps its own typed errors: `give_up(error, attempts)` raises when the last attempt failed
    with a retryable error, `fail(error)` (if given) when any other Postgres error ends the run at once;
    other exceptions pass through untouched. `what` (or what it returns, read when logging) names the work
    in the warning logged before each retry.
    """
    for attempt in range(1, attempts + 1):
        try:
            return run(attempt)
        except retry_on as exc:
            if attempt >= attempts:
                give_up(exc, attempt)
            delay = backoff_delay(attempt, backoff, max_backoff)
            log.warning(
                "%s: %s (attempt %d/%d); retrying in %.2fs",
                what() if callable(what) else what,
                exc.diag.message_primary or type(exc).__name__,
                attempt,
                attempts,
                delay,
            )
            time.sleep(delay)
        except psycopg.Error as exc:
            if fail is None:
                raise
            fail(exc)
    raise AssertionError("attempts must be at least 1")
