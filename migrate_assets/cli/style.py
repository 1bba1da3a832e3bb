"""Colour for people, never for machines: the verdict words of text output (BREAKING, REFUSED, DRIFT, OK...)
in bold colour when stdout is a terminal, plain when it is not, when `NO_COLOR` is set (https://no-color.org)
or when `TERM=dumb`. Applied after control characters were escaped, so only our own codes reach the terminal."""

from __future__ import annotations

import os
import re
from typing import IO

RED, YELLOW, GREEN, RESET = "\x1b[1;31m", "\x1b[1;33m", "\x1b[1;32m", "\x1b[0m"
WORDS = {"BREAKING": RED, "REFUSED": RED, "DRIFT": YELLOW, "NOT healthy": RED, "OK": GREEN, "consistent": GREEN,
         "healthy": GREEN, "succeeded": GREEN, "rolled_back": YELLOW, "failed": RED}
_WORDS_RE = re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in sorted(WORDS, key=len, reverse=True))
                       + r")(?![\w-])")


def enabled(stream: IO[str]) -> bool:
    if os.environ.get("NO_COLOR") or os.environ.get("TERM") == "dumb":
        return False
    try:
        return stream.isatty()
    except (AttributeError, ValueError):  # a closed or fake stream
        return False


def colourise(text: str, stream: IO[str]) -> str:
    """`text` with its verdict words coloured when `stream` is a terminal that wants colour."""
    if not enabled(stream):
        return text
    return _WORDS_RE.sub(lambda m: f"{WORDS[m.group(1)]}{m.group(1)}{RESET}", text)
