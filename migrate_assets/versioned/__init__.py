"""Versioned migrations (SPEC §4): numbered up/down SQL files applied exactly once, under a lock, with checksums.

`files` and `status` are pure (directory → migrations, migrations + state rows → what to do); `state`, `lock` and
`runner` do the I/O on one dedicated psycopg connection.
"""

from migrate_assets.versioned.files import Migration, load_migrations
from migrate_assets.versioned.report import status_dict
from migrate_assets.versioned.runner import MigrationRunner, RunReport, Step
from migrate_assets.versioned.state import AppliedRow, StateTable
from migrate_assets.versioned.status import Status, compute_status

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
