"""View operations of the declarative plan: create, replace, drop (to re-create) and small alterations of a
view or materialized view. The anchor `table` is the view itself (`Table(schema, name)`); the statements come
from `schema.views`. None of them is expandable: a view has no rows to copy.

Hazards, as `pg_locks` shows them (tests/schema/test_views_locks.py):
- `CREATE VIEW` locks nothing but the new relation; `CREATE MATERIALIZED VIEW` runs its query (long-running);
- `CREATE OR REPLACE VIEW`, `DROP VIEW`, `ALTER VIEW … SET/RESET` take ACCESS EXCLUSIVE on the view: its
  readers wait until the transaction commits;
- a view dropped and created again in the same transaction is invisible to no one: readers wait, then see the
  new one. Only the columns it loses break readers.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Ddl, Operation
from migrate_assets.schema.plan import Hazard
from migrate_assets.schema.views import (
    View,
    comment_view_sql,
    drop_view_sql,
    recreate_sql,
    set_options_sql,
)

AEL = Hazard.ACCESS_EXCLUSIVE_LOCK


@dataclass(frozen=True)
class CreateView(Operation):
    """CREATE [MATERIALIZED] VIEW with its indexes, comments, owner and grants (a live one re-created exactly
    as it was when `rebuilt`)."""

    kind = "create_view"
    view: View = field(repr=False, default=None)  # type: ignore[assignment]
    definition: str = ""
    rebuilt: bool = False
    because: str = ""

    def describe(self, table: Table) -> str:
        if self.rebuilt:
            return f"create {self.view.what} {self.view.qualified} again, dropped before because {self.because}"
        return f"create {self.view.what} {self.view.qualified}"

    def plain(self, table: Table) -> Ddl:
        hz: tuple[Hazard, ...] = (Hazard.LONG_RUNNING,) if self.view.materialized else ()
        return Ddl(tuple(recreate_sql(self.view, definition=self.definition)), (drop_view_sql(self.view),), True,
                   (), hz)


@dataclass(frozen=True)
class ReplaceView(Operation):
    """CREATE OR REPLACE VIEW: the new definition keeps every old column (same name, type and position) and
    may add columns at the end — what Postgres allows; anything else is a drop and create."""

    kind = "replace_view"
    view: View = field(repr=False, default=None)  # type: ignore[assignment]
    definition: str = ""
    old: View = field(repr=False, default=None)  # type: ignore[assignment]
    same_columns: bool = False

    def describe(self, table: Table) -> str:
        return f"replace view {self.view.qualified} (CREATE OR REPLACE: its columns stay, new ones at the end)"

    def plain(self, table: Table) -> Ddl:
        inverse = tuple(recreate_sql(self.old, replace=True)) if self.same_columns else None
        return Ddl(tuple(recreate_sql(self.view, definition=self.definition, replace=True)), inverse,
                   self.same_columns, (), (AEL,))


@dataclass(frozen=True)
class DropView(Operation):
    """DROP [MATERIALIZED] VIEW (no CASCADE: whatever else depends on it makes the transaction fail, never
    disappears with it), so that a table change or a new definition can go through; created again later in the
    same transaction (`CreateView`)."""

    kind = "drop_view"
    view: View = field(repr=False, default=None)  # type: ignore[assignment]
    because: str = ""
    loses_columns: tuple[str, ...] = ()
    managed: bool = True

    def describe(self, table: Table) -> str:
        how = "as the spec says" if self.managed else "exactly as it is now (the specs do not declare it)"
        return (f"drop {self.view.what} {self.view.qualified}: {self.because}; created again {how} in the same "
                "transaction")

    def plain(self, table: Table) -> Ddl:
        hz: list[Hazard] = [AEL]
        if self.loses_columns:
            hz.append(Hazard.BREAKS_READERS)
        if self.view.materialized:
            hz.append(Hazard.LONG_RUNNING)
        return Ddl((drop_view_sql(self.view),), tuple(recreate_sql(self.view)), not self.view.materialized,
                   tuple(f"column {c} of {self.view.qualified} goes away" for c in self.loses_columns), tuple(hz))


@dataclass(frozen=True)
class AlterView(Operation):
    """ALTER VIEW … SET / RESET (options) and COMMENT ON [MATERIALIZED] VIEW."""

    kind = "alter_view"
    view: View = field(repr=False, default=None)  # type: ignore[assignment]
    old: View = field(repr=False, default=None)  # type: ignore[assignment]

    def describe(self, table: Table) -> str:
        what = []
        if self.view.options != self.old.options:
            what.append("options " + (", ".join(self.view.options) or "none"))
        if self.view.comment != self.old.comment:
            what.append("comment")
        return f"alter {self.view.what} {self.view.qualified}: {'; '.join(what)}"

    def _sql(self, want: View, have: View) -> tuple[str, ...]:
        out: list[str] = []
        if want.options != have.options:
            add = [o for o in want.options if o not in have.options]
            keys = {o.partition("=")[0] for o in want.options}
            out += set_options_sql(want, add, [o for o in have.options if o.partition("=")[0] not in keys])
        if want.comment != have.comment:
            out.append(comment_view_sql(want, want.comment))
        return tuple(out)

    def plain(self, table: Table) -> Ddl:
        hz = (AEL,) if self.view.options != self.old.options else ()
        return Ddl(self._sql(self.view, self.old), self._sql(self.old, self.view), True, (), hz)
