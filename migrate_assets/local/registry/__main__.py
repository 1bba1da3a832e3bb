"""`python -m migrate_assets.local.registry --host H --port P --db FILE`: the registry as its own process."""

from __future__ import annotations

import argparse
import signal
import sys
from types import FrameType

from .limits import Limits
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
    d = Limits()
    parser.add_argument("--max-body-bytes", type=_at_least_one, default=d.max_body_bytes,
                        help=f"larger request bodies are answered 413 (default {d.max_body_bytes})")
    parser.add_argument("--max-schema-depth", type=_at_least_one, default=d.max_schema_depth,
                        help=f"deepest JSON nesting of a schema (default {d.max_schema_depth})")
    parser.add_argument("--max-schema-fields", type=_at_least_one, default=d.max_schema_fields,
                        help=f"record fields of a schema, all records together (default {d.max_schema_fields})")
    parser.add_argument("--max-schema-nodes", type=_at_least_one, default=d.max_schema_nodes,
                        help=f"JSON values of a schema (default {d.max_schema_nodes})")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGTERM, _exit_cleanly)
    limits = Limits(args.max_body_bytes, args.max_schema_depth, args.max_schema_fields, args.max_schema_nodes)
    serve(args.host, args.port, args.db, args.log_level, args.busy_timeout, limits)


def _at_least_one(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return int(text)


if __name__ == "__main__":
    main()
