"""`on_breaking_change: expand_contract`: the declarative plan's breaking column changes become an
expand–contract change set, and only the rest of the plan is applied directly.

Rename, type change and drop of a column are the changes old readers cannot survive; each turns into the
matching expand operation (rename_column / change_type with cast defaults / drop_column), grouped per table, so
`apply` runs their expand phase and clients move at their own pace until `contract`.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import psycopg

from migrate_assets.expand.ops import ChangeSet, ChangeType, DropColumn, Operation, RenameColumn
from migrate_assets.expand.shape import read_live
from migrate_assets.schema.model import Table
from migrate_assets.schema.plan import Change, Plan

EXPANDABLE = frozenset({"rename_column", "alter_type", "drop_column"})


def split_for_expand(conn: psycopg.Connection[Any], plan: Plan, desired: list[Table]) -> tuple[Plan, list[ChangeSet]]:
    """(the plan without the breaking column changes, one change set per table for those changes)."""
    wanted = {t.qualified: t for t in desired}
    per_table: dict[str, list[Operation]] = {}
    keep: list[Change] = []
    for c in plan.changes:
        if not (c.breaking and c.kind in EXPANDABLE and c.column):
            keep.append(c)
            continue
        table = wanted[c.table]
        col = table.column(c.column)
        if c.kind == "drop_column":
            op: Operation = DropColumn(column=c.column)
        elif c.kind == "alter_type" and col is not None:
            op = ChangeType(column=c.column, to_type=col.type.render())
        else:  # rename: the live column among the desired column's renamed_from
            schema, name = c.table.split(".", 1)
            live = read_live(conn, schema, name)
            old = next(o for o in (col.renamed_from if col else ()) if live is not None and live.column(o))
            op = RenameColumn(from_=old, to=c.column)
        per_table.setdefault(c.table, []).append(op)
    sets = []
    for qualified, ops in per_table.items():
        schema, name = qualified.split(".", 1)
        sets.append(ChangeSet(schema=schema, table=name, operations=tuple(ops), source="<declarative plan>"))
    return replace(plan, changes=tuple(keep)), sets


def write_change_file(cs: ChangeSet, folder: str) -> str:
    """Save the change set as a change file, so `expand-status` / `contract` / `abort` can name it later."""
    from pathlib import Path

    import yaml

    from migrate_assets.expand.ops import op_to_dict

    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    path = out / f"expand-{cs.table}-{cs.fingerprint()[:8]}.yaml"
    doc = {"table": cs.qualified, "operations": [op_to_dict(o) for o in cs.operations]}
    path.write_text("# written by `migrate-assets apply` (on_breaking_change: expand_contract)\n"
                    + yaml.safe_dump(doc, sort_keys=False))
    return str(path)
