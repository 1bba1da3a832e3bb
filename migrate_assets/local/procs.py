"""Small process toolkit for the local stack: free ports, detached daemons tracked by identity, readiness polls.

A PID alone does not name a process for long: once ours exits, the kernel hands the number to the next process
started. So the stack records a process's identity (`identity()`: PID, start time in clock ticks since boot from
`/proc/PID/stat` field 22, and command line) and `stop_ours()` checks it again, through a pidfd, before every
signal: a process that is not the one recorded is never signalled.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

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
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        return state not in ("Z", "X")
    except (OSError, IndexError):
        return True


def identity(pid: int | None) -> dict[str, Any] | None:
    """`{"pid", "started", "cmdline"}` of a live process, None when `pid` names none (or only a zombie)."""
    if not pid or not pid_alive(pid):
        return None
    deadline = time.monotonic() + 1.0
    while True:
        try:
            # comm (field 2) may hold spaces and parentheses: split after its last ")"
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
            raw = Path(f"/proc/{pid}/cmdline").read_bytes()
        except OSError:
            return None
        # right after exec the new command line is not set up yet for a moment
        if raw or fields[0] in ("Z", "X") or time.monotonic() > deadline:
            break
        time.sleep(0.01)
    if fields[0] in ("Z", "X"):
        return None
    args = raw.split(b"\0")
    if args and not args[-1]:
        args.pop()
    cmdline = [a.decode(errors="backslashreplace") for a in args]
    return {"pid": pid, "started": int(fields[19]), "cmdline": cmdline}


def is_ours(record: Mapping[str, Any] | None) -> bool:
    """Whether the process `record` (from `identity()`) still runs: same PID, start time and command line."""
    if not record or "started" not in record:
        return False
    now = identity(record.get("pid"))
    return now is not None and now["started"] == record["started"] and now["cmdline"] == record.get("cmdline")


def is_stale(record: Mapping[str, Any] | None) -> bool:
    """The recorded PID is alive but is some other process now (or was never identified): not ours to touch."""
    return bool(record) and pid_alive(record.get("pid")) and not is_ours(record)  # type: ignore[union-attr]


def _signal_if_ours(record: Mapping[str, Any], sig: int) -> bool:
    """Send `sig` to the recorded process (and its process group) only if it is still that process."""
    pid = int(record["pid"])
    try:
        fd = os.pidfd_open(pid)
    except (ProcessLookupError, OSError):
        return False
    try:
        # the pidfd pins this very process: checked now, a later PID reuse cannot redirect the signal
        if not is_ours(record):
            return False
        signal.pidfd_send_signal(fd, sig)
        with contextlib.suppress(ProcessLookupError, PermissionError):
            if os.getpgid(pid) == pid:  # a session leader we started: its children go with it
                os.killpg(pid, sig)
        return True
    except ProcessLookupError:
        return False
    finally:
        os.close(fd)


def stop_ours(record: Mapping[str, Any] | None, grace: float = 10.0, first: int = signal.SIGTERM) -> bool:
    """Stop the process `record` names: `first`, then SIGKILL after `grace` s. True if it was ours and stopped.

    Nothing is sent when the PID is gone or now belongs to another process (False).
    """
    if not record or not is_ours(record):
        return False
    for sig in (first, signal.SIGKILL):
        if not _signal_if_ours(record, sig):
            return True  # exited (or was replaced) between the check and the signal
        deadline = time.monotonic() + (grace if sig == first else 5.0)
        while time.monotonic() < deadline:
            if not is_ours(record):
                return True
            time.sleep(0.05)
    return not is_ours(record)


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
    """Send `first` (SIGTERM) to the process group, then SIGKILL after `grace` seconds. True if it stopped.

    Only for a child this very process started and has not reaped (its PID cannot have been reused); a PID read
    from a file goes through `stop_ours()`.
    """
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
