"""`migrate-assets migrations {status,up,down,run,baseline,repair}` (SPEC §4, §8).

Bad flags and bad migration files exit 2 before anything connects; refusals (checksum drift, out-of-order,
already applied, nothing to revert with) exit 3 before anything runs; a failing migration or a held lock exit 1.
`up`, `run` and `down` try their scripts in a rolled-back transaction first and refuse (exit 3, file and table
named) one that would change a table listed in `pipelines:`, unless `--allow-pipeline-drift`: then the run goes
on and the changed tables are verified across their layers in the same report (migrate_assets.app.migrations).
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from migrate_assets.cli import argtypes
from migrate_assets.cli.lazy import load_config
from migrate_assets.cli.output import Result, markdown_table
from migrate_assets.errors import UsageError

if TYPE_CHECKING:  # the runner and the database layer load when a sub-command runs, not for `--help`
    from migrate_assets.app.migrations import Outcome
    from migrate_assets.versioned import MigrationRunner, RunReport, Step

#: a migration version on the command line: digits only, within bigint
_version = argtypes.count(0, 2**63 - 1)
_positive = argtypes.count(1)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `migrations` and its sub-commands to the `migrate-assets` parser."""
    group = sub.add_parser("migrations", help="versioned up/down SQL migrations")
    cmds = group.add_subparsers(dest="migrations_command", metavar="SUBCOMMAND", parser_class=type(group))
    group.set_defaults(func=_no_subcommand)

    p = cmds.add_parser("status", help="applied, pending, missing, mismatched and out-of-order migrations")
    p.set_defaults(func=_status)

    p = cmds.add_parser("up", help="apply pending migrations")
    p.add_argument("--to", type=_version, metavar="V", help="apply pending versions up to and including V")
    p.add_argument(
        "--allow-out-of-order", action="store_true", help="apply pending versions older than current"
    )
    p.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    _drift_flag(p)
    p.set_defaults(func=_up)

    p = cmds.add_parser("down", help="revert applied migrations, most recently applied first")
    how = p.add_mutually_exclusive_group()
    how.add_argument("--steps", type=_positive, metavar="N", help="revert the last N applied (default 1)")
    how.add_argument("--to", type=_version, metavar="V", help="revert every applied version above V")
    p.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    _drift_flag(p)
    p.set_defaults(func=_down)

    p = cmds.add_parser("run", help="apply exactly one pending version")
    p.add_argument("version", type=_version, metavar="V")
    p.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    _drift_flag(p)
    p.set_defaults(func=_run)

    p = cmds.add_parser("baseline", help="record versions <= V as applied without running them")
    p.add_argument("version", type=_version, metavar="V")
    p.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    p.set_defaults(func=_baseline)

    p = cmds.add_parser(
        "repair", help="accept the current checksums of applied files after a deliberate edit"
    )
    p.add_argument("--dry-run", action="store_true", help="print the SQL, change nothing")
    p.set_defaults(func=_repair)


def _drift_flag(p: argparse.ArgumentParser) -> None:
    p.add_argument("--allow-pipeline-drift", action="store_true",
                   help="run scripts that change pipeline tables with plain DDL anyway; the drift they leave in "
                        "registry, Iceberg and connector is reported right after")


def _no_subcommand(args: argparse.Namespace) -> Result:
    raise UsageError(
        "migrations needs a sub-command: status, up, down, run, baseline or repair", file="<command line>"
    )


def _progress(step: Step) -> None:
    print(f"  {step.action} {step.file} ({step.ms or 0:.0f} ms)", file=sys.stderr, flush=True)


def _on_step() -> Any:
    return _progress if sys.stderr.isatty() else None


def runner_from_args(args: argparse.Namespace) -> MigrationRunner:
    from migrate_assets.app import migrations

    return migrations.runner(load_config(args.config), on_step=_on_step())


# -- commands --------------------------------------------------------------------------------------------


def _status(args: argparse.Namespace) -> Result:
    from migrate_assets.versioned import status_dict

    return Result(status_dict(runner_from_args(args).status()), text=_status_text, markdown=_status_markdown)


def _up(args: argparse.Namespace) -> Result:
    from migrate_assets.app import migrations

    return _outcome(migrations.up(load_config(args.config), to=args.to, allow_out_of_order=args.allow_out_of_order,
                                  dry_run=args.dry_run, allow_pipeline_drift=args.allow_pipeline_drift,
                                  on_step=_on_step()))


def _down(args: argparse.Namespace) -> Result:
    from migrate_assets.app import migrations

    return _outcome(migrations.down(load_config(args.config), steps=args.steps, to=args.to, dry_run=args.dry_run,
                                    allow_pipeline_drift=args.allow_pipeline_drift, on_step=_on_step()))


def _run(args: argparse.Namespace) -> Result:
    from migrate_assets.app import migrations

    return _outcome(migrations.run(load_config(args.config), args.version, dry_run=args.dry_run,
                                   allow_pipeline_drift=args.allow_pipeline_drift, on_step=_on_step()))


def _baseline(args: argparse.Namespace) -> Result:
    return _report(runner_from_args(args).baseline(args.version, dry_run=args.dry_run))


def _repair(args: argparse.Namespace) -> Result:
    return _report(runner_from_args(args).repair(dry_run=args.dry_run))


# -- rendering -------------------------------------------------------------------------------------------


def _outcome(outcome: Outcome) -> Result:
    """A run's report with the pipeline tables it changed (allowed) and their layers verified right after."""
    res = _report(outcome.report)
    rep = outcome.report
    if rep.trial_ms is not None:
        res.data["pipeline_check"] = {"ms": rep.trial_ms, "overhead_ms": rep.trial_overhead_ms}
    res.data["pipeline_changes"] = [{"file": t.file, "table": table, "changes": what}
                                    for t in rep.pipeline_changes for table, what in t.tables.items()]
    res.data["pipeline_drift"] = outcome.drift
    for d in outcome.drift:
        where = "; ".join(f"{layer}: {', '.join(v['differences']) or v['status']}"
                          for layer, v in d.get("layers", {}).items() if v["status"] != "consistent")
        state = "DRIFT" if not d.get("consistent") else "still consistent"
        res.warnings.append(f"pipeline table {d['table']} changed outside the pipeline by "
                            f"{', '.join(d.get('changed_by', []))}: {state}"
                            + (f" ({where or d.get('error', '')})" if not d.get("consistent") else "")
                            + "; bring the layers back in step with `migrate-assets evolve` or revert the migration")
    return res


def _report(report: RunReport) -> Result:
    data: dict[str, Any] = {
        "command": report.command,
        "dry_run": report.dry_run,
        "current": report.current,
        "steps": [
            {
                "action": s.action,
                "version": s.version,
                "description": s.description,
                "file": s.file,
                "ms": None if s.ms is None else round(s.ms, 2),
                **({"sql": s.sql} if report.dry_run else {}),
            }
            for s in report.steps
        ],
    }
    return Result(data, text=_report_text, markdown=_report_markdown)


_PAST = {"up": "applied", "down": "reverted", "baseline": "baselined", "repair": "repaired"}


def _report_text(d: dict[str, Any]) -> str:
    if d["dry_run"]:
        if not d["steps"]:
            return f"-- dry run of {d['command']}: nothing to do"
        parts = [f"-- dry run of {d['command']}: nothing was changed; this SQL would run"]
        for s in d["steps"]:
            parts.append(f"\n-- {s['action']} {s['file']}\n{s['sql']}")
        return "\n".join(parts)
    if not d["steps"]:
        return f"nothing to do; current version: {d['current']}"
    lines = [
        f"{_PAST[s['action']]} {s['file'] or s['version']}"
        + (f" ({s['ms']:.0f} ms)" if s["ms"] is not None else "")
        for s in d["steps"]
    ]
    lines.append(f"current version: {d['current']}")
    return "\n".join(lines)


def _report_markdown(d: dict[str, Any]) -> str:
    if d["dry_run"]:
        out = [f"### dry run of `{d['command']}` (nothing changed)"]
        for s in d["steps"]:
            out.append(f"\n**{s['action']} {s['file']}**\n\n```sql\n{s['sql']}\n```")
        return "\n".join(out)
    rows = [[s["action"], s["version"], s["description"], s["file"], s["ms"]] for s in d["steps"]]
    table = markdown_table(["action", "version", "description", "file", "ms"], rows)
    return f"### `migrations {d['command']}`\n\n{table}\n\ncurrent version: {d['current']}"


def _status_text(d: dict[str, Any]) -> str:
    lines = [f"current version: {d['current']}"]
    lines.append(f"applied: {len(d['applied'])}")
    for r in d["applied"]:
        suffix = " (baseline)" if r["kind"] == "baseline" else ""
        lines.append(f"  {r['version']:>6}  {r['description']}  {r['applied_at']}{suffix}")
    lines.append(f"pending: {len(d['pending'])}")
    for m in d["pending"]:
        lines.append(f"  {m['version']:>6}  {m['file']}")
    for key, label in (
        ("missing", "applied but missing on disk"),
        ("mismatched", "checksum changed on disk"),
        ("out_of_order", "pending but older than current"),
    ):
        if d[key]:
            lines.append(f"{label}: {len(d[key])}")
            lines += [f"  {r['version']:>6}  {r.get('file') or r['description']}" for r in d[key]]
    return "\n".join(lines)


def _status_markdown(d: dict[str, Any]) -> str:
    rows: list[list[Any]] = []
    for r in d["applied"]:
        rows.append([r["version"], r["description"], "applied" if r["kind"] != "baseline" else "baseline"])
    for m in d["pending"]:
        rows.append([m["version"], m["description"], "pending"])
    marks = {("missing", r["version"]): "missing on disk" for r in d["missing"]}
    marks.update({("mismatched", r["version"]): "checksum mismatch" for r in d["mismatched"]})
    for row in rows:
        for (_, v), label in marks.items():
            if v == row[0]:
                row[2] += f", {label}"
    table = markdown_table(["version", "description", "state"], rows)
    return f"### migrations status\n\ncurrent version: {d['current']}\n\n{table}"
