"""`python -m migrate_assets.local.registry --host H --port P --db FILE`: the registry as its own process."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from .server import serve


def _exit_cleanly(signum: int, frame: FrameType | None) -> None:
    """uvicorn drains on SIGTERM, then re-raises it; ending here makes that an exit status 0, not -15."""
    sys.exit(0)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m migrate_assets.local.registry", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8081)
    parser.add_argument("--db", required=True, help="SQLite file holding the registry (created if absent)")
    parser.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    parser.add_argument(
        "--busy-timeout", type=float, default=10.0, help="seconds to wait for a lock on --db held elsewhere"
    )
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    serve(args.host, args.port, args.db, args.log_level, args.busy_timeout)


if __name__ == "__main__":
    main()
