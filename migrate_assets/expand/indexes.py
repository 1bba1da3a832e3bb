"""Indexes and constraints of a column that expand–contract replaces, rebuilt on its new column.

Contract drops the old column of a `change_type` / `rename_column` pair, and Postgres drops every index and
constraint on it along with it. So expand rebuilds each of them on the new column, under a helper name
(`_ma_<fp>_r<n>`), after the backfill:

* a plain or unique index: `CREATE [UNIQUE] INDEX CONCURRENTLY` with the same definition, the column swapped;
* a UNIQUE constraint: its index, built the same way; contract attaches it with `ADD CONSTRAINT … USING INDEX`;
* a CHECK or FOREIGN KEY: added `NOT VALID` on the new column, then validated (SHARE UPDATE EXCLUSIVE only).

Contract, in its one transaction, gives each its original name back (`ALTER INDEX … RENAME`, `RENAME
CONSTRAINT`), after the old column went, so the table ends with the same names and definitions. Abort needs
nothing: dropping the new column drops what was built on it.

The definitions come from Postgres (`pg_get_indexdef`, `pg_get_constraintdef`); the column is swapped token by
token (a quoted or lower-case identifier equal to the column's name that is not a function, type, collation or
qualified name). An exclusion constraint, or an object that also uses a column this change drops, is left as
it is (the plan's warning stays).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, NoReturn

import psycopg
from psycopg import errors as pgerr
from psycopg import sql

from migrate_assets.errors import ExpandFailedError, TransientError
from migrate_assets.expand import naming
from migrate_assets.expand.planner import ExpandPlan
from migrate_assets.schema import ddl
from migrate_assets.schema.ops.base import shape_of
from migrate_assets.schema.retry import retry_postgres
from migrate_assets.schema.session import session_timeouts
from migrate_assets.schema.sqltext import tokens


@dataclass(frozen=True)
class Rebuild:
    kind: str  # index | unique | check | foreign_key
    name: str  # the original's name, which the rebuilt object takes at contract
    temp: str  # its name until contract
    column: str  # the old column it was on
    definition: str  # the original's definition, as Postgres prints it
    build: str  # CREATE INDEX CONCURRENTLY … / ALTER TABLE … ADD CONSTRAINT … NOT VALID
    validate: str | None  # ALTER TABLE … VALIDATE CONSTRAINT (a constraint that was valid)
    finish: str  # at contract, after the old column is gone

    def describe(self) -> str:
        what = {"index": "index", "unique": "unique constraint", "check": "CHECK constraint",
                "foreign_key": "foreign key"}[self.kind]
        how = "built CONCURRENTLY" if self.kind in ("index", "unique") else "added NOT VALID, then validated"
        return (f"{what} {self.name} on {self.column!r}: rebuilt on the new column as {self.temp} during expand "
                f"({how}); contract gives it its name back")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def from_state(rows: Iterable[Mapping[str, Any]] | None) -> list[Rebuild]:
    return [Rebuild(**r) for r in rows or ()]


def temp_name(fp: str, n: int) -> str:
    return naming.fit(f"{naming.PREFIX}{fp[:8]}_r{n}")


# --------------------------------------------------------------------------------------------------------
# rewriting a definition onto the new column
# --------------------------------------------------------------------------------------------------------


def _ident(tok: str) -> str | None:
    """The name a token spells, when it is an identifier: `"Quoted"` or lower-case as Postgres prints it."""
    if tok.startswith('"') and tok.endswith('"') and len(tok) >= 2:
        return tok[1:-1].replace('""', '"')
    if tok and (tok[0].isalpha() or tok[0] == "_") and tok == tok.lower():
        return tok
    return None


def _quote(name: str) -> str:
    return sql.Identifier(name).as_string(None)


def swap_columns(toks: list[str], start: int, end: int, columns: Mapping[str, str]) -> list[str]:
    """Tokens `start:end` with each reference to a column of `columns` replaced by its new column."""
    out = list(toks)
    for i in range(start, min(end, len(toks))):
        name = _ident(toks[i])
        if name is None or name not in columns:
            continue
        prev = toks[i - 1] if i > 0 else ""
        nxt = toks[i + 1] if i + 1 < len(toks) else ""
        if prev in (".", "::") or prev.upper() == "COLLATE" or nxt in ("(", "."):
            continue
        out[i] = _quote(columns[name])
    return out


def _group_end(toks: list[str], open_at: int) -> int:
    """Index of the `)` closing the `(` at `open_at`."""
    depth = 0
    for i in range(open_at, len(toks)):
        if toks[i] in ("(", "["):
            depth += 1
        elif toks[i] in (")", "]"):
            depth -= 1
            if depth == 0:
                return i
    raise ValueError("unbalanced definition")


def index_build(definition: str, temp: str, columns: Mapping[str, str]) -> str:
    """`CREATE [UNIQUE] INDEX CONCURRENTLY temp ON … (…)` from a `pg_get_indexdef`, the columns swapped in the
    key list, the INCLUDE list and the predicate."""
    toks = tokens(ddl.concurrently(definition))
    at = toks.index("CONCURRENTLY")
    using = toks.index("USING", at)
    toks[at + 1] = _quote(temp)
    keys = using + 2
    keys_end = _group_end(toks, keys)
    toks = swap_columns(toks, keys, keys_end, columns)
    if keys_end + 1 < len(toks) and toks[keys_end + 1] == "INCLUDE":
        toks = swap_columns(toks, keys_end + 2, _group_end(toks, keys_end + 2), columns)
    if "WHERE" in toks[keys_end:]:
        where = toks.index("WHERE", keys_end)
        toks = swap_columns(toks, where + 1, len(toks), columns)
    return " ".join(toks)


def _constraint_body(definition: str, kind: str, columns: Mapping[str, str]) -> str:
    """A CHECK's expression or a FOREIGN KEY's own column list swapped; `NOT VALID` dropped (added back)."""
    toks = tokens(definition)
    if toks[-2:] == ["NOT", "VALID"]:
        toks = toks[:-2]
    first = toks.index("(")
    toks = swap_columns(toks, first, _group_end(toks, first), columns)
    return " ".join(toks)


# --------------------------------------------------------------------------------------------------------
# discovery (read-only)
# --------------------------------------------------------------------------------------------------------

_INDEXES = """
SELECT c.relname, pg_get_indexdef(i.indexrelid),
       ARRAY(SELECT a.attname FROM pg_depend d JOIN pg_attribute a ON a.attrelid = d.refobjid AND a.attnum = d.refobjsubid
             WHERE d.classid = 'pg_class'::regclass AND d.objid = i.indexrelid AND d.refclassid = 'pg_class'::regclass
               AND d.refobjid = i.indrelid AND d.refobjsubid > 0
             UNION SELECT a.attname FROM pg_attribute a WHERE a.attrelid = i.indrelid AND a.attnum = ANY(i.indkey))
FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
WHERE i.indrelid = %(t)s::regclass AND NOT i.indisprimary
  AND NOT EXISTS (SELECT FROM pg_constraint k WHERE k.conindid = i.indexrelid AND k.conrelid = i.indrelid
                  AND k.contype IN ('p', 'u', 'x'))
ORDER BY c.relname
"""

_CONSTRAINTS = """
SELECT k.conname, k.contype, pg_get_constraintdef(k.oid), k.convalidated, k.condeferrable, k.condeferred,
       CASE WHEN k.contype = 'u' THEN pg_get_indexdef(k.conindid) END,
       ARRAY(SELECT a.attname FROM pg_attribute a WHERE a.attrelid = k.conrelid AND a.attnum = ANY(k.conkey))
FROM pg_constraint k
WHERE k.conrelid = %(t)s::regclass AND k.contype IN ('c', 'u', 'f', 'x')
ORDER BY k.conname
"""


def discover(conn: psycopg.Connection[Any], plan: ExpandPlan) -> tuple[list[Rebuild], list[str]]:
    """What to rebuild for the pairs of `plan`, and what is left as it is (why). Reads catalogs only."""
    columns = {o.pair.old: o.pair.new for o in plan.ops if o.pair is not None}
    dropped = set(shape_of(*plan.change.operations).drops)
    if not columns:
        return [], []
    t = sql.Identifier(plan.table.schema, plan.table.name)
    tbl = t.as_string(conn)
    found: list[tuple[str, str, str, list[str], dict[str, Any]]] = []
    for name, definition, cols in conn.execute(_INDEXES, {"t": tbl}).fetchall():
        found.append(("index", name, definition, list(cols), {}))
    for name, contype, definition, valid, deferrable, deferred, idxdef, cols in conn.execute(
            _CONSTRAINTS, {"t": tbl}).fetchall():
        kind = {"c": "check", "u": "unique", "f": "foreign_key", "x": "exclusion"}[contype]
        found.append((kind, name, idxdef or definition, list(cols),
                      {"valid": valid, "deferrable": deferrable, "deferred": deferred, "condef": definition}))
    out: list[Rebuild] = []
    left: list[str] = []
    for kind, name, definition, cols, extra in found:
        used = [c for c in cols if c in columns]
        if not used or naming.is_helper(name):
            continue
        if kind == "exclusion" or set(cols) & dropped:
            why = "an exclusion constraint" if kind == "exclusion" else "it also uses a column this change drops"
            left.append(f"{kind} {name} on {used[0]!r} is not rebuilt ({why}); contract drops it with the column")
            continue
        temp = temp_name(plan.fingerprint, len(out))
        out.append(_rebuild(kind, name, temp, used[0], definition, extra, columns, plan.table.schema,
                            plan.table.name))
    return out, left


def _rebuild(kind: str, name: str, temp: str, column: str, definition: str, extra: dict[str, Any],
             columns: Mapping[str, str], schema: str, table: str) -> Rebuild:
    if kind == "index":
        return Rebuild(kind, name, temp, column, definition, index_build(definition, temp, columns), None,
                       ddl.rename_index(schema, temp, name))
    if kind == "unique":
        return Rebuild(kind, name, temp, column, extra["condef"], index_build(definition, temp, columns), None,
                       ddl.add_unique_using_index(schema, table, name, temp, deferrable=extra["deferrable"],
                                                  initially_deferred=extra["deferred"]))
    body = _constraint_body(extra["condef"], kind, columns)
    return Rebuild(kind, name, temp, column, extra["condef"],
                   ddl.add_constraint_text(schema, table, temp, body, not_valid=True),
                   ddl.validate_constraint(schema, table, temp) if extra["valid"] else None,
                   ddl.rename_constraint(schema, table, temp, name))


# --------------------------------------------------------------------------------------------------------
# building (after the backfill) and finishing (in contract's transaction)
# --------------------------------------------------------------------------------------------------------


def _index_state(conn: psycopg.Connection[Any], t: str, name: str) -> bool | None:
    """None: no such index; else whether it is valid."""
    row = conn.execute("SELECT i.indisvalid FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid "
                       "WHERE i.indrelid = %s::regclass AND c.relname = %s", (t, name)).fetchone()
    return None if row is None else bool(row[0])


def _constraint_state(conn: psycopg.Connection[Any], t: str, name: str) -> bool | None:
    row = conn.execute("SELECT convalidated FROM pg_constraint WHERE conrelid = %s::regclass AND conname = %s",
                       (t, name)).fetchone()
    return None if row is None else bool(row[0])


def build(conn: psycopg.Connection[Any], schema: str, table: str, rebuilds: list[Rebuild], *, lock_timeout: float,
          attempts: int, backoff: float, max_backoff: float) -> None:
    """Build what is not built yet (a re-run continues; an index a failed build left INVALID is rebuilt). Runs
    each statement on its own, outside a transaction, under `lock_timeout`, retried when a lock is busy."""
    if not rebuilds:
        return
    was = conn.autocommit
    if conn.info.transaction_status != psycopg.pq.TransactionStatus.IDLE:
        conn.rollback()
    conn.autocommit = True
    tbl = sql.Identifier(schema, table).as_string(conn)
    try:
        with session_timeouts(conn, lock_timeout=lock_timeout):
            for r in rebuilds:
                if r.kind in ("index", "unique"):
                    state = _index_state(conn, tbl, r.temp)
                    if state is True:
                        continue
                    drop = f"DROP INDEX CONCURRENTLY IF EXISTS {sql.Identifier(schema, r.temp).as_string(conn)}"
                    if state is False:
                        _run(conn, drop, r, lock_timeout, attempts, backoff, max_backoff)
                    _run(conn, r.build, r, lock_timeout, attempts, backoff, max_backoff, cleanup=drop)
                else:
                    state = _constraint_state(conn, tbl, r.temp)
                    if state is None:
                        _run(conn, r.build, r, lock_timeout, attempts, backoff, max_backoff)
                    if r.validate and not state:
                        _run(conn, r.validate, r, lock_timeout, attempts, backoff, max_backoff)
    finally:
        conn.autocommit = was


def _run(conn: psycopg.Connection[Any], stmt: str, r: Rebuild, lock_timeout: float, attempts: int,
         backoff: float, max_backoff: float, cleanup: str | None = None) -> None:
    what = f"rebuild {r.kind} {r.name} on the new column"

    def attempt(_: int) -> None:
        try:
            conn.execute(stmt.encode())
        except psycopg.Error:
            if cleanup:  # a failed CONCURRENTLY build leaves an INVALID index behind
                with contextlib.suppress(psycopg.Error):
                    conn.execute(cleanup.encode())
            raise

    def give_up(exc: psycopg.Error, n: int) -> NoReturn:
        raise TransientError(f"{what}: {exc} (after {n} attempts)") from exc

    def fail(exc: psycopg.Error) -> NoReturn:
        raise ExpandFailedError(what, exc.diag.message_primary or str(exc), exc.diag.sqlstate) from exc

    retry_postgres(attempt, what=what, attempts=attempts, backoff=backoff, max_backoff=max_backoff,
                   give_up=give_up, fail=fail, retry_on=(pgerr.LockNotAvailable, pgerr.DeadlockDetected))


def finish_statements(rebuilds: list[Rebuild]) -> list[sql.Composed]:
    """What contract runs after the old column is gone: every rebuilt object takes its original name."""
    return [sql.Composed([sql.SQL(r.finish)]) for r in rebuilds]
