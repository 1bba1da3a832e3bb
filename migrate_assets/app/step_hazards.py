"""The hazards of a plan's DDL read from the plan itself, for the dry runs that have no change file: `evolve`
without one (tables created from their spec or joining the pipeline) and `evolve --resume/--rollback RUN`.

Each statement is tagged as `plan` tags the same DDL (`schema.hazards`): a CREATE TABLE has none, a DROP TABLE or
DROP COLUMN deletes data and breaks readers, a type change is tagged against the column's live type (a rewrite, a
narrowing). The undo statements are tagged too, and for a rollback the values they would lose are counted in the
live table (the safety rule of issue 14 refuses such an undo without `--allow-data-loss`).
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from migrate_assets.app.evolve import ChangeHazards
from migrate_assets.errors import MigrateAssetsError
from migrate_assets.evolution.actions import RunContext, SourceDdl, action_from_dict
from migrate_assets.schema import hazards as rules
from migrate_assets.schema.plan import Hazard
from migrate_assets.schema.types import parse_type

_QID = r'"(?:[^"]|"")+"'
_TABLE = rf"({_QID})\.({_QID})"
_ALTER = re.compile(rf"ALTER TABLE (?:ONLY )?{_TABLE} (.*)", re.S | re.I)
_RETYPE = re.compile(rf"ALTER COLUMN ({_QID}) (?:SET DATA )?TYPE (.+?)(?: USING .*)?", re.S | re.I)
_FIXED: list[tuple[re.Pattern[str], tuple[Hazard, ...]]] = [
    (re.compile(r"DROP COLUMN .*", re.S | re.I), rules.DROP_COLUMN),
    (re.compile(r"RENAME (?:COLUMN )?.*", re.S | re.I), rules.RENAME_COLUMN),
    (re.compile(r"ALTER COLUMN \S+ SET NOT NULL", re.I), rules.SET_NOT_NULL),
    (re.compile(r"ADD CONSTRAINT .*", re.S | re.I), rules.ADD_CONSTRAINT),
    (re.compile(r"VALIDATE CONSTRAINT .*", re.S | re.I), (Hazard.LONG_RUNNING,)),
]


def _unquote(ident: str) -> str:
    return ident[1:-1].replace('""', '"')


def statement_hazards(statement: str, live_type: Callable[[str, str], str | None]) -> tuple[Hazard, ...]:
    """The hazards of one statement as the planner renders it; `live_type(table, column)` gives a column's
    current type (for a type change). A statement of a kind not listed here is tagged with its lock only."""
    text = statement.strip().rstrip(";").strip()
    upper = text.upper()
    if upper.startswith(("CREATE TABLE", "CREATE INDEX", "CREATE UNIQUE INDEX", "COMMENT ON", "CREATE SCHEMA")):
        return rules.NONE  # a new, empty table and what belongs to it
    if upper.startswith("DROP TABLE"):
        return rules.DROP_TABLE
    if upper.startswith("INSERT "):
        return rules.NONE
    m = _ALTER.fullmatch(text)
    if m is None:
        return (rules.AEL,)
    table = f"{_unquote(m.group(1))}.{_unquote(m.group(2))}"
    rest = m.group(3).strip()
    if ct := _RETYPE.fullmatch(rest):
        old = live_type(table, _unquote(ct.group(1)))
        if old is None:
            return (rules.AEL, Hazard.REWRITES_TABLE, Hazard.LONG_RUNNING)
        try:
            return rules.alter_type(parse_type(old), parse_type(ct.group(2).strip()))
        except (ValueError, MigrateAssetsError):
            return (rules.AEL, Hazard.REWRITES_TABLE, Hazard.LONG_RUNNING)
    for pattern, tags in _FIXED:
        if pattern.fullmatch(rest):
            return tags
    return rules.ALTER_METADATA


def _tags(statements: list[str] | tuple[str, ...] | None, live_type: Callable[[str, str], str | None]) -> list[str]:
    out: list[str] = []
    for s in statements or ():
        out += [str(h) for h in statement_hazards(s, live_type) if str(h) not in out]
    return out


def plan_hazards(plan: dict[str, Any], ctx: RunContext, rollback: bool = False) -> ChangeHazards:
    """The hazards of the plan's source DDL step and of its undo. For a `rollback` only the undo's, with what it
    would lose counted in the live table (the forward DDL ran already: the live types are its result)."""
    step = next((s for s in plan.get("steps", []) if s.get("action", {}).get("kind") == "source_ddl"), None)
    if step is None:
        return ChangeHazards()
    action = action_from_dict(dict(step["action"]))
    assert isinstance(action, SourceDdl)
    cache: dict[str, dict[str, str]] = {}

    def live_type(table: str, column: str) -> str | None:
        if table not in cache:
            try:
                cache[table] = {c.name: c.type for c in ctx.source.columns(table) or ()}
            except MigrateAssetsError:
                cache[table] = {}
        return cache[table].get(column)

    forward = [] if rollback else _tags(action.statements, live_type)
    after: dict[tuple[str, str], str] = {}  # before a rollback ran, the undo meets the types the DDL sets
    for text in () if rollback else action.statements:
        if (m := _ALTER.fullmatch(text.strip().rstrip(";"))) and (ct := _RETYPE.fullmatch(m.group(3).strip())):
            table = f"{_unquote(m.group(1))}.{_unquote(m.group(2))}"
            after[(table, _unquote(ct.group(1)))] = ct.group(2).strip()
    undo = _tags(action.inverse_statements, lambda t, c: after.get((t, c)) or live_type(t, c))
    if rollback and action.inverse_statements:
        inverse = SourceDdl(action.table, action.inverse_statements, action.statements, undo=True)
        try:
            undo += [f"would lose: {loss}" for loss in inverse.losses(ctx)]
        except MigrateAssetsError as exc:
            undo.append(f"could not count the values the undo would lose: {exc}")
    return ChangeHazards(tuple(forward), False, tuple(undo))
