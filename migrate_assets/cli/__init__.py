"""The `migrate-assets` command.

Each area registers its sub-commands from its own module (`stack_cmd`, `schema_cmd`, `migrations_cmd`,
`expand_cmd`, `evolve_cmd`); this module only parses global flags, dispatches, and maps typed errors to exit
codes (0 done, 1 runtime failure, 2 invalid input, 3 refused by a safety rule, 4 drift).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence

from migrate_assets.cli import evolve_cmd, expand_cmd, migrations_cmd, schema_cmd, stack_cmd
from migrate_assets.cli.output import FORMATS, emit_error, emit_result
from migrate_assets.errors import MigrateAssetsError, UsageError

MODULES = (stack_cmd, schema_cmd, migrations_cmd, expand_cmd, evolve_cmd)


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2, in the chosen format) instead of exiting by itself."""

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", file="<command line>")


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="migrate-assets", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", help="path to migrate.yaml (default: $MIGRATE_ASSETS_CONFIG, ./migrate.yaml)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (json is a stable contract)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for module in MODULES:
        module.register(sub)
    return parser


def _format_from_argv(argv: Sequence[str]) -> str:
    for i, a in enumerate(argv):
        if a == "--format" and i + 1 < len(argv) and argv[i + 1] in FORMATS:
            return argv[i + 1]
        if a.startswith("--format=") and a.split("=", 1)[1] in FORMATS:
            return a.split("=", 1)[1]
    return "text"


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    fmt = _format_from_argv(argv)
    try:
        args = build_parser().parse_args(argv)
        logging.basicConfig(
            level=logging.DEBUG if args.verbose else logging.INFO,
            stream=sys.stderr,
            format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        )
        for noisy in ("httpx", "httpcore", "pyiceberg", "urllib3"):
            logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
        if not getattr(args, "func", None):
            raise UsageError("a command is required; see `migrate-assets --help`", file="<command line>")
        result = args.func(args)
        return emit_result(result, args.format)
    except MigrateAssetsError as exc:
        return emit_error(exc, fmt)
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
