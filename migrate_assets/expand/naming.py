"""Deterministic names of everything expand creates (documented: clients of the new shape rely on them).

* `change_type` of column `c`: the new-shape column lives in `_ma_new_<c>` until contract renames it to `c`.
* `rename_column` from `a` to `b`: the new-shape column is created directly as `b` (its final name), so
  new-shape clients use `b` from the start and contract only drops `a`.
* `add_column` creates its final column.
* Trigger `_ma_sync_<fp>`, trigger function `_ma_sync_<table>_<fp>`, expression functions `_ma_<fp>_<kind><i>`,
  constraints `_ma_nn_<fp>_<i>`, where `<fp>` is the first 8 hex digits of the change's fingerprint.

Names longer than Postgres' 63-byte limit are cut and suffixed with a hash of the full name, so they stay unique
and stable.
"""

from __future__ import annotations

import hashlib

MAX_IDENT = 63
PREFIX = "_ma_"


def fit(name: str) -> str:
    """`name` if it fits in 63 bytes, else a prefix of it plus `_<8 hex of sha256(name)>`."""
    raw = name.encode()
    if len(raw) <= MAX_IDENT:
        return name
    suffix = "_" + hashlib.sha256(raw).hexdigest()[:8]
    cut = raw[: MAX_IDENT - len(suffix)].decode("utf-8", errors="ignore")
    return cut + suffix


def new_column(column: str) -> str:
    """Physical name of the new-shape column of a `change_type` on `column`."""
    return fit(f"{PREFIX}new_{column}")


def trigger(fp: str) -> str:
    return fit(f"{PREFIX}sync_{fp[:8]}")


def trigger_function(table: str, fp: str) -> str:
    return fit(f"{PREFIX}sync_{table}_{fp[:8]}")


def expr_function(fp: str, kind: str, index: int) -> str:
    return fit(f"{PREFIX}{fp[:8]}_{kind}{index}")


def not_null_check(fp: str, index: int) -> str:
    return fit(f"{PREFIX}nn_{fp[:8]}_{index}")


def is_helper(name: str) -> bool:
    return name.startswith(PREFIX)
