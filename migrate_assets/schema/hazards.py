"""Hazard rules: what each kind of change does in Postgres 12+ (checked against relfilenode and pg_locks
in tests/schema/test_hazards_reality.py).

- Every `ALTER TABLE` form used here takes ACCESS EXCLUSIVE (even when it is metadata-only).
- `ALTER COLUMN TYPE` rewrites unless the cast is binary-coercible or a typmod support function proves the
  old values fit (varchar/varbit/time types widening, numeric precision widening with the same scale).
- `ADD COLUMN` with a non-volatile default is metadata-only; a volatile default (or `serial`) rewrites.
- `SET NOT NULL` scans the table unless a valid `CHECK (c IS NOT NULL)` exists, hence the NOT VALID +
  VALIDATE sequence (long-running, but no rewrite).
- `CREATE INDEX CONCURRENTLY` takes SHARE UPDATE EXCLUSIVE only and is long-running.
- Dropping a PRIMARY KEY / UNIQUE constraint or an index that the spec could express but no longer lists is
  `removes_constraint` / `removes_index`, both breaking (`BREAKING_HAZARDS`): writers may then store duplicates,
  readers may lose the plan they relied on. An index rebuilt under its name is not a removal. Objects the spec
  cannot express are never dropped at all (`unmanaged.py`).
"""

from __future__ import annotations

from migrate_assets.schema.model import Column, Index
from migrate_assets.schema.plan import Hazard
from migrate_assets.schema.sqltext import tokens
from migrate_assets.schema.types import PgType, type_change

#: built-in functions whose volatility forces ADD COLUMN ... DEFAULT to compute a value per row
VOLATILE_FUNCTIONS = frozenset(
    {
        "random", "random_normal", "clock_timestamp", "timeofday", "gen_random_uuid", "uuid_generate_v1",
        "uuid_generate_v1mc", "uuid_generate_v4", "nextval", "setval", "txid_current", "pg_current_xact_id",
        "setseed", "gen_random_bytes",
    }
)  # fmt: skip

AEL = Hazard.ACCESS_EXCLUSIVE_LOCK


def is_volatile(expression: str | None) -> bool:
    """Does the expression call a function known to be volatile (word followed by `(`)?"""
    if not expression:
        return False
    try:
        toks = tokens(expression)
    except ValueError:
        return True
    return any(t.lower() in VOLATILE_FUNCTIONS and i + 1 < len(toks) and toks[i + 1] == "(" for i, t in enumerate(toks))


def add_column(col: Column, *, backfilled: bool) -> tuple[Hazard, ...]:
    if backfilled:
        return (AEL, Hazard.LONG_RUNNING)
    if col.serial or col.identity or is_volatile(col.default) or col.generated:
        return (AEL, Hazard.REWRITES_TABLE, Hazard.LONG_RUNNING)
    return (AEL,)


def alter_type(old: PgType, new: PgType) -> tuple[Hazard, ...]:
    tc = type_change(old, new)
    out = [AEL]
    if tc.rewrite:
        out += [Hazard.REWRITES_TABLE, Hazard.LONG_RUNNING]
    if not tc.widening:
        out += [Hazard.BREAKS_READERS, Hazard.NOT_REVERSIBLE]
    return tuple(out)


DROP_COLUMN = (AEL, Hazard.DELETES_DATA, Hazard.BREAKS_READERS, Hazard.NOT_REVERSIBLE)
DROP_TABLE = (AEL, Hazard.DELETES_DATA, Hazard.BREAKS_READERS, Hazard.NOT_REVERSIBLE)
RENAME_COLUMN = (AEL, Hazard.BREAKS_READERS)
SET_NOT_NULL = (AEL, Hazard.LONG_RUNNING)
ALTER_METADATA = (AEL,)
ADD_CONSTRAINT = (AEL, Hazard.LONG_RUNNING)
#: ADD CONSTRAINT … EXCLUDE: builds its index and checks every row while holding ACCESS EXCLUSIVE (readers and
#: writers wait for the whole build); Postgres has no NOT VALID and no USING INDEX for an exclusion constraint
ADD_EXCLUDE = (AEL, Hazard.LONG_RUNNING)
ADD_INDEX_CONCURRENTLY = (Hazard.LONG_RUNNING,)
#: CREATE UNIQUE INDEX CONCURRENTLY, then ADD CONSTRAINT … USING INDEX (an instant under ACCESS EXCLUSIVE)
ADD_KEY_ONLINE = (AEL, Hazard.LONG_RUNNING)
#: VALIDATE CONSTRAINT: reads every row under SHARE UPDATE EXCLUSIVE (writers go on)
VALIDATE = (Hazard.LONG_RUNNING,)
DROP_INDEX_CONCURRENTLY: tuple[Hazard, ...] = ()
#: a PRIMARY KEY or UNIQUE constraint the spec no longer lists: its guarantee goes away
DROP_CONSTRAINT = (AEL, Hazard.REMOVES_CONSTRAINT)
NONE: tuple[Hazard, ...] = ()
#: ALTER COLUMN … TYPE same COLLATE other: no rewrite of the table, its indexes on the column are rebuilt
SET_COLLATION = (AEL, Hazard.LONG_RUNNING, Hazard.BREAKS_READERS)
#: ALTER TYPE … RENAME VALUE: stored rows follow, readers using the old label do not
RENAME_ENUM_VALUE = (Hazard.BREAKS_READERS,)


def drop_index(*, replaced_by: Index | None, old: Index) -> tuple[Hazard, ...]:
    """An index the spec no longer lists is removed (breaking); one rebuilt under the same name is not, unless
    the rebuilt one no longer enforces uniqueness. Invalid leftovers of a failed build remove nothing."""
    if old.definition is not None and old.definition.endswith("INVALID"):
        return DROP_INDEX_CONCURRENTLY
    if replaced_by is None:
        return (Hazard.REMOVES_INDEX, Hazard.REMOVES_CONSTRAINT) if old.unique else (Hazard.REMOVES_INDEX,)
    if old.unique and not replaced_by.unique:
        return (Hazard.REMOVES_CONSTRAINT,)
    return DROP_INDEX_CONCURRENTLY
