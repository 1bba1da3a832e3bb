"""Start, inspect and stop the whole local stack under one state directory (default `.migrate/`).

`up` is idempotent: a part whose recorded process is alive and healthy is kept, anything else is (re)started on a
free loopback port. The state lives in `<state>/stack.json` (mode 0600: it holds the PostgreSQL DSN with its
password; the state directory itself is 0700). Each process is recorded with its identity (PID, start time,
command line); `down` signals only a process that still matches it, drops the Debezium replication slots first
(Debezium never does), and checks that no port of a stopped part is left listening. A recorded PID that now
belongs to another process is a stale record: that part is reported down and the process is never signalled.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from migrate_assets import __version__
from migrate_assets.config import redact_dsn
from migrate_assets.errors import InvalidInputError, Problem, StackError
from migrate_assets.local import artifacts, broker, connect, iceberg, postgres, procs

#: 2: Apache Kafka (KRaft storage under kafka/) replaced the memory-only Tansu broker; the Iceberg catalog moved
#: from a SQLite file into the stack's PostgreSQL
STATE_FORMAT = 2
ALL_PARTS = ("postgres", "broker", "registry", "kafka-connect", "iceberg")


class StackStateError(InvalidInputError):
    """The state directory belongs to something else (another version's stack, or not a stack at all)."""


@dataclass
class StackInfo:
    state_dir: Path
    parts: dict[str, dict[str, Any]] = field(default_factory=dict)

    @property
    def pg_dsn(self) -> str:
        """The superuser DSN, password included (stacks of older versions had none)."""
        part = self.parts["postgres"]
        return str(part.get("dsn") or postgres.dsn_for(int(part["port"]), ""))

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.parts['broker']['port']}"

    @property
    def registry_url(self) -> str:
        return f"http://127.0.0.1:{self.parts['registry']['port']}"

    @property
    def connect_url(self) -> str:
        return f"http://127.0.0.1:{self.parts['kafka-connect']['port']}"

    @property
    def iceberg_properties(self) -> dict[str, str]:
        return dict(self.parts["iceberg"]["properties"])

    def urls(self) -> dict[str, str]:
        out = {}
        if "postgres" in self.parts:
            out["postgres"] = redact_dsn(self.pg_dsn)  # the password stays in the 0600 files
        if "broker" in self.parts:
            out["broker"] = self.bootstrap
        if "registry" in self.parts:
            out["registry"] = self.registry_url
        if "kafka-connect" in self.parts:
            out["kafka-connect"] = self.connect_url
        if "iceberg" in self.parts:
            out["iceberg"] = redact_dsn(self.parts["iceberg"]["properties"]["uri"])  # the catalog DSN too
        return out


def _state_file(state_dir: Path) -> Path:
    return state_dir / "stack.json"


def load_state(state_dir: Path) -> StackInfo:
    path = _state_file(state_dir)
    if not path.exists():
        if state_dir.exists() and any(state_dir.iterdir()) and not (state_dir / "pg").exists():
            foreign = [p.name for p in state_dir.iterdir()][:5]
            if not all(n in {"migrate.yaml", "cache", "logs"} for n in foreign):
                raise StackStateError(
                    [Problem(file=str(state_dir), message=f"not a migrate-assets state directory (holds {foreign})")]
                )
        return StackInfo(state_dir=state_dir)
    try:
        raw = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise StackStateError([Problem(file=str(path), message=f"unreadable stack state: {exc}")]) from exc
    if raw.get("format") != STATE_FORMAT:
        raise StackStateError(
            [
                Problem(
                    file=str(path),
                    key="format",
                    message=(
                        f"state directory was made by another version (format {raw.get('format')!r}, "
                        f"migrate-assets {raw.get('version', '?')}); this is format {STATE_FORMAT}: "
                        "stop that stack with its own version, or use another --state-dir"
                    ),
                )
            ]
        )
    parts = raw.get("parts", {})
    for part in parts.values():
        _identify_legacy(part, state_dir)
    return StackInfo(state_dir=state_dir, parts=parts)


def _identify_legacy(part: dict[str, Any], state_dir: Path) -> None:
    """A record from before identities were kept has a PID only. Take the process now holding that PID for
    ours only if its command line names this state directory or the part's loopback port; else it stays
    unidentified, which makes it a stale record (never signalled)."""
    if "pid" not in part or "started" in part:
        return
    now = procs.identity(part["pid"])
    if now is None:
        return
    args = " ".join(now["cmdline"])
    if str(state_dir) in args or ("port" in part and f"127.0.0.1:{part['port']}" in args) or \
            (part.get("datadir") and str(part["datadir"]) in args):
        part.update(now)


def _private_state_dir(state_dir: Path) -> None:
    """Create the state directory (parents as the umask makes them; they are never changed) with mode 0700."""
    state_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    os.chmod(state_dir, 0o700)


def save_state(info: StackInfo) -> None:
    _private_state_dir(info.state_dir)
    data = {"format": STATE_FORMAT, "version": __version__, "parts": info.parts}
    postgres.write_private(_state_file(info.state_dir), json.dumps(data, indent=2))


def _registry_healthy(port: int) -> bool:
    return httpx.get(f"http://127.0.0.1:{port}/", timeout=2).status_code == 200


def part_healthy(name: str, part: dict[str, Any]) -> bool:
    try:
        if name == "iceberg":
            return iceberg.healthy(part["properties"])
        if not procs.is_ours(part):
            return False
        port = int(part["port"])
        if name == "postgres":
            return postgres.healthy(str(part.get("dsn") or postgres.dsn_for(port, "")))
        if name == "broker":
            return broker.healthy(port)
        if name == "registry":
            return _registry_healthy(port)
        if name == "kafka-connect":
            return connect.healthy(port)
    except Exception:  # noqa: BLE001 - unhealthy in any way
        return False
    return False


class _Ports:
    """Ports handed to the parts of one `up`: they start in parallel threads, and two free-port probes at the same
    moment could name the same port."""

    def __init__(self) -> None:
        self.taken: set[int] = set()
        self.lock = threading.Lock()

    def pick(self, part: dict[str, Any] | None) -> int:
        """The part's previous port when it is free again, else a free one."""
        old = (part or {}).get("port")
        with self.lock:
            if old and int(old) not in self.taken and not procs.port_open(int(old)):
                port = int(old)
            else:
                while (port := procs.free_port()) in self.taken:
                    pass
            self.taken.add(port)
            return port


def _start_registry(root: Path, port: int, timeout: float = 20.0) -> int:
    log = root / "registry.log"
    argv = [sys.executable, "-m", "migrate_assets.local.registry", "--host", "127.0.0.1", "--port", str(port),
            "--db", str(root / "registry.db")]
    pid = procs.spawn(argv, log)
    procs.wait_until(lambda: _registry_healthy(port), timeout, "registry", "answering GET /", log, pid)
    return pid


def _record(name: str, pid: int, **fields: Any) -> dict[str, Any]:
    """The state record of a part just started: its identity (read now, after readiness) plus `fields`."""
    ident = procs.identity(pid)
    if ident is None:
        raise StackError(name, "exited right after becoming ready")
    return {**ident, **fields}


#: parts started one after another within a chain; the chains run at the same time (the Iceberg catalog lives in
#: the PostgreSQL, Kafka Connect needs the broker, and only the last chain needs the jars)
CHAINS = (("postgres", "iceberg"), ("registry",), ("broker", "kafka-connect"))
NEEDS_JARS = ("broker", "kafka-connect")


def up(
    state_dir: Path, parts: tuple[str, ...] = ALL_PARTS, connect_mode: str = "distributed",
    progress: Any = None,
) -> tuple[StackInfo, dict[str, float]]:
    """Bring the requested parts up (keeping healthy ones); returns the state and seconds spent per part.

    The jars are fetched (on first use) while PostgreSQL, the registry and the Iceberg catalog start; the broker
    and Kafka Connect start once the jars are there. apt-get installs (Java, Maven, PostgreSQL) run first, one at
    a time."""
    state_dir = state_dir.resolve()
    info = load_state(state_dir)
    _private_state_dir(state_dir)
    timings: dict[str, float] = {}
    needs = {"broker": "kafka-connect", "postgres": "iceberg"}  # the Iceberg catalog lives in the PostgreSQL
    order = tuple(p for p in ALL_PARTS if p in parts or needs.get(p) in parts)
    artifacts.tools(order)
    lock, ports = threading.Lock(), _Ports()

    def bring_up(name: str) -> None:
        current = info.parts.get(name)
        if current and part_healthy(name, current):
            timings[name] = 0.0
            return
        if current and procs.is_ours(current):  # ours but not answering: replace it
            if name == "postgres":
                postgres.stop(current)
            else:
                procs.stop_ours(current, grace=5)
        t0 = time.monotonic()
        if progress:
            progress(f"starting {name} ...")
        record = _start_part(name, state_dir, info, current, connect_mode, ports)
        timings[name] = round(time.monotonic() - t0, 3)
        record["start_seconds"] = timings[name]  # `stack status` reports it beside the RSS
        with lock:
            info.parts[name] = record
            save_state(info)

    with ThreadPoolExecutor(len(CHAINS) + 1) as pool:
        def fetch() -> None:
            took = artifacts.preflight(order)
            if progress and took:
                progress("jars fetched: " + ", ".join(f"{what} {secs:.1f}s" for what, secs in took.items()))

        fetched = pool.submit(fetch)
        if "postgres" in order:
            postgres.ensure_binaries()  # apt-get, if at all, while the jars download

        def chain(names: tuple[str, ...]) -> None:
            for name in names:
                if name in order:
                    if name in NEEDS_JARS:
                        fetched.result()
                    bring_up(name)

        runs = [pool.submit(chain, c) for c in CHAINS]
        errors = [e for e in (r.exception() for r in [fetched, *runs]) if e is not None]
    if errors:
        raise errors[0]  # every chain has ended: what did start is recorded, so `down` stops it
    write_config(info)
    return info, {name: timings[name] for name in order}


def _start_part(name: str, state_dir: Path, info: StackInfo, current: dict[str, Any] | None,
                connect_mode: str, ports: _Ports) -> dict[str, Any]:
    """Start one part; its state record."""
    if name == "postgres":
        pg = postgres.start(state_dir / "pg", ports.pick(current))
        return _record(name, pg.pid, port=pg.port, datadir=pg.datadir, dsn=pg.dsn)
    if name == "broker":
        port = ports.pick(current)
        cport = ports.pick({"port": (current or {}).get("controller_port")})
        return _record(name, broker.start(state_dir / "kafka", port, cport), port=port, controller_port=cport)
    if name == "registry":
        port = ports.pick(current)
        return _record(name, _start_registry(state_dir, port), port=port)
    if name == "kafka-connect":
        port = ports.pick(current)
        pid = connect.start(state_dir / "connect", info.bootstrap, port, mode=connect_mode)
        return _record(name, pid, port=port, mode=connect_mode)
    if name == "iceberg":
        return {"properties": iceberg.ensure(state_dir / "iceberg", info.pg_dsn)}
    raise ValueError(f"unknown part {name}")


def status(state_dir: Path) -> dict[str, dict[str, Any]]:
    info = load_state(state_dir.resolve())
    out: dict[str, dict[str, Any]] = {}
    for name in ALL_PARTS:
        part = info.parts.get(name)
        if not part:
            out[name] = {"healthy": False, "state": "not started"}
            continue
        ok = part_healthy(name, part)
        entry: dict[str, Any] = {"healthy": ok, "state": "running" if ok else "down"}
        if "port" in part:
            entry["port"] = part["port"]
        if "start_seconds" in part:
            entry["start_seconds"] = part["start_seconds"]
        if "pid" in part:
            entry["pid"] = part["pid"]
            if procs.is_stale(part):
                entry["stale_record"] = True  # that PID is another process now: not ours, left alone
                entry["state"] = "down (stale record: PID now belongs to another process)"
            else:
                entry["rss_mib"] = rss_mib(part["pid"]) if procs.is_ours(part) else None
        out[name] = entry
    return out


def rss_mib(pid: int | None) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return round(int(line.split()[1]) / 1024, 1)
    except (OSError, ValueError):
        return None
    return None


def down(state_dir: Path, purge: bool = False) -> dict[str, Any]:
    """Stop everything recorded in the state (connect before the slots are dropped, postgres last)."""
    state_dir = state_dir.resolve()
    info = load_state(state_dir)
    stopped: list[str] = []
    stale = [name for name, part in info.parts.items() if procs.is_stale(part)]  # never signalled
    ports = [int(p[k]) for p in info.parts.values() if procs.is_ours(p) for k in ("port", "controller_port") if k in p]
    for name in ("kafka-connect", "registry", "broker"):
        part = info.parts.get(name)
        if part and procs.stop_ours(part, grace=15):
            stopped.append(name)
    dropped: list[str] = []
    pg = info.parts.get("postgres")
    if pg:
        if procs.is_ours(pg):
            dropped = postgres.drop_debezium_slots(info.pg_dsn)
        if postgres.stop(pg):
            stopped.append("postgres")
    listening = [p for p in ports if procs.port_open(p)]
    if listening:
        raise StackError("stack", f"ports still listening after stop: {listening}")
    info.parts = {k: v for k, v in info.parts.items() if k == "iceberg" and not purge}
    kept: list[str] = []
    if purge:
        if postgres.discard(state_dir / "pg"):
            shutil.rmtree(state_dir, ignore_errors=True)
        else:  # a postgres this stack did not start still serves the cluster: its files stay
            kept.append(str(state_dir / "pg"))
            for child in state_dir.iterdir():
                if child.name != "pg":
                    shutil.rmtree(child) if child.is_dir() and not child.is_symlink() else child.unlink()
    else:
        save_state(info)
    out: dict[str, Any] = {"stopped": stopped, "dropped_slots": dropped}
    if stale:
        out["stale_records"] = stale
    if kept:
        out["kept"] = kept  # a postgres not started by this stack still serves it
    return out


def write_config(info: StackInfo, path: Path | None = None) -> Path:
    """Refresh the connection settings of this stack in migrate.yaml: only its generated block is rewritten, so
    `pipelines:` and anything else the user wrote survive (migrate_assets/projectfile.py). A new file also gets
    `schemas:`/`migrations:` resolved against the cwd."""
    from migrate_assets.projectfile import refresh_generated

    path = path or info.state_dir / "migrate.yaml"
    cwd = Path(os.getcwd())
    cfg: dict[str, Any] = {"database": {"dsn": info.pg_dsn, "schema": "public"}}
    if "kafka-connect" in info.parts:
        cfg["kafka_connect"] = {"url": info.connect_url}
    if "broker" in info.parts:
        cfg["kafka"] = {"bootstrap_servers": info.bootstrap}
    if "registry" in info.parts:
        cfg["schema_registry"] = {"url": info.registry_url}
    if "iceberg" in info.parts:
        cfg["iceberg"] = {"name": "lake", "properties": info.iceberg_properties}
    # it holds the DSN with its password: 0600, like stack.json
    refresh_generated(path, cfg, {"schemas": str(cwd / "schemas"), "migrations": str(cwd / "migrations")})
    return path
