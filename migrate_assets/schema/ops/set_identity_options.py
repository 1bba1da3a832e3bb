"""set_identity_options: the sequence options of an identity column (`identity: {generated: …, start: …}`), as
`ALTER COLUMN … SET INCREMENT BY … SET CACHE …`: an instant under ACCESS EXCLUSIVE, no rewrite; the sequence keeps
its current value. The inverse sets the old options back."""

from __future__ import annotations

from dataclasses import dataclass

from migrate_assets.schema import ddl, hazards
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import ColumnOperation, Ddl, live_column

Options = tuple[tuple[str, int | bool], ...]


def full_options(typ: str, options: Options) -> dict[str, int | bool]:
    """Every option, Postgres' default where `options` (the non-default ones) says nothing."""
    from migrate_assets.schema.introspect import _TYPE_MAX

    given = dict(options)
    top = _TYPE_MAX.get(typ, _TYPE_MAX["bigint"])
    inc = int(given.get("increment", 1))
    lo = int(given.get("minvalue", 1 if inc > 0 else -top - 1))
    hi = int(given.get("maxvalue", top if inc > 0 else -1))
    return {"increment": inc, "minvalue": lo, "maxvalue": hi, "start": given.get("start", lo if inc > 0 else hi),
            "cache": given.get("cache", 1), "cycle": given.get("cycle", False)}


@dataclass(frozen=True)
class SetIdentityOptions(ColumnOperation):
    kind = "set_identity_options"
    options: Options = ()
    previous: Options = ()

    def describe(self, table: Table) -> str:
        said = ", ".join(f"{k} {v}" for k, v in self.options) or "the defaults"
        return f"identity sequence options of {table.qualified}.{self.column}: {said}"

    def _changed(self, typ: str, to: Options, frm: Options) -> Options:
        new, old = full_options(typ, to), full_options(typ, frm)
        order = ("increment", "minvalue", "maxvalue", "start", "cache", "cycle")
        return tuple((k, new[k]) for k in order if new[k] != old[k])

    def plain(self, table: Table) -> Ddl:
        s, t = table.schema, table.name
        typ = live_column(table, self.column).type.render()
        fwd = self._changed(typ, self.options, self.previous)
        back = self._changed(typ, self.previous, self.options)
        return Ddl((ddl.set_identity_options(s, t, self.column, fwd),), (ddl.set_identity_options(s, t, self.column, back),),
                   True, (), hazards.ALTER_METADATA)
