"""argparse `type=` helpers for numeric flags: one rule for every command.

A flag's value must be a finite number within its range: `nan`, `inf`, negatives (and, for counts, zero) are
refused while parsing, so the CLI exits 2 naming the flag (argparse prefixes the message with
`argument --flag:`) before anything connects.
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

#: the longest wait a flag may ask for: a day (a bigger number is a typo, not a plan)
MAX_SECONDS = 86_400.0


def count(minimum: int = 1, maximum: int = 2**31 - 1) -> Callable[[str], int]:
    """A whole number in [minimum, maximum] (digits only: no sign, no `1e3`)."""

    def parse(text: str) -> int:
        value = text.strip()
        if not value.isdigit() or not minimum <= int(value) <= maximum:
            raise argparse.ArgumentTypeError(f"expected a whole number from {minimum} to {maximum}, got {text!r}")
        return int(value)

    return parse


def seconds(text: str) -> float:
    """A finite, non-negative duration: `20`, `2.5`, `500ms`, `1.5s`, `2m` (at most a day)."""
    from migrate_assets.config import parse_duration  # the config model loads only when the flag is given

    try:
        value = parse_duration(text)
    except ValueError:
        value = math.nan
    if not math.isfinite(value) or not 0 <= value <= MAX_SECONDS:
        raise argparse.ArgumentTypeError(
            f"expected a duration from 0 to {MAX_SECONDS:g} seconds such as 20, 2.5s or 500ms, got {text!r}")
    return value
