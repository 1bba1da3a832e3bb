"""`migrate-assets stack up|down|status`: the local stack (SPEC §9)."""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from migrate_assets.cli.output import Result, markdown_table

DEFAULT_STATE = ".migrate"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("stack", help="start, inspect or stop the local stack")
    p.add_argument(
        "action", choices=("up", "down", "status"), help="up: start (idempotent); down: stop all; status: health"
    )
    p.add_argument(
        "--state-dir", default=os.environ.get("MIGRATE_ASSETS_STATE_DIR", DEFAULT_STATE),
        help="folder for data, logs and stack.json (default .migrate/)",
    )
    p.add_argument("--connect-mode", choices=("distributed", "standalone"), default="distributed")
    p.add_argument("--purge", action="store_true", help="with down: also delete the state directory")
    p.set_defaults(func=run)


def _progress(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def run(args: argparse.Namespace) -> Result:
    from migrate_assets.local import stack  # pyiceberg and confluent-kafka load only for this command

    state_dir = Path(args.state_dir)
    if args.action == "up":
        t0 = time.monotonic()
        info, timings = stack.up(state_dir, connect_mode=args.connect_mode, progress=_progress)
        data: dict[str, Any] = {
            "state_dir": str(info.state_dir),
            "urls": info.urls(),
            "start_seconds": timings,
            "total_seconds": round(time.monotonic() - t0, 3),
            "config": str(info.state_dir / "migrate.yaml"),
        }
        return Result(data, text=_up_text, markdown=_up_md)
    if args.action == "down":
        return Result(stack.down(state_dir, purge=args.purge), text=_down_text)
    parts = stack.status(state_dir)
    healthy = all(p["healthy"] for p in parts.values())
    return Result({"healthy": healthy, "parts": parts}, text=_status_text, exit_code=0 if healthy else 1)


def _up_text(d: dict[str, Any]) -> str:
    lines = [f"local stack up in {d['total_seconds']:.1f}s (state: {d['state_dir']})"]
    for name, url in d["urls"].items():
        lines.append(f"  {name:<14} {url}   ({d['start_seconds'].get(name, 0):.1f}s)")
    lines.append(f"config written to {d['config']}  (export MIGRATE_ASSETS_CONFIG={d['config']}; "
                 "it holds the PostgreSQL password, mode 0600)")
    return "\n".join(lines)


def _up_md(d: dict[str, Any]) -> str:
    rows = [[n, u, d["start_seconds"].get(n, 0)] for n, u in d["urls"].items()]
    return markdown_table(["part", "url", "start seconds"], rows)


def _down_text(d: dict[str, Any]) -> str:
    text = f"stopped: {', '.join(d['stopped']) or 'nothing'}; dropped slots: {', '.join(d['dropped_slots']) or 'none'}"
    if d.get("stale_records"):
        text += (f"\nstale records (their PID is another process now; left alone): {', '.join(d['stale_records'])}")
    if d.get("kept"):
        text += f"\nkept (a postgres this stack did not start still serves it): {', '.join(d['kept'])}"
    return text


def _status_text(d: dict[str, Any]) -> str:
    lines = []
    for name, p in d["parts"].items():
        extra = f" port {p['port']}" if "port" in p else ""
        if p.get("rss_mib"):
            extra += f", {p['rss_mib']} MiB"
        lines.append(f"{name:<14} {'healthy' if p['healthy'] else 'NOT healthy'} ({p['state']}{extra})")
    return "\n".join(lines)
