"""The one backoff rule of the package: every retry loop (DDL lock timeouts, backfill batches, the saga,
the layer clients) waits the same way, so competing retriers spread out and no wait exceeds its cap."""

from __future__ import annotations

import random


def backoff_delay(attempt: int, base: float, cap: float) -> float:
    """Seconds to wait before retry `attempt` (1 = the first retry): base·2^(attempt-1), at most `cap`,
    with jitter between half and all of it."""
    return min(cap, base * 2 ** (attempt - 1)) * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
