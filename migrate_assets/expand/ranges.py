"""Key ranges handed out to the backfill's workers, and the resumable cursor they add up to.

Workers claim consecutive ranges `(lo, hi]` of a single integer primary key, each as large as that worker's own
batch size, and finish them in any order. The cursor that may be persisted is the *watermark*: the end of the
longest run of finished ranges from the start, with the rows visited up to it. A range finished beyond an
unfinished one only moves the watermark once the gap below it is finished too, so after a crash a re-run
starts at the watermark and visits again at most the ranges that were in flight (idempotent writes).

Pure bookkeeping, safe to share between threads; the SQL lives in `backfill`.
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass


@dataclass(frozen=True)
class Claim:
    """One range to backfill, and the watermark to persist with it (None: it has not moved since last time)."""

    lo: int
    hi: int
    save_cursor: int | None
    save_rows: int


class KeyRanges:
    def __init__(self, start: int, top: int, rows_done: int) -> None:
        self._lock = threading.Lock()
        self._next = start  # the next claim starts above this key
        self._top = self.top = top
        self._open: deque[list[int | None]] = deque()  # [lo, hi, rows seen or None while in flight], by lo
        self.watermark = start
        self.rows_at_watermark = rows_done
        self._saved = start

    def claim(self, size: int) -> Claim | None:
        """The next `size` keys above the last claim (None: all claimed)."""
        with self._lock:
            if self._next >= self._top:
                return None
            lo, hi = self._next, min(self._next + max(1, size), self._top)
            self._next = hi
            self._open.append([lo, hi, None])
            save = self.watermark if self.watermark > self._saved else None
            if save is not None:
                self._saved = save
            return Claim(lo, hi, save, self.rows_at_watermark)

    def skip_to(self, key: int) -> None:
        """No key exists in (next claim start, key]: jump over the gap (a finished, empty range)."""
        with self._lock:
            key = min(key, self._top)
            if key > self._next:
                self._open.append([self._next, key, 0])
                self._next = key
                self._advance()

    def finish(self, claim: Claim, rows_seen: int) -> None:
        with self._lock:
            for entry in self._open:
                if entry[0] == claim.lo:
                    entry[2] = rows_seen
                    break
            else:  # pragma: no cover - a claim is finished once, by the worker that holds it
                raise ValueError(f"range ({claim.lo}, {claim.hi}] was not claimed")
            self._advance()

    def _advance(self) -> None:
        while self._open and self._open[0][2] is not None:
            _, hi, seen = self._open.popleft()
            assert hi is not None and seen is not None
            self.watermark, self.rows_at_watermark = hi, self.rows_at_watermark + seen

    @property
    def finished(self) -> bool:
        with self._lock:
            return self.watermark >= self._top


def next_batch_size(size: int, took: float, target: float, lowest: int = 100, highest: int = 200_000) -> int:
    """The size that would have taken `target` seconds at the rate just measured, moving at most 2× per batch
    (one slow batch behind a lock or a busy CPU must not collapse the size, nor one fast batch blow it up)."""
    rate_size = size * target / max(took, 1e-4)
    return int(max(lowest, min(highest, size * 2, max(size / 2, rate_size))))
