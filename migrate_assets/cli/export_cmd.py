"""`migrate-assets export [--schema S …] [--out DIR] [--force]`: spec files from the live database, to adopt an
existing database (export, commit the files, `plan --check` in CI).

One file per table (`<schema>.<table>.yaml`) in the documented spec format, in Postgres' own spelling, so that
`plan` against the same database plans nothing. Read-only session: catalog queries only. Everything the format
cannot express is listed (name, kind, why) in the output, never skipped silently; the plan keeps such objects as
they are.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from migrate_assets.cli.lazy import load_config
from migrate_assets.cli.output import Result, markdown_table, safe_text
from migrate_assets.errors import InvalidInputError, Problem


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("export", help="write spec files from the live database (adopt an existing database)",
                       description="Write one spec file per table of the live database, in the spec format.\n\n"
                       "examples:\n  migrate-assets export --out schemas\n"
                       "  migrate-assets export --schema sales --schema billing --out schemas --force",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--schema", action="append", default=[], metavar="S",
                   help="export this schema (repeatable; default: the configured database schema)")
    p.add_argument("--out", metavar="DIR", help="directory for the files (default: the first spec path of the config)")
    p.add_argument("--force", action="store_true", help="replace files that already exist")
    p.set_defaults(func=cmd_export)


def export_text(d: dict[str, Any]) -> str:
    out = [f"Exported {d['tables']} table(s) to {d['out']} ({len(d['files'])} file(s))."]
    items = d["not_expressed"]
    if items:
        out.append(f"\nNot expressed in the spec format ({len(items)}; the plan keeps them as they are):")
        out += [safe_text(f"  - {u['table']}: {u['kind']} {u['name']} ({u['reason']})") for u in items]
    return "\n".join(out)


def export_markdown(d: dict[str, Any]) -> str:
    rows = [[u["table"], u["kind"], u["name"], u["reason"]] for u in d["not_expressed"]]
    head = f"**Exported** {d['tables']} table(s) to `{d['out']}`\n\n"
    return head + (markdown_table(["schema / table", "kind", "name", "why"], rows) if rows else "_Everything expressed._")


def cmd_export(args: argparse.Namespace) -> Result:
    from migrate_assets.resources import database
    from migrate_assets.schema.export import export, write

    cfg = load_config(args.config)
    schemas = args.schema or [cfg.database.schema_]
    if args.out:
        out = Path(args.out)
    elif cfg.schemas:
        out = cfg.path(cfg.schemas[0])
    else:
        raise InvalidInputError([Problem("<command line>", "no --out given and the config lists no spec path", "--out")])
    with database.schema_connection(cfg, read_only=True) as conn:
        result = export(conn, schemas, cfg.database.schema_)
    try:
        write(result, out, overwrite=args.force)
    except FileExistsError as exc:
        raise InvalidInputError([Problem(str(out), f"would replace existing spec files ({exc}); pass --force", "--out")]) from None
    data = {**result.to_dict(), "out": str(out)}
    return Result(data=data, text=export_text, markdown=export_markdown)
