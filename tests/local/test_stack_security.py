"""The local stack only touches what it started, and its PostgreSQL is not open to other users (issue 12, item 6).

A small stack (PostgreSQL and the registry: no JVM) is started once for the module under parents with tight
modes, then probed: files and sockets, who can log in, stale records pointing at unrelated processes, and a
PostgreSQL killed with SIGKILL (which leaves its postmaster.pid behind).
"""

from __future__ import annotations

import json
import os
import pwd
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from migrate_assets.local import postgres, procs, stack
from tests.cdc import poll_until
from tests.support import run_cli_process as cli

PARTS = ("postgres", "registry")
AS_ROOT = os.geteuid() == 0


def _modes(path: Path) -> dict[str, int]:
    return {str(p): p.stat().st_mode for p in path.parents}


@pytest.fixture(scope="module")
def small_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Any]]:
    base = tmp_path_factory.mktemp("tight")
    (base / "a" / "b").mkdir(parents=True)
    os.chmod(base / "a", 0o700)  # the `postgres` OS user could not pass here: the stack must not open it
    os.chmod(base / "a" / "b", 0o750)
    state = base / "a" / "b" / "state"
    before = _modes(state)
    info, _ = stack.up(state, parts=PARTS)
    try:
        yield {"state": state, "info": info, "parents_before": before, "parents_after": _modes(state)}
    finally:
        stack.down(state, purge=True)


def _spawn_sleeper() -> subprocess.Popen[bytes]:
    return subprocess.Popen(["sleep", "300"], start_new_session=True)


def _set_record(state: Path, name: str, **fields: Any) -> dict[str, Any]:
    """Rewrite one part's record in stack.json; returns the record it had."""
    path = state / "stack.json"
    data = json.loads(path.read_text())
    old = dict(data["parts"][name])
    data["parts"][name].update(fields)
    path.write_text(json.dumps(data))
    return old


def _psql(dsn_or_host: list[str], user: str, password: str | None = None) -> subprocess.CompletedProcess[str]:
    bindir = postgres.find_bindir()
    assert bindir is not None
    env = {"PATH": "/usr/bin:/bin", "PGCONNECT_TIMEOUT": "3"}
    if password is not None:
        env["PGPASSWORD"] = password
    return subprocess.run([str(bindir / "psql"), *dsn_or_host, "-U", "postgres", "-d", "postgres", "-w", "-A",
                           "-t", "-c", "SELECT current_user"], user=user, env=env, cwd="/", capture_output=True,
                          text=True, timeout=30)


def test_parents_keep_their_modes_and_state_is_private(small_stack: dict[str, Any]) -> None:
    state: Path = small_stack["state"]
    assert small_stack["parents_after"] == small_stack["parents_before"]
    assert stat.S_IMODE(state.stat().st_mode) == 0o700
    for private in ("stack.json", "migrate.yaml", "pg/password"):
        assert stat.S_IMODE((state / private).stat().st_mode) == 0o600, private
    assert stat.S_IMODE((state / "pg").stat().st_mode) == 0o700
    datadir = Path(json.loads((state / "stack.json").read_text())["parts"]["postgres"]["datadir"])
    sockdir = datadir.parent / "sock"
    assert stat.S_IMODE(sockdir.stat().st_mode) == 0o700
    sockets = [p for p in sockdir.iterdir() if stat.S_ISSOCK(p.lstat().st_mode)]
    assert sockets and all(stat.S_IMODE(s.lstat().st_mode) == 0o700 for s in sockets)
    assert stat.S_IMODE(datadir.parent.stat().st_mode) == 0o700


def test_only_the_password_or_the_clusters_own_user_gets_in(small_stack: dict[str, Any]) -> None:
    info: stack.StackInfo = small_stack["info"]
    state: Path = small_stack["state"]
    port = info.parts["postgres"]["port"]
    dsn = yaml.safe_load((state / "migrate.yaml").read_text())["database"]["dsn"]
    password = str(conninfo_to_dict(dsn)["password"])
    assert len(password) >= 24 and (state / "pg" / "password").read_text().strip() == password
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT current_user").fetchone() == ("postgres",)
    for wrong in ("", "wrong"):
        with pytest.raises(psycopg.OperationalError, match="password"):
            psycopg.connect(postgres.dsn_for(port, wrong), connect_timeout=3).close()
    # what `stack up` prints and what the state shows of it hold no password
    shown = info.urls()["postgres"]
    assert password not in json.dumps(info.urls()) and shown.startswith("postgresql://postgres:") and shown != dsn
    if not AS_ROOT:
        return
    sockdir = str(Path(info.parts["postgres"]["datadir"]).parent / "sock")
    # another OS user: no way through the socket, no way over TCP without the password
    nobody_socket = _psql(["-h", sockdir, "-p", str(port)], "nobody")
    assert nobody_socket.returncode != 0, nobody_socket.stdout
    nobody_tcp = _psql(["-h", "127.0.0.1", "-p", str(port)], "nobody")
    assert nobody_tcp.returncode != 0 and "password" in nobody_tcp.stderr
    assert _psql(["-h", "127.0.0.1", "-p", str(port)], "nobody", password).stdout.strip() == "postgres"
    # the cluster's own OS user, over its socket (peer)
    owner = pwd.getpwuid(Path(sockdir).stat().st_uid).pw_name
    own = _psql(["-h", sockdir, "-p", str(port)], owner)
    assert own.returncode == 0 and own.stdout.strip() == "postgres", own.stderr


def test_stale_records_are_reported_down_and_never_signalled(small_stack: dict[str, Any]) -> None:
    state: Path = small_stack["state"]
    sleeper, legacy = _spawn_sleeper(), _spawn_sleeper()
    registries: list[dict[str, Any]] = []  # the real registries, which the rewritten records lose track of
    try:
        # the registry's PID now names an unrelated process; a record of an older version holds only a PID
        registries.append(_set_record(state, "registry", pid=sleeper.pid))
        data = json.loads((state / "stack.json").read_text())
        data["parts"]["broker"] = {"pid": legacy.pid, "port": procs.free_port()}
        (state / "stack.json").write_text(json.dumps(data))

        status = cli("--format", "json", "stack", "status", "--state-dir", str(state))
        assert status.code == 1, status.err
        parts = json.loads(status.out)["parts"]
        for name in ("registry", "broker"):
            assert parts[name]["healthy"] is False and parts[name]["stale_record"] is True
            assert "stale record" in parts[name]["state"]
        assert parts["postgres"]["healthy"] is True

        # `up` starts a registry of its own instead of killing the stranger
        info, _ = stack.up(state, parts=PARTS)
        assert info.parts["registry"]["pid"] not in (sleeper.pid, registries[0]["pid"])
        assert sleeper.poll() is None and legacy.poll() is None
        registries.append(dict(info.parts["registry"]))

        info.parts["registry"]["pid"] = sleeper.pid  # stale again, for `down`
        stack.save_state(info)
        pg_pid = info.parts["postgres"]["pid"]
        down = cli("--format", "json", "stack", "down", "--state-dir", str(state))
        assert down.code == 0, down.err
        body = json.loads(down.out)
        assert body["stopped"] == ["postgres"] and sorted(body["stale_records"]) == ["broker", "registry"]
        assert sleeper.poll() is None and legacy.poll() is None
        assert not procs.pid_alive(pg_pid)
    finally:
        for proc in (sleeper, legacy):
            proc.kill()
            proc.wait()
        for rec in registries:
            procs.stop_ours(rec, grace=5)
        stack.up(state, parts=PARTS)  # back to a running stack for the next test


def test_stop_ours_checks_start_time_and_command_line() -> None:
    proc = _spawn_sleeper()
    try:
        ident = procs.identity(proc.pid)
        assert ident is not None and ident["cmdline"] == ["sleep", "300"]
        assert not procs.stop_ours({**ident, "started": ident["started"] + 1})  # same PID, another start time
        assert not procs.stop_ours({**ident, "cmdline": ["sleep", "301"]})
        assert proc.poll() is None and procs.is_stale({**ident, "started": 0})
        assert procs.stop_ours(ident, grace=5)
        assert procs.identity(proc.pid) is None  # gone (and reaped: it was our child)
    finally:
        proc.kill()
        proc.wait()


def _pg_record(state: Path) -> dict[str, Any]:
    return dict(json.loads((state / "stack.json").read_text())["parts"]["postgres"])


def _sigkill_postgres(state: Path) -> Path:
    rec = _pg_record(state)
    assert procs.is_ours(rec)
    os.kill(rec["pid"], signal.SIGKILL)  # only the postmaster, like a hung shutdown killed by an operator
    poll_until(lambda: not procs.pid_alive(rec["pid"]), 10, "the postmaster gone")
    datadir = Path(rec["datadir"])
    assert (datadir / "postmaster.pid").exists()
    return datadir


def test_up_after_sigkill_replaces_a_stale_postmaster_pid(small_stack: dict[str, Any]) -> None:
    state: Path = small_stack["state"]
    _sigkill_postgres(state)
    info, _ = stack.up(state, parts=PARTS)  # what `stack up` runs, for the two parts of this stack
    assert postgres.healthy(info.pg_dsn)

    # the killed postmaster's PID now names an unrelated process (PID reuse): the file is still stale
    datadir = _sigkill_postgres(state)
    sleeper = _spawn_sleeper()
    try:
        pidfile = datadir / "postmaster.pid"
        lines = pidfile.read_text().splitlines()
        pidfile.write_text("\n".join([str(sleeper.pid), *lines[1:]]) + "\n")
        info, _ = stack.up(state, parts=PARTS)
        assert postgres.healthy(info.pg_dsn)
        assert sleeper.poll() is None
        assert int(pidfile.read_text().splitlines()[0]) == info.parts["postgres"]["pid"]
    finally:
        sleeper.kill()
        sleeper.wait()


def test_up_adopts_a_live_postmaster_whose_record_was_lost(small_stack: dict[str, Any]) -> None:
    state: Path = small_stack["state"]
    before = _pg_record(state)
    data = json.loads((state / "stack.json").read_text())
    del data["parts"]["postgres"]
    (state / "stack.json").write_text(json.dumps(data))
    info, _ = stack.up(state, parts=PARTS)
    assert info.parts["postgres"]["pid"] == before["pid"] and info.parts["postgres"]["port"] == before["port"]
    assert procs.is_ours(info.parts["postgres"])


def test_a_cluster_without_its_password_file_gets_a_new_password(small_stack: dict[str, Any]) -> None:
    state: Path = small_stack["state"]
    old = _pg_record(state)
    assert postgres.stop(old)
    (state / "pg" / "password").unlink()  # as a cluster of an older version (trust auth) has none
    info, _ = stack.up(state, parts=PARTS)
    assert info.pg_dsn != old["dsn"] and postgres.healthy(info.pg_dsn)
    assert not postgres.healthy(old["dsn"])
    assert (state / "pg" / "password").read_text().strip() == conninfo_to_dict(info.pg_dsn)["password"]
    assert info.pg_dsn in (state / "migrate.yaml").read_text()


def test_a_pid_only_record_of_an_older_version_is_ours_when_it_names_this_stack(small_stack: dict[str, Any]) -> None:
    state: Path = small_stack["state"]
    data = json.loads((state / "stack.json").read_text())
    for part in data["parts"].values():
        part.pop("started", None)
        part.pop("cmdline", None)
    (state / "stack.json").write_text(json.dumps(data))
    status = cli("--format", "json", "stack", "status", "--state-dir", str(state))
    parts = json.loads(status.out)["parts"]
    assert parts["postgres"]["healthy"] and parts["registry"]["healthy"], status.out
    info = stack.load_state(state)
    assert all(procs.is_ours(info.parts[name]) for name in PARTS)
