"""What the spec does not manage: live objects (or properties of them) the spec format cannot express.

The spec speaks of columns, one primary key, UNIQUE, FOREIGN KEY, CHECK and EXCLUDE constraints and plain indexes
(columns in order, `unique`, `where`, `method`). UNIQUE constraints over several columns (or DEFERRABLE, NULLS NOT
DISTINCT), FOREIGN KEY, CHECK and EXCLUDE constraints are managed for a table only when its spec has the list for
them (`unique`, `foreign_keys`, `checks`, `excludes`; an empty list manages "none"); without it they stay as they are. Anything else found live — an index with an expression, INCLUDE columns,
DESC ordering, an operator class or a collation of its own; a UNIQUE over several columns or DEFERRABLE;
CHECK, FOREIGN KEY and EXCLUDE constraints; triggers, policies, views reading the table, column collations —
is listed in the plan as *unmanaged* and never dropped or altered: a spec that cannot say it wants such an
object cannot be taken to say it wants it gone.

A partitioned table's key and partitions are managed when its spec has `partition_by` (and `partitions`); without
them they are listed and left alone (`partitions.unmanaged`). Sequences of their own are managed when a spec
declares them (`sequence:` documents) and never dropped otherwise.

One more case is kept: a UNIQUE constraint on exactly the primary-key columns when the spec says `unique: true`
on the primary-key column. The model folds that into the key (Postgres does the same at CREATE TABLE), so a
spec written from such a database would otherwise plan to drop it. A spec that does not say it drops it.
"""

from __future__ import annotations

from collections.abc import Iterable

from migrate_assets.schema import partitions
from migrate_assets.schema.model import Constraint, Index, Table
from migrate_assets.schema.plan import Unmanaged

TableKey = tuple[str, str]

INCLUDE = "INCLUDE columns"
#: the constraint kinds a spec manages once it lists them for a table (`Table.manages`), and the spec key
MANAGED_KINDS = {"foreign_key": "foreign_keys", "check": "checks", "exclusion": "excludes"}
_VIEWS = ("view", "materialized_view")
REDUNDANT_UNIQUE = "UNIQUE on the primary-key columns (the spec folds `unique: true` on a key column into the key)"


def unique_reason(want: Table, live_unique: Constraint, live_columns: tuple[str, ...]) -> str | None:
    """Why a live UNIQUE constraint is outside the spec's reach (then it is kept), or None when the spec
    manages it. `live_columns` are its columns under the desired names (after renames)."""
    if live_unique.unmanaged and ("unique" not in want.manages or live_unique.unmanaged == INCLUDE):
        return live_unique.unmanaged
    if want.pk_unique and want.primary_key is not None and live_columns == want.primary_key.columns:
        return REDUNDANT_UNIQUE
    return None


def index_reason(live_index: Index) -> str | None:
    """Why a live index is outside the spec's reach (then it is kept), or None when the spec manages it."""
    return live_index.unmanaged


def managed_uniques(want: Table, have: Table) -> set[tuple[str, ...]]:
    """Column sets of the live UNIQUE constraints the spec manages (no renames: for the quick in-sync test)."""
    return {u.columns for u in have.uniques if unique_reason(want, u, u.columns) is None}


def managed_indexes(have: Table) -> dict[str, Index]:
    return {i.name: i for i in have.indexes if index_reason(i) is None}


def users_of(want: Table, have: Table, column: str) -> list[str]:
    """The unmanaged objects that `DROP COLUMN column` would take along (indexes and constraints on it go with
    it; a view or policy would make it fail), spelled `kind name`."""
    out = [f"unique {u.name}" for u in have.uniques if column in u.columns and unique_reason(want, u, u.columns)]
    users = [(kind, name) for col, kind, name in have.column_users
             if col == column and MANAGED_KINDS.get(kind) not in want.manages]
    out += [f"{kind} {name}" for kind, name in users if kind not in _VIEWS]
    # a view alone does not stop the drop (schema/viewplan.py moves it out of the way, or refuses itself); named
    # beside the others when the drop is refused anyway
    return out + [f"{kind} {name}" for kind, name in users if kind in _VIEWS] if out else out


def listing(desired: Iterable[Table], live: dict[TableKey, Table]) -> tuple[Unmanaged, ...]:
    """Every unmanaged live object of the desired tables that exist (sorted by table, kind, name)."""
    out: list[Unmanaged] = []
    for want in desired:
        have = live.get(want.key)
        if have is None:
            continue
        for u in have.uniques:
            why = unique_reason(want, u, u.columns)
            if why:
                out.append(Unmanaged(have.qualified, "unique", u.name or "", why))
        listed = {i.name for i in want.indexes if i.named or i.featured}
        for ix in have.indexes:
            why = index_reason(ix)
            if why and ix.name not in listed:
                out.append(Unmanaged(have.qualified, "index", ix.name, why))
        if "foreign_keys" not in want.manages:
            out.extend(Unmanaged(have.qualified, "foreign_key", f.name, "FOREIGN KEY (the spec has no foreign_keys list)")
                       for f in have.foreign_keys)
        if "checks" not in want.manages:
            out.extend(Unmanaged(have.qualified, "check", c.name, f"CHECK ({c.expression}) (the spec has no checks list)")
                       for c in have.checks)
        stated = {c.name for c in want.columns if c.collation is not None}
        out.extend(u for u in have.others if not (u.kind == "collation" and u.name in stated)
                   and not (u.kind == "exclusion" and "excludes" in want.manages))
        out.extend(partitions.unmanaged(want, have))
    return tuple(sorted(out, key=lambda u: (u.table, u.kind, u.name)))
