"""`migrate-assets plan` and `migrate-assets apply`: declarative schema management (SPEC §3, §8).

`plan --format json` prints the documented plan document (`fingerprint`, `safe`, `changes[]` with `table`,
`kind`, `sql` (statements joined by newlines, each ending in `;`), `inverse_sql` (same, or null), `hazards`,
`breaking`; plus `statements`/`inverse_statements` lists, `refusals` and `scope`), which `apply --plan FILE`
accepts back. `plan --check` exits 4 when the database differs from the specs.
"""

from __future__ import annotations

import argparse
import sys
from typing import TYPE_CHECKING, Any

from migrate_assets.cli.lazy import load_config
from migrate_assets.cli.output import Result, markdown_table
from migrate_assets.errors import (
    SafetyRefusal,
    UsageError,
)

if TYPE_CHECKING:  # the planner and the database layer load when `plan` or `apply` runs, not for `--help`
    from migrate_assets.schema.plan import Plan


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Add `plan` and `apply` to the `migrate-assets` parser."""
    p = sub.add_parser("plan", help="show the changes that make the database match the spec files")
    p.add_argument("--check", action="store_true", help="exit 4 when the database differs from the specs (CI gate)")
    p.add_argument("--table", action="append", default=[], metavar="T", help="only this table (repeatable)")
    p.add_argument("--allow-drop-table", action="store_true", help="also plan DROP TABLE for unlisted tables")
    p.set_defaults(func=cmd_plan)
    a = sub.add_parser("apply", help="apply the plan (one transaction, then concurrent index builds)")
    a.add_argument("--dry-run", action="store_true", help="check everything and print the SQL; change nothing")
    a.add_argument("--plan", metavar="FILE", help="apply exactly this stored plan (from `plan --format json`)")
    a.add_argument("--table", action="append", default=[], metavar="T", help="only this table (repeatable)")
    a.add_argument("--allow-drop-table", action="store_true", help="drop tables that no spec lists")
    a.add_argument("--auto-approve", action="store_true",
                   help="apply without asking (scripts, CI); needed when stdin is not a terminal")
    a.set_defaults(func=cmd_apply)


# -- rendering -----------------------------------------------------------------------------------------------


def spec_gaps_text(d: dict[str, Any]) -> list[str]:
    """Columns the database has and the specs do not: the spec is behind; declaring them is the fix."""
    gaps = d.get("spec_gaps") or []
    head = ["\nThe specs are behind the database (declare these columns in their spec files to keep them; "
            "applying this plan would drop them with their data):"] if gaps else []
    return head + [f"  - {g}" for g in gaps]


def plan_text(d: dict[str, Any]) -> str:
    if not d["changes"] and not d["refusals"]:
        return "\n".join([f"No changes: the database matches the specs (fingerprint {d['fingerprint']})."] + unmanaged_text(d))
    out = [f"Plan: {len(d['changes'])} change(s), safe: {'yes' if d['safe'] else 'NO'}, fingerprint {d['fingerprint']}"]
    out += spec_gaps_text(d)
    for i, c in enumerate(d["changes"], 1):
        flags = ", ".join(c["hazards"]) or "no hazards"
        out.append(f"\n{i}. {c['description']}  [{c['kind']}{' BREAKING' if c['breaking'] else ''}; {flags}]")
        out += ["     " + line for line in c["sql"].splitlines()]
        if c["inverse_sql"] is None:
            out.append("     inverse: none (not reversible)")
    for r in d["refusals"]:
        out.append(f"\nREFUSED: {r}")
    return "\n".join(out + pipeline_text(d.get("pipeline")) + unmanaged_text(d))


def pipeline_text(p: dict[str, Any] | None) -> list[str]:
    """The pipeline tables' cross-layer plan: what `apply` runs through the saga instead of bare DDL."""
    if not p:
        return []
    out = ["\nPipeline tables: `apply` carries these through every layer (the saga `evolve` runs: registry -> "
           "lakehouse -> DDL -> connector -> verify, undone in reverse on failure):"]
    for t in p["tables"]:
        ops = ", ".join(f"{k} {v.get('name') or v.get('column') or v.get('from', '')}".strip()
                        for o in t["operations"] for k, v in o.items())
        out.append(f"  {t['table']}: {ops}")
        if t.get("error"):
            out.append(f"    {'REFUSED' if t['status'] == 'refused' else 'FAILED'} by pre-flight: {t['error']}")
            continue
        out.append(f"    pre-flight: {len(t['preflight'])} check(s) passed")
        out += [f"      {c['layer']}: {c['check']}" for c in t["preflight"]]
        for i, s in enumerate(t["steps"], 1):
            undo = f"  (undo: {s['compensation']})" if s.get("compensation") else ""
            out.append(f"    {i}. {s['layer']:<15} {s['action']}{undo}")
        out += [f"    warning: {w}" for w in t.get("warnings", [])]
    out += [f"  {t}: breaking column changes go to expand–contract (on_breaking_change: expand_contract); the "
            "connector skips the helper columns first, and `contract` runs through the saga"
            for t in p.get("expand_contract", [])]
    out += [f"  REFUSED: {r}" for r in p["refusals"]]
    return out


def unmanaged_text(d: dict[str, Any]) -> list[str]:
    """Objects the plan leaves alone because the spec cannot express them."""
    items = d.get("unmanaged") or []
    head = [f"\nUnmanaged (kept as they are, {len(items)}):"] if items else []
    return head + [f"  - {u['table']}: {u['kind']} {u['name']} ({u['reason']})" for u in items]


def plan_markdown(d: dict[str, Any]) -> str:
    head = f"**Plan** — {len(d['changes'])} change(s), safe: {'yes' if d['safe'] else '**no**'}, fingerprint `{d['fingerprint']}`\n\n"
    from migrate_assets.cli.output import fenced  # SQL in fenced blocks, never in a table cell (a PR comment)

    rows = [[c["table"], c["kind"], c["description"], ", ".join(c["hazards"]), "yes" if c["breaking"] else ""] for c in d["changes"]]
    body = markdown_table(["table", "kind", "change", "hazards", "breaking"], rows) if rows else "_No changes._"
    sql = "".join(f"\n\n**{i}. {c['description']}**\n\n{fenced(c['sql'])}\n\n"
                  + (f"inverse:\n\n{fenced(c['inverse_sql'])}" if c["inverse_sql"] else "inverse: none (not reversible)")
                  for i, c in enumerate(d["changes"], 1))
    tail = "".join(f"\n\n**Refused:** {r}" for r in d["refusals"])
    gaps = "".join(f"\n\n**Spec behind the database:** {g}" for g in d.get("spec_gaps") or [])
    return head + gaps + body + sql + tail + pipeline_markdown(d.get("pipeline"))


def pipeline_markdown(p: dict[str, Any] | None) -> str:
    from migrate_assets.cli.output import fenced

    if not p:
        return ""
    out = ["\n\n**Pipeline tables** — `apply` runs these through the evolution saga (registry → lakehouse → DDL "
           "→ connector → verify, compensated in reverse on failure):"]
    for t in p["tables"]:
        out.append(f"\n\n`{t['table']}`")
        if t.get("error"):
            out.append(f" — **{t['status']}** by pre-flight: {t['error']}")
            continue
        out.append(f" (pre-flight: {len(t['preflight'])} check(s) passed)\n")
        for i, s in enumerate(t["steps"], 1):  # a list, not a table: the DDL step's SQL goes in a fenced block
            undo = f" — undo: {s['compensation']}" if s.get("compensation") else ""
            if s["layer"] == "source_db":
                out.append(f"\n{i}. **{s['layer']}**{undo}\n\n{fenced(s['action'])}\n")
            else:
                out.append(f"\n{i}. **{s['layer']}** — {s['action']}{undo}")
    out += [f"\n\n**Refused:** {r}" for r in p["refusals"]]
    return "".join(out)


def apply_text(d: dict[str, Any]) -> str:
    verb = "Would apply" if d["dry_run"] else "Applied"
    piped = pipeline_apply_text(d.get("pipeline") or [])
    if not d["changes"]:
        return "\n".join(piped) or "No changes: the database already matches the specs."
    lines = [f"{verb} {len(d['changes'])} change(s) in {d['seconds']:.2f}s ({d['attempts']} attempt(s)):"]
    for c in d["changes"]:
        lines.append(f"  - {c['description']}")
        if d["dry_run"]:
            lines += ["      " + s for s in c["sql"].splitlines()]
    lines += [f"warning: {w}" for w in d["warnings"]]
    return "\n".join(piped + lines)


def apply_markdown(d: dict[str, Any]) -> str:
    rows = [[c["table"], c["kind"], c["description"], ", ".join(c["hazards"])] for c in d["changes"]]
    head = f"**{'Dry run' if d['dry_run'] else 'Applied'}**: {len(rows)} change(s)\n\n"
    warn = "".join(f"\n\n> warning: {w}" for w in d["warnings"])
    return head + (markdown_table(["table", "kind", "change", "hazards"], rows) if rows else "_No changes._") + warn


# -- commands ------------------------------------------------------------------------------------------------


def cmd_plan(args: argparse.Namespace) -> Result:
    from migrate_assets.resources import database

    cfg = load_config(args.config)
    plan = database.schema_plan(cfg, args.table, args.allow_drop_table)
    data = plan.to_dict()
    if cfg.pipelines and plan.changes:  # pipeline tables: the cross-layer plan `apply` runs (the layers load only now)
        from migrate_assets.app.schema_apply import plan_pipeline

        section = plan_pipeline(cfg, plan)
        if section is not None:
            data["pipeline"] = section
    code = 4 if args.check and not plan.empty else 0
    return Result(data=data, text=plan_text, markdown=plan_markdown, exit_code=code)


class NotApproved(SafetyRefusal):
    """`apply` was not approved at the prompt; nothing changed."""


def _interactive() -> bool:
    return sys.stdin.isatty() and sys.stderr.isatty()


def _approve(plan: Plan, pipeline: dict[str, Any] | None = None) -> None:
    """Show the plan (with the pipeline tables' saga steps) on stderr and ask; anything but `yes`/`y` refuses
    (exit 3, nothing changed)."""
    print(plan_text({**plan.to_dict(), "pipeline": pipeline}), file=sys.stderr)
    print(f"\nApply these {len(plan.changes)} change(s)? Type 'yes' to apply: ", end="", file=sys.stderr,
          flush=True)
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("yes", "y"):
        raise NotApproved(f"apply not approved (answer {answer!r}): nothing changed")


def _step(st: Any) -> None:
    if sys.stderr.isatty():
        print(f"  {st.id:<10} {st.status}", file=sys.stderr, flush=True)


def _pipeline_failed(runs: list[dict[str, Any]]) -> Result:
    last = runs[-1]
    data = {"dry_run": False, "changes": [], "pipeline": runs, "status": last["status"], "error": last.get("error"),
            "next": last.get("next")}
    print(f"error: the pipeline change of {last['table']} did not go through ({last.get('error')}); "
          f"{last.get('next') or ''}", file=sys.stderr)
    return Result(data=data, text=lambda d: "\n".join(pipeline_apply_text(d["pipeline"])), exit_code=1)


def pipeline_apply_text(runs: list[dict[str, Any]]) -> list[str]:
    out = []
    for r in runs:
        out.append(f"{r['table']}: {r['status']} (run {r['run_id']})")
        out += [f"  {s['layer']:<15} {s['status']}" + (f" ({s['seconds']:.2f}s)" if s.get("seconds") else "")
                for s in r["steps"]]
    return out


def cmd_apply(args: argparse.Namespace) -> Result:
    from migrate_assets.app.stored_plan import read_stored_plan, replan_stored
    from migrate_assets.resources import database
    from migrate_assets.schema.planner import build_plan

    cfg = load_config(args.config)
    stored = read_stored_plan(args.plan) if args.plan else None
    desired = database.specs(cfg)
    opts = database.plan_options(cfg, args.table, args.allow_drop_table)
    with database.schema_connection(cfg, read_only=args.dry_run) as conn:
        if stored is not None:  # refused when stale or when the specs now plan other changes
            plan = replan_stored(conn, stored, desired, opts, args.plan)
        else:
            plan = build_plan(conn, desired, opts)
        if not args.dry_run and not args.auto_approve and not plan.refusals:  # (refusals: apply_schema refuses)
            if not _interactive():
                raise UsageError("apply asks for approval on a terminal and stdin is not one: pass --auto-approve "
                                 "(scripts, CI), or --dry-run to only see the SQL; nothing changed",
                                 file="<command line>", key="--auto-approve")
            if plan.changes:
                piped = None
                if cfg.pipelines:  # what the saga will do for pipeline tables, before the user says yes
                    from migrate_assets.app.schema_apply import pipeline_section

                    piped = pipeline_section(conn, cfg, plan, desired)
                _approve(plan, piped)  # autocommit: no lock is held while the prompt waits
        if cfg.pipelines:  # pipeline tables' column changes go through the saga, never bare DDL
            from migrate_assets.app.schema_apply import apply_schema

            applied = apply_schema(conn, cfg, plan, desired, opts, dry_run=args.dry_run, on_step=_step)
            if applied.result is None:  # a pipeline run did not succeed: nothing ran directly
                return _pipeline_failed(applied.pipeline)
            plan, result, expanded, runs = applied.plan, applied.result, applied.expanded, applied.pipeline
        else:
            plan, result, expanded = database.apply_schema(conn, cfg, plan, desired, opts, dry_run=args.dry_run)
            runs = []
    data = {
        "dry_run": result.dry_run,
        "fingerprint": plan.fingerprint,
        "safe": plan.safe,
        "changes": [c.to_dict() for c in result.applied],
        "warnings": result.warnings,
        "attempts": result.attempts,
        "seconds": round(result.seconds, 3),
        "expanded": expanded,
        "pipeline": runs,
    }
    warnings = result.warnings + [
        f"{e['table']}: breaking column changes handed to expand–contract (change file {e['change_file']}); "
        f"run `migrate-assets contract {e['change_file']}` once clients use the new shape" for e in expanded]
    return Result(data=data, text=apply_text, markdown=apply_markdown, warnings=warnings)

