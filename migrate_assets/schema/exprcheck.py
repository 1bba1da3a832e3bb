"""The one gate every piece of user SQL passes before it is used: spec defaults and index predicates, change-file
`default` / `up` / `down` / `backfill`.

An expression is user text that ends up inside our DDL. Two checks, in order:

1. offline, `sqltext.check_expression`: no `;`, no comment, brackets balanced and never closed more than opened,
   quotes closed (the scanner follows Postgres' lexer for where a literal ends);
2. authoritative, Postgres parses it: the text is placed once, in brackets, in a statement such as
   `SELECT 1 WHERE (CAST((<expr>) AS <type>)) IS NULL` and sent as a protocol-level *Parse* only (libpq
   `PQprepare` of the unnamed statement). Parse refuses a second statement outright, and a parsed statement is
   neither planned nor executed, so no function in it runs (not even constant folding); it happens in a READ ONLY
   transaction that is always rolled back. The WHERE position makes Postgres refuse what a default or an
   UPDATE value cannot hold (aggregates, window and set-returning functions), and a FROM-less statement refuses
   column references where none are in scope.

Only an expression that passes both is embedded, as one bracketed expression, in the statements we build.

Volatile functions (`nextval('seq')`, `random()`, `clock_timestamp()`) are legitimate defaults and pass: the
check parses them and never calls them.

`canonical_forms` asks Postgres how it reads expressions that passed, for comparing a desired default or
predicate with the live one: one `EXPLAIN (VERBOSE)` statement per expression (never a script), planned and
not executed, in a READ ONLY transaction that is rolled back.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import pq, sql

from migrate_assets.errors import Problem
from migrate_assets.schema.session import pg_duration
from migrate_assets.schema.sqltext import check_expression, tokens

#: how long Postgres may spend parsing or planning one expression
CHECK_TIMEOUT = 5.0


@dataclass(frozen=True)
class Expression:
    """One piece of user SQL and where it came from.

    `type_sql` is the canonical type the value must cast to (None: any type); `predicate`: a condition (an
    index's WHERE), which must be boolean;
    `source` is the relation whose columns are in scope (None: no column may be referenced, as in a default).
    """

    text: str
    file: str
    key: str
    line: int | None = None
    type_sql: str | None = None
    source: sql.Composable | None = None
    subqueries: bool = False
    label: str = "expression"
    predicate: bool = False  #: a condition (an index's WHERE): must be boolean

    def problem(self, why: str) -> Problem:
        return Problem(self.file, f"invalid {self.label} {self.text!r}: {why}", self.key, self.line)


def probe_statement(e: Expression) -> sql.Composed:
    """The statement Postgres parses for `e`: the text occurs once, in brackets, in a WHERE clause."""
    value: sql.Composable = sql.SQL("({})").format(sql.SQL(e.text))  # noqa: S608 - checked offline first
    if e.type_sql is not None:
        value = sql.SQL("CAST({} AS {})").format(value, sql.SQL(e.type_sql))
    if e.predicate:
        cond = sql.SQL("({}) IS NOT DISTINCT FROM true").format(value)
    else:
        cond = sql.SQL("({}) IS NULL").format(value)
    if e.source is None:
        return sql.SQL("SELECT 1 WHERE {}").format(cond)
    return sql.SQL("SELECT 1 FROM {} WHERE {}").format(e.source, cond)


@contextmanager
def read_only(conn: psycopg.Connection[Any], timeout: float = CHECK_TIMEOUT) -> Iterator[None]:
    """A READ ONLY block with a statement timeout that is always rolled back (a savepoint inside a caller's
    transaction; the read-only setting and the timeout end with it)."""
    with conn.transaction(force_rollback=True):
        conn.execute("SET TRANSACTION READ ONLY")
        conn.execute(sql.SQL("SET LOCAL statement_timeout = {}").format(sql.Literal(pg_duration(timeout))))
        yield


def check_expressions(conn: psycopg.Connection[Any], exprs: Iterable[Expression]) -> list[Problem]:
    """Every problem with `exprs`, offline and by Postgres (see the module docstring); changes nothing.

    Duplicates (same text, type and scope) are parsed once, and every place using them is reported."""
    problems: list[Problem] = []
    todo: dict[bytes, list[Expression]] = {}
    for e in exprs:
        why = check_expression(e.text, e.subqueries)
        if why:
            problems.append(e.problem(why))
            continue
        todo.setdefault(probe_statement(e).as_bytes(conn), []).append(e)
    if not todo:
        return problems
    with read_only(conn):
        if conn.execute("SHOW standard_conforming_strings").fetchone() != ("on",):
            # with it off a backslash ends a '…' literal differently from the offline scanner's reading
            return problems + [e.problem("standard_conforming_strings is off on this server")
                               for es in todo.values() for e in es]
        conn.execute("SAVEPOINT ma_exprcheck")
        for stmt, es in todo.items():
            err = _parse_only(conn, stmt)
            if err is not None:
                problems.extend(e.problem(err) for e in es)
                conn.execute("ROLLBACK TO SAVEPOINT ma_exprcheck")
    return problems


def _parse_only(conn: psycopg.Connection[Any], stmt: bytes) -> str | None:
    """Postgres' error for `stmt` when parsed as one prepared statement (never run), or None."""
    res = conn.pgconn.prepare(b"", stmt)
    if res.status == pq.ExecStatus.COMMAND_OK:
        return None
    msg = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or res.error_message or b"rejected").decode(
        conn.info.encoding, "replace"
    )
    msg = msg.strip().splitlines()[0] if msg.strip() else "rejected by Postgres"
    return msg.replace(" in WHERE", " in this expression")  # the WHERE is ours, not the user's


def canonical_forms(conn: psycopg.Connection[Any], exprs: Sequence[Expression]) -> list[str | None]:
    """How Postgres reads each (already checked) expression: the output of one `EXPLAIN (VERBOSE)` per distinct
    expression, so two spellings of the same value compare equal. None where planning fails (the caller then
    sees a difference). A `source` built by `relation_shape` is not folded away: it is an optimisation fence."""
    if not exprs:
        return []
    queries: list[bytes] = []
    for e in exprs:
        value: sql.Composable = sql.SQL("({})").format(sql.SQL(e.text))  # noqa: S608 - checked before
        if e.type_sql is not None:
            value = sql.SQL("CAST({} AS {})").format(value, sql.SQL(e.type_sql))
        query = sql.SQL("EXPLAIN (VERBOSE, COSTS OFF, FORMAT JSON) SELECT {}").format(value)
        if e.source is not None:
            query = sql.SQL("{} FROM {}").format(query, e.source)
        queries.append(query.as_bytes(conn))
    forms: dict[bytes, str | None] = {}
    with read_only(conn):
        conn.execute("SAVEPOINT ma_canon")
        for q in dict.fromkeys(queries):
            try:
                # prepared: the extended protocol carries exactly one statement
                row = conn.execute(q, prepare=True).fetchone()
            except psycopg.Error:
                conn.execute("ROLLBACK TO SAVEPOINT ma_canon")
                forms[q] = None
                continue
            doc = json.loads(row[0]) if row and isinstance(row[0], str) else row[0] if row else None
            outputs = doc[0]["Plan"].get("Output") if doc else None  # JSON: a value may hold line breaks
            forms[q] = str(outputs[0]) if outputs else None
    return [forms[q] for q in queries]


class ExpressionError(Exception):
    """Postgres refused an expression while it was being examined (message, SQLSTATE)."""

    def __init__(self, message: str, sqlstate: str | None = None) -> None:
        super().__init__(message)
        self.message, self.sqlstate = message, sqlstate


def _parse_or_raise(conn: psycopg.Connection[Any], stmt: sql.Composable) -> None:
    """Parse `stmt` only (inside a savepoint of a read-only block): ExpressionError when Postgres refuses."""
    res = conn.pgconn.prepare(b"", stmt.as_bytes(conn))
    if res.status != pq.ExecStatus.COMMAND_OK:
        state = res.error_field(pq.DiagnosticField.SQLSTATE)
        msg = (res.error_field(pq.DiagnosticField.MESSAGE_PRIMARY) or b"rejected").decode(conn.info.encoding,
                                                                                         "replace")
        raise ExpressionError(msg.replace(" in WHERE", " in this expression"),
                              state.decode() if state else None)


def relation_shape(columns: Sequence[tuple[str, str]], alias: str) -> sql.Composed:
    """`(SELECT CAST(NULL AS type) AS "col", … OFFSET 0) AS "alias"`: columns in scope without a table to read
    (OFFSET 0 keeps the planner from folding the NULLs into an expression over them)."""
    cols = sql.SQL(", ").join(
        sql.SQL("CAST(NULL AS {}) AS {}").format(sql.SQL(t), sql.Identifier(n)) for n, t in columns  # noqa: S608
    )
    return sql.SQL("(SELECT {} OFFSET 0) AS {}").format(cols, sql.Identifier(alias))


def referenced_columns(conn: psycopg.Connection[Any], e: Expression, columns: Sequence[tuple[str, str]],
                       alias: str) -> tuple[str, ...]:
    """Which of `columns` (name, type) the checked expression `e` reads, in their order: a column is read when
    the expression no longer parses over the same relation without it (42703). Only columns whose name occurs
    among the expression's words are tried; nothing runs."""
    words = expression_words(e.text)
    out: list[str] = []
    with read_only(conn):
        for name, _ in columns:
            if name not in words:
                continue
            rest = [(n, t) for n, t in columns if n != name]
            probe = probe_statement(dataclasses.replace(e, source=relation_shape(rest, alias)))
            try:
                with conn.transaction():
                    _parse_or_raise(conn, probe)
            except ExpressionError:  # "no such column" or anything else: counted as read, to be safe
                out.append(name)
    return tuple(out)


def expression_words(text: str) -> set[str]:
    """The names an expression may mean: unquoted words folded to lower case, quoted identifiers as written
    (empty for text that does not scan)."""
    out: set[str] = set()
    try:
        toks = tokens(text)
    except ValueError:
        return out
    for t in toks:
        if t[0] == '"':
            out.add(t[1:-1].replace('""', '"'))
        elif t[0].isalpha() or t[0] == "_":
            out.add(t.lower())
    return out


def is_volatile(conn: psycopg.Connection[Any], e: Expression) -> bool:
    """Whether the checked expression `e` calls a volatile function (as `ADD COLUMN … DEFAULT` decides between
    storing one value and rewriting the table; as `expand-status` decides whether it may evaluate `up`). Read
    from the plan, not by running it: the planner pulls a one-row subquery up into its outer query (and then
    drops the outer join to it) only when its output holds no volatile function. An expression over columns
    (`e.source` set) sits in a LATERAL subquery beside its relation, which is only planned, never read. The
    expression sits in a select list, never in a condition, so not even a stable function is evaluated for an
    estimate (as `WHERE x = stable()` would be). ExpressionError when planning fails (an immutable call on
    constants is folded there: `1/0`)."""
    assert e.type_sql is not None
    value = sql.SQL("CAST(({}) AS {})").format(sql.SQL(e.text), sql.SQL(e.type_sql))  # noqa: S608 - checked
    if e.source is None:
        outer: sql.Composable = sql.SQL("pg_catalog.pg_namespace AS n LEFT JOIN")
    else:
        outer = sql.SQL("{} LEFT JOIN LATERAL").format(e.source)
    query = sql.SQL("EXPLAIN (COSTS OFF) SELECT ma_probe.v FROM {} (SELECT {} AS v) AS ma_probe ON true").format(
        outer, value
    )
    with read_only(conn):
        try:
            with conn.transaction():
                lines = [str(r[0]).strip() for r in conn.execute(query, prepare=True).fetchall()]
        except psycopg.Error as exc:
            raise ExpressionError(exc.diag.message_primary or str(exc).strip(), exc.sqlstate) from None
    return bool(lines) and "Join" in lines[0]  # the top node: a join inside a scalar subquery is not the probe's
