"""Rendering of command results: text for people, json for machines (stdout holds only the document),
markdown for reports. Logs and progress always go to stderr.

Text and Markdown are sanitised for the terminal: a control character from a database identifier, a change file
or an error message (ESC, C1 controls, bidi overrides...) is shown escaped (`\\x1b`), never sent raw, so a table
named with an escape sequence cannot repaint the screen. JSON escapes them itself.
"""

from __future__ import annotations

import json
import logging
import signal
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any

from migrate_assets.errors import MigrateAssetsError
from migrate_assets.markdown import table

FORMATS = ("text", "json", "markdown")


@dataclass
class Result:
    """What a command returns: the JSON document, renderers for the other formats, and its exit code."""

    data: dict[str, Any]
    text: Callable[[dict[str, Any]], str] | None = None
    markdown: Callable[[dict[str, Any]], str] | None = None
    exit_code: int = 0
    warnings: list[str] = field(default_factory=list)


def _escape_char(ch: str) -> str:
    code = ord(ch)
    if code < 0x100:
        return f"\\x{code:02x}"
    return f"\\u{code:04x}" if code < 0x10000 else f"\\U{code:08x}"


def safe_text(text: str) -> str:
    """`text` with every control or format character except newline and tab escaped (`\\x1b`, `\\u202e`)."""
    if text.isprintable() or text.replace("\n", "").replace("\t", "").isprintable():  # (a newline is not)
        return text
    import unicodedata  # a C module of its own: loaded only for text that needs it

    return "".join(ch if ch in "\n\t" or unicodedata.category(ch)[0] != "C" or unicodedata.category(ch) == "Co"
                   else _escape_char(ch) for ch in text)


class SafeFormatter(logging.Formatter):
    """Log lines (stderr) with control characters escaped like text output."""

    def format(self, record: logging.LogRecord) -> str:
        return safe_text(super().format(record))


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    return table(headers, rows)


def fenced(text: str, lang: str = "sql") -> str:
    """A fenced code block whose fence is longer than any run of backticks in `text` (SQL cannot close it)."""
    longest = max((len(run) for run in text.split("\n") for run in _backtick_runs(run)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}{lang}\n{text.rstrip()}\n{fence}"


def _backtick_runs(line: str) -> list[str]:
    runs, cur = [], ""
    for ch in line:
        if ch == "`":
            cur += ch
        elif cur:
            runs.append(cur)
            cur = ""
    return [*runs, cur] if cur else runs


#: keys whose values are SQL: Markdown shows them in fenced ```sql blocks, never inside a table cell
SQL_KEYS = frozenset({"sql", "inverse_sql", "statements", "inverse_statements", "ddl"})


def generic_markdown(data: dict[str, Any], title: str = "") -> str:
    """Markdown for a result that has no renderer of its own: scalars as a list, lists of flat records as
    tables (their SQL in fenced blocks below), anything else as a fenced JSON block — never plain text."""
    out = [f"**{title}**"] if title else []
    scalars = [(k, v) for k, v in data.items() if not isinstance(v, dict | list) and k not in SQL_KEYS]
    out += [f"- **{k}**: {_md_scalar(v)}" for k, v in scalars]
    for k, v in data.items():
        if k in SQL_KEYS and v:
            out += [f"\n**{k}**\n", fenced("\n".join(v) if isinstance(v, list) else str(v))]
        elif isinstance(v, list) and v and all(isinstance(x, dict) for x in v) \
                and all(not isinstance(y, dict | list) or kk in SQL_KEYS for x in v for kk, y in x.items()):
            heads = [h for h in dict.fromkeys(kk for x in v for kk in x) if h not in SQL_KEYS]
            out += [f"\n**{k}**\n", table(heads, [[_md_scalar(x.get(h)) for h in heads] for x in v])]
            for i, x in enumerate(v, 1):
                for kk in SQL_KEYS & set(x):
                    if x[kk]:
                        body = "\n".join(x[kk]) if isinstance(x[kk], list) else str(x[kk])
                        out += [f"\n{k} {i}, {kk}:\n", fenced(body)]
        elif isinstance(v, dict | list) and k not in SQL_KEYS:
            out += [f"\n**{k}**\n", fenced(dump_json(v), "json")]
    return "\n".join(out) if out else "_nothing to report_"


def _md_scalar(v: Any) -> str:
    """A value as people read it: yes/no, not Python's True/False; empty for None."""
    if isinstance(v, bool):
        return "yes" if v else "no"
    return "" if v is None else str(v)


def dump_json(data: Any) -> str:
    return json.dumps(data, indent=2, default=str, sort_keys=False)


def emit_result(result: Result, fmt: str) -> int:
    for w in result.warnings:
        print(f"warning: {safe_text(w)}", file=sys.stderr)
    if fmt == "json":
        print(dump_json(result.data))
    elif fmt == "markdown":
        # a command without a Markdown renderer of its own still prints Markdown, never its text output
        print(safe_text(result.markdown(result.data) if result.markdown else generic_markdown(result.data)))
    else:
        from migrate_assets.cli.style import colourise  # colour only on a terminal, after escaping

        render = result.text
        print(colourise(safe_text(render(result.data) if render else dump_json(result.data)), sys.stdout))
    return result.exit_code


def emit_error(exc: MigrateAssetsError, fmt: str) -> int:
    if fmt == "json":
        print(dump_json({"error": exc.to_dict(), "exit_code": exc.exit_code}))
    print(f"error: {safe_text(str(exc))}", file=sys.stderr)
    return exc.exit_code


def emit_failure(kind: str, message: str, code: int, fmt: str, **extra: Any) -> int:
    """An error that is not one of ours (interrupt, unexpected exception): one JSON document all the same."""
    if fmt == "json":
        print(dump_json({"error": {"type": kind, "message": message, **extra}, "exit_code": code}))
    print(f"error: {safe_text(message)}", file=sys.stderr)
    return code


# -- signals -------------------------------------------------------------------------------------------------

#: the signal that interrupted the command, once one did (SIGINT without our handler: Python's KeyboardInterrupt)
_received: dict[str, int] = {}


def _on_signal(signum: int, frame: FrameType | None) -> None:
    _received.setdefault("signal", signum)
    raise KeyboardInterrupt


def install_signal_handlers() -> None:
    """SIGINT and SIGTERM unwind as KeyboardInterrupt (so a run saves its state and prints its report) and are
    remembered: a library that turns the interrupt into an error of its own (psycopg cancels the query) still
    ends the command as interrupted."""
    _received.clear()
    for sig in (signal.SIGINT, getattr(signal, "SIGTERM", None)):
        if sig is not None:
            signal.signal(sig, _on_signal)


def interrupted() -> bool:
    return "signal" in _received


def interrupt_signal() -> tuple[str, int]:
    """(name, exit code) of the interrupting signal: SIGINT → 130, SIGTERM → 143 (128 + the signal number)."""
    num = _received.get("signal", signal.SIGINT)
    return signal.Signals(num).name, 128 + num
