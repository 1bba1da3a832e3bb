"""Validation of a change set against the live table — by asking Postgres, never by keyword lists.

Everything runs in one transaction that is always rolled back, so validation changes nothing:

* types are parsed into schema's canonical `PgType` (spelled as `PgType.render()` from then on); Postgres is
  asked only whether a user-defined type exists;
* every expression is prepared (`prepare=True`: the extended protocol refuses more than one statement) as
  `SELECT CAST((expr) AS type) FROM <shape>`, where the shape is the table itself for expressions written against
  the old shape and a temporary table with the new shape's columns for `down` expressions;
* the columns an expression references are read from `pg_depend` of a temporary view over it, so the generated
  functions take exactly those columns as parameters;
* whether an add_column default is volatile (and would rewrite the table) is seen from `atthasmissing` after
  adding it to a one-row temporary table.

A problem becomes a ChangeFileError (exit 2) naming file, line and key, with Postgres's own message.
"""

from __future__ import annotations

import dataclasses
import functools
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
from migrate_assets.schema.model import Table
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
    with conn.transaction(force_rollback=True):
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

    tbl = sql.Identifier(table.schema, table.name)
    shape = new_shape(resolved, table)
    conn.execute(
        sql.SQL("CREATE TEMP TABLE _ma_new_shape ({})").format(
            sql.SQL(", ").join(sql.SQL("{} {}").format(sql.Identifier(n), sql.SQL(t)) for n, t, _ in shape)
        )
    )
    new_rel = "pg_temp._ma_new_shape"
    refs: dict[str, tuple[str, ...]] = {}

    def check(
        key: str, path: tuple[str | int, ...], expr: str, typ: str, source: sql.Composable, rel: str
    ) -> None:
        cast = sql.SQL("CAST(({}) AS {})").format(sql.SQL(expr), sql.SQL(typ))

        def probe() -> tuple[str, ...]:
            conn.execute(sql.SQL("SELECT {} FROM {} LIMIT 0").format(cast, source), prepare=True)
            conn.execute(
                sql.SQL("CREATE TEMP VIEW _ma_probe AS SELECT {} AS v FROM {}").format(cast, source),
                prepare=True,
            )
            rows = conn.execute(
                "SELECT DISTINCT a.attname, a.attnum FROM pg_depend d JOIN pg_rewrite r ON r.oid = d.objid "
                "JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid "
                "WHERE d.classid = 'pg_rewrite'::regclass AND r.ev_class = 'pg_temp._ma_probe'::regclass "
                "AND d.refobjid = %s::regclass AND d.refobjsubid > 0 ORDER BY a.attnum",
                (rel,),
            ).fetchall()
            conn.execute("DROP VIEW pg_temp._ma_probe")
            return tuple(r[0] for r in rows)

        got, err = _savepoint(conn, probe)
        if err is not None:
            col.add(path, f"invalid expression {expr!r}: {_pg_message(err)}")
        else:
            refs[key] = got

    old_rel = sql.Identifier(table.schema, table.name).as_string(conn)
    volatile: set[int] = set()
    for i, op in enumerate(resolved.operations):
        loc = change.location(i)
        if isinstance(op, ChangeType):
            c = table.column(op.column)
            assert c is not None
            if op.up is not None:
                check(f"up{i}", (*loc, "up"), op.up, op.to_type, tbl, old_rel)
            else:
                check(
                    f"up{i}",
                    (*loc, "to_type"),
                    sql.Identifier(op.column).as_string(conn),
                    op.to_type,
                    tbl,
                    old_rel,
                )
            down = op.down if op.down is not None else sql.Identifier(op.column).as_string(conn)
            check(
                f"down{i}",
                (*loc, "down" if op.down else "to_type"),
                down,
                c.type.render(),
                sql.SQL(new_rel),
                new_rel,
            )
            if c.default is not None:
                check(
                    f"default{i}",
                    (*loc, "to_type"),
                    c.default,
                    op.to_type,
                    sql.SQL("(SELECT) AS _ma"),
                    new_rel,
                )
        elif isinstance(op, RenameColumn):
            refs[f"up{i}"], refs[f"down{i}"] = (op.from_,), (op.to,)
        elif isinstance(op, SetNotNull) and op.backfill is not None:
            c = table.column(op.column)
            assert c is not None
            check(f"fill{i}", (*loc, "backfill"), op.backfill, c.type.render(), tbl, old_rel)
        elif isinstance(op, AddColumn):
            if op.backfill is not None:
                check(f"fill{i}", (*loc, "backfill"), op.backfill, op.type, tbl, old_rel)
            if op.default is not None:
                check(
                    f"default{i}", (*loc, "default"), op.default, op.type, sql.SQL("(SELECT) AS _ma"), new_rel
                )
                if f"default{i}" in refs:
                    vol, err = _savepoint(conn, functools.partial(_default_is_volatile, conn, op))
                    if err is not None:
                        col.add((*loc, "default"), f"invalid default {op.default!r}: {_pg_message(err)}")
                    elif vol:
                        volatile.add(i)
                        check(f"fill{i}", (*loc, "default"), op.backfill or op.default, op.type, tbl, old_rel)
    if col.problems:
        raise ChangeFileError(col.problems)
    return Validated(change=resolved, table=table, refs=refs, volatile_defaults=frozenset(volatile))


def _default_is_volatile(conn: psycopg.Connection[Any], op: AddColumn) -> bool:
    """Postgres stores a non-volatile default as the column's 'missing' value; a volatile one rewrites."""
    conn.execute("CREATE TEMP TABLE _ma_default_probe (x int)")
    conn.execute("INSERT INTO pg_temp._ma_default_probe VALUES (1)")
    conn.execute(
        sql.SQL("ALTER TABLE pg_temp._ma_default_probe ADD COLUMN v {} DEFAULT {}").format(
            sql.SQL(op.type), sql.SQL(op.default or "NULL")
        ),
        prepare=True,
    )
    row = conn.execute(
        "SELECT atthasmissing FROM pg_attribute WHERE attrelid = "
        "'pg_temp._ma_default_probe'::regclass AND attname = 'v'"
    ).fetchone()
    conn.execute("DROP TABLE pg_temp._ma_default_probe")
    return not (row and row[0])
