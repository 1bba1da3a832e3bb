"""Identity and serial changes that keep the table usable: after each, an INSERT without an explicit value
gets the next number after every value the column already holds.

- identity kind changes (BY DEFAULT <-> ALWAYS) use `SET GENERATED`, which keeps the sequence and its position;
- identity added to a populated column starts after `max(col)`: `setval` in the same transaction, computed
  when the plan runs (not when it was made);
- serial -> identity hands the name over: the old sequence is disowned and set aside, the identity sequence is
  created under the old name and set after both the old sequence's position and `max(col)`, then the old
  sequence is dropped (a sequence still used elsewhere makes the DROP fail and the transaction roll back);
- serial -> bigserial (and back) retypes the sequence with the column (`ALTER SEQUENCE … AS bigint`).
"""

from __future__ import annotations

from dataclasses import dataclass

from psycopg import sql

from migrate_assets.schema import ddl
from migrate_assets.schema.ddl import alter, ident, q, table_ident
from migrate_assets.schema.introspect import split_qualified
from migrate_assets.schema.model import Column, object_name
from migrate_assets.schema.plan import Hazard
from migrate_assets.schema.types import PgType

_SEQUENCE_TYPES = frozenset({"smallint", "integer", "bigint"})


@dataclass(frozen=True)
class IdentityChange:
    sql: tuple[str, ...] = ()
    inverse: tuple[str, ...] | None = None
    hazards: tuple[Hazard, ...] = ()
    describe: str = ""
    refusal: str | None = None


def _kind(identity: str) -> sql.SQL:
    return sql.SQL("ALWAYS" if identity == "always" else "BY DEFAULT")


def continue_after_max(schema: str, table: str, column: str, sequence: sql.Composable | None = None,
                       floor: sql.Composable | None = None) -> str:  # fmt: skip
    """`setval` so the column's sequence next hands out max(column) + 1 (at least `floor`, at least 1)."""
    seq = sequence or sql.SQL("pg_get_serial_sequence({}, {})").format(
        sql.Literal(ddl.render(table_ident(schema, table))), sql.Literal(column)
    )
    low = sql.SQL(", {}").format(floor) if floor is not None else sql.SQL("")
    return q(
        "SELECT setval({}, greatest(coalesce((SELECT max({}) FROM {}), 0) + 1{}, 1), false)",
        seq, ident(column), table_ident(schema, table), low,
    )  # fmt: skip


def identity_change(schema: str, table: str, want: Column, have: Column) -> IdentityChange:
    col = ident(want.name)

    def at(action: str, *args: sql.Composable) -> str:
        return alter(schema, table, action, *args)

    if have.identity and want.identity:
        return IdentityChange(
            (at("ALTER COLUMN {} SET GENERATED {}", col, _kind(want.identity)),),
            (at("ALTER COLUMN {} SET GENERATED {}", col, _kind(have.identity)),),
            (Hazard.ACCESS_EXCLUSIVE_LOCK,),
            f"{have.identity} → {want.identity} (SET GENERATED keeps the sequence position)",
        )
    if have.identity:
        return IdentityChange(
            (at("ALTER COLUMN {} DROP IDENTITY", col),),
            (at("ALTER COLUMN {} ADD GENERATED {} AS IDENTITY", col, _kind(have.identity)),
             continue_after_max(schema, table, want.name)),
            (Hazard.ACCESS_EXCLUSIVE_LOCK,),
            f"drop identity ({have.identity})",
        )  # fmt: skip
    assert want.identity is not None
    if have.serial:
        return _serial_to_identity(schema, table, want, have)
    return IdentityChange(
        (at("ALTER COLUMN {} ADD GENERATED {} AS IDENTITY", col, _kind(want.identity)),
         continue_after_max(schema, table, want.name)),
        (at("ALTER COLUMN {} DROP IDENTITY", col),),
        (Hazard.ACCESS_EXCLUSIVE_LOCK, Hazard.LONG_RUNNING),
        f"add identity ({want.identity}), numbering after the largest value",
    )  # fmt: skip


def _serial_to_identity(schema: str, table: str, want: Column, have: Column) -> IdentityChange:
    if not have.sequence:
        return IdentityChange(refusal="serial column whose sequence could not be read; convert it by hand")
    parts = split_qualified(have.sequence)
    seq_schema, seq_name = (parts[0], parts[-1]) if len(parts) > 1 else (schema, parts[0])
    old = sql.Identifier(seq_schema, seq_name)
    aside_name = object_name(seq_name, None, "migrate_assets_old")
    aside = sql.Identifier(seq_schema, aside_name)
    col = ident(want.name)
    assert want.identity is not None
    position = sql.SQL("(SELECT last_value + CASE WHEN is_called THEN 1 ELSE 0 END FROM {})").format(aside)  # noqa: S608
    return IdentityChange(
        (
            ddl.drop_default(schema, table, want.name),
            q("ALTER SEQUENCE {} OWNED BY NONE", old),
            q("ALTER SEQUENCE {} RENAME TO {}", old, ident(aside_name)),
            alter(schema, table, "ALTER COLUMN {} ADD GENERATED {} AS IDENTITY (SEQUENCE NAME {})", col,
                  _kind(want.identity), old),
            continue_after_max(schema, table, want.name, sql.Literal(ddl.render(old)), position),
            q("DROP SEQUENCE {}", aside),
        ),
        None,
        (Hazard.ACCESS_EXCLUSIVE_LOCK, Hazard.LONG_RUNNING, Hazard.NOT_REVERSIBLE),
        f"serial → identity ({want.identity}), numbering after the old sequence and the largest value",
    )  # fmt: skip


def sequence_retype(sequence: str, type_: PgType) -> list[str]:
    """`ALTER SEQUENCE … AS <type>` for a serial's sequence when the column becomes smallint/integer/bigint."""
    if type_.is_array or type_.name not in _SEQUENCE_TYPES:
        return []
    return [q("ALTER SEQUENCE {} AS {}", sql.Identifier(*split_qualified(sequence)), sql.SQL(type_.name))]
