"""`migrate-assets pipeline add|list|remove`: which tables travel through CDC (the application layer does the
work: migrate_assets.app.onboard)."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from migrate_assets.cli.lazy import load_config
from migrate_assets.cli.output import Result, markdown_table, safe_text

EXAMPLES = """examples:
  migrate-assets pipeline add public.customers
  migrate-assets pipeline add public.orders --connector shop-cdc --iceberg-table lake.orders
  migrate-assets pipeline list --format json
  migrate-assets pipeline remove public.orders"""


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("pipeline", help="bring an existing table into a CDC pipeline, list or remove pipelines",
                       description="Pipeline tables: connector, registry subject and Iceberg table of each.\n\n"
                       + EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="pipeline_action", metavar="ACTION", required=True)
    add = actions.add_parser(
        "add", help="capture an existing table: connector (created or extended), subject, Iceberg table, "
        "project entry, verify", description="Bring SCHEMA.TABLE into a pipeline as one saga, a stored run "
        "(`runs list`): every completed step is undone when a later one fails.\n\n" + EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    add.add_argument("table", metavar="SCHEMA.TABLE")
    add.add_argument("--connector", help="Kafka Connect connector (created when missing; default: the one the "
                     "project's pipelines share, else <database>-cdc)")
    add.add_argument("--iceberg-table", help="namespace.table in the Iceberg catalog (default: SCHEMA.TABLE)")
    add.add_argument("--dry-run", action="store_true", help="check everything and print the steps; change nothing")
    add.set_defaults(func=run_add)
    ls = actions.add_parser("list", help="the pipeline tables of the project file")
    ls.set_defaults(func=run_list)
    rm = actions.add_parser("remove", help="drop a table's entry from pipelines: (connector, subject and Iceberg "
                            "table are kept)")
    rm.add_argument("table", metavar="SCHEMA.TABLE")
    rm.set_defaults(func=run_remove)


def _progress(msg: str) -> None:
    print(safe_text(f"  {msg}"), file=sys.stderr, flush=True)


def run_add(args: argparse.Namespace) -> Result:
    from migrate_assets.app import onboard

    cfg = load_config(args.config)
    report = onboard.add(cfg, args.table, args.connector, args.iceberg_table, dry_run=args.dry_run,
                         progress=_progress)
    data = report.to_dict()
    code = 0 if report.status in ("succeeded", "dry_run") else 1
    if code:
        print(safe_text(f"error: pipeline add {report.table}: {report.status}: {report.error}"), file=sys.stderr)
    return Result(data, text=_add_text, markdown=_add_md, exit_code=code)


def run_list(args: argparse.Namespace) -> Result:
    from migrate_assets.app import onboard

    return Result(onboard.listing(load_config(args.config)), text=_list_text, markdown=_list_md)


def run_remove(args: argparse.Namespace) -> Result:
    from migrate_assets.app import onboard

    return Result(onboard.remove(load_config(args.config), args.table), text=_remove_text)


def _add_text(d: dict[str, Any]) -> str:
    how = "joined connector" if d["mode"] == "join" else "new connector"
    lines = [f"pipeline add {d['table']}: {d['status']} ({how} {d['connector']})",
             f"  subject {d['subject']}, Iceberg table {d['iceberg_table']}"]
    for s in d["steps"]:
        secs = f" ({s['seconds']:.2f}s)" if s.get("seconds") else ""
        lines.append(f"  {s['status']:<10} {s['step']}{secs}")
        if s.get("error"):
            lines.append(f"             {s['error']}")
        if s.get("compensation") and (d["status"] == "dry_run" or s["status"] != "done"):
            lines.append(f"             undo: {s['compensation']}")
    if d.get("verify"):
        v = d["verify"]
        lines.append(f"  verify: {'consistent' if v['consistent'] else 'DRIFT'}")
    for w in d["warnings"]:
        lines.append(f"  warning: {w}")
    if d.get("run_id"):
        lines.append(f"  run {d['run_id']} (`migrate-assets runs show {d['run_id']}`)")
    if d.get("error"):
        lines.append(f"  error: {d['error']}")
    if d.get("next"):
        lines.append(f"  next: {d['next']}")
    return safe_text("\n".join(lines))


def _add_md(d: dict[str, Any]) -> str:
    return (f"**pipeline add `{d['table']}`**: {d['status']}\n\n"
            + markdown_table(["step", "status", "seconds"], [[s["step"], s["status"], s.get("seconds", "")]
                                                              for s in d["steps"]]))


def _list_text(d: dict[str, Any]) -> str:
    if not d["pipelines"]:
        return "no pipelines (add one with `migrate-assets pipeline add SCHEMA.TABLE`)"
    return safe_text("\n".join(f"{p['table']:<30} connector {p['connector'] or '-'}  subject {p['subject'] or '-'}"
                               f"  iceberg {p['iceberg_table'] or '-'}" for p in d["pipelines"]))


def _list_md(d: dict[str, Any]) -> str:
    return markdown_table(["table", "connector", "subject", "iceberg table"],
                          [[p["table"], p["connector"], p["subject"], p["iceberg_table"]] for p in d["pipelines"]])


def _remove_text(d: dict[str, Any]) -> str:
    kept = ", ".join(f"{k} {v}" for k, v in d["kept"].items() if v) or "nothing"
    return safe_text(f"removed {d['table']} from {d['removed_from']} (kept in the layers: {kept})")
