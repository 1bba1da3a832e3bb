"""Expand status (SPEC §5): is it safe to contract?

`safe_to_contract` = expanded ∧ sync trigger present and enabled ∧ backfill complete ∧ zero rows where old and
new disagree (`new IS DISTINCT FROM up(old)`) ∧ no NULL left in a column that contract will make NOT NULL.
Counting disagreement is a full scan of the table; it is what makes the answer trustworthy.

Counting evaluates `up` over every row, and `expand-status` and `contract --dry-run` are read-only commands: a
read-only session stops local writes, not a volatile function's effects elsewhere (`dblink_exec`, `nextval`,
`pg_notify`...). So `up` is evaluated only when Postgres' plan shows it calls no volatile function
(`exprcheck.is_volatile`, which runs nothing); otherwise that operation's mismatch count is None ("not
checked", reason in `not_checked`), the total is None, and the change is not safe to contract: `contract`
refuses unless forced.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import psycopg
from psycopg import sql

from migrate_assets.expand import state
from migrate_assets.expand.backfill import key_literal
from migrate_assets.expand.planner import ExpandPlan
from migrate_assets.expand.shape import read_live
from migrate_assets.schema.exprcheck import Expression, ExpressionError, is_volatile


@dataclass(frozen=True)
class OpStatus:
    index: int
    kind: str
    summary: str
    new_columns: list[str]
    expanded: bool
    mismatched_rows: int | None  #: None: not checked (see `ExpandStatus.not_checked`)
    null_rows: int


@dataclass(frozen=True)
class ExpandStatus:
    table: str
    fingerprint: str
    phase: str
    operations: list[OpStatus]
    trigger: str | None
    trigger_present: bool
    trigger_enabled: bool
    rows_to_backfill: int
    mismatched_rows: int | None  #: None: some operation's `up` was not evaluated
    safe_to_contract: bool
    reasons: list[str] = field(default_factory=list)
    not_checked: list[str] = field(default_factory=list)  #: why a mismatch count is None

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        order = ["table", "operations", "rows_to_backfill", "mismatched_rows", "safe_to_contract"]
        return {k: d[k] for k in order} | {k: v for k, v in d.items() if k not in order}


def trigger_state(conn: psycopg.Connection[Any], plan: ExpandPlan) -> tuple[bool, bool]:
    """(present, enabled) of the plan's sync trigger: triggers are outside schema's table model."""
    row = conn.execute(
        "SELECT t.tgenabled FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid "
        "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s AND t.tgname = %s",
        (plan.table.schema, plan.table.name, plan.trigger),
    ).fetchone()
    if row is None:
        return False, False
    return True, row[0] != "D"


def rows_to_backfill(conn: psycopg.Connection[Any], plan: ExpandPlan, st: state.OperationState) -> int:
    """Rows between the cursor and the last key recorded at expand start."""
    if not plan.backfill.needed or st.backfill_max is None or st.backfill_cursor == st.backfill_max:
        return 0
    keys = sql.SQL("({})").format(sql.SQL(", ").join(sql.Identifier(k) for k, _ in plan.backfill.pk))
    where = sql.SQL("{} <= {}").format(keys, key_literal(plan, list(st.backfill_max)))
    if st.backfill_cursor is not None:
        where = sql.SQL("{} > {} AND {}").format(keys, key_literal(plan, list(st.backfill_cursor)), where)
    q = sql.SQL("SELECT count(*) FROM {} WHERE {}").format(
        sql.Identifier(plan.table.schema, plan.table.name), where
    )
    (n,) = conn.execute(q).fetchone() or (0,)
    return int(n)


def compute_status(
    conn: psycopg.Connection[Any], plan: ExpandPlan, st: state.OperationState | None
) -> ExpandStatus:
    table = plan.change.qualified
    if st is None or st.phase not in state.ACTIVE:
        phase = st.phase if st else "not_expanded"
        ops = [OpStatus(o.index, o.kind, o.summary, list(o.new_columns), False, 0, 0) for o in plan.ops]
        return ExpandStatus(
            table,
            plan.fingerprint,
            phase,
            ops,
            plan.trigger,
            False,
            False,
            0,
            0,
            False,
            [f"phase is {phase}"],
        )
    present, enabled = trigger_state(conn, plan)
    live = read_live(conn, plan.table.schema, plan.table.name)
    cols = {c.name for c in live.columns} if live is not None else set()
    checks: list[sql.Composable] = []
    labels: list[tuple[int, str]] = []
    unchecked = unsafe_up(conn, plan)
    for o in plan.ops:
        if o.pair is not None and o.index not in unchecked:
            up = sql.SQL("CAST(({}) AS {})").format(sql.SQL(o.pair.up), sql.SQL(o.pair.new_type))
            checks.append(sql.SQL("{} IS DISTINCT FROM {}").format(sql.Identifier(o.pair.new), up))
            labels.append((o.index, "mismatch"))
        if o.not_null is not None:
            checks.append(sql.SQL("{} IS NULL").format(sql.Identifier(o.not_null)))
            labels.append((o.index, "null"))
    counts: dict[tuple[int, str], int] = {}
    any_bad = 0
    if checks and all(c in cols for o in plan.ops for c in o.new_columns):
        q = sql.SQL("SELECT {}, count(*) FILTER (WHERE {}) FROM {}").format(
            sql.SQL(", ").join(sql.SQL("count(*) FILTER (WHERE {})").format(c) for c in checks),
            sql.SQL(" OR ").join(sql.SQL("({})").format(c) for c in checks),
            sql.Identifier(plan.table.schema, plan.table.name),
        )
        row = conn.execute(q).fetchone() or ()
        counts = {label: int(v) for label, v in zip(labels, row, strict=False)}
        any_bad = int(row[-1]) if row else 0
    ops = [
        OpStatus(
            o.index,
            o.kind,
            o.summary,
            list(o.new_columns),
            expanded=all(c in cols for c in o.new_columns),
            mismatched_rows=None if o.index in unchecked else counts.get((o.index, "mismatch"), 0),
            null_rows=counts.get((o.index, "null"), 0),
        )
        for o in plan.ops
    ]
    left = rows_to_backfill(conn, plan, st)
    needs_trigger = any(o.pair is not None or o.fill is not None for o in plan.ops)
    reasons: list[str] = []
    if st.phase != "expanded":
        reasons.append("expand has not finished (backfill incomplete or interrupted)")
    if not all(o.expanded for o in ops):
        reasons.append("new columns are missing")
    if needs_trigger and not (present and enabled):
        reasons.append("sync trigger is missing or disabled")
    if left:
        reasons.append(f"{left} rows still to backfill")
    if any_bad:
        reasons.append(f"{any_bad} rows where old and new columns disagree or a NOT NULL target is NULL")
    not_checked = [f"[{i}] {why}" for i, why in sorted(unchecked.items())]
    reasons += [f"old and new columns not compared: {w}" for w in not_checked]
    conn.rollback()
    return ExpandStatus(
        table=table,
        fingerprint=plan.fingerprint,
        phase=st.phase,
        operations=ops,
        trigger=plan.trigger if needs_trigger else None,
        trigger_present=present,
        trigger_enabled=enabled,
        rows_to_backfill=left,
        mismatched_rows=None if unchecked else any_bad,
        safe_to_contract=not reasons,
        reasons=reasons,
        not_checked=not_checked,
    )


def unsafe_up(conn: psycopg.Connection[Any], plan: ExpandPlan) -> dict[int, str]:
    """Operations whose `up` must not be evaluated by a status check (index -> why): it calls a volatile
    function, or Postgres could not plan it. Decided from the plan of a query over it; nothing is run."""
    out: dict[int, str] = {}
    source = sql.Identifier(plan.table.schema, plan.table.name)
    for o in plan.ops:
        if o.pair is None:
            continue
        e = Expression(o.pair.up, "", "up", type_sql=o.pair.new_type, source=source, subqueries=True)
        try:
            if is_volatile(conn, e):
                out[o.index] = (f"`up` {o.pair.up!r} calls a volatile function, which is never run to compare "
                                "them (its effects could reach outside the transaction); contract needs --force")
        except ExpressionError as exc:
            out[o.index] = f"`up` {o.pair.up!r} could not be planned: {exc.message}"
    return out
