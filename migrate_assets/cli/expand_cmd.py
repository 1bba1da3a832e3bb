"""`migrate-assets expand | expand-status | contract | abort CHANGE_FILE` (SPEC §5, §8).

The JSON of `expand-status` is a documented contract:
`{"table", "operations": [...], "rows_to_backfill", "mismatched_rows", "safe_to_contract", ...}`;
`mismatched_rows` is null (text: "not checked") when an `up` calls a volatile function and was not evaluated.
Progress of the backfill goes to stderr (cli/progress.py): one updating line with rate and ETA on a terminal,
cleared before each log line; otherwise one summary line at the end.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from migrate_assets.cli import argtypes
from migrate_assets.cli.lazy import load_config
from migrate_assets.cli.output import Result, markdown_table
from migrate_assets.cli.progress import ProgressLine

if TYPE_CHECKING:  # the expand engine and the database layer load when a command runs, not for `--help`
    from migrate_assets.config import ProjectConfig
    from migrate_assets.expand import runner
    from migrate_assets.expand.ops import ChangeSet

#: how these commands' sessions show in pg_stat_activity
APPLICATION_NAME = "migrate-assets expand"


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add this area's sub-commands to the `migrate-assets` parser."""
    p = sub.add_parser("expand", help="expand a table: new columns, sync triggers, batched backfill")
    p.add_argument("change_file")
    p.add_argument("--batch-size", type=argtypes.count(1), default=None, help="rows in the first backfill batch (default 1000); later batches are sized to ~15 ms, or stay fixed with --batch-delay")
    p.add_argument("--batch-delay", type=argtypes.seconds, default=0.0,
                   help="pause between batches, e.g. 50ms or 0.05s (default 0)")
    p.add_argument("--dry-run", action="store_true", help="validate and print the SQL; change nothing")
    p.set_defaults(func=cmd_expand)
    p = sub.add_parser("expand-status", help="is an expanded change safe to contract?")
    p.add_argument("change_file")
    p.set_defaults(func=cmd_status)
    p = sub.add_parser("contract", help="finish an expanded change: drop old columns, triggers, functions")
    p.add_argument("change_file")
    p.add_argument(
        "--force", action="store_true", help="contract even when expand-status says it is not safe"
    )
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_contract)
    p = sub.add_parser("abort", help="undo an expand: the table returns to its previous shape")
    p.add_argument("change_file")
    p.add_argument("--dry-run", action="store_true")
    p.set_defaults(func=cmd_abort)


def _setup(args: argparse.Namespace) -> tuple[ProjectConfig, ChangeSet, runner.Options]:
    from migrate_assets.resources import database

    cfg = load_config(args.config)
    change = database.read_change(cfg, args.change_file)
    return cfg, change, database.expand_options(cfg, getattr(args, "batch_size", None),
                                                getattr(args, "batch_delay", 0.0))


def _sql_text(d: dict[str, Any]) -> str:
    return "\n".join(d.get("sql", []))


def _expand_text(d: dict[str, Any]) -> str:
    out = [f"{d['table']}: {d['status']} (change {d['fingerprint']})"]
    for o in d["operations"]:
        cols = f" → new columns {', '.join(o['new_columns'])}" if o["new_columns"] else ""
        out.append(f"  [{o['index']}] {o['summary']}{cols}")
    if d.get("backfill"):
        b = d["backfill"]
        out.append(
            f"  backfill: {b['rows_visited']} rows visited, {b['rows_updated']} updated in "
            f"{b['seconds']}s ({b['rows_per_second']:,.0f} rows/s)"
        )
    if d["cdc"]["tracked"] and d["cdc"]["new_columns_emitted"]:
        out.append(f"  CDC: the connector will start emitting {', '.join(d['cdc']['new_columns_emitted'])}")
    out += [f"  kept: {r}" for r in d.get("rebuilds", [])]
    out += [f"  warning: {w}" for w in d["warnings"]]
    if d.get("sql"):
        out += ["", _sql_text(d)]
    return "\n".join(out)


def cmd_expand(args: argparse.Namespace) -> Result:
    from migrate_assets.app import expand_pipeline  # pipeline tables: helpers unpublished (issue 16)
    from migrate_assets.resources import database

    cfg, change, opts = _setup(args)
    cdc = expand_pipeline.before_expand(cfg, change, args.dry_run)
    with database.connect(cfg, APPLICATION_NAME, autocommit=False, read_only=args.dry_run) as conn, \
            ProgressLine("backfill") as line:  # on a terminal only; log lines clear it first
        data = database.expand(conn, cfg, change, opts, dry_run=args.dry_run, on_progress=line)
    expand_pipeline.report_expand(data, cdc)
    return Result(data=data, text=_expand_text)  # warnings are in the document and logged by the runner


def _status_text(d: dict[str, Any]) -> str:
    out = [f"{d['table']}: phase {d['phase']}, safe to contract: {'yes' if d['safe_to_contract'] else 'no'}"]
    out.append(
        f"  trigger {d['trigger'] or '-'}: {'present' if d['trigger_present'] else 'absent'}, "
        f"{'enabled' if d['trigger_enabled'] else 'disabled'}"
    )
    out.append(f"  rows to backfill: {d['rows_to_backfill']}, mismatched rows: {_count(d['mismatched_rows'])}")
    for o in d["operations"]:
        out.append(
            f"  [{o['index']}] {o['summary']}: {'expanded' if o['expanded'] else 'not expanded'}, mismatched={_count(o['mismatched_rows'])} "
            f"nulls={o['null_rows']}"
        )
    out += [f"  not safe: {r}" for r in d["reasons"]]
    return "\n".join(out)


def _count(n: int | None) -> str:
    """A mismatch count; None means `up` was not evaluated (it calls a volatile function)."""
    return "not checked" if n is None else str(n)


def _status_md(d: dict[str, Any]) -> str:
    rows = [
        [o["index"], o["summary"], o["expanded"], _count(o["mismatched_rows"]), o["null_rows"]]
        for o in d["operations"]
    ]
    head = (
        f"**{d['table']}** — phase `{d['phase']}`, rows to backfill {d['rows_to_backfill']}, "
        f"mismatched rows {_count(d['mismatched_rows'])}, safe to contract **{d['safe_to_contract']}**\n\n"
    )
    return head + markdown_table(["#", "operation", "expanded", "mismatched", "NULLs"], rows)


def cmd_status(args: argparse.Namespace) -> Result:
    from migrate_assets.expand import runner
    from migrate_assets.resources import database

    cfg, change, opts = _setup(args)
    with database.connect(cfg, APPLICATION_NAME, autocommit=False, read_only=True) as conn:
        st = runner.status(conn, change, opts)
    return Result(data=st.to_json(), text=_status_text, markdown=_status_md)


def _simple_text(d: dict[str, Any]) -> str:
    head = f"{d['table']}: {d['status']}"
    if "schema_restored" in d:
        head += f" (schema restored: {'yes' if d['schema_restored'] else 'NO'})"
    return head + ("\n" + _sql_text(d) if d.get("sql") and d["status"] == "dry_run" else "")


def cmd_contract(args: argparse.Namespace) -> Result:
    from migrate_assets.app import expand_pipeline
    from migrate_assets.app import spec_writeback as spec  # the spec says what contract left (issue 16)
    from migrate_assets.expand import runner
    from migrate_assets.resources import database

    cfg, change, opts = _setup(args)
    before = None if args.dry_run else spec.live_table(cfg, change.qualified)
    if cfg.pipeline_for(change.qualified) is not None:  # through the evolution saga: every layer follows
        data = expand_pipeline.contract(cfg, change, force=args.force, dry_run=args.dry_run)
    else:
        with database.connect(cfg, APPLICATION_NAME, autocommit=False, read_only=args.dry_run) as conn:
            data = runner.contract(conn, change, opts, force=args.force, dry_run=args.dry_run)
    data["spec"] = spec.after_command(cfg, change, before, data["status"] == "contracted")
    return Result(data=data, text=_simple_text, warnings=spec.warnings_of(data["spec"]),
                  exit_code=1 if data["status"] == "failed" else 0)


def cmd_abort(args: argparse.Namespace) -> Result:
    from migrate_assets.app import spec_writeback as spec  # the spec says what abort left (issue 16)
    from migrate_assets.expand import runner
    from migrate_assets.resources import database

    cfg, change, opts = _setup(args)
    before = None if args.dry_run else spec.live_table(cfg, change.qualified)
    with database.connect(cfg, APPLICATION_NAME, autocommit=False, read_only=args.dry_run) as conn:
        data = runner.abort(conn, change, opts, dry_run=args.dry_run)
    data["spec"] = spec.after_command(cfg, change, before, data["status"] == "aborted")
    warnings = [] if data.get("schema_restored", True) else ["the table's schema differs from before expand"]
    warnings += spec.warnings_of(data["spec"])
    return Result(data=data, text=_simple_text, warnings=warnings, exit_code=0 if not warnings else 1)
