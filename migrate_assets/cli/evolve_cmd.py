"""`migrate-assets evolve` and `migrate-assets verify`: pipeline evolution across all layers (SPEC §6)."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from migrate_assets.cli import argtypes
from migrate_assets.cli.lazy import load_config
from migrate_assets.cli.output import Result, interrupt_signal, interrupted, markdown_table, safe_text
from migrate_assets.errors import EvolutionFailedError, UsageError

if TYPE_CHECKING:
    from migrate_assets.app.evolve import ChangeHazards
    from migrate_assets.config import ProjectConfig
    from migrate_assets.evolution.store import StepState

# the engine and the real clients (pyiceberg, confluent-kafka) load only when these commands run, so
# `migrate-assets migrations up` does not pay ~1 s of imports for layers it never touches

log = logging.getLogger("migrate_assets.evolve")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("evolve", help="carry a change through registry → lakehouse → DDL → connector → verify")
    p.add_argument("change_files", nargs="*", metavar="CHANGE_FILE",
                   help="change file (operations as for expand); several: one table each, every table's "
                        "pre-flight passes before any table changes, then they evolve one after another")
    p.add_argument("--dry-run", action="store_true",
                   help="print the plan after pre-flight (with --resume/--rollback: what they would do) and stop; "
                        "nothing is written anywhere")
    g = p.add_mutually_exclusive_group()
    g.add_argument("--resume", metavar="RUN", help="continue a persisted run (refused once its undo has begun)")
    g.add_argument("--rollback", metavar="RUN", help="compensate every completed step of a persisted run")
    p.add_argument("--allow-irreversible", action="store_true", help="run changes that have no lossless inverse")
    p.add_argument("--allow-data-loss", action="store_true",
                   help="let an undo drop columns that hold values or tables that hold rows (refused otherwise)")
    p.set_defaults(func=run_evolve)

    v = sub.add_parser("verify", help="compare every pipeline table across all layers (exit 4 on drift)")
    v.add_argument("--table", action="append", help="only this pipeline table (repeatable)")
    v.add_argument("--probe", action="store_true", help="also read the newest event of each table's topic")
    v.add_argument("--progress-bound", type=argtypes.seconds, default=20.0,
                   help="seconds a slot may take to show progress (default 20)")
    v.add_argument("--restart-failed-sink", action="store_true",
                   help="restart a named sink's FAILED task(s) once before checking its rows (Kafka Connect never "
                        "does; without this flag verify changes nothing)")
    v.set_defaults(func=run_verify)


def _read_only(ctx: Any, on: bool) -> None:
    from migrate_assets.resources.postgres import PostgresSource

    if on and isinstance(ctx.source, PostgresSource):
        ctx.source.read_only = True


def _progress(st: StepState) -> None:
    extra = f" ({st.seconds:.2f}s)" if st.status == "done" else ""
    if st.error and st.status == "failed":
        extra = f": {st.error}"
    if st.compensation:
        extra = f": {st.compensation}"
    print(safe_text(f"  {st.id:<10} {st.status}{extra}"), file=sys.stderr, flush=True)


def _record_state(data: dict[str, Any], store: Any, rec: Any) -> None:
    """Say whether the run's record reached the database; if PostgreSQL was gone, try once more, and else say
    where the record is and what to do (the saga wrote it to a spill file)."""
    if rec.run_id in store.unsaved:
        store.save(rec)
    spill = store.unsaved.get(rec.run_id)
    data["record"] = {"saved": spill is None, "spill_file": str(spill) if spill else None}
    if spill:
        data["next"] = (f"PostgreSQL could not be written: the run's record is in {spill}. Once PostgreSQL is "
                        f"back, `migrate-assets evolve --rollback {rec.run_id}` (or `--resume {rec.run_id}`) "
                        "stores it and finishes the run. " + data.get("next", ""))


def run_evolve(args: argparse.Namespace) -> Result:
    from migrate_assets.app import evolve as app
    from migrate_assets.app.fanout import DatabaseLayerLock
    from migrate_assets.app.step_hazards import plan_hazards
    from migrate_assets.evolution import run as evo
    from migrate_assets.evolution.saga import RunInterrupted
    from migrate_assets.resources import project

    cfg = load_config(args.config)
    ctx = project.build_context(cfg, log=log.info)
    _read_only(ctx, args.dry_run)  # a dry run reads the source database in READ ONLY transactions
    ctx.allow_data_loss = args.allow_data_loss
    retry = project.retry_policy(cfg)
    store = project.store(cfg)
    lock = DatabaseLayerLock(cfg)  # another process may evolve another table of this database meanwhile
    try:
        try:
            if args.resume or args.rollback:
                if args.change_files:
                    raise UsageError("--resume/--rollback take a RUN id, not a change file", file="<command line>")
                if args.resume:
                    rec = app.resume_run(args.resume, project.targets(cfg), ctx, store, retry, lock, _progress,
                                         dry_run=args.dry_run)
                else:
                    rec = app.rollback_run(args.rollback, ctx, store, retry, lock, _progress, dry_run=args.dry_run)
                data = evo.result_dict(rec)
                if args.resume and not args.dry_run:  # a resumed run that succeeded keeps the spec true too
                    from migrate_assets.app import spec_writeback

                    if (written := spec_writeback.after_resume(cfg, rec.plan, rec.status == "succeeded")) is not None:
                        data["spec"] = written
                _add_step_sql(data, rec.plan, plan_hazards(rec.plan, ctx, rollback=bool(args.rollback)))
            else:
                return _evolve_tables(args, cfg, ctx, store, retry, lock)
        except RunInterrupted as stop:
            return _interrupted(stop.record, store)
        if rec.status != "dry_run":
            _record_state(data, store, rec)
    finally:
        store.close()
    code = 0 if data["status"] in ("succeeded", "dry_run") else 1
    if args.rollback and data["status"] == "rolled_back":
        code = 0
    return _finish(args, data, code)


def _finish(args: argparse.Namespace, data: dict[str, Any], code: int) -> Result:
    if interrupted():  # the signal came back as a layer's error (psycopg cancels the query): still an interrupt
        data["interrupted"], code = interrupt_signal()
    if code and args.format != "json":
        # the report still prints; the exit code says the evolution did not go through
        err = EvolutionFailedError(data["run_id"], data.get("failed_step") or "?", data.get("error") or "")
        print(f"error: {err}", file=sys.stderr)
    return Result(data, text=_evolve_text, markdown=_evolve_md, exit_code=code)


def _interrupted(rec: Any, store: Any) -> Result:
    """SIGINT/SIGTERM mid-run: the run's state as one report (every layer's step), exit 130 (SIGINT) or 143
    (SIGTERM); the record says `interrupted`, and `--rollback`/`--resume` probe the step that was running."""
    from migrate_assets.evolution import run as evo

    name, code = interrupt_signal()
    data = evo.result_dict(rec)
    data["interrupted"] = name
    data["error"] = data.get("error") or f"interrupted by {name}"
    _record_state(data, store, rec)
    print(f"error: evolution {rec.run_id} interrupted by {name}; {data.get('next', '')}", file=sys.stderr)
    return Result(data, text=_evolve_text, markdown=_evolve_md, exit_code=code)


def _evolve_tables(args: argparse.Namespace, cfg: ProjectConfig, ctx: Any, store: Any, retry: Any,
                   lock: Any) -> Result:
    """The change files (one table each), or without any: the pipeline tables declared in the specs but absent
    from the database, and those the connector does not capture yet, join the pipeline. Every table's pre-flight
    passes before any table changes (`app.evolve`); then they evolve one after another, each under the layer
    lock, and the first that does not succeed ends the launch."""
    from dataclasses import replace

    from migrate_assets.app import evolve as app
    from migrate_assets.app import spec_writeback as spec  # specs stay true (issue 16)
    from migrate_assets.app.step_hazards import plan_hazards
    from migrate_assets.evolution import run as evo
    from migrate_assets.resources import database, project

    details: dict[str, app.ChangeHazards] = {}
    if args.change_files:
        changes = [database.read_change(cfg, f) for f in args.change_files]
        for c in changes:  # before the run: hazards are of the live shape
            details[c.qualified] = app.change_hazards(cfg, c)
        planned = app.plan_changes(changes, ctx, lambda table: project.target(cfg, table),
                                   project.policy(cfg, args.allow_irreversible), retry, "<command line>")
        for p in planned:  # and the hazards of each undo's DDL
            details[p.table] = replace(details[p.table], undo_hazards=plan_hazards(p.record.plan, ctx).undo_hazards)
    else:
        pending = evo.tables_to_add(project.targets(cfg), database.specs(cfg, missing_ok=True), ctx)
        database.check_specs(cfg, [s for _, s in pending if s is not None])  # their SQL, before any DDL
        planned = app.plan_new_tables(pending, ctx, project.policy(cfg), retry, "<command line>")
        details = {p.table: plan_hazards(p.record.plan, ctx) for p in planned}  # their DDL, as plan tags it
    by_table = {c.qualified: c for c in changes} if args.change_files and not args.dry_run else {}
    before = {t: spec.live_table(cfg, t) for t in by_table}
    outcome = app.evolve_tables(planned, ctx, store, retry, lock, _progress, dry_run=args.dry_run)
    runs = []
    for p in outcome.runs:
        data = evo.result_dict(p.record)
        if p.table in by_table:
            data["spec"] = spec.after_command(cfg, by_table[p.table], before[p.table], p.record.status == "succeeded")
        data["preflight"] = [{"layer": layer, "check": c} for layer, c in p.report.checks]
        if args.change_files:
            data["fingerprints"] = p.report.snapshot.fingerprints()
        _add_step_sql(data, p.record.plan, details.get(p.table))
        if p.record.status != "dry_run":
            _record_state(data, store, p.record)
        runs.append(data)
    data = runs[0] if len(runs) == 1 else {**runs[-1], "runs": runs}
    if outcome.not_started:
        data["not_started"] = list(outcome.not_started)
    return _finish(args, data, 0 if outcome.succeeded else 1)


def _add_step_sql(data: dict[str, Any], plan: dict[str, Any], details: ChangeHazards | None) -> None:
    """Each step of the report with the SQL it runs and the SQL that undoes it (`sql`, `inverse_sql`: null when
    none), its hazards as `plan` tags the same DDL, and the registry subjects it touches (`subjects`)."""
    planned = plan.get("steps", [])
    for step, p in zip(data.get("steps", []), planned, strict=False):
        action = p.get("action", {})
        kind = action.get("kind")
        step["sql"] = step["inverse_sql"] = None
        step["hazards"], step["undo_hazards"], step["subjects"] = [], [], []
        if kind == "source_ddl":
            step["sql"] = _sql(action.get("statements"))
            step["inverse_sql"] = _sql(action.get("inverse_statements"))
            step["hazards"] = list(details.hazards) if details else []
            step["undo_hazards"] = list(details.undo_hazards) if details else []
        elif kind in ("register_schema", "soft_delete_version") and action.get("subject"):
            subject = action["subject"]
            step["subjects"] = [subject]
            if details and details.key_changes and subject.endswith("-value"):
                # the converter registers the new key schema with the first event after the DDL
                step["subjects"].append(subject[: -len("-value")] + "-key")


def _sql(statements: list[str] | None) -> str | None:
    if statements is None:
        return None
    return "\n".join(s.rstrip().rstrip(";") + ";" for s in statements)


def _seconds(s: dict[str, Any]) -> str:
    """Timing only for a step that ran: a pending step (or a dry run) has none to show."""
    if s["status"] in ("pending", "skipped") or s.get("seconds") is None:
        return ""
    return f" ({s['seconds']:.2f}s)"


def _title(d: dict[str, Any]) -> str:
    if d["status"] == "dry_run":
        return f"dry run of the evolution of {d['table']}: nothing was changed, no run was recorded"
    return f"evolution {d['run_id']} of {d['table']}: {d['status']}"


def _several(d: dict[str, Any], one: Callable[[dict[str, Any]], str], sep: str) -> str:
    """Every table's report of a launch of several, then the tables whose turn never came."""
    out = sep.join(one(r) for r in d.get("runs") or [d])
    if d.get("not_started"):
        out += f"{sep}not started (an earlier table did not evolve): {', '.join(d['not_started'])}"
    return out


def _evolve_text(d: dict[str, Any]) -> str:
    return _several(d, _run_text, "\n\n")


def _evolve_md(d: dict[str, Any]) -> str:
    return _several(d, _run_md, "\n\n---\n\n")


def _run_text(d: dict[str, Any]) -> str:
    lines = [_title(d)]
    for c in d.get("preflight", []):
        lines.append(f"  pre-flight {c['layer']}: {c['check']}")
    for s in d["steps"]:
        rev = "" if s["reversible"] else " [irreversible]"
        tags = f"  [{', '.join(s['hazards'])}]" if s.get("hazards") else ""
        what = "run SQL:" if s.get("sql") else s["action"]
        lines.append(f"  [{s['status']:<11}] {s['layer']:<15} {what}{rev}{_seconds(s)}{tags}")
        lines += [f"  {'':15} {line}" for line in (s.get("sql") or "").splitlines()]
        if s.get("subjects"):
            lines.append(f"  {'':13} registry subject(s): {', '.join(s['subjects'])}")
        if s.get("inverse_sql"):
            undo_tags = f"  [{', '.join(s['undo_hazards'])}]" if s.get("undo_hazards") else ""
            lines.append(f"  {'':13} undo ({s['compensation']}):{undo_tags}")
            lines += [f"  {'':15} {line}" for line in s["inverse_sql"].splitlines()]
        else:
            lines.append(f"  {'':13} undo: {s['compensation']}")
        if s.get("error") and s["status"] in ("failed", "compensation_failed"):
            lines.append(f"  {'':13} error: {s['error']}")
    for layer in d.get("skipped_layers", []):
        lines.append(f"  [skipped    ] {layer} (not configured)")
    lines += [f"  warning: {w}" for w in d.get("warnings", [])]
    if d.get("error"):
        lines.append(f"failed at {d.get('failed_step')}: {d['error']}")
    if d.get("dry_run_actions") is not None:
        lines.append("dry run, nothing was changed; would do:" if d["dry_run_actions"] else
                     "dry run, nothing was changed; nothing to do")
        lines += [f"  - {a}" for a in d["dry_run_actions"]]
    if d.get("next"):
        lines.append(f"next: {d['next']}")
    return "\n".join(lines)


def _run_md(d: dict[str, Any]) -> str:
    """A pull-request comment: a summary table without SQL, then each step's SQL and undo SQL in fenced
    ```sql blocks."""
    from migrate_assets.cli.output import fenced

    title = _title(d)
    out = [f"**{title}**", ""]
    rows = [[i, s["layer"], "SQL below" if s.get("sql") else s["action"], s["status"],
             ", ".join(s.get("hazards") or []), ", ".join(s.get("subjects") or []),
             "yes" if s["reversible"] else "**no**", _seconds(s).strip(" ()")]
            for i, s in enumerate(d["steps"], 1)]
    out.append(markdown_table(["#", "layer", "action", "status", "hazards", "registry subjects", "reversible",
                               "seconds"], rows))
    for i, s in enumerate(d["steps"], 1):
        if s.get("sql"):
            out += ["", f"**{i}. {s['layer']}**" + (f" — hazards: {', '.join(s['hazards'])}" if s.get("hazards")
                                                     else ""), "", fenced(s["sql"])]
        if s.get("inverse_sql"):
            undo_tags = f" — hazards: {', '.join(s['undo_hazards'])}" if s.get("undo_hazards") else ""
            out += ["", f"undo ({s['compensation']}){undo_tags}:", "", fenced(s["inverse_sql"])]
        elif s.get("sql"):
            out += ["", f"undo: {s['compensation']}"]
    out += [f"\n> warning: {w}" for w in d.get("warnings", [])]
    if d.get("error"):
        out.append(f"\n**failed at {d.get('failed_step')}:** {d['error']}")
    if d.get("dry_run_actions"):
        out += ["", "would do:"] + [f"- {a}" for a in d["dry_run_actions"]]
    if d.get("next"):
        out.append(f"\nnext: `{d['next']}`")
    return "\n".join(out)


def run_verify(args: argparse.Namespace) -> Result:
    from migrate_assets.app.verify import verify_project
    from migrate_assets.resources import project

    cfg = load_config(args.config)
    ctx = project.build_context(cfg, log=log.info)
    _read_only(ctx, True)  # verify only reads
    result = verify_project(cfg, ctx, args.table or [], file="<command line>", key="--table",
                            progress_bound=args.progress_bound, probe=args.probe,
                            restart_failed_sink=args.restart_failed_sink)
    data = result.to_dict()
    return Result(data, text=_verify_text, markdown=_verify_md, exit_code=_verify_exit(data["tables"]))


def _verify_exit(results: list[dict[str, Any]]) -> int:
    """0 consistent; else the verdict's exit code (1: a layer could not be read, 4: drift), its reason on stderr."""
    from migrate_assets.app.verify import verdict_error

    err = verdict_error(results)
    if err is None:
        return 0
    print(f"error: {safe_text(str(err))}", file=sys.stderr)
    return err.exit_code


def _verify_text(d: dict[str, Any]) -> str:
    down = any(v["status"] == "unreachable" for t in d["tables"] for v in t["layers"].values())
    verdict = "consistent" if d["consistent"] else "NOT VERIFIED (a layer is unreachable)" if down else "DRIFT"
    lines = [f"pipeline {verdict}"]
    for t in d["tables"]:
        lines.append(f"  {t['table']}")
        for layer, v in t["layers"].items():
            lines.append(f"    {layer:<16} {v['status']}")
            lines += [f"      - {x}" for x in v["differences"]]
    return "\n".join(lines)


def _verify_md(d: dict[str, Any]) -> str:
    rows = [[t["table"], layer, v["status"], "; ".join(v["differences"])]
            for t in d["tables"] for layer, v in t["layers"].items()]
    return markdown_table(["table", "layer", "status", "differences"], rows)
