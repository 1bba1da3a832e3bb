"""Shared benchmark plumbing: a private PostgreSQL cluster and result files.

Each `benchmarks/bench_*.py` exposes `main() -> dict` and writes `benchmarks/results/<name>.json` and
`<name>.md` through `write_results`; `make bench` runs them all and `benchmarks/summarize.py` joins the Markdown.
Peers and floors are always measured in the same run, on the same cluster, as our own figures.
"""

from __future__ import annotations

import contextlib
import json
import platform
import tempfile
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
from psycopg import sql

from migrate_assets.local import postgres, procs

RESULTS = Path(__file__).parent / "results"


@contextlib.contextmanager
def bench_cluster() -> Iterator[postgres.PostgresInfo]:
    """A throwaway private cluster (fsync off), stopped afterwards."""
    root = Path(tempfile.mkdtemp(prefix="migrate-assets-bench-"))
    info = postgres.start(root / "pg", procs.free_port())
    try:
        yield info
    finally:
        postgres.stop(info.pid)


@contextlib.contextmanager
def bench_database(admin_dsn: str) -> Iterator[str]:
    name = "b_" + uuid.uuid4().hex[:10]
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


class Timer:
    def __enter__(self) -> Timer:
        self.start = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.seconds = time.perf_counter() - self.start


def machine() -> dict[str, Any]:
    import os

    return {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform()}


def write_results(name: str, data: dict[str, Any], markdown: str) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    data = {"benchmark": name, "machine": machine(), **data}
    (RESULTS / f"{name}.json").write_text(json.dumps(data, indent=2, default=str) + "\n")
    (RESULTS / f"{name}.md").write_text(markdown.rstrip() + "\n")
