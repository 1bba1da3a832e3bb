"""Run an evolution through the engine's API with a fault injected for real when a given step starts."""

from __future__ import annotations

import subprocess
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from typing import Any

import psycopg

from migrate_assets.config import load_config
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.actions import Bounds
from migrate_assets.evolution.store import StepState
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.resources import project
from tests.cdc import poll_until
from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import cli_argv


def run_evolve(p: Pipeline, change: str, at: str | None = None, fault: Callable[[], None] | None = None,
               bounds: Bounds | None = None, allow_irreversible: bool = False) -> dict[str, Any]:
    cfg = load_config(str(p.config_path))
    ctx = project.build_context(cfg, bounds=bounds or Bounds(slot_catch_up=30, running=30, progress=20))
    fired: list[str] = []

    def hook(st: StepState) -> None:
        if at and st.id == at and st.status == "running" and not fired:
            fired.append(at)
            assert fault is not None
            fault()

    store = project.store(cfg)
    try:
        cs = parse_change_text(change, "change.yaml")
        target = next(t for t in project.targets(cfg) if t.table == cs.qualified)
        _, rec = evo.evolve(cs, target, ctx, project.policy(cfg, allow_irreversible), store,
                            project.retry_policy(cfg), on_step=hook)
    finally:
        store.close()
    if at:
        assert fired == [at], f"the fault at {at} never fired"
    return evo.result_dict(rec)


def ddl_seen_mid_run(dsn: str, table: str, column: str, run: Future[Any], timeout: float = 120) -> None:
    """Wait until the evolve in `run` (another process) has added `column` to `table`, and assert it is still
    running: the caller's fault must land between its DDL and its end. The steps after the DDL (connector,
    verify) are short, so one connection is asked every 20 ms rather than a new one opened every 0.2 s."""
    query = "SELECT 1 FROM information_schema.columns WHERE table_name = %s AND column_name = %s"
    with psycopg.connect(dsn, autocommit=True) as conn:
        poll_until(lambda: conn.execute(query, [table, column]).fetchone() is not None or run.done(), timeout,
                   "the evolve's DDL", interval=0.02)
        assert not run.done(), run.result()  # the fault must land mid-run


def run_steps(dsn: str) -> dict[str, dict[str, str]]:
    """Every stored run's step states (run id → step id → status), {} before the first run."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        exists = conn.execute("SELECT to_regclass('public.migrate_assets_evolutions')").fetchone()
        if not exists or exists[0] is None:
            return {}
        rows = conn.execute("SELECT run_id, steps FROM migrate_assets_evolutions").fetchall()
    return {str(r): {s["id"]: s["status"] for s in steps} for r, steps in rows}


@contextmanager
def evolve_held_in_ddl(p: Pipeline, *args: str, fmt: str | None = "json") -> Iterator[tuple[subprocess.Popen[str],
                                                                                          str]]:
    """A real `migrate-assets evolve` process held inside its DDL step (the table locked by another session, so
    the DDL retries its lock timeout) once the lakehouse step is saved as done: (process, run id). The lock is
    released when the block ends; the process is left to the caller (signal it, kill it, or wait for it)."""
    holder = psycopg.connect(p.dsn)
    holder.execute("SELECT count(*) FROM public.customers")  # ACCESS SHARE until the transaction ends
    proc = subprocess.Popen(cli_argv("evolve", str(change_file(p.tmp, ADD_NOTE)), *args, config=p.config_path,
                                     fmt=fmt), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

    def in_ddl() -> str | None:
        return next((r for r, st in run_steps(p.dsn).items()
                     if st.get("lakehouse") == "done" and st.get("ddl") == "running"), None)

    try:
        yield proc, poll_until(in_ddl, 60, "the lakehouse step done and the DDL step running", 0.05)
    finally:
        holder.rollback()
        holder.close()
