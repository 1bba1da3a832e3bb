"""Versioned migrations (SPEC §4): numbered up/down SQL files applied exactly once, under a lock, with checksums.

`files` and `status` are pure (directory → migrations, migrations + state rows → what to do); `state`, `lock` and
`runner` do the I/O on one dedicated psycopg connection.

The names below load with their module on first use (PEP 562): `plan` needs only `state.StateTable` (the table
it must never touch), not the runner, its SQL splitter and guard (tests/cli/test_startup_imports.py).
"""

from __future__ import annotations

from importlib import import_module
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from migrate_assets.versioned.files import Migration, load_migrations
    from migrate_assets.versioned.report import status_dict
    from migrate_assets.versioned.runner import MigrationRunner, RunReport, Step
    from migrate_assets.versioned.state import AppliedRow, StateTable
    from migrate_assets.versioned.status import Status, compute_status

_MODULE_OF = {
    "AppliedRow": "state",
    "Migration": "files",
    "MigrationRunner": "runner",
    "RunReport": "runner",
    "StateTable": "state",
    "Status": "status",
    "Step": "runner",
    "compute_status": "status",
    "load_migrations": "files",
    "status_dict": "report",
}

__all__ = [
    "AppliedRow",
    "Migration",
    "MigrationRunner",
    "RunReport",
    "StateTable",
    "Status",
    "Step",
    "compute_status",
    "load_migrations",
    "status_dict",
]


def __getattr__(name: str) -> Any:
    if name not in _MODULE_OF:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return getattr(import_module(f"{__name__}.{_MODULE_OF[name]}"), name)
