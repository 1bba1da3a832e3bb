"""The PL/pgSQL body of the sync trigger (see the planner's module docstring for the design).

Kept apart from the planner because it is the one piece of generated procedural code: the order of its
branches is what makes the sync bidirectional and loop-free.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from psycopg import sql


def _q(*parts: str) -> sql.Identifier:
    return sql.Identifier(*parts)


@dataclass(frozen=True)
class SyncPair:
    """Old and new column of one rename/change_type, kept equal through `up` / `down`."""

    op_index: int
    old: str
    new: str
    old_type: str
    new_type: str
    up: str
    down: str
    up_fn: str
    down_fn: str


@dataclass(frozen=True)
class Fill:
    """A column filled from an expression where it is NULL (add_column / set_not_null backfill)."""

    op_index: int
    column: str
    type: str
    expr: str
    fn: str
    in_trigger: bool = True


def trigger_body(
    pairs: Sequence[SyncPair], fills: Sequence[Fill], calls: Mapping[str, sql.Composable]
) -> sql.Composed:
    """PL/pgSQL body: downs first (new → old), then ups for pairs not written on the new side, then fills."""

    def rec(r: str, c: str) -> sql.Composable:
        return sql.SQL("{}.{}").format(sql.SQL(r), _q(c))

    decl = [sql.SQL("  d{} boolean := false;").format(sql.SQL(str(k))) for k in range(len(pairs))]
    ins: list[sql.Composable] = []
    upd: list[sql.Composable] = []
    ins_up: list[sql.Composable] = []
    upd_up: list[sql.Composable] = []
    for k, p in enumerate(pairs):
        args = {
            "f": sql.SQL("d" + str(k)),
            "n": rec("NEW", p.new),
            "on": rec("OLD", p.new),
            "o": rec("NEW", p.old),
            "oo": rec("OLD", p.old),
            "down": calls[f"down{p.op_index}"],
            "up": calls[f"up{p.op_index}"],
        }
        ins.append(sql.SQL("    IF {n} IS NOT NULL THEN {o} := {down}; {f} := true; END IF;").format(**args))
        upd.append(
            sql.SQL("    IF {n} IS DISTINCT FROM {on} THEN {o} := {down}; {f} := true; END IF;").format(
                **args
            )
        )
        ins_up.append(sql.SQL("    IF NOT {f} THEN {n} := {up}; END IF;").format(**args))
        upd_up.append(
            sql.SQL(
                "    IF NOT {f} AND ({o} IS DISTINCT FROM {oo} OR {n} IS NULL) THEN {n} := {up}; END IF;"
            ).format(**args)
        )
    fill_lines = [
        sql.SQL("  IF {c} IS NULL THEN {c} := {call}; END IF;").format(
            c=rec("NEW", f.column), call=calls[f"fill{f.op_index}"]
        )
        for f in fills
    ]
    lines: list[sql.Composable] = []
    if decl:
        lines += [sql.SQL("DECLARE"), *decl]
    lines.append(sql.SQL("BEGIN"))
    if pairs:
        lines += [sql.SQL("  IF TG_OP = 'INSERT' THEN"), *ins, *ins_up]
        lines += [sql.SQL("  ELSE"), *upd, *upd_up, sql.SQL("  END IF;")]
    lines += fill_lines
    lines += [sql.SQL("  RETURN NEW;"), sql.SQL("END")]
    return sql.SQL("\n").join(lines)
