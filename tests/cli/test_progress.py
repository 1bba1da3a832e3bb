"""The backfill progress line (issue 18, item 4): rate and ETA from an injected clock, nothing off a terminal,
one line rewritten in place, cleared before a log record and ended with a newline."""

from __future__ import annotations

import io
import logging
import os
import pty
import select
import time
from pathlib import Path
from typing import TextIO

import psycopg

from migrate_assets.cli.progress import CLEAR, ProgressLine
from migrate_assets.expand.backfill import Progress
from tests.support import cli_argv, run_on_terminal


class FakeTerminal(io.StringIO):
    def isatty(self) -> bool:
        return True


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def screen(written: str) -> list[str]:
    """What a terminal shows: `\\r` + clear-to-end-of-line empties the current line, `\\n` starts a new one."""
    lines = [""]
    for i, part in enumerate(written.split(CLEAR)):
        if i:
            lines[-1] = ""
        *done, last = part.split("\n")
        lines[-1] += done[0] if done else last
        if done:
            lines += done[1:] + [last]
    assert "\r" not in "".join(lines), written  # every carriage return came with a clear
    return lines


def read_until(fd: int, end: str, timeout: float = 10.0) -> str:
    """What the terminal shows, read until it ends with `end` (the pty hands it over in chunks)."""
    shown, deadline = "", time.monotonic() + timeout
    while not shown.endswith(end) and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.2)[0]:
            shown += os.read(fd, 4096).decode()
    return shown


def isolated_logger(stream: TextIO) -> logging.Logger:
    logger = logging.getLogger("tests.progress")
    logger.handlers.clear()
    logger.propagate = False
    logger.setLevel(logging.INFO)
    logger.addHandler(logging.StreamHandler(stream))
    return logger


def test_rate_and_eta_from_the_clock() -> None:
    clock = Clock()
    line = ProgressLine("backfill", FakeTerminal(), clock=clock)
    assert line.format(2_000, 10_000) == "backfill: 2000/10000 rows (20.0%), 0 rows/s, ETA ?"
    clock.now += 4.0  # 2,000 more rows in 4 s: 500 rows/s, 6,000 left -> 12 s
    assert line.format(4_000, 10_000) == "backfill: 4000/10000 rows (40.0%), 500 rows/s, ETA 12s"
    clock.now += 4.0
    assert line.format(4_100, 10_000).endswith("(41.0%), 262 rows/s, ETA 22s")
    clock.now += 3600.0
    assert line.format(4_200, 10_000).endswith("1 rows/s, ETA 2h38m32s")  # 5,800 left at 2,200/3,608 s
    clock.now += 1.0
    assert line.format(10_000, 10_000).endswith("(100.0%), 2 rows/s, ETA 0s")
    assert ProgressLine(stream=FakeTerminal(), clock=clock).format(0, 0) == "backfill: 0/0 rows, 0 rows/s, ETA 0s"


def test_off_a_terminal_only_one_summary_line() -> None:
    pipe = io.StringIO()
    logger = isolated_logger(pipe)
    clock = Clock()
    with ProgressLine("backfill", pipe, clock=clock, logger=logger) as line:
        line(Progress(10, 100, 10, 1.0, 1))
        logger.info("a log line")
        clock.now += 2.0
        line(Progress(100, 100, 90, 2.0, 2))
        assert pipe.getvalue() == "a log line\n"  # nothing while it runs
    assert pipe.getvalue() == "a log line\nbackfill: 100/100 rows (100.0%), 45 rows/s in 2s\n"
    with ProgressLine("backfill", pipe, clock=clock, logger=logger):
        pass  # no backfill (a dry run, nothing to do): no summary either
    assert pipe.getvalue().count("backfill") == 1
    assert not logger.handlers[0].filters  # nothing attached off a terminal


def test_log_record_mid_progress_starts_on_a_clean_line() -> None:
    term, clock = FakeTerminal(), Clock()
    logger = isolated_logger(term)
    with ProgressLine("backfill", term, clock=clock, logger=logger) as line:
        line(Progress(0, 300, 0, 0.0, 0))
        clock.now += 1.0
        line(Progress(100, 300, 100, 1.0, 1))
        logger.info("batch retried")
        clock.now += 1.0
        line(Progress(200, 300, 200, 2.0, 2))
        clock.now += 1.0
        line(Progress(300, 300, 300, 3.0, 3))
    written = term.getvalue()
    assert "\rbatch" not in written and "rows/s, ETA 1sbatch" not in written
    assert written.count("\n") == 2  # the log line and the finished progress line
    assert screen(written) == ["batch retried", "backfill: 300/300 rows (100.0%), 100 rows/s, ETA 0s", ""]
    assert not logger.handlers[0].filters  # detached on exit
    logger.info("after")
    assert term.getvalue().endswith("ETA 0s\nafter\n")


def test_on_a_pseudo_terminal() -> None:
    master, slave = pty.openpty()
    with open(slave, "w") as tty:
        logger = isolated_logger(tty)
        with ProgressLine("backfill", tty, clock=Clock(), logger=logger) as line:
            assert line.tty
            line.update(1, 2)
            logger.warning("careful")
            line.update(2, 2)
        shown = read_until(master, "ETA 0s\r\n")
    os.close(master)
    assert f"{CLEAR}careful" in shown.replace("\r\n", "\n"), repr(shown)
    assert shown.endswith("ETA 0s\r\n"), repr(shown)  # the terminal turns \n into \r\n


def test_expand_on_a_terminal_keeps_logs_and_progress_apart(tmp_path: Path, fresh_dsn: str) -> None:
    """The real command with stderr on a pseudo-terminal: log lines and the progress line never share a line."""
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database:\n  dsn: {fresh_dsn}\nlock_timeout: 1s\n")
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, amount integer NOT NULL)")
        conn.execute("INSERT INTO items SELECT g, g FROM generate_series(1, 3000) g")
    change = tmp_path / "change.yaml"
    change.write_text("table: items\noperations:\n  - change_type: {column: amount, to_type: bigint}\n")
    code, shown = run_on_terminal(cli_argv("expand", str(change), "--batch-size", "500", config=cfg),
                                  terminal=("stderr",))
    lines = screen(shown.replace("\r\n", "\n"))
    assert code == 0, shown
    progress = [line for line in lines if line.startswith("backfill:")]
    assert len(progress) == 1 and progress[0].startswith("backfill: 3000/3000 rows (100.0%)"), lines
    logs = [line for line in lines if line and line not in progress]
    assert logs and all(" INFO " in line or " WARNING " in line for line in logs), lines
    assert lines[-1] == "" and lines.index(progress[0]) == len(lines) - 2  # finished with a newline, logs above
