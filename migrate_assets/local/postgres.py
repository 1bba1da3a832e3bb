"""A private PostgreSQL cluster with `wal_level=logical`, on its own port and data directory.

It never touches a system cluster: it runs its own `postgres` process from the system binaries (or installs
Debian's `postgresql-15` when missing and running as root). As root, the cluster runs as the `postgres` OS user,
because initdb refuses to run as root.
"""

from __future__ import annotations

import glob
import os
import pwd
import shutil
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg

from migrate_assets.errors import StackError
from migrate_assets.local import procs

PART = "postgres"
SETTINGS = {
    "listen_addresses": "127.0.0.1",
    "wal_level": "logical",
    "max_wal_senders": "20",
    "max_replication_slots": "20",
    "max_connections": "200",
    "fsync": "off",
    "synchronous_commit": "off",
    "full_page_writes": "off",
    "shared_buffers": "128MB",
    "wal_sender_timeout": "30s",
}


def find_bindir() -> Path | None:
    """Directory holding initdb and postgres: Debian's versioned dirs first (newest), then PATH."""
    candidates = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]), reverse=True)
    for c in candidates:
        if Path(c, "initdb").exists() and Path(c, "postgres").exists():
            return Path(c)
    initdb = shutil.which("initdb")
    if initdb and shutil.which("postgres"):
        return Path(os.path.realpath(initdb)).parent
    return None


def ensure_binaries() -> Path:
    found = find_bindir()
    if found:
        return found
    from migrate_assets.local.artifacts import may_install

    if may_install():
        env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
        subprocess.run(["apt-get", "update", "-q"], check=False, env=env, capture_output=True)
        r = subprocess.run(
            ["apt-get", "install", "-y", "-q", "postgresql-15"], env=env, capture_output=True, text=True
        )
        # the package's own cluster is not ours to run: stop it if the install started it
        subprocess.run(["pg_ctlcluster", "15", "main", "stop"], capture_output=True, check=False)
        found = find_bindir()
        if found:
            return found
        raise StackError(PART, "apt-get install postgresql-15 failed", r.stdout[-2000:] + r.stderr[-2000:])
    raise StackError(
        PART,
        "PostgreSQL server binaries not found; install them with `apt-get install postgresql-15` "
        "(or put a directory with initdb and postgres on PATH)",
    )


def _run_as() -> str | None:
    """The OS user to run the cluster as: `postgres` when we are root, else ourselves."""
    if os.geteuid() != 0:
        return None
    try:
        pwd.getpwnam("postgres")
    except KeyError as exc:
        raise StackError(PART, "running as root but there is no `postgres` OS user to run the cluster") from exc
    return "postgres"


@dataclass(frozen=True)
class PostgresInfo:
    port: int
    pid: int
    datadir: str

    @property
    def dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/postgres"


def _as_user(user: str | None) -> dict[str, Any]:
    """Popen arguments that drop to `user` with its own group (not root's, which would block o+x paths)."""
    return {"user": user, "group": user, "extra_groups": []} if user else {}


def _chown_tree(path: Path, user: str) -> None:
    pw = pwd.getpwnam(user)
    for p in [path, *path.rglob("*")]:
        os.chown(p, pw.pw_uid, pw.pw_gid)


def _make_traversable(path: Path) -> None:
    """Let the `postgres` user reach a data directory under root-owned folders (o+x on each parent)."""
    for parent in [path, *path.parents]:
        try:
            mode = parent.stat().st_mode
            if not mode & 0o001:
                os.chmod(parent, mode | 0o001)
        except OSError:
            pass


def init_cluster(root: Path) -> Path:
    bindir = ensure_binaries()
    datadir = root / "data"
    if (datadir / "PG_VERSION").exists():
        return datadir
    user = _run_as()
    root.mkdir(parents=True, exist_ok=True)
    if user:
        _make_traversable(root)
        _chown_tree(root, user)
    r = subprocess.run(
        [str(bindir / "initdb"), "-D", str(datadir), "-U", "postgres", "--auth=trust", "-E", "UTF8", "--no-sync"],
        **_as_user(user),
        capture_output=True,
        text=True,
        cwd="/",
    )
    if r.returncode != 0:
        raise StackError(PART, "initdb failed", (r.stdout + r.stderr)[-3000:])
    return datadir


def start(root: Path, port: int, timeout: float = 30.0) -> PostgresInfo:
    datadir = init_cluster(root)
    bindir = ensure_binaries()
    user = _run_as()
    sockdir = root / "sock"
    sockdir.mkdir(exist_ok=True)
    log = root / "postgres.log"
    log.touch()
    if user:
        _chown_tree(sockdir, user)
        pw = pwd.getpwnam(user)
        os.chown(log, pw.pw_uid, pw.pw_gid)
    argv = [str(bindir / "postgres"), "-D", str(datadir), "-p", str(port), "-k", str(sockdir)]
    for k, v in SETTINGS.items():
        argv += ["-c", f"{k}={v}"]
    pid = _spawn_as(argv, log, user)
    dsn = f"postgresql://postgres@127.0.0.1:{port}/postgres"
    procs.wait_until(lambda: _select1(dsn), timeout, PART, "accepting connections (SELECT 1)", log, pid)
    return PostgresInfo(port=port, pid=pid, datadir=str(datadir))


def _spawn_as(argv: list[str], log: Path, user: str | None) -> int:
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            argv, stdout=fh, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, **_as_user(user),
            start_new_session=True, cwd="/",
        )
    return proc.pid


def _select1(dsn: str) -> bool:
    with psycopg.connect(dsn, connect_timeout=2) as conn:
        return conn.execute("SELECT 1").fetchone() == (1,)


def healthy(port: int) -> bool:
    try:
        return _select1(f"postgresql://postgres@127.0.0.1:{port}/postgres")
    except psycopg.Error:
        return False


def drop_debezium_slots(dsn: str) -> list[str]:
    """Debezium never drops its replication slots; stopping the stack does, so WAL cannot pile up."""
    dropped: list[str] = []
    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=3) as conn:
            rows = conn.execute(
                "SELECT slot_name, active_pid FROM pg_replication_slots WHERE plugin IN ('pgoutput','decoderbufs')"
            ).fetchall()
            for name, active_pid in rows:
                if active_pid:
                    conn.execute("SELECT pg_terminate_backend(%s)", (active_pid,))
                conn.execute("SELECT pg_drop_replication_slot(%s)", (name,))
                dropped.append(name)
    except psycopg.Error:
        pass
    return dropped


def stop(pid: int | None) -> bool:
    # SIGINT is PostgreSQL's "fast" shutdown: it does not wait for clients to disconnect
    return procs.kill(pid, grace=15.0, first=signal.SIGINT)
