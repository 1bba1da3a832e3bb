"""`migrate-assets stack up|down|status` as a user runs it: idempotent up, clean down, clear errors."""

from __future__ import annotations

import json
import os
import signal
from pathlib import Path

import httpx
import pytest
import yaml
from psycopg.conninfo import conninfo_to_dict

from migrate_assets.local import procs
from tests.cdc import poll_until
from tests.support import run_cli_process as cli


def test_up_twice_is_harmless_and_down_leaves_nothing(tmp_path: Path) -> None:
    state = tmp_path / "state"
    first = cli("--format", "json", "stack", "up", "--state-dir", str(state), "--connect-mode", "standalone")
    assert first.code == 0, first.err
    up1 = json.loads(first.out)
    try:
        assert set(up1["urls"]) == {"postgres", "broker", "registry", "kafka-connect", "iceberg"}
        recorded = json.loads((state / "stack.json").read_text())["parts"]
        pids = {k: v["pid"] for k, v in recorded.items() if "pid" in v}
        ports = [v["port"] for v in recorded.values() if "port" in v]
        assert all(procs.pid_alive(p) for p in pids.values())
        cfg = (state / "migrate.yaml").read_text()
        assert up1["urls"]["registry"] in cfg and up1["urls"]["kafka-connect"] in cfg
        # the PostgreSQL password is in the 0600 config, never in what `stack up` prints
        password = str(conninfo_to_dict(yaml.safe_load(cfg)["database"]["dsn"])["password"])
        assert password and password not in first.out + first.err
        shown = up1["urls"]["postgres"]
        assert shown.startswith("postgresql://postgres:") and "@127.0.0.1:" in shown and password not in shown

        second = cli("--format", "json", "stack", "up", "--state-dir", str(state))
        assert second.code == 0, second.err
        up2 = json.loads(second.out)
        assert up2["urls"] == up1["urls"]
        assert all(v == 0.0 for v in up2["start_seconds"].values())
        again = json.loads((state / "stack.json").read_text())["parts"]
        assert {k: v["pid"] for k, v in again.items() if "pid" in v} == pids

        status = cli("--format", "json", "stack", "status", "--state-dir", str(state))
        assert status.code == 0 and password not in status.out + second.out + second.err
        assert all(p["healthy"] for p in json.loads(status.out)["parts"].values())
        # each process's memory and how long it took to start (recorded by the `up` that started it)
        parts = json.loads(status.out)["parts"]
        for name in ("postgres", "broker", "registry", "kafka-connect"):
            assert parts[name]["rss_mib"] > 0 and parts[name]["start_seconds"] == up1["start_seconds"][name] > 0

        # a dead part is reported, and the next `up` restarts only that part
        procs.kill(pids["broker"], grace=5)
        status = cli("--format", "json", "stack", "status", "--state-dir", str(state))
        assert status.code == 1
        assert json.loads(status.out)["parts"]["broker"]["healthy"] is False
        third = cli("--format", "json", "stack", "up", "--state-dir", str(state))
        assert third.code == 0, third.err
        after = json.loads((state / "stack.json").read_text())["parts"]
        assert after["broker"]["pid"] != pids["broker"]
        assert after["postgres"]["pid"] == pids["postgres"]
        pids["broker"] = after["broker"]["pid"]

        # PostgreSQL killed outright (a hung shutdown ended with SIGKILL) leaves its postmaster.pid behind
        os.kill(pids["postgres"], signal.SIGKILL)
        poll_until(lambda: not procs.pid_alive(pids["postgres"]), 10, "the postmaster gone")
        assert (Path(after["postgres"]["datadir"]) / "postmaster.pid").exists()
        fourth = cli("--format", "json", "stack", "up", "--state-dir", str(state))
        assert fourth.code == 0, fourth.err
        assert json.loads(fourth.out)["start_seconds"]["broker"] == 0.0  # only postgres was started again
        pids["postgres"] = json.loads((state / "stack.json").read_text())["parts"]["postgres"]["pid"]
        assert cli("stack", "status", "--state-dir", str(state)).code == 0
    finally:
        down = cli("stack", "down", "--state-dir", str(state))
    assert down.code == 0, down.err
    assert not any(procs.pid_alive(p) for p in pids.values())
    assert not [p for p in ports if procs.port_open(p)]


def test_unknown_stack_command_is_a_usage_error() -> None:
    r = cli("stack", "explode")
    assert r.code == 2
    assert "invalid choice" in r.err and "explode" in r.err


def test_state_dir_of_another_version_is_refused(tmp_path: Path) -> None:
    state = tmp_path / "old"
    state.mkdir()
    (state / "stack.json").write_text(json.dumps({"format": 99, "version": "9.9.9", "parts": {}}))
    r = cli("--format", "json", "stack", "up", "--state-dir", str(state))
    assert r.code == 2
    err = json.loads(r.out)["error"]
    assert "another version" in err["message"] and "9.9.9" in err["message"]
    assert err["problems"][0]["file"].endswith("stack.json")
    assert not (state / "pg").exists()


def test_foreign_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "precious.txt").write_text("keep me")
    r = cli("stack", "up", "--state-dir", str(tmp_path))
    assert r.code == 2
    assert "not a migrate-assets state directory" in r.err
    assert (tmp_path / "precious.txt").read_text() == "keep me"


@pytest.mark.skipif(os.environ.get("JAVA_HOME") is not None, reason="JAVA_HOME points at a Java")
def test_missing_java_without_install_rights_says_what_to_install(tmp_path: Path) -> None:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    env = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    env["PATH"] = str(bindir)  # no java on PATH
    env["MIGRATE_ASSETS_NO_INSTALL"] = "1"  # behave as a non-root user would
    r = cli("stack", "up", "--state-dir", str(tmp_path / "s"), env=env)
    assert r.code == 1
    assert "apt-get install -y openjdk-17-jre-headless" in r.err
    # nothing was started before the check failed
    assert not (tmp_path / "s" / "stack.json").exists()


def test_poll_helper_times_out_with_a_clear_message() -> None:
    with pytest.raises(AssertionError, match="waiting for never"):
        poll_until(lambda: False, 0.3, "never", interval=0.05)


def test_poll_helper_treats_a_refused_connection_as_not_yet() -> None:
    url = f"http://127.0.0.1:{procs.free_port()}/"  # nothing listens there
    with pytest.raises(AssertionError, match="waiting for an answer .*ConnectError"):
        poll_until(lambda: httpx.get(url, timeout=1), 0.3, "an answer", interval=0.05)
