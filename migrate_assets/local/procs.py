"""Small process toolkit for the local stack: free ports, detached daemons tracked by PID, readiness polls."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

from migrate_assets.errors import StackError


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def port_open(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.settimeout(0.3)
        return s.connect_ex((host, port)) == 0


def pid_alive(pid: int | None) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # a zombie child still answers kill(0); reap it if it is ours
    with contextlib.suppress(ChildProcessError):
        done, _ = os.waitpid(pid, os.WNOHANG)
        if done == pid:
            return False
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(") ", 1)[1][0]
        return state != "Z"
    except (OSError, IndexError):
        return True


def tail(path: Path, lines: int = 25) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return ""


def spawn(
    argv: Sequence[str], log: Path, env: Mapping[str, str] | None = None, cwd: Path | None = None
) -> int:
    """Start a daemon in its own session (so it survives us and can be signalled as a group); return its PID."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as fh:
        proc = subprocess.Popen(
            list(argv),
            stdout=fh,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            cwd=cwd,
            start_new_session=True,
        )
    return proc.pid


def wait_until(
    check: Callable[[], bool],
    timeout: float,
    part: str,
    what: str,
    log: Path | None = None,
    pid: int | None = None,
    interval: float = 0.1,
) -> float:
    """Poll `check` until true; fail with the log's tail if the process died or the timeout passed."""
    start = time.monotonic()
    while True:
        try:
            if check():
                return time.monotonic() - start
        except Exception:  # noqa: BLE001 - readiness probes fail in many ways until ready
            pass
        if pid is not None and not pid_alive(pid):
            raise StackError(part, f"exited before {what}", tail(log) if log else "")
        if time.monotonic() - start > timeout:
            if pid is not None:
                kill(pid, grace=2.0)
            raise StackError(part, f"not {what} after {timeout:.0f}s (killed)", tail(log) if log else "")
        time.sleep(interval)


def kill(pid: int | None, grace: float = 10.0, first: int = signal.SIGTERM) -> bool:
    """Send `first` (SIGTERM) to the process group, then SIGKILL after `grace` seconds. True if it stopped."""
    if not pid or not pid_alive(pid):
        return False
    for sig in (first, signal.SIGKILL):
        with contextlib.suppress(ProcessLookupError, PermissionError):
            try:
                os.killpg(pid, sig)
            except (ProcessLookupError, PermissionError):
                os.kill(pid, sig)
        deadline = time.monotonic() + (grace if sig == first else 5.0)
        while time.monotonic() < deadline:
            if not pid_alive(pid):
                return True
            time.sleep(0.05)
    return not pid_alive(pid)
