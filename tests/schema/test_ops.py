"""The operation classes (no database): each owns its SQL, inverse, lossless flag and effects; the statement
kinds are written only by `schema.ddl`."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from migrate_assets.evolution.layers import SourceColumn
from migrate_assets.evolution.planner import render_ddl
from migrate_assets.schema import ops
from migrate_assets.schema.model import Column, Constraint, Table
from migrate_assets.schema.ops.shape import after
from migrate_assets.schema.types import parse_type

T = Table("public", "t", (
    Column("id", parse_type("bigint")),
    Column("email", parse_type("text"), nullable=True),
    Column("amount", parse_type("integer"), nullable=True),
    Column("code", parse_type("varchar(10)")),
), primary_key=Constraint("t_pkey", ("id",)))  # fmt: skip

SAMPLES: list[ops.Operation] = [
    ops.AddColumn("note", "text", nullable=True),
    ops.AddColumn("n", "integer", default="0"),
    ops.DropColumn("email"),
    ops.RenameColumn("email", "mail"),
    ops.ChangeType("amount", "bigint"),
    ops.ChangeType("amount", "smallint"),
    ops.SetNotNull("email"),
    ops.SetNotNull("email", backfill="''"),
    ops.DropNotNull("code"),
    ops.SetDefault("amount", "1"),
    ops.DropDefault("amount"),
    ops.CommentColumn("amount", "money", None),
]
Q = 'ALTER TABLE "public"."t" '


def test_every_kind_round_trips_through_its_change_file_form() -> None:
    for op in SAMPLES:
        assert ops.op_from_dict(op.to_dict()) == op
    assert {type(o).kind for o in SAMPLES} <= set(ops.REGISTRY)
    assert ops.RenameColumn("a", "b").to_dict() == {"rename_column": {"from": "a", "to": "b"}}
    with pytest.raises(ValueError, match="unknown operation"):
        ops.op_from_dict({"make_coffee": {}})


def test_internal_fields_never_reach_the_change_file_form() -> None:
    op = ops.AddColumn.of(Column("x", parse_type("text"), nullable=True, comment="c"), empty_table=True)
    assert op.to_dict() == {"add_column": {"name": "x", "type": "text", "nullable": True}}


def test_set_not_null_is_guarded_and_a_backfill_is_not_lossless() -> None:
    plain = ops.SetNotNull("email").plain(T)
    assert plain.forward == (
        Q + 'ADD CONSTRAINT "t_email_not_null" CHECK ("email" IS NOT NULL) NOT VALID',
        Q + 'VALIDATE CONSTRAINT "t_email_not_null"',
        Q + 'ALTER COLUMN "email" SET NOT NULL',
        Q + 'DROP CONSTRAINT "t_email_not_null"',
    )
    assert plain.lossless and plain.inverse == (Q + 'ALTER COLUMN "email" DROP NOT NULL',)
    filled = ops.SetNotNull("email", backfill="'?'").plain(T)
    assert filled.forward[0] == 'UPDATE "public"."t" SET "email" = (\'?\') WHERE "email" IS NULL'
    assert filled.forward[1:] == plain.forward
    assert not filled.lossless and filled.inverse is not None  # the shape comes back, the NULLs do not


def test_type_change_lossless_only_when_widening() -> None:
    wide, narrow = ops.ChangeType("amount", "bigint").plain(T), ops.ChangeType("amount", "smallint").plain(T)
    assert wide.lossless and not wide.breaking
    assert wide.forward == (Q + 'ALTER COLUMN "amount" TYPE bigint',)
    assert wide.inverse == (Q + 'ALTER COLUMN "amount" TYPE integer USING "amount"::integer',)
    assert not narrow.lossless and narrow.breaking
    assert narrow.forward == (Q + 'ALTER COLUMN "amount" TYPE smallint USING "amount"::smallint',)
    up = ops.ChangeType("code", "integer", up="length(code)").plain(T)
    assert up.forward == (Q + 'ALTER COLUMN "code" TYPE integer USING (length(code))',)  # checked: bracketed


def test_render_ddl_flags_follow_the_operations() -> None:
    cols = {c.name: SourceColumn(c.name, c.type.render(), c.nullable) for c in T.columns}
    assert render_ddl("public", "t", (ops.AddColumn("x", "text", nullable=True),), cols).lossless
    for lossy in (ops.SetNotNull("email", backfill="''"), ops.ChangeType("amount", "smallint")):
        d = render_ddl("public", "t", (lossy,), cols)
        # the operation can put the shape back, but evolve offers no inverse that loses values (issue 14 item 8)
        assert lossy.plain(T).inverse is not None and not d.lossless and d.inverse is None, lossy
    dropped = render_ddl("public", "t", (ops.DropColumn("email"),), cols)
    assert not dropped.lossless and dropped.inverse is None
    # later operations are planned against the shape the earlier ones leave
    chain = render_ddl("public", "t", (ops.RenameColumn("amount", "total"), ops.ChangeType("total", "bigint")), cols)
    assert chain.statements[1] == Q + 'ALTER COLUMN "total" TYPE bigint'
    assert chain.inverse == (Q + 'ALTER COLUMN "total" TYPE integer USING "total"::integer',
                             Q + 'RENAME COLUMN "total" TO "amount"')


def test_inverse_operations_give_back_the_shape() -> None:
    for op in SAMPLES:
        inv = op.inverse(T)
        if inv is None:
            assert not op.plain(T).lossless or isinstance(op, ops.DropDefault), op
            continue
        changed = after(T, [op])
        assert after(changed, [inv]).columns == T.columns or isinstance(op, ops.SetDefault | ops.CommentColumn), op


def test_check_names_the_field() -> None:
    assert [p.key for p in ops.DropColumn("nope").check(T)] == ["column"]
    assert [p.key for p in ops.RenameColumn("email", "amount").check(T)] == ["to"]
    assert [p.key for p in ops.AddColumn("email", "text").check(T)] == ["name"]
    assert "primary key" in ops.DropColumn("id").check_expand(T, str)[0].message
    with pytest.raises(ops.Refused, match="needs a default"):
        ops.AddColumn("x", "integer").plain(T)


STATEMENT_KINDS = ("SET NOT NULL", "DROP NOT NULL", "IS NOT NULL) NOT VALID", "VALIDATE CONSTRAINT", "RENAME COLUMN",
                   "DROP COLUMN", "ALTER COLUMN {} TYPE", "SET DEFAULT", "DROP DEFAULT")


def test_only_the_ddl_module_writes_column_statements() -> None:
    root = Path(__file__).resolve().parents[2] / "migrate_assets"
    literal = re.compile(r"""(["'])(?:(?!\1).)*\1""")
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "ddl.py" and path.parent.name == "schema":
            continue
        for n, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if "re.compile(" in code:
                continue  # a pattern that reads statements back (evolution/actions.py), not one that writes them
            for m in literal.finditer(code):
                if any(k in m.group(0) for k in STATEMENT_KINDS) and "ALTER" in m.group(0):
                    offenders.append(f"{path.relative_to(root)}:{n}: {m.group(0)}")
    assert offenders == []
