"""Hazards of a plan's DDL read from the plan itself (issue 18, item 5 for `evolve` without a change file and
for `--resume/--rollback` dry runs): statements as the planner renders them are tagged as `plan` tags them, the
undo against the types the change leaves, and a rollback counts what its undo would lose."""

from __future__ import annotations

from migrate_assets.app.step_hazards import plan_hazards, statement_hazards
from migrate_assets.evolution.actions import RunContext, SourceDdl
from migrate_assets.evolution.layers import SourceColumn
from migrate_assets.evolution.memory import MemorySource
from migrate_assets.evolution.planner import render_ddl
from migrate_assets.expand.ops import AddColumn, ChangeType, RenameColumn
from migrate_assets.schema.ddl import create_table
from migrate_assets.schema.model import Column, Constraint, Table
from migrate_assets.schema.types import parse_type

COLS = [SourceColumn("id", "integer", False), SourceColumn("name", "text", True)]


def plan_of(action: SourceDdl) -> dict:
    return {"steps": [{"id": "registry", "action": {"kind": "register_schema"}}, {"id": "ddl",
                                                                                   "action": action.to_dict()}]}


def test_statements_as_rendered_are_tagged_like_plan() -> None:
    cols = {c.name: c for c in COLS}
    live = {"id": "integer", "name": "text"}
    add = render_ddl("public", "t", (AddColumn("tier", "text", nullable=True),), cols)
    widen = render_ddl("public", "t", (ChangeType("id", "bigint"),), cols)
    rename = render_ddl("public", "t", (RenameColumn("name", "full_name"),), cols)

    def tags(stmts: tuple[str, ...] | None, types: dict[str, str]) -> list[list[str]]:
        return [[str(h) for h in statement_hazards(s, lambda _t, c: types.get(c))] for s in stmts or ()]

    assert tags(add.statements, live) == [["access_exclusive_lock"]]
    assert tags(add.inverse, live) == [["access_exclusive_lock", "deletes_data", "breaks_readers", "not_reversible"]]
    assert tags(widen.statements, live) == [["access_exclusive_lock", "rewrites_table", "long_running"]]
    assert tags(widen.inverse, {"id": "bigint"}) == [["access_exclusive_lock", "rewrites_table", "long_running",
                                                     "breaks_readers", "not_reversible"]]
    assert tags(rename.statements, live) == [["access_exclusive_lock", "breaks_readers"]]
    new = Table("public", "n", (Column("id", parse_type("bigint"), False),), Constraint(None, ("id",)))
    assert tags(tuple(create_table(new)), {}) == [[] for _ in create_table(new)]


def test_plan_hazards_of_a_new_table_and_of_a_rollback() -> None:
    source = MemorySource({"public.t": list(COLS)})
    ctx = RunContext(source=source)
    new = Table("public", "n", (Column("id", parse_type("bigint"), False),), Constraint(None, ("id",)))
    created = SourceDdl("public.n", tuple(create_table(new)), ('DROP TABLE "public"."n"',))
    hz = plan_hazards(plan_of(created), ctx)
    assert hz.hazards == () and hz.undo_hazards == ("access_exclusive_lock", "deletes_data", "breaks_readers",
                                                    "not_reversible")
    # the widening ran: its undo narrows the live bigint back, and its dry run says so; nothing to lose yet
    widen = render_ddl("public", "t", (ChangeType("id", "bigint"),), {c.name: c for c in COLS})
    forward = plan_hazards(plan_of(SourceDdl("public.t", widen.statements, widen.inverse)), ctx)
    assert "breaks_readers" in forward.undo_hazards and "rewrites_table" in forward.hazards
    source.tables["public.t"][0] = SourceColumn("id", "bigint", False)
    added = render_ddl("public", "t", (AddColumn("tier", "text", nullable=True),), {c.name: c for c in COLS})
    source.tables["public.t"].append(SourceColumn("tier", "text", True))
    source.values[("public.t", "tier")] = 7
    back = plan_hazards(plan_of(SourceDdl("public.t", added.statements, added.inverse)), ctx, rollback=True)
    assert back.hazards == ()
    assert back.undo_hazards[:2] == ("access_exclusive_lock", "deletes_data")
    assert back.undo_hazards[-1] == "would lose: source_db: column public.t.tier holds 7 non-null value(s)"
    assert plan_hazards({"steps": []}, ctx).undo_hazards == ()
