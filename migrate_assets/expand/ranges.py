"""How the backfill's workers share a single integer key, and the resumable cursor their progress adds up to.

The key space above the start is cut into chunks of equal width, dealt out in stripes: worker w of W takes chunks
w, w+W, w+2W… and walks each in batches. Every batch a worker commits covers `(lo, hi]` next to the one before
it, so the batches of all workers tile the key space. The cursor that may be persisted is the *watermark*: the end
of the longest run of committed batches from the start, with the rows visited up to it. A batch committed beyond
an unfinished one moves it only once the gap below is filled, so a re-run that starts at the watermark visits
again at most the chunks that were in progress (idempotent writes).

Pure bookkeeping, safe to share between threads; the SQL lives in `backfill`.
"""

from __future__ import annotations

import threading


class Watermark:
    def __init__(self, start: int, rows_done: int) -> None:
        self._lock = threading.Lock()
        self._ahead: dict[int, tuple[int, int]] = {}  # lo -> (hi, rows) of batches committed past a gap
        self.key, self.rows = start, rows_done

    def committed(self, lo: int, hi: int, rows: int) -> None:
        with self._lock:
            self._ahead[lo] = (hi, rows)
            while self.key in self._ahead:
                hi, rows = self._ahead.pop(self.key)
                self.key, self.rows = hi, self.rows + rows

    def snapshot(self) -> tuple[int, int]:
        with self._lock:
            return self.key, self.rows


def chunk_width(start: int, top: int, workers: int) -> int:
    """Keys per chunk: about 8 chunks per worker, between 1,000 and 50,000 keys (what a crash may revisit)."""
    return max(1_000, min(50_000, (top - start) // (8 * max(1, workers)) + 1))


def first_key_of(worker: int, start: int, chunk: int) -> int:
    """Where worker `worker` starts: the low end (exclusive) of its first chunk."""
    return start + worker * chunk


def next_batch_size(size: int, took: float, target: float, lowest: int = 100, highest: int = 200_000) -> int:
    """The size that would have taken `target` seconds at the rate just measured, moving at most 2× per batch
    (one slow batch behind a lock or a busy CPU must not collapse the size, nor one fast batch blow it up).
    The range workers apply the same rule in SQL (`backfill.range_block`)."""
    rate_size = size * target / max(took, 1e-4)
    return int(max(lowest, min(highest, size * 2, max(size / 2, rate_size))))
