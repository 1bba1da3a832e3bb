"""Pure planning: (change set, live table as data) → ExpandPlan of SQL statements as data.

No I/O here: the plan can be printed, stored and tested without a database. Every statement is composed with
`psycopg.sql` (identifiers quoted); user expressions are embedded only after Postgres accepted them (see
`validate.py`). Each expand step carries its inverse, so abort is the inverses in reverse order.

Synchronisation design. Each `rename_column` / `change_type` is a *pair* (old column, new column) with an `up`
expression (old shape → new value) and a `down` expression (new shape → old value). Each expression becomes a SQL
function whose parameters are named like the columns of the shape it is written against, so Postgres itself
resolves the plain column names (no textual rewriting); the trigger calls it with `NEW.<physical column>`.
One BEFORE INSERT OR UPDATE row trigger per change:

* INSERT: a pair whose new column was written (not NULL) gets `old := down(new shape)`; otherwise
  `new := up(old shape)` — a new column has no default during expand, so NULL means "not written".
* UPDATE: new column changed → `old := down(...)`; else old column changed (or new still NULL) → `new := up(...)`.
* `add_column` / `set_not_null` with a backfill expression: a NULL is filled from it.
* A BEFORE trigger that assigns to NEW never fires itself again, so there are no loops.

The batched backfill runs `SET new = up(old)` in SQL with `SET LOCAL migrate_assets.backfill = on`; the trigger's
WHEN clause skips the trigger then, so a backfill never recomputes the old column from the new one (which would
corrupt old values when `down(up(x)) != x`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from psycopg import sql

from migrate_assets.expand import naming
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.expand.trigger import Fill, SyncPair, trigger_body
from migrate_assets.schema import ddl
from migrate_assets.schema.model import Constraint, Index, Table
from migrate_assets.schema.ops.base import as_sql, shape_of
from migrate_assets.schema.types import PgType

BACKFILL_GUC = "migrate_assets.backfill"

Statement = sql.SQL | sql.Composed


@dataclass(frozen=True)
class Step:
    """One forward action and the statements that undo it (empty inverse: nothing to undo)."""

    description: str
    forward: tuple[Statement, ...]
    inverse: tuple[Statement, ...] = ()


@dataclass(frozen=True)
class OpPlan:
    index: int
    kind: str
    summary: str
    new_columns: tuple[str, ...] = ()
    pair: SyncPair | None = None
    fill: Fill | None = None
    #: column that must be NOT NULL after contract; its NULLs block contract
    not_null: str | None = None
    #: name of the NOT VALID check that guards `not_null` (created at expand or at contract preparation)
    check: str | None = None
    check_at_expand: bool = False


@dataclass(frozen=True)
class BackfillSpec:
    """What one backfill batch does: SET these columns where a row still needs work, keyed by primary key."""

    pk: tuple[tuple[str, PgType], ...]
    assignments: tuple[tuple[str, Statement], ...]
    pending: Statement | None
    #: only new columns of pairs to fill: (nearly) every row needs the update, so skip the per-row check
    rewrite_all: bool = False

    @property
    def needed(self) -> bool:
        return bool(self.assignments)


@dataclass(frozen=True)
class ExpandPlan:
    change: ChangeSet
    table: Table
    fingerprint: str
    trigger: str
    trigger_function: str
    ops: tuple[OpPlan, ...]
    expand_steps: tuple[Step, ...]
    backfill: BackfillSpec
    contract_prepare: tuple[Step, ...]
    contract_steps: tuple[Step, ...]
    warnings: tuple[str, ...] = field(default=())

    @property
    def new_physical_columns(self) -> tuple[str, ...]:
        """Columns expand adds; a CDC connector starts emitting them (SPEC §5 CDC awareness)."""
        return tuple(c for op in self.ops for c in op.new_columns)

    @property
    def abort_statements(self) -> tuple[Statement, ...]:
        """Undo expand and any contract preparation: inverses in reverse order."""
        out: list[Statement] = []
        for step in reversed(self.contract_prepare + self.expand_steps):
            out.extend(step.inverse)
        return tuple(out)

    @property
    def contract_statements(self) -> tuple[Statement, ...]:
        return tuple(s for step in self.contract_steps for s in step.forward)


def _q(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


def primary_key(table: Table) -> tuple[str, ...]:
    return table.primary_key.columns if table.primary_key else ()


def _shape_old(table: Table) -> list[tuple[str, str, str]]:
    """(name in the shape, type, physical column) for the old shape: the table as it is."""
    return [(c.name, c.type.render(), c.name) for c in table.columns]


def new_shape(change: ChangeSet, table: Table) -> list[tuple[str, str, str]]:
    """(name in the new shape, type, physical column during expand) — what `down` expressions see."""
    sink = shape_of(*change.operations)
    drops = set(sink.drops)
    out: list[tuple[str, str, str]] = []
    for c in table.columns:
        if c.name in drops:
            continue
        if c.name in sink.renames:
            out.append((sink.renames[c.name], c.type.render(), sink.renames[c.name]))
        elif c.name in sink.retypes:
            out.append((c.name, sink.retypes[c.name], naming.new_column(c.name)))
        else:
            out.append((c.name, c.type.render(), c.name))
    return out + [(name, type_, name) for name, type_ in sink.adds]


def _function(
    schema: str,
    name: str,
    shape: Sequence[tuple[str, str, str]],
    refs: Sequence[str] | None,
    rtype: str,
    expr: str,
) -> tuple[Step, sql.Composable]:
    """CREATE FUNCTION with parameters named like the shape's columns; returns the step and the call on NEW."""
    params = [s for s in shape if refs is None or s[0] in refs]
    body = sql.SQL("SELECT CAST(({}) AS {})").format(sql.SQL(expr), sql.SQL(rtype))
    create = sql.SQL("CREATE FUNCTION {}({}) RETURNS {} LANGUAGE sql AS {}").format(
        _q(schema, name),
        sql.SQL(", ").join(sql.SQL("{} {}").format(_q(n), sql.SQL(t)) for n, t, _ in params),
        sql.SQL(rtype),
        sql.Literal(body.as_string(None)),
    )
    drop = sql.SQL("DROP FUNCTION IF EXISTS {}").format(_q(schema, name))
    call = sql.SQL("{}({})").format(
        _q(schema, name), sql.SQL(", ").join(sql.SQL("NEW.{}").format(_q(p)) for _, _, p in params)
    )
    return Step(f"create function {name}", (create,), (drop,)), call


def _cast(expr: str, typ: str) -> sql.Composed:
    return sql.SQL("CAST(({}) AS {})").format(sql.SQL(expr), sql.SQL(typ))


class _Builder:
    """The expand planner's side of `schema.ops.ExpandBuilder`: operations add their steps through it."""

    def __init__(self, change: ChangeSet, table: Table, fp: str, refs: Mapping[str, Sequence[str]] | None,
                 volatile_defaults: frozenset[int]) -> None:
        self.table, self.fp, self.refs, self.volatile = table, fp, refs, volatile_defaults
        self.old_shape, self.new_shape = _shape_old(table), new_shape(change, table)
        self.steps: list[Step] = []
        self.fn_steps: list[Step] = []
        self.contract_steps: list[Step] = []
        self.ops: list[OpPlan] = []
        self.warnings: list[str] = []
        self.calls: dict[str, sql.Composable] = {}
        self.finals: dict[int, str] = {}
        self.index, self.kind = 0, ""
        self._pair: SyncPair | None = None
        self._fill: Fill | None = None

    def begin(self, index: int, kind: str) -> None:
        self.index, self.kind, self._pair, self._fill = index, kind, None, None

    def _ref(self, key: str) -> Sequence[str] | None:
        return None if self.refs is None else self.refs.get(key)

    def check_name(self) -> str:
        return naming.not_null_check(self.fp, self.index)

    def helper_column(self, column: str) -> str:
        return naming.new_column(column)

    def volatile_default(self) -> bool:
        return self.index in self.volatile

    def step(self, description: str, forward: Sequence[str], inverse: Sequence[str] = ()) -> None:
        self.steps.append(Step(description, tuple(as_sql(s) for s in forward), tuple(as_sql(s) for s in inverse)))

    def contract(self, description: str, forward: Sequence[str]) -> None:
        self.contract_steps.append(Step(description, tuple(as_sql(s) for s in forward)))

    def fill(self, column: str, type_: str, expression: str) -> None:
        i = self.index
        fn = naming.expr_function(self.fp, "fill", i)
        step, self.calls[f"fill{i}"] = _function(self.table.schema, fn, self.old_shape, self._ref(f"fill{i}"), type_,
                                                 expression)
        self.fn_steps.append(step)
        self._fill = Fill(i, column, type_, expression, fn)

    def pair(self, old: str, new: str, old_type: str, new_type: str, up: str, down: str) -> None:
        i, schema = self.index, self.table.schema
        up_fn, down_fn = naming.expr_function(self.fp, "up", i), naming.expr_function(self.fp, "down", i)
        s1, self.calls[f"up{i}"] = _function(schema, up_fn, self.old_shape, self._ref(f"up{i}"), new_type, up)
        s2, self.calls[f"down{i}"] = _function(schema, down_fn, self.new_shape, self._ref(f"down{i}"), old_type, down)
        self.fn_steps += [s1, s2]
        t = self.table.name
        self.step(f"add column {new}", [ddl.add_column(schema, t, ddl.column_spec(new, new_type))],
                  [ddl.drop_column(schema, t, new, if_exists=True)])
        self._pair = SyncPair(i, old, new, old_type, new_type, up, down, up_fn, down_fn)

    def warn(self, message: str) -> None:
        self.warnings.append(message)

    def warn_indexes(self, column: str) -> None:
        covering: list[Constraint | Index] = [*self.table.uniques, *self.table.indexes]
        for idx in sorted(covering, key=lambda x: x.name or ""):
            if column in idx.columns:
                self.warn(f"index {idx.name} covers {column!r}; contract drops it with the column — recreate it")

    def record(self, summary: str, new_columns: tuple[str, ...] = (), *, not_null: str | None = None,
               check: str | None = None, check_at_expand: bool = False, final: str | None = None) -> None:
        self.ops.append(OpPlan(self.index, self.kind, summary, new_columns, pair=self._pair, fill=self._fill,
                               not_null=not_null, check=check, check_at_expand=check_at_expand))
        if not_null is not None:
            self.finals[self.index] = final or not_null


def plan_expand(
    change: ChangeSet,
    table: Table,
    *,
    refs: Mapping[str, Sequence[str]] | None = None,
    volatile_defaults: frozenset[int] = frozenset(),
    fingerprint: str | None = None,
) -> ExpandPlan:
    """Plan expand, backfill, contract and abort for `change` on `table` (its pre-expand shape).

    `change` must already be validated against `table` (see `validate.py`); types are canonical. `refs` maps an
    expression function key (`up0`, `down0`, `fill3`) to the columns it references (all shape columns when
    absent); `volatile_defaults` holds the indexes of add_column operations whose default is volatile (they
    cannot be added with the column without rewriting the table, so they are backfilled instead).
    `fingerprint` is the identity of the change as the user wrote it (names derive from it); it defaults to
    the fingerprint of `change`.
    """
    fp = fingerprint or change.fingerprint()
    schema, tname = table.schema, table.name
    tbl = _q(schema, tname)
    x = _Builder(change, table, fp, refs, volatile_defaults)
    for i, op in enumerate(change.operations):
        x.begin(i, op.kind)
        op.expand(x)
    ops, steps, fn_steps, contract, warnings, calls = x.ops, x.steps, x.fn_steps, x.contract_steps, x.warnings, x.calls
    prepare: list[Step] = []

    # NOT NULL targets: add the guard at contract preparation when expand did not, validate it without blocking
    # writers (SHARE UPDATE EXCLUSIVE), then SET NOT NULL uses it instead of scanning under ACCESS EXCLUSIVE.
    for o in ops:
        if o.not_null is None or o.check is None:
            continue
        if not o.check_at_expand:
            prepare.append(Step(f"guard {o.not_null} against NULLs",
                                (as_sql(ddl.not_null_check(schema, tname, o.not_null, o.check)),),
                                (as_sql(ddl.drop_constraint(schema, tname, o.check)),)))
        prepare.append(Step(f"validate NOT NULL guard of {o.not_null}",
                            (as_sql(ddl.validate_constraint(schema, tname, o.check)),)))
        final = x.finals[o.index]
        contract.append(Step(f"set {final} NOT NULL", (as_sql(ddl.set_not_null(schema, tname, final)),
                                                        as_sql(ddl.drop_constraint(schema, tname, o.check,
                                                                                   if_exists=False)))))

    trig, trig_fn = naming.trigger(fp), naming.trigger_function(tname, fp)
    pairs = [o.pair for o in ops if o.pair is not None]
    fills = [o.fill for o in ops if o.fill is not None]
    if pairs or fills:
        body = trigger_body(pairs, fills, calls)
        create_fn = sql.SQL("CREATE FUNCTION {}() RETURNS trigger LANGUAGE plpgsql AS {}").format(
            _q(schema, trig_fn), sql.Literal(body.as_string(None))
        )
        create_trg = sql.SQL(
            "CREATE TRIGGER {} BEFORE INSERT OR UPDATE ON {} FOR EACH ROW "
            "WHEN (current_setting({}, true) IS DISTINCT FROM 'on') EXECUTE FUNCTION {}()"
        ).format(_q(trig), tbl, sql.Literal(BACKFILL_GUC), _q(schema, trig_fn))
        drop_trg = sql.SQL("DROP TRIGGER IF EXISTS {} ON {}").format(_q(trig), tbl)
        drop_fn = sql.SQL("DROP FUNCTION IF EXISTS {}()").format(_q(schema, trig_fn))
        steps += fn_steps
        steps.append(Step(f"create trigger function {trig_fn}", (create_fn,), (drop_fn,)))
        steps.append(Step(f"create trigger {trig}", (create_trg,), (drop_trg,)))
        cleanup = [drop_trg, drop_fn] + [s for st in fn_steps for s in st.inverse]
        contract.insert(0, Step("drop sync trigger and functions", tuple(cleanup)))

    assignments: list[tuple[str, Statement]] = []
    pending: list[Statement] = []
    for p in pairs:
        up_sql = _cast(p.up, p.new_type)
        assignments.append((p.new, up_sql))
        pending.append(sql.SQL("{} IS DISTINCT FROM {}").format(_q(p.new), up_sql))
    for f in fills:
        assignments.append(
            (f.column, sql.SQL("COALESCE({}, {})").format(_q(f.column), _cast(f.expr, f.type)))
        )
        pending.append(sql.SQL("{} IS NULL").format(_q(f.column)))
    pk_types = {c.name: c.type for c in table.columns}
    backfill = BackfillSpec(
        pk=tuple((k, pk_types[k]) for k in primary_key(table)),
        assignments=tuple(assignments),
        pending=sql.SQL(" OR ").join(sql.SQL("({})").format(p) for p in pending) if pending else None,
        rewrite_all=bool(pairs) and not fills,
    )
    return ExpandPlan(
        change=change,
        table=table,
        fingerprint=fp,
        trigger=trig,
        trigger_function=trig_fn,
        ops=tuple(ops),
        expand_steps=tuple(steps),
        backfill=backfill,
        contract_prepare=tuple(prepare),
        contract_steps=tuple(contract),
        warnings=tuple(warnings),
    )
