"""Validation of a change set against the live table — by asking Postgres, never by keyword lists.

Everything runs in one READ ONLY transaction that is always rolled back, creates nothing and runs no user
expression:

* types are parsed into schema's canonical `PgType` (spelled as `PgType.render()` from then on); Postgres is
  asked only whether a user-defined type exists;
* every expression goes through `schema.exprcheck` (offline check, then a parse-only prepare of one statement
  holding it once) against the table itself for expressions written against the old shape, a column-less
  relation of the new shape's columns for `down` expressions, and no columns for defaults;
* the columns an expression references are those it no longer parses without
  (`exprcheck.referenced_columns`), so the generated functions take exactly those columns as parameters;
* whether an add_column default is volatile (and would rewrite the table) is read from the plan of a query
  over it (`exprcheck.is_volatile`), never by evaluating it.

A problem becomes a ChangeFileError (exit 2) naming file, line and key, with Postgres's own message.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import sql

from migrate_assets.errors import ChangeFileError, Problem
from migrate_assets.expand import naming
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.expand.planner import new_shape, primary_key
from migrate_assets.expand.shape import read_live
from migrate_assets.schema.exprcheck import (
    Expression,
    ExpressionError,
    check_expressions,
    is_volatile,
    read_only,
    referenced_columns,
    relation_shape,
)
from migrate_assets.schema.model import Table
from migrate_assets.schema.ops.base import Scope, shape_of
from migrate_assets.schema.sqltext import check_expression
from migrate_assets.schema.types import UnknownTypeError, parse_type
from migrate_assets.schema.yamlsrc import format_path


@dataclass(frozen=True)
class Validated:
    """A change set Postgres accepted: canonical types, referenced columns per expression function."""

    change: ChangeSet
    table: Table
    refs: dict[str, tuple[str, ...]]
    volatile_defaults: frozenset[int]


class _Collector:
    def __init__(self, change: ChangeSet, line_of: Callable[[tuple[str | int, ...]], int | None]) -> None:
        self.change, self.line_of, self.problems = change, line_of, list[Problem]()

    def add(self, path: tuple[str | int, ...], message: str) -> None:
        self.problems.append(
            Problem(file=self.change.source, line=self.line_of(path), key=format_path(path), message=message)
        )


def _structure(change: ChangeSet, table: Table, col: _Collector) -> None:
    for i, op in enumerate(change.operations):
        loc = change.location(i)
        problems = op.check(table)
        if not any(p.key in ("column", "from") for p in problems):  # the column exists: expand's own limits
            problems += op.check_expand(table, naming.new_column)
        for p in problems:
            col.add((*loc, p.key), p.message)


def _canonical_type(conn: psycopg.Connection[Any], text: str) -> str:
    """The type's canonical spelling; ValueError says why it is not a column type expand can add."""
    try:
        t = parse_type(text)
    except UnknownTypeError as exc:
        raise ValueError(exc.message.removeprefix(f"unknown type {exc.type_text!r}: ")) from exc
    if t.serial:
        raise ValueError("a serial type adds a sequence; use the plain type and a default")
    if t.is_user_defined:
        (oid,) = conn.execute("SELECT to_regtype(%s)", (t.render(),)).fetchone() or (None,)
        if oid is None:
            raise ValueError(f"type {t.render()} does not exist")
    return t.render()


class _Checks:
    """`ExpressionChecks` for operation `index`: Postgres parses each expression over the live table (`old`),
    the change's new shape (`new`) or no columns (`none`); the columns it reads are kept under `ref` + index."""

    def __init__(self, conn: psycopg.Connection[Any], change: ChangeSet, table: Table, col: _Collector) -> None:
        self.conn, self.change, self.col = conn, change, col
        self.old_rel = sql.Identifier(table.schema, table.name)
        self.old_cols = [(c.name, c.type.render()) for c in table.columns]
        self.new_cols = [(n, t) for n, t, _ in new_shape(change, table)]
        self.new_rel = relation_shape(self.new_cols, table.name)  # the new shape, as a relation needing no table
        self.alias = table.name
        self.refs: dict[str, tuple[str, ...]] = {}
        self.volatile: set[int] = set()
        self.index = 0

    def expression(self, ref: str, key: str, text: str, type_sql: str, scope: Scope) -> bool:
        path = (*self.change.location(self.index), key)
        source = {"old": self.old_rel, "new": self.new_rel, "none": None}[scope]
        e = Expression(text, self.change.source, format_path(path), self.col.line_of(path), type_sql=type_sql,
                       source=source, subqueries=source is not None)
        problems = check_expressions(self.conn, [e])
        if problems:
            self.col.problems.extend(problems)
            return False
        columns = {"old": self.old_cols, "new": self.new_cols, "none": None}[scope]
        self.reads(ref, () if columns is None else referenced_columns(self.conn, e, columns, self.alias))
        return True

    def reads(self, ref: str, columns: tuple[str, ...]) -> None:
        self.refs[f"{ref}{self.index}"] = columns

    def volatile_default(self, key: str, text: str, type_sql: str) -> bool:
        try:
            volatile = is_volatile(self.conn, Expression(text, self.change.source, "", type_sql=type_sql))
        except ExpressionError as exc:
            self.col.add((*self.change.location(self.index), key), f"invalid default {text!r}: {exc.message}")
            return False
        if volatile:
            self.volatile.add(self.index)
        return volatile


def validate_change(conn: psycopg.Connection[Any], change: ChangeSet) -> Validated:
    """Check `change` against the live table; change nothing."""
    col = _Collector(change, change.line_of)
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    with read_only(conn):
        return _validate(conn, change, col)


def _validate(conn: psycopg.Connection[Any], change: ChangeSet, col: _Collector) -> Validated:
    table = read_live(conn, change.schema, change.table)
    if table is None:
        raise ChangeFileError(
            [
                Problem(
                    file=change.source,
                    line=col.line_of(("table",)),
                    key="table",
                    message=f"table {change.qualified} does not exist",
                )
            ]
        )
    if not primary_key(table):
        col.add(("table",), f"table {change.qualified} has no primary key; the backfill needs one")
    _structure(change, table, col)
    if col.problems:
        raise ChangeFileError(col.problems)

    ops = list(change.operations)
    for i, op in enumerate(ops):  # canonical types
        declared = op.declared_type()
        if declared is not None:
            key, text = declared
            try:
                ops[i] = op.with_declared_type(_canonical_type(conn, text))
            except ValueError as exc:
                col.add((*change.location(i), key), f"invalid type {text!r}: {exc}")
    if col.problems:
        raise ChangeFileError(col.problems)
    resolved = dataclasses.replace(change, operations=tuple(ops))

    checks = _Checks(conn, resolved, table, col)
    for i, op in enumerate(resolved.operations):
        checks.index = i
        op.check_expressions(table, checks)
    if col.problems:
        raise ChangeFileError(col.problems)
    return Validated(change=resolved, table=table, refs=checks.refs, volatile_defaults=frozenset(checks.volatile))


def expression_problems(conn: psycopg.Connection[Any], change: ChangeSet, table: Table | None) -> list[Problem]:
    """Every problem with the change's types and expressions (`default`, `up`, `down`, `backfill`), checked
    through `schema.exprcheck` before any command (expand, evolve, Dagster jobs) embeds one: nothing runs.

    Expressions that read columns are parsed against the live table's columns plus the ones the change adds,
    renames or retypes (`table` None: the table does not exist, so only the offline check applies to them)."""
    col = _Collector(change, change.line_of)
    types: dict[int, str] = {}
    cols: dict[str, str] = {c.name: c.type.render() for c in table.columns} if table is not None else {}
    for i, op in enumerate(change.operations):
        declared = op.declared_type()
        if declared is not None:
            try:
                types[i] = parse_type(declared[1]).plain.render()
            except UnknownTypeError as exc:
                col.add((*change.location(i), declared[0]), exc.message)
                continue
        shape = shape_of(op)
        cols.update((name, types[i]) for name in shape.types)
        cols.update((new, cols[old]) for old, new in shape.renames.items() if old in cols)
    old_rel = sql.Identifier(change.schema, change.table) if table is not None else None
    new_rel = relation_shape(list(cols.items()), change.table) if table is not None else None
    exprs: list[Expression] = []
    for i, op in enumerate(change.operations):
        for w in op.expressions(table):
            path = (*change.location(i), w.key)
            reads = w.scope != "none"
            source = old_rel if w.scope == "old" else new_rel if w.scope == "new" else None
            if reads and source is None:
                why = check_expression(w.text, subqueries=True)
                if why:
                    col.add(path, f"invalid expression {w.text!r}: {why}")
                continue
            exprs.append(Expression(w.text, change.source, format_path(path), change.line_of(path),
                                    type_sql=types.get(i) if w.declared else w.type_sql, source=source,
                                    subqueries=reads, label="expression" if reads else "default"))
    return col.problems + (check_expressions(conn, exprs) if exprs else [])
