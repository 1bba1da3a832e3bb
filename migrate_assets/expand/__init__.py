"""Expand–contract (SPEC §5): old and new shapes of a table side by side while clients move.

Public API (what the CLI, the Dagster jobs and the evolution engine call):

* `load_change_file(path, default_schema)` / `parse_change_text(text, file, default_schema)` → `ChangeSet`
* operations: `AddColumn`, `RenameColumn`, `ChangeType`, `DropColumn`, `SetNotNull` (frozen dataclasses)
* `plan_expand(change, table, ...)` → `ExpandPlan` (pure; `table` is schema's `Table`, as
  `read_live(conn, schema, name)` reads it); `ExpandPlan.new_physical_columns` are the columns a CDC connector
  will start emitting
* `table_fingerprint(conn, schema, name)`: schema's fingerprint of the live table, what abort compares
* `runner.expand / status / contract / abort(conn, change, Options(...))`, `runner.plan_change(conn, change)`
* `naming.new_column(col)` etc.: the documented physical names
"""

from migrate_assets.expand import naming, runner
from migrate_assets.expand.backfill import Progress
from migrate_assets.expand.changefile import load_change_file, parse_change_text
from migrate_assets.expand.ops import (
    AddColumn,
    ChangeSet,
    ChangeType,
    DropColumn,
    Operation,
    RenameColumn,
    SetNotNull,
)
from migrate_assets.expand.planner import ExpandPlan, OpPlan, Step, plan_expand
from migrate_assets.expand.runner import Options
from migrate_assets.expand.shape import read_live, table_fingerprint
from migrate_assets.expand.status import ExpandStatus, OpStatus

__all__ = [
    "AddColumn",
    "ChangeSet",
    "ChangeType",
    "DropColumn",
    "ExpandPlan",
    "ExpandStatus",
    "OpPlan",
    "OpStatus",
    "Operation",
    "Options",
    "Progress",
    "RenameColumn",
    "SetNotNull",
    "Step",
    "load_change_file",
    "naming",
    "parse_change_text",
    "plan_expand",
    "read_live",
    "runner",
    "table_fingerprint",
]
