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
from migrate_assets.expand.ops import (
    AddColumn,
    ChangeSet,
    ChangeType,
    DropColumn,
    RenameColumn,
    SetNotNull,
)
from migrate_assets.expand.trigger import Fill, SyncPair, trigger_body
from migrate_assets.schema.model import Column, Constraint, Index, Table
from migrate_assets.schema.types import PgType

BACKFILL_GUC = "migrate_assets.backfill"

Statement = sql.Composed


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


def _writers_may_omit(c: Column) -> bool:
    """Whether Postgres fills the column when an insert leaves it out (or it takes NULL)."""
    return (
        c.nullable or c.default is not None or c.serial or c.identity is not None or c.generated is not None
    )


def _shape_old(table: Table) -> list[tuple[str, str, str]]:
    """(name in the shape, type, physical column) for the old shape: the table as it is."""
    return [(c.name, c.type.render(), c.name) for c in table.columns]


def new_shape(change: ChangeSet, table: Table) -> list[tuple[str, str, str]]:
    """(name in the new shape, type, physical column during expand) — what `down` expressions see."""
    renamed = {op.from_: op.to for op in change.operations if isinstance(op, RenameColumn)}
    retyped = {op.column: op.to_type for op in change.operations if isinstance(op, ChangeType)}
    dropped = {op.column for op in change.operations if isinstance(op, DropColumn)}
    out: list[tuple[str, str, str]] = []
    for c in table.columns:
        if c.name in dropped:
            continue
        if c.name in renamed:
            out.append((renamed[c.name], c.type.render(), renamed[c.name]))
        elif c.name in retyped:
            out.append((c.name, retyped[c.name], naming.new_column(c.name)))
        else:
            out.append((c.name, c.type.render(), c.name))
    for op in change.operations:
        if isinstance(op, AddColumn):
            out.append((op.name, op.type, op.name))
    return out


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
    old_shape = _shape_old(table)
    nshape = new_shape(change, table)
    warnings: list[str] = []
    ops: list[OpPlan] = []
    steps: list[Step] = []
    fn_steps: list[Step] = []
    prepare: list[Step] = []
    contract: list[Step] = []
    calls: dict[str, sql.Composable] = {}

    def ref(key: str) -> Sequence[str] | None:
        return None if refs is None else refs.get(key)

    def warn_indexes(col: str) -> None:
        covering: list[Constraint | Index] = [*table.uniques, *table.indexes]
        for idx in sorted(covering, key=lambda x: x.name or ""):
            if col in idx.columns:
                warnings.append(
                    f"index {idx.name} covers {col!r}; contract drops it with the column — recreate it"
                )

    for i, op in enumerate(change.operations):
        if isinstance(op, AddColumn):
            add = sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(tbl, _q(op.name), sql.SQL(op.type))
            fwd: list[Statement] = []
            fill_expr = op.backfill
            if op.default is not None and i not in volatile_defaults:
                add = sql.SQL("{} DEFAULT ({})").format(add, sql.SQL(op.default))
                fwd.append(add)
            elif op.default is not None:
                fwd += [
                    add,
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT ({})").format(
                        tbl, _q(op.name), sql.SQL(op.default)
                    ),
                ]
                fill_expr = fill_expr or op.default
            else:
                fwd.append(add)
            check = None
            if not op.nullable:
                check = naming.not_null_check(fp, i)
                fwd.append(
                    sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID").format(
                        tbl, _q(check), _q(op.name)
                    )
                )
            steps.append(
                Step(
                    f"add column {op.name}",
                    tuple(fwd),
                    (sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(tbl, _q(op.name)),),
                )
            )
            fill = None
            if fill_expr is not None:
                fn = naming.expr_function(fp, "fill", i)
                step, calls[f"fill{i}"] = _function(
                    schema, fn, old_shape, ref(f"fill{i}"), op.type, fill_expr
                )
                fn_steps.append(step)
                fill = Fill(i, op.name, op.type, fill_expr, fn)
            ops.append(
                OpPlan(
                    i,
                    op.kind,
                    f"add column {op.name} {op.type}",
                    (op.name,),
                    fill=fill,
                    not_null=None if op.nullable else op.name,
                    check=check,
                    check_at_expand=True,
                )
            )
        elif isinstance(op, RenameColumn | ChangeType):
            col = table.column(op.from_ if isinstance(op, RenameColumn) else op.column)
            assert col is not None, "validated before planning"
            old_type = col.type.render()
            if isinstance(op, RenameColumn):
                new, new_type = op.to, old_type
                up, down = _q(col.name).as_string(None), _q(op.to).as_string(None)
                summary = f"rename column {col.name} to {op.to}"
            else:
                new, new_type = naming.new_column(col.name), op.to_type
                up = op.up or sql.SQL("CAST({} AS {})").format(_q(col.name), sql.SQL(op.to_type)).as_string(
                    None
                )
                down = op.down or sql.SQL("CAST({} AS {})").format(_q(col.name), sql.SQL(old_type)).as_string(
                    None
                )
                summary = f"change type of {col.name} from {old_type} to {op.to_type}"
            up_fn, down_fn = naming.expr_function(fp, "up", i), naming.expr_function(fp, "down", i)
            s1, calls[f"up{i}"] = _function(schema, up_fn, old_shape, ref(f"up{i}"), new_type, up)
            s2, calls[f"down{i}"] = _function(schema, down_fn, nshape, ref(f"down{i}"), old_type, down)
            fn_steps += [s1, s2]
            steps.append(
                Step(
                    f"add column {new}",
                    (sql.SQL("ALTER TABLE {} ADD COLUMN {} {}").format(tbl, _q(new), sql.SQL(new_type)),),
                    (sql.SQL("ALTER TABLE {} DROP COLUMN IF EXISTS {}").format(tbl, _q(new)),),
                )
            )
            pair = SyncPair(i, col.name, new, old_type, new_type, up, down, up_fn, down_fn)
            check = None if col.nullable else naming.not_null_check(fp, i)
            final = op.to if isinstance(op, RenameColumn) else col.name
            cfwd: list[Statement] = [sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(tbl, _q(col.name))]
            if isinstance(op, ChangeType):
                cfwd.append(
                    sql.SQL("ALTER TABLE {} RENAME COLUMN {} TO {}").format(tbl, _q(new), _q(col.name))
                )
            if col.default is not None:
                default = (
                    col.default
                    if isinstance(op, RenameColumn)
                    else _cast(col.default, new_type).as_string(None)
                )
                cfwd.append(
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET DEFAULT {}").format(
                        tbl, _q(final), sql.SQL(default)
                    )
                )
            # its indexes and constraints are rebuilt on the new column (expand/indexes.py), not warned about
            contract.append(Step(summary, tuple(cfwd)))
            ops.append(
                OpPlan(i, op.kind, summary, (new,), pair=pair, not_null=new if check else None, check=check)
            )
        elif isinstance(op, DropColumn):
            col = table.column(op.column)
            assert col is not None, "validated before planning"
            if not _writers_may_omit(col):
                steps.append(
                    Step(
                        f"let new-shape writers omit {col.name}",
                        (sql.SQL("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL").format(tbl, _q(col.name)),),
                        (sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(tbl, _q(col.name)),),
                    )
                )
            warn_indexes(col.name)
            contract.append(
                Step(
                    f"drop column {col.name}",
                    (sql.SQL("ALTER TABLE {} DROP COLUMN {}").format(tbl, _q(col.name)),),
                )
            )
            ops.append(OpPlan(i, op.kind, f"drop column {col.name}"))
        elif isinstance(op, SetNotNull):
            col = table.column(op.column)
            assert col is not None, "validated before planning"
            if not col.nullable:
                warnings.append(f"{col.name} is already NOT NULL; set_not_null does nothing")
                ops.append(OpPlan(i, op.kind, f"set {col.name} NOT NULL (already)"))
                continue
            check = naming.not_null_check(fp, i)
            steps.append(
                Step(
                    f"guard {col.name} against NULLs",
                    (
                        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID").format(
                            tbl, _q(check), _q(col.name)
                        ),
                    ),
                    (sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(tbl, _q(check)),),
                )
            )
            fill = None
            if op.backfill is not None:
                fn = naming.expr_function(fp, "fill", i)
                step, calls[f"fill{i}"] = _function(
                    schema, fn, old_shape, ref(f"fill{i}"), col.type.render(), op.backfill
                )
                fn_steps.append(step)
                fill = Fill(i, col.name, col.type.render(), op.backfill, fn)
            ops.append(
                OpPlan(
                    i,
                    op.kind,
                    f"set {col.name} NOT NULL",
                    fill=fill,
                    not_null=col.name,
                    check=check,
                    check_at_expand=True,
                )
            )

    # NOT NULL targets: add the guard at contract preparation when expand did not, validate it without blocking
    # writers (SHARE UPDATE EXCLUSIVE), then SET NOT NULL uses it instead of scanning under ACCESS EXCLUSIVE.
    for o in ops:
        if o.not_null is None or o.check is None:
            continue
        if not o.check_at_expand:
            prepare.append(
                Step(
                    f"guard {o.not_null} against NULLs",
                    (
                        sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} CHECK ({} IS NOT NULL) NOT VALID").format(
                            tbl, _q(o.check), _q(o.not_null)
                        ),
                    ),
                    (sql.SQL("ALTER TABLE {} DROP CONSTRAINT IF EXISTS {}").format(tbl, _q(o.check)),),
                )
            )
        prepare.append(
            Step(
                f"validate NOT NULL guard of {o.not_null}",
                (sql.SQL("ALTER TABLE {} VALIDATE CONSTRAINT {}").format(tbl, _q(o.check)),),
            )
        )
        final = o.not_null
        if o.pair is not None and o.kind == "change_type":
            final = o.pair.old
        contract.append(
            Step(
                f"set {final} NOT NULL",
                (
                    sql.SQL("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL").format(tbl, _q(final)),
                    sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(tbl, _q(o.check)),
                ),
            )
        )

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
