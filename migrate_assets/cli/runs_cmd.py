"""`migrate-assets runs list|show RUN`: the evolution runs kept in `migrate_assets_evolutions` (read only).

`--resume RUN` and `--rollback RUN` need a run id; this is where it is found, with each run's status, table,
steps, timings and errors. Nothing here writes: a database without the run table simply has no runs.
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from migrate_assets.cli.lazy import load_config
from migrate_assets.cli.output import Result, markdown_table, safe_text
from migrate_assets.errors import InvalidInputError, LayerUnreachableError, Problem

#: what to run next for a run in this stored status
NEXT = {
    "interrupted": "evolve --resume {id}  (or --rollback {id})",
    "running": "evolve --resume {id}  (if no process still runs it; or --rollback {id})",
    "failed": "evolve --rollback {id}",
    "rollback_failed": "evolve --rollback {id}",
}

if TYPE_CHECKING:  # psycopg loads when a handler runs, not for `--help`
    from datetime import datetime

    from psycopg import sql


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("runs", help="list evolution runs, or show one (status, steps, timings, errors)",
                       description="Evolution runs stored in the database (newest first).\n\nexamples:\n"
                       "  migrate-assets runs list --limit 5\n  migrate-assets runs show 3f2a9c…  --format json",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    actions = p.add_subparsers(dest="runs_action", metavar="ACTION", required=True)
    ls = actions.add_parser("list", help="the newest runs: id, table, status, steps done, when")
    ls.add_argument("--limit", type=int, default=20, help="how many runs (default 20)")
    ls.add_argument("--table", help="only runs of this table (schema.table)")
    ls.set_defaults(func=run_list)
    show = actions.add_parser("show", help="one run: every step with its status, seconds, attempts and error")
    show.add_argument("run", metavar="RUN", help="a run id (a unique prefix is enough)")
    show.set_defaults(func=run_show)


def _rows(dsn: str, schema: str, where: sql.Composable, params: tuple[Any, ...], limit: int) -> list[dict[str, Any]]:
    import psycopg
    from psycopg import sql

    from migrate_assets.evolution.store import TABLE

    try:
        with psycopg.connect(dsn, autocommit=True, connect_timeout=5,
                             application_name="migrate-assets runs") as conn:
            conn.execute("SET default_transaction_read_only = on")
            found = conn.execute("SELECT to_regclass(%s)", (sql.Identifier(schema, TABLE).as_string(conn),)).fetchone()
            if not found or found[0] is None:
                return []
            cur = conn.execute(
                sql.SQL("SELECT run_id, table_name, status, steps, error, failed_step, created_at, updated_at "
                        "FROM {} WHERE {} ORDER BY created_at DESC LIMIT %s").format(
                    sql.Identifier(schema, TABLE), where),
                (*params, limit))
            names = [d.name for d in cur.description or []]
            return [dict(zip(names, r, strict=True)) for r in cur.fetchall()]
    except psycopg.OperationalError as exc:
        raise LayerUnreachableError("run store (PostgreSQL)", (str(exc).strip().splitlines() or [""])[0]) from None


def _iso(t: datetime | None) -> str | None:
    return t.isoformat(timespec="seconds") if t else None


def _summary(r: dict[str, Any]) -> dict[str, Any]:
    steps = r["steps"] or []
    return {"run_id": r["run_id"], "table": r["table_name"], "status": r["status"],
            "steps_done": sum(1 for s in steps if s.get("status") == "done"), "steps": len(steps),
            "seconds": round(sum(float(s.get("seconds") or 0) for s in steps), 3),
            "failed_step": r["failed_step"], "error": r["error"],
            "created_at": _iso(r["created_at"]), "updated_at": _iso(r["updated_at"])}


def run_list(args: argparse.Namespace) -> Result:
    from psycopg import sql

    cfg = load_config(args.config)
    if args.limit < 1:
        raise InvalidInputError([Problem(file="<command line>", key="--limit", message="must be at least 1")])
    where: sql.Composable = sql.SQL("true")
    params: tuple[Any, ...] = ()
    if args.table:
        qualified = args.table if "." in args.table else f"{cfg.database.schema_}.{args.table}"
        where, params = sql.SQL("table_name = %s"), (qualified,)
    rows = _rows(cfg.database.dsn, cfg.database.schema_, where, params, args.limit)
    return Result({"runs": [_summary(r) for r in rows]}, text=_list_text, markdown=_list_md)


def run_show(args: argparse.Namespace) -> Result:
    from psycopg import sql

    cfg = load_config(args.config)
    rows = _rows(cfg.database.dsn, cfg.database.schema_, sql.SQL("starts_with(run_id, %s)"), (args.run,), 2)
    exact = [r for r in rows if r["run_id"] == args.run]
    if exact:
        rows = exact
    if len(rows) != 1:
        what = "no evolution run" if not rows else "more than one evolution run starts with"
        raise InvalidInputError([Problem(file="<command line>", key="RUN", message=f"{what} {args.run!r}")])
    r = rows[0]
    data = _summary(r)
    data["steps"] = [{"id": s.get("id"), "layer": s.get("layer"), "status": s.get("status"),
                      "seconds": s.get("seconds"), "attempts": s.get("attempts"), "error": s.get("error"),
                      "compensation": s.get("compensation")} for s in (r["steps"] or [])]
    if r["status"] in NEXT:
        data["next"] = "migrate-assets " + NEXT[r["status"]].format(id=r["run_id"])
    return Result(data, text=_show_text, markdown=_show_md)


def _list_text(d: dict[str, Any]) -> str:
    if not d["runs"]:
        return "no evolution runs"
    lines = [f"{'RUN':<36}  {'STATUS':<15}  {'STEPS':>5}  {'SECONDS':>8}  {'STARTED':<25}  TABLE"]
    for r in d["runs"]:
        lines.append(f"{r['run_id']:<36}  {r['status']:<15}  {r['steps_done']:>2}/{r['steps']:<2}  "
                     f"{r['seconds']:>8.2f}  {r['created_at'] or '':<25}  {r['table']}")
    return safe_text("\n".join(lines))


def _list_md(d: dict[str, Any]) -> str:
    return markdown_table(["run", "status", "steps done", "seconds", "started", "table"],
                          [[r["run_id"], r["status"], f"{r['steps_done']}/{r['steps']}", r["seconds"],
                            r["created_at"], r["table"]] for r in d["runs"]])


def _show_text(d: dict[str, Any]) -> str:
    lines = [f"run {d['run_id']}: {d['status']}  table {d['table']}",
             f"  started {d['created_at']}, last saved {d['updated_at']}, {d['seconds']:.2f}s in steps"]
    for s in d["steps"]:
        extra = f", {s['attempts']} attempts" if (s["attempts"] or 0) > 1 else ""
        lines.append(f"  {s['id']:<22} {s['layer'] or '':<16} {s['status']:<20} {float(s['seconds'] or 0):>7.2f}s"
                     f"{extra}")
        if s["error"]:
            lines.append(f"      error: {s['error']}")
        if s["compensation"]:
            lines.append(f"      undo: {s['compensation']}")
    if d["error"]:
        lines.append(f"  error ({d['failed_step'] or 'run'}): {d['error']}")
    if d.get("next"):
        lines.append(f"  next: {d['next']}")
    return safe_text("\n".join(lines))


def _show_md(d: dict[str, Any]) -> str:
    head = f"**run `{d['run_id']}`**: {d['status']} — table `{d['table']}`\n\n"
    return head + markdown_table(["step", "layer", "status", "seconds", "attempts", "error"],
                                 [[s["id"], s["layer"], s["status"], s["seconds"], s["attempts"], s["error"] or ""]
                                  for s in d["steps"]])
