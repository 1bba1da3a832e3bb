"""The fan-out of `evolve_pipeline`: one Dagster mapping key per table. The protections of evolving several
tables at once (disjoint plans, connector-config rebase, the layer lock) are the application layer's
(`migrate_assets.app.fanout`), shared with the CLI; they are re-exported here for the jobs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence

from migrate_assets.app.fanout import (
    LOCK_WAIT,
    apply_config_diff,
    layer_guard,
    layer_lock,
    lock_mode,
    rebase_connector,
    refuse_duplicate_tables,
    refuse_overlapping_plans,
)


def mapping_keys(tables: Sequence[str]) -> dict[str, str]:
    """A Dagster mapping key per table (`public.customers` → `public_customers`), unique even when two names
    sanitise alike."""
    plain = {t: re.sub(r"[^A-Za-z0-9_]", "_", t) for t in tables}
    clash = {k for k in plain.values() if list(plain.values()).count(k) > 1}
    return {t: k + "_" + hashlib.sha1(t.encode()).hexdigest()[:6] if k in clash else k for t, k in plain.items()}


__all__ = ["LOCK_WAIT", "apply_config_diff", "layer_guard", "layer_lock", "lock_mode", "mapping_keys",
           "rebase_connector", "refuse_duplicate_tables", "refuse_overlapping_plans"]
