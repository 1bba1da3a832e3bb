"""The operation interface (see the package docstring) and the small types its methods return."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Literal, Protocol

from psycopg import sql

from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.plan import Hazard


@dataclass(frozen=True)
class Ddl:
    """An operation's plain DDL: forward statements, the statements that undo them (None: no undo at all),
    whether that undo gives back everything (`lossless`; False when values are lost even if the shape can be
    restored), why readers break (empty: they do not) and the hazards of the forward statements."""

    forward: tuple[str, ...]
    inverse: tuple[str, ...] | None
    lossless: bool
    breaking: tuple[str, ...] = ()
    hazards: tuple[Hazard, ...] = ()


@dataclass(frozen=True)
class Problem:
    """A validation finding: `key` names the operation's field (e.g. "column", "from") it is about."""

    key: str
    message: str


#: the columns an expression may read: the table before the change ("old"), the change's new shape ("new"), or
#: none at all ("none": a default)
Scope = Literal["old", "new", "none"]


@dataclass(frozen=True)
class OpExpression:
    """A SQL expression a change file holds under `key`: cast to `type_sql` (None: the type is not known), reading
    `scope`. `declared`: of the operation's own declared type, which the caller has in canonical spelling."""

    key: str
    text: str
    type_sql: str | None
    scope: Scope
    declared: bool = False


class ExpressionChecks(Protocol):
    """How an operation has its expressions checked against the live table (`expand.validate` asks Postgres:
    parse-only, nothing runs). `ref` names the input of the function expand generates ("up", "down", "fill",
    "default"); the checker records the columns each one reads. A refused expression is recorded as a problem
    under the operation's `key`."""

    def expression(self, ref: str, key: str, text: str, type_sql: str, scope: Scope) -> bool:
        """Check one expression (written or implied, such as a plain cast); False: refused."""
        ...

    def reads(self, ref: str, columns: tuple[str, ...]) -> None:
        """Record the columns `ref` reads without a check (a rename's plain copy)."""
        ...

    def volatile_default(self, key: str, text: str, type_sql: str) -> bool:
        """Whether an accepted default is volatile (adding the column would rewrite the table); one Postgres
        cannot plan is recorded as a problem and is not volatile."""
        ...


class ShapeSink(Protocol):
    """What an operation does to the table's shape, told to each layer's derivation (Avro, Iceberg, the new
    shape of expand, the connector's column filter). One method per kind of effect; an operation calls the
    ones that describe it, in order."""

    def added(self, name: str, type_: str, nullable: bool, default: str | None) -> None: ...

    def retyped(self, name: str, type_: str) -> None: ...

    def renamed(self, old: str, new: str) -> None: ...

    def dropped(self, name: str) -> None: ...

    def required(self, name: str) -> None: ...

    def optional(self, name: str) -> None: ...


class ExpandBuilder(Protocol):
    """What an operation needs from the expand planner (`migrate_assets.expand.planner`) to add its steps.

    Names (`check_name`, `function_name`, `helper_column`) derive from the change's fingerprint and the
    operation's index; SQL statements are `psycopg.sql` objects or rendered strings from `schema.ddl`."""

    table: Table

    def check_name(self) -> str: ...

    def volatile_default(self) -> bool:
        """Whether this add_column's default is volatile (validation saw it rewrite a table)."""
        ...

    def helper_column(self, column: str) -> str: ...

    def step(self, description: str, forward: Sequence[str], inverse: Sequence[str] = ()) -> None: ...

    def contract(self, description: str, forward: Sequence[str]) -> None: ...

    def fill(self, column: str, type_: str, expression: str) -> None:
        """Fill NULLs of `column` from `expression` (old shape) in the trigger and the backfill."""
        ...

    def pair(self, old: str, new: str, old_type: str, new_type: str, up: str, down: str) -> None:
        """Keep `old` and the new physical column `new` in sync (up: old shape → new, down: back); adds the
        new column at expand."""
        ...

    def warn(self, message: str) -> None: ...

    def warn_indexes(self, column: str) -> None: ...

    def record(self, summary: str, new_columns: tuple[str, ...] = (), *, not_null: str | None = None,
               check: str | None = None, check_at_expand: bool = False, final: str | None = None) -> None:
        """Close the operation: `not_null` must be NOT NULL after contract (guarded by `check`, added at expand
        when `check_at_expand`, else at contract preparation); `final` is its name after contract."""
        ...


class Operation:
    """Base of every operation class; subclasses are frozen dataclasses registered by `kind`."""

    kind: ClassVar[str] = "operation"
    #: the `Change.kind` the declarative plan shows (defaults to `kind`)
    change_kind: ClassVar[str] = ""
    #: order within one table's declarative plan (see `schema.diff`)
    phase: ClassVar[str] = "misc"
    #: can this operation appear in an expand–contract change file?
    expandable: ClassVar[bool] = False
    #: False: runs after the main transaction commits, statement by statement in autocommit (CONCURRENTLY
    #: builds, VALIDATE CONSTRAINT); `after_commit()` may decide per instance
    transactional: ClassVar[bool] = True
    #: it changes a type, not the table's columns: a change file holding it holds nothing else
    changes_type: ClassVar[bool] = False

    def after_commit(self) -> bool:
        return not self.transactional

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        if cls.kind != "operation":
            REGISTRY[cls.kind] = cls
            cls.change_kind = cls.__dict__.get("change_kind") or cls.kind

    @classmethod
    def from_declared(cls, name: str, col: Column | None, live: Callable[[], Table | None]) -> Operation | None:
        """The change-file operation carrying a declarative plan's change of this kind (`change_kind`) to column
        `name` of a pipeline table, `col` being its declared column (`live`: the table as it is, read on demand),
        so `apply` runs it through the evolution saga. None: this kind has no change-file form."""
        return None

    # -- data ----------------------------------------------------------------------------------------------
    def columns(self) -> tuple[str, ...]:
        """Existing columns (of the table before the change) the operation works on."""
        return ()

    def target(self) -> str:
        """The column the operation is about (for messages)."""
        return self.columns()[0] if self.columns() else ""

    def to_dict(self) -> dict[str, Any]:
        """The change-file form `{kind: {key: value}}` (None values and internal fields left out)."""
        body = {
            ("from" if f.name == "from_" else f.name): getattr(self, f.name)
            for f in fields(self)  # type: ignore[arg-type]
            if f.repr and getattr(self, f.name) is not None
        }
        return {self.kind: body}

    # -- validation ----------------------------------------------------------------------------------------
    def check(self, table: Table) -> list[Problem]:
        """Problems with this operation against `table` as it is now (empty: fine)."""
        return []

    def check_expand(self, table: Table, helper_column: Callable[[str], str]) -> list[Problem]:
        """What expand–contract cannot do on top of `check` (e.g. copy an identity column);
        `helper_column(c)` names the physical column expand would add for `c`."""
        return []

    def check_written(self) -> list[Problem]:
        """What the operation's own fields say is wrong, before any table is read (a change file's check)."""
        return []

    def declared_type(self) -> tuple[str, str] | None:
        """(key, text) of the column type the operation declares, as written (None: it declares none)."""
        return None

    def with_declared_type(self, type_sql: str) -> Operation:
        """The operation with its declared type spelt `type_sql` (validation puts in the canonical spelling)."""
        return self

    def expressions(self, table: Table | None) -> tuple[OpExpression, ...]:
        """The SQL expressions the change file wrote for this operation, in key order (`table`: the live table,
        for the types of existing columns; None when it does not exist)."""
        return ()

    def check_expressions(self, table: Table, x: ExpressionChecks) -> None:
        """Have `x` check every expression expand will run for this operation against `table` (which has
        passed `check`): the written ones and the implied ones (a plain cast, a live default under a new
        type)."""

    # -- plain DDL -----------------------------------------------------------------------------------------
    def describe(self, table: Table) -> str:
        return self.kind

    def plain(self, table: Table) -> Ddl:
        """One-transaction DDL (the declarative diff and `evolve`)."""
        raise NotImplementedError(f"{self.kind} has no plain DDL")

    def inverse(self, table: Table) -> Operation | None:
        """The operation that undoes this one (None: none exists — Alembic's `reverse()` that raises)."""
        return None

    # -- expand / contract / abort ------------------------------------------------------------------------
    def expand(self, x: ExpandBuilder) -> None:
        """Add this operation's expand steps (each with its abort inverse) and contract steps to `x`."""
        raise NotImplementedError(f"{self.kind} cannot be run as expand–contract")

    # -- pipeline layers -----------------------------------------------------------------------------------
    def effects(self, sink: ShapeSink) -> None:
        """Tell `sink` what this operation does to the table's shape (no effect: nothing to tell)."""


REGISTRY: dict[str, type[Operation]] = {}


def for_change_kind(kind: str) -> type[Operation] | None:
    """The operation class whose declarative `Change.kind` is `kind` (None: none has it)."""
    return next((c for c in REGISTRY.values() if c.change_kind == kind), None)


class ShapeRecord:
    """A `ShapeSink` that writes down what it is told, for callers that ask what a change does to the table's
    columns: what it adds (name, type, in order), retypes, renames and drops."""

    def __init__(self) -> None:
        self.adds: list[tuple[str, str]] = []
        self.retypes: dict[str, str] = {}
        self.renames: dict[str, str] = {}
        self.drops: list[str] = []

    @property
    def new_names(self) -> list[str]:
        """The column names the change brings in: added, or renamed to."""
        return [name for name, _ in self.adds] + list(self.renames.values())

    @property
    def types(self) -> dict[str, str]:
        """The types the change sets: of the columns it adds and those it retypes."""
        return {**dict(self.adds), **self.retypes}

    def added(self, name: str, type_: str, nullable: bool, default: str | None) -> None:
        self.adds.append((name, type_))

    def retyped(self, name: str, type_: str) -> None:
        self.retypes[name] = type_

    def renamed(self, old: str, new: str) -> None:
        self.renames[old] = new

    def dropped(self, name: str) -> None:
        self.drops.append(name)

    def required(self, name: str) -> None:
        pass

    def optional(self, name: str) -> None:
        pass


def shape_of(*ops: Operation) -> ShapeRecord:
    """What `ops` do to the table's names, in order."""
    record = ShapeRecord()
    for op in ops:
        op.effects(record)
    return record


@dataclass(frozen=True)
class ColumnOperation(Operation):
    """An operation on one existing column (`column`), which must exist."""

    column: str

    def columns(self) -> tuple[str, ...]:
        return (self.column,)

    def check(self, table: Table) -> list[Problem]:
        if table.column(self.column) is None:
            return [Problem("column", f"column {self.column!r} does not exist in {table.qualified}")]
        return []


def live_column(table: Table, name: str) -> Column:
    col = table.column(name)
    if col is None:
        raise KeyError(f"column {name!r} is not in {table.qualified}")
    return col


def expand_problems(table: Table, key: str, name: str, *, copies: bool, helper: str | None = None) -> list[Problem]:
    """What stops expand–contract from working on existing column `name`: the backfill is keyed on the
    primary key; a copied column (`copies`: rename, change_type) cannot be an identity, generated or serial one;
    the helper column expand would add (`helper`) must not exist."""
    col = table.column(name)
    if col is None:
        return []
    out = []
    if table.primary_key and name in table.primary_key.columns:
        out.append(Problem(key, f"{name!r} is part of the primary key, which the backfill is keyed on; "
                                "change it with a versioned migration"))
    if copies and (col.identity or col.generated or col.serial):
        out.append(Problem(key, f"{name!r} is an identity, generated or serial column; expand–contract cannot copy it"))
    if helper is not None and table.column(helper) is not None:
        out.append(Problem(key, f"helper column {helper!r} already exists"))
    return out


def as_sql(text: str) -> sql.SQL:
    """A statement rendered by `schema.ddl`, for callers that compose `psycopg.sql` objects."""
    return sql.SQL(text)  # noqa: S608


class Refused(Exception):  # noqa: N818 - a refusal, not a crash: callers turn it into their own error form
    """The operation cannot be planned as plain DDL on this table (`key`: the operation field it is about)."""

    def __init__(self, key: str, message: str) -> None:
        self.key, self.message = key, message
        super().__init__(message)
