"""Names the command modules use at their top level, loading their module only when called.

`migrate_assets.config` brings in the YAML readers and psycopg's conninfo parser; a command's flags and `--help`
need none of them, so the command modules import `load_config` from here and the config model loads when a
handler runs.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from migrate_assets.config import ProjectConfig


def load_config(explicit: str | None = None) -> ProjectConfig:
    """`migrate_assets.config.load_config`, imported on first call."""
    from migrate_assets.config import load_config as load

    return load(explicit)
