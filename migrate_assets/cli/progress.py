"""One progress line on stderr: rows done / total, rate and ETA, rewritten in place on a terminal only.

The line is redrawn with `\\r` + clear-to-end-of-line; a log record written while it shows first clears it (a
filter on the logger's handlers), so a log line never starts in the middle of the progress text, and the next
update draws it again below. `finish()` ends the line with a newline. When the stream is not a terminal nothing
is written while it runs, and `finish()` writes one summary line (rows, rate, seconds) for CI logs.
"""

from __future__ import annotations

import logging
import sys
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from types import TracebackType

    from migrate_assets.expand.backfill import Progress

CLEAR = "\r\x1b[K"


def _duration(seconds: float) -> str:
    s = int(round(seconds))
    h, rest = divmod(s, 3600)
    m, s = divmod(rest, 60)
    return f"{h}h{m:02d}m{s:02d}s" if h else f"{m}m{s:02d}s" if m else f"{s}s"


class _ClearFirst(logging.Filter):
    def __init__(self, line: ProgressLine) -> None:
        super().__init__()
        self.line = line

    def filter(self, record: logging.LogRecord) -> bool:
        self.line.clear()
        return True


class ProgressLine:
    """Call with a backfill `Progress` (or use `update(done, total)`); use as a context manager to clear the line
    before every record of `logger`'s handlers (default: the root logger) and finish it on exit.

    The rate counts the rows of this run only (a resumed backfill starts with rows already done), measured by
    `clock` from the first update; the ETA is the rows left at that rate.
    """

    def __init__(self, label: str = "backfill", stream: TextIO | None = None, *,
                 clock: Callable[[], float] = time.monotonic, logger: logging.Logger | None = None) -> None:
        self.label = label
        self.stream = stream if stream is not None else sys.stderr
        self.clock = clock
        self.logger = logger if logger is not None else logging.getLogger()
        self.tty = bool(getattr(self.stream, "isatty", lambda: False)())
        self.shown = False  # the line is on screen now
        self.drawn = False  # it was drawn at least once (finish() then ends it with a newline)
        self.text = ""
        self.summary = ""
        self._start: tuple[float, int] | None = None
        self._filter = _ClearFirst(self)
        self._handlers: list[logging.Handler] = []

    def format(self, done: int, total: int) -> str:
        now = self.clock()
        if self._start is None:
            self._start = (now, done)
        t0, done0 = self._start
        elapsed = now - t0
        rate = (done - done0) / elapsed if elapsed > 0 else 0.0
        pct = f" ({100 * min(1.0, done / total):.1f}%)" if total else ""
        left = max(0, total - done)
        eta = _duration(left / rate) if rate > 0 else ("0s" if not left else "?")
        head = f"{self.label}: {done}/{total} rows{pct}, {rate:,.0f} rows/s"
        self.summary = f"{head} in {_duration(elapsed)}"
        return f"{head}, ETA {eta}"

    def update(self, done: int, total: int) -> None:
        self.text = self.format(done, total)
        if not self.tty:
            return
        text = self.text
        self.stream.write(CLEAR + text)
        self.stream.flush()
        self.shown = self.drawn = True

    def __call__(self, p: Progress) -> None:
        self.update(p.rows_done, p.rows_total)

    def clear(self) -> None:
        if self.shown:
            self.stream.write(CLEAR)
            self.stream.flush()
            self.shown = False

    def finish(self) -> None:
        """Leave the last state on screen and end the line; off a terminal, one summary line (nothing if there
        was no update)."""
        if not self.tty and self.summary:
            self.stream.write(self.summary + "\n")
            self.stream.flush()
            self.summary = ""
        if self.drawn:
            self.stream.write(CLEAR + self.text + "\n")
            self.stream.flush()
            self.shown = self.drawn = False

    def __enter__(self) -> ProgressLine:
        if self.tty:
            self._handlers = list(self.logger.handlers)
            for h in self._handlers:
                h.addFilter(self._filter)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        for h in self._handlers:
            h.removeFilter(self._filter)
        self._handlers = []
        self.finish()
