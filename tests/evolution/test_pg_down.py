"""PostgreSQL shut down mid-evolve (issue 12 item 5), for real: a private cluster is stopped while a real
`migrate-assets evolve` process is inside its DDL step. The command still prints one JSON document with the run
id and every layer's state and exits 1; the run record, which could not reach the database, is in a spill file
the document names; once PostgreSQL is back, `--rollback RUN` stores the record and finishes the run."""

from __future__ import annotations

import json
import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from migrate_assets.local import postgres, procs
from tests.cdc import poll_until
from tests.evolution.faults import run_steps
from tests.pipeline import ADD_NOTE, change_file
from tests.support import cli_argv, run_cli_process, table_columns


class Cluster:
    """A PostgreSQL cluster of this test's own, which it may stop and start again (same port, same data)."""

    def __init__(self, root: Path) -> None:
        self.root, self.port = root, procs.free_port()
        self.info = postgres.start(root, self.port)

    @property
    def dsn(self) -> str:
        return self.info.dsn

    def stop(self) -> None:
        postgres.stop(self.info)

    def start(self) -> None:
        self.info = postgres.start(self.root, self.port)


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    c = Cluster(tmp_path / "pg")
    try:
        yield c
    finally:
        c.stop()


def test_postgres_shut_down_mid_evolve(cluster: Cluster, tmp_path: Path) -> None:
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.customers (id integer PRIMARY KEY, name text)")
    before = table_columns(cluster.dsn, "public.customers")
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(json.dumps({"database": {"dsn": cluster.dsn}, "lock_timeout": "200ms",
                               "retries": {"attempts": 40, "backoff": "0.1s", "max_backoff": "0.2s"}}))
    spill = tmp_path / "spill"
    env = {**os.environ, "MIGRATE_ASSETS_RUN_SPILL_DIR": str(spill)}
    holder = psycopg.connect(cluster.dsn)
    holder.execute("SELECT count(*) FROM public.customers")  # the DDL waits (and retries) until we are ready
    proc = subprocess.Popen(cli_argv("evolve", str(change_file(tmp_path, ADD_NOTE)), config=cfg, fmt="json"),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    run_id = poll_until(lambda: next((r for r, st in run_steps(cluster.dsn).items() if st.get("ddl") == "running"),
                                     None), 60, "the DDL step running", 0.05)
    cluster.stop()
    holder.close()
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 1, err
    doc = json.loads(out)  # one document, no traceback
    assert "Traceback" not in err
    assert doc["run_id"] == run_id and doc["layers"]["source_db"] == "failed"
    assert "unreachable" in doc["error"]
    assert doc["record"]["saved"] is False
    spilled = Path(doc["record"]["spill_file"])
    assert spilled.is_relative_to(spill) and spilled.stat().st_mode & 0o077 == 0
    assert json.loads(spilled.read_text())["status"] == doc["run_status"]
    assert f"--rollback {run_id}" in doc["next"]

    cluster.start()
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:  # the database still says `running`
        stale = conn.execute("SELECT status FROM migrate_assets_evolutions WHERE run_id = %s", (run_id,)).fetchone()
    assert stale == ("running",)
    r = run_cli_process("evolve", "--rollback", run_id, config=cfg, fmt="json", env=env)
    assert r.code == 0, r.err + r.out
    assert r.doc["status"] == "rolled_back" and r.doc["record"]["saved"] is True
    assert not spilled.exists()
    with psycopg.connect(cluster.dsn, autocommit=True) as conn:
        stored = conn.execute("SELECT status FROM migrate_assets_evolutions WHERE run_id = %s", (run_id,)).fetchone()
    assert stored == ("rolled_back",)
    assert table_columns(cluster.dsn, "public.customers") == before
