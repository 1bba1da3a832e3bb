"""The `migrate-assets` command.

Each area registers its sub-commands from its own module (`stack_cmd`, `schema_cmd`, `migrations_cmd`,
`expand_cmd`, `evolve_cmd`); this module only parses global flags, dispatches, and maps typed errors to exit
codes (0 done, 1 runtime failure, 2 invalid input, 3 refused by a safety rule, 4 drift).

Start-up is kept small: building the parser imports only argparse and the command modules, whose top level holds
just their flags and renderers; each handler imports the engine, the config model and the clients it needs when
it runs (`--help` and `--version` load no pydantic, psycopg, Dagster, pyiceberg or confluent-kafka;
tests/cli/test_startup_imports.py holds this).
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from importlib import import_module
from typing import IO, Any

from migrate_assets.cli.output import (
    FORMATS,
    SafeFormatter,
    dump_json,
    emit_error,
    emit_failure,
    emit_result,
    install_signal_handlers,
    interrupt_signal,
    interrupted,
)
from migrate_assets.errors import MigrateAssetsError, UsageError

#: the command modules, in the order their commands appear in `--help`
MODULES = ("stack_cmd", "schema_cmd", "export_cmd", "migrations_cmd", "expand_cmd", "evolve_cmd", "runs_cmd",
           "pipeline_cmd", "config_cmd")


class _HelpRequested(Exception):  # noqa: N818 - a signal to main, not an error
    def __init__(self, prog: str, text: str) -> None:
        super().__init__(prog)
        self.prog, self.text = prog, text


class _Parser(argparse.ArgumentParser):
    """argparse that raises UsageError (exit 2, in the chosen format) instead of exiting by itself; with
    `--format json`, `--help` becomes one JSON document ({"command", "help"}) instead of text."""

    json_help = False

    def error(self, message: str) -> None:  # type: ignore[override]
        raise UsageError(f"{self.prog}: {message}", file="<command line>")

    def print_help(self, file: IO[str] | None = None) -> None:  # type: ignore[override]
        if _Parser.json_help:
            raise _HelpRequested(self.prog, self.format_help())
        super().print_help(file)


def build_parser(argv: Sequence[str] | None = None) -> argparse.ArgumentParser:
    """The whole parser; given the command line `argv`, only the commands named on it are built in full (the
    others only list their name and help, which is all `--help` shows of them)."""
    parser = _Parser(prog="migrate-assets", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--config", help="path to migrate.yaml (default: $MIGRATE_ASSETS_CONFIG, ./migrate.yaml)")
    parser.add_argument("--format", choices=FORMATS, default="text", help="output format (json is a stable contract)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging on stderr")
    parser.add_argument("--version", action="store_true", dest="show_version", help="print the version and exit")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    target: Any = sub if argv is None else _Outline(sub, set(argv))
    for name in MODULES:
        import_module(f"{__name__}.{name}").register(target)
    _accept_global_flags_anywhere(parser)
    return parser


class _Outline:
    """The sub-command registry given to the command modules when the command line is known.

    argparse hands the rest of the line to a sub-command only when its exact name is on it, so a command whose
    name is not there is never parsed: it gets an empty parser (its line in `--help` and in the choices of an
    unknown-command error stay the same) and its flags and sub-commands are not built. Building every parser
    costs more than the rest of `--help` (argparse looks up a translation for each flag).
    """

    def __init__(self, sub: argparse._SubParsersAction, words: set[str]) -> None:  # type: ignore[type-arg]
        self._sub, self._words = sub, words

    def add_parser(self, name: str, **kwargs: Any) -> Any:
        if name in self._words:
            return self._sub.add_parser(name, **kwargs)
        listed = {k: v for k, v in kwargs.items() if k in ("help", "aliases")}
        self._sub.add_parser(name, add_help=False, **listed)._outline = True  # type: ignore[attr-defined]
        return _Unbuilt()


class _Unbuilt:
    """Takes the calls meant for the parser of a command that is not on the command line, and builds nothing."""

    def __getattr__(self, name: str) -> Any:
        return self._ignore

    def _ignore(self, *args: Any, **kwargs: Any) -> _Unbuilt:
        return self


def _accept_global_flags_anywhere(parser: argparse.ArgumentParser) -> None:
    """`plan --format json` works like `--format json plan`: every sub-command (at any depth) also takes the
    global flags; SUPPRESS keeps a flag given before the sub-command unless it is given again after it."""
    for action in parser._actions:
        if not isinstance(action, argparse._SubParsersAction):
            continue
        for child in set(action.choices.values()):
            if getattr(child, "_outline", False):
                continue
            child.add_argument("--config", default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            child.add_argument("--format", choices=FORMATS, default=argparse.SUPPRESS, help=argparse.SUPPRESS)
            child.add_argument("-v", "--verbose", action="store_true", default=argparse.SUPPRESS,
                               help=argparse.SUPPRESS)
            _accept_global_flags_anywhere(child)


def _version() -> str:
    """The package's version (`migrate_assets.__version__`, which a test holds equal to the installed
    distribution's: reading the metadata would cost more than the rest of `--version`)."""
    from migrate_assets import __version__

    return __version__


def _format_from_argv(argv: Sequence[str]) -> str:
    """The format asked for (the last `--format` wins, as in argparse), for errors raised before parsing ends."""
    found = "text"
    for i, a in enumerate(argv):
        if a == "--format" and i + 1 < len(argv) and argv[i + 1] in FORMATS:
            found = argv[i + 1]
        if a.startswith("--format=") and a.split("=", 1)[1] in FORMATS:
            found = a.split("=", 1)[1]
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Run one command. With `--format json` stdout holds exactly one JSON document on every path: the result,
    an error (typed, a database that cannot be reached, anything unexpected), an interrupt, or `--help`."""
    if argv is None:  # the real command: SIGTERM unwinds like SIGINT (not inside a host process's main())
        install_signal_handlers()
    argv = list(sys.argv[1:] if argv is None else argv)
    fmt = _format_from_argv(argv)
    verbose = "-v" in argv or "--verbose" in argv
    _Parser.json_help = fmt == "json"
    try:
        args = build_parser(argv).parse_args(argv)
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(SafeFormatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO, handlers=[handler])
        # request logs of the HTTP clients (confluent-kafka's registry client logs through httpx2) only with -v
        for noisy in ("httpx", "httpx2", "httpcore", "httpcore2", "pyiceberg", "urllib3", "confluent_kafka"):
            logging.getLogger(noisy).setLevel(logging.DEBUG if args.verbose else logging.WARNING)
        if args.show_version:
            v = _version()
            print(dump_json({"version": v}) if args.format == "json" else f"migrate-assets {v}")
            return 0
        if not getattr(args, "func", None):
            raise UsageError("a command is required; see `migrate-assets --help`", file="<command line>")
        result = args.func(args)
        return emit_result(result, args.format)
    except _HelpRequested as req:
        print(dump_json({"command": req.prog, "help": req.text}))
        return 0
    except KeyboardInterrupt:
        name, code = interrupt_signal()
        return emit_failure("Interrupted", f"interrupted by {name}", code, fmt, signal=name)
    except Exception as exc:  # noqa: BLE001 - the contract: one document, no traceback (unless -v)
        if interrupted():  # the interrupt came back as a library's error (e.g. psycopg's cancelled query)
            name, code = interrupt_signal()
            return emit_failure("Interrupted", f"interrupted by {name}: {exc}", code, fmt, signal=name)
        if isinstance(exc, MigrateAssetsError):
            return emit_error(exc, fmt)
        return _unexpected(exc, fmt, verbose)
    finally:
        _Parser.json_help = False


def _unexpected(exc: Exception, fmt: str, verbose: bool) -> int:
    """An exception none of our layers typed: a database error keeps its class; libpq's DSN parse errors are not
    quoted (they can quote the password)."""
    import psycopg

    if verbose:
        logging.getLogger("migrate_assets").exception("unexpected error")
    text = str(exc).lower()
    conninfo = ("dsn", "conninfo", "connection", "percent", "uri", "option", "ssl")
    if isinstance(exc, psycopg.ProgrammingError | psycopg.InterfaceError) and getattr(exc, "sqlstate", None) is None \
            and any(k in text for k in conninfo):
        return emit_failure("ConfigError", "invalid database DSN (database.dsn): libpq could not parse it; its "
                            "message is not shown because it can quote the password", 2, fmt)
    if isinstance(exc, psycopg.OperationalError):
        from migrate_assets.config import redact_dsn

        first = (str(exc).strip().splitlines() or [""])[0]
        return emit_failure("LayerUnreachableError", f"source_db unreachable: {redact_dsn(first)}", 1, fmt)
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return emit_failure(type(exc).__name__, f"unexpected error: {first} (run with -v for the traceback)", 1, fmt)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
