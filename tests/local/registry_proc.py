"""A bundled registry as a real child process, for the registry's own tests."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from migrate_assets.local import procs
from tests.cdc import poll_until


class Registry:
    """One `python -m migrate_assets.local.registry` process on a free loopback port, a child of this one so
    that its exit code can be checked (the `private_registry` fixture's daemon gives none)."""

    def __init__(self, db: Path, log: Path, *args: str) -> None:
        self.db = db
        self.port = procs.free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("ab")
        self.proc = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "migrate_assets.local.registry",
                "--port",
                str(self.port),
                "--db",
                str(db),
                *args,
            ],
            stdout=self._log,
            stderr=self._log,
        )

        def answering() -> bool:
            assert self.proc.poll() is None, f"registry exited early, see {log}"
            return httpx.get(self.url + "/", timeout=1).status_code == 200

        poll_until(answering, 30, f"the registry to answer GET / (log: {log})", interval=0.05)

    def stop(self) -> int:
        self.proc.terminate()
        try:
            return self.proc.wait(timeout=15)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
            self._log.close()


