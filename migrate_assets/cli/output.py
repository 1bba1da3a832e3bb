"""Rendering of command results: text for people, json for machines (stdout holds only the document),
markdown for reports. Logs and progress always go to stderr."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
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


def markdown_table(headers: list[str], rows: list[list[Any]]) -> str:
    return table(headers, rows)


def emit_result(result: Result, fmt: str) -> int:
    for w in result.warnings:
        print(f"warning: {w}", file=sys.stderr)
    if fmt == "json":
        print(json.dumps(result.data, indent=2, default=str, sort_keys=False))
    elif fmt == "markdown":
        render = result.markdown or result.text
        print(render(result.data) if render else "```json\n" + json.dumps(result.data, indent=2, default=str) + "\n```")
    else:
        render = result.text
        print(render(result.data) if render else json.dumps(result.data, indent=2, default=str))
    return result.exit_code


def emit_error(exc: MigrateAssetsError, fmt: str) -> int:
    if fmt == "json":
        print(json.dumps({"error": exc.to_dict(), "exit_code": exc.exit_code}, indent=2, default=str))
    print(f"error: {exc}", file=sys.stderr)
    return exc.exit_code
