"""Helpers every test area shares: run the CLI (in this process or as a real one), make a throw-away database,
read a table's columns."""

from __future__ import annotations

import json
import os
import pty
import select
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any, NamedTuple

import psycopg
import pytest
from psycopg import sql

from migrate_assets.cli import main


class CliResult(NamedTuple):
    """Exit code, stdout and stderr of one CLI run; unpacks as `code, out, err`."""

    code: int
    out: str
    err: str

    @property
    def doc(self) -> Any:
        """stdout parsed as JSON (None when the command printed nothing)."""
        return json.loads(self.out) if self.out.strip() else None


def _global_options(config: str | Path | None, fmt: str | None) -> list[str]:
    return [*(["--format", fmt] if fmt else []), *(["--config", str(config)] if config is not None else [])]


def cli_argv(*args: str, config: str | Path | None = None, fmt: str | None = None,
             entry_point: bool = False) -> list[str]:
    """The command line of `migrate-assets ARGS`: `python -m migrate_assets.cli`, or the installed console script
    itself with `entry_point`."""
    exe = [str(Path(sys.executable).parent / "migrate-assets")] if entry_point else [
        sys.executable, "-m", "migrate_assets.cli"]
    return [*exe, *_global_options(config, fmt), *args]


def run_cli(capsys: pytest.CaptureFixture[str], *args: str, config: str | Path | None = None,
            fmt: str | None = None) -> CliResult:
    """`migrate-assets ARGS` in this process (the CLI's `main`), with what it printed."""
    code = main([*_global_options(config, fmt), *args])
    out, err = capsys.readouterr()
    return CliResult(code, out, err)


def run_cli_process(*args: str, config: str | Path | None = None, fmt: str | None = None,
                    env: Mapping[str, str] | None = None, timeout: float = 180,
                    entry_point: bool = False) -> CliResult:
    """`migrate-assets ARGS` as a separate process, waited for."""
    r = subprocess.run(cli_argv(*args, config=config, fmt=fmt, entry_point=entry_point), capture_output=True,
                       text=True, env=env, timeout=timeout)
    return CliResult(r.returncode, r.stdout, r.stderr)


def run_on_terminal(argv: list[str], *, terminal: tuple[str, ...], env: Mapping[str, str] | None = None,
                    answer: tuple[bytes, str] | None = None, timeout: float = 60) -> tuple[int, str]:
    """Run `argv` with the streams named in `terminal` ("stdin", "stdout", "stderr") on one pseudo-terminal and
    the others on /dev/null; type `answer[1]` once `answer[0]` shows. The exit code and what the terminal showed."""
    master, slave = pty.openpty()
    streams = {name: slave if name in terminal else subprocess.DEVNULL for name in ("stdin", "stdout", "stderr")}
    proc = subprocess.Popen(argv, env=env, **streams)  # type: ignore[call-overload]
    os.close(slave)
    shown, deadline = b"", time.monotonic() + timeout
    while time.monotonic() < deadline:
        ready, _, _ = select.select([master], [], [], 0.2)
        if ready:
            try:
                chunk = os.read(master, 4096)
            except OSError:  # the terminal closed: the process ended
                break
            if not chunk:
                break
            shown += chunk
        if answer is not None and answer[0] in shown:
            os.write(master, answer[1].encode() + b"\n")
            answer = None
        if proc.poll() is not None and not ready:
            break
    code = proc.wait(timeout=timeout)
    os.close(master)
    return code, shown.decode(errors="replace")


def _database_sql(admin_dsn: str, statement: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL(statement).format(sql.Identifier(name)))


@contextmanager
def new_database(admin_dsn: str, prefix: str = "t_") -> Iterator[str]:
    """DSN of a new, empty database in the cluster of `admin_dsn`, dropped (connections and all) on exit."""
    name = prefix + uuid.uuid4().hex[:12]
    _database_sql(admin_dsn, "CREATE DATABASE {}", name)
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        _database_sql(admin_dsn, "DROP DATABASE IF EXISTS {} WITH (FORCE)", name)


class Column(NamedTuple):
    name: str
    type: str
    not_null: bool


def table_columns(dsn: str, table: str) -> list[Column]:
    """The live columns of `table` in column order (none when the table does not exist)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
            "WHERE attrelid = to_regclass(%s) AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
            (table,),
        ).fetchall()
    return [Column(*r) for r in rows]


def column_names(dsn: str, table: str) -> list[str]:
    return [c.name for c in table_columns(dsn, table)]


__all__ = ["CliResult", "Column", "cli_argv", "column_names", "new_database", "run_cli", "run_cli_process",
           "table_columns"]
