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
from migrate_assets.expand.ops import (
    AddColumn,
    ChangeSet,
    ChangeType,
    Operation,
    RenameColumn,
    SetNotNull,
)
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


def _pg_message(exc: psycopg.Error) -> str:
    diag = exc.diag
    msg = diag.message_primary or str(exc).strip()
    if diag.sqlstate:
        msg += f" (SQLSTATE {diag.sqlstate})"
    return msg


def _savepoint(conn: psycopg.Connection[Any], fn: Callable[[], Any]) -> tuple[Any, psycopg.Error | None]:
    try:
        with conn.transaction():
            return fn(), None
    except psycopg.Error as exc:
        return None, exc


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

    # canonical types
    ops: list[Operation] = list(change.operations)
    for i, op in enumerate(ops):
        if isinstance(op, AddColumn | ChangeType):
            text, key = (op.type, "type") if isinstance(op, AddColumn) else (op.to_type, "to_type")
            try:
                canon = _canonical_type(conn, text)
            except ValueError as exc:
                col.add((*change.location(i), key), f"invalid type {text!r}: {exc}")
                continue
            ops[i] = (
                dataclasses.replace(op, type=canon)
                if isinstance(op, AddColumn)
                else dataclasses.replace(op, to_type=canon)
            )
    if col.problems:
        raise ChangeFileError(col.problems)
    resolved = dataclasses.replace(change, operations=tuple(ops))

    old_rel = sql.Identifier(table.schema, table.name)
    old_cols = [(c.name, c.type.render()) for c in table.columns]
    new_cols = [(n, t) for n, t, _ in new_shape(resolved, table)]
    new_rel = relation_shape(new_cols, table.name)  # the new shape, as a relation that needs no table
    refs: dict[str, tuple[str, ...]] = {}

    def check(key: str, path: tuple[str | int, ...], expr: str, typ: str, new: bool | None) -> None:
        """`new`: written against the new shape (True), the live table (False) or no columns (None)."""
        e = Expression(expr, change.source, format_path(path), col.line_of(path), type_sql=typ,
                       source=None if new is None else new_rel if new else old_rel, subqueries=new is not None)
        problems = check_expressions(conn, [e])
        if problems:
            col.problems.extend(problems)
            return
        refs[key] = () if new is None else referenced_columns(conn, e, new_cols if new else old_cols, table.name)

    volatile: set[int] = set()
    for i, op in enumerate(resolved.operations):
        loc = change.location(i)
        if isinstance(op, ChangeType):
            c = table.column(op.column)
            assert c is not None
            ident = sql.Identifier(op.column).as_string(conn)
            if op.up is not None:
                check(f"up{i}", (*loc, "up"), op.up, op.to_type, False)
            else:
                check(f"up{i}", (*loc, "to_type"), ident, op.to_type, False)
            down = op.down if op.down is not None else ident
            check(f"down{i}", (*loc, "down" if op.down else "to_type"), down, c.type.render(), True)
            if c.default is not None:
                check(f"default{i}", (*loc, "to_type"), c.default, op.to_type, None)
        elif isinstance(op, RenameColumn):
            refs[f"up{i}"], refs[f"down{i}"] = (op.from_,), (op.to,)
        elif isinstance(op, SetNotNull) and op.backfill is not None:
            c = table.column(op.column)
            assert c is not None
            check(f"fill{i}", (*loc, "backfill"), op.backfill, c.type.render(), False)
        elif isinstance(op, AddColumn):
            if op.backfill is not None:
                check(f"fill{i}", (*loc, "backfill"), op.backfill, op.type, False)
            if op.default is not None:
                check(f"default{i}", (*loc, "default"), op.default, op.type, None)
                if f"default{i}" in refs:
                    e = Expression(op.default, change.source, "", type_sql=op.type)
                    try:
                        vol = is_volatile(conn, e)
                    except ExpressionError as exc:
                        col.add((*loc, "default"), f"invalid default {op.default!r}: {exc.message}")
                        continue
                    if vol:
                        volatile.add(i)
                        check(f"fill{i}", (*loc, "default"), op.backfill or op.default, op.type, False)
    if col.problems:
        raise ChangeFileError(col.problems)
    return Validated(change=resolved, table=table, refs=refs, volatile_defaults=frozenset(volatile))


def expression_problems(conn: psycopg.Connection[Any], change: ChangeSet, table: Table | None) -> list[Problem]:
    """Every problem with the change's types and expressions (`default`, `up`, `down`, `backfill`), checked
    through `schema.exprcheck` before any command (expand, evolve, Dagster jobs) embeds one: nothing runs.

    Expressions that read columns are parsed against the live table's columns plus the ones the change adds,
    renames or retypes (`table` None: the table does not exist, so only the offline check applies to them)."""
    col = _Collector(change, change.line_of)
    types: dict[int, str] = {}
    cols: dict[str, str] = {c.name: c.type.render() for c in table.columns} if table is not None else {}
    for i, op in enumerate(change.operations):
        if isinstance(op, AddColumn | ChangeType):
            text, key = (op.type, "type") if isinstance(op, AddColumn) else (op.to_type, "to_type")
            try:
                types[i] = parse_type(text).plain.render()
            except UnknownTypeError as exc:
                col.add((*change.location(i), key), exc.message)
                continue
            cols[op.name if isinstance(op, AddColumn) else op.column] = types[i]
        elif isinstance(op, RenameColumn) and op.from_ in cols:
            cols[op.to] = cols[op.from_]
    old_rel = sql.Identifier(change.schema, change.table) if table is not None else None
    new_rel = relation_shape(list(cols.items()), change.table) if table is not None else None
    exprs: list[Expression] = []
    for i, op in enumerate(change.operations):
        loc = change.location(i)
        # (key, text, type, relation it reads: the live table, the new shape, or none for a default)
        items: list[tuple[str, str | None, str | None, sql.Composable | None]] = []
        if isinstance(op, AddColumn):
            items = [("default", op.default, types.get(i), None), ("backfill", op.backfill, types.get(i), old_rel)]
        elif isinstance(op, ChangeType):
            c = table.column(op.column) if table is not None else None
            items = [("up", op.up, types.get(i), old_rel), ("down", op.down, c.type.render() if c else None, new_rel)]
        elif isinstance(op, SetNotNull):
            items = [("backfill", op.backfill, cols.get(op.column), old_rel)]
        for key, given, typ, source in items:
            if given is None:
                continue
            text, path = given, (*loc, key)
            reads = key != "default"
            if reads and source is None:
                why = check_expression(text, subqueries=True)
                if why:
                    col.add(path, f"invalid expression {text!r}: {why}")
                continue
            exprs.append(Expression(text, change.source, format_path(path), change.line_of(path), type_sql=typ,
                                    source=source if reads else None, subqueries=reads,
                                    label="expression" if reads else "default"))
    return col.problems + (check_expressions(conn, exprs) if exprs else [])
