"""Pure planning: no database; plans are data with their inverses, names are deterministic and fit 63 bytes."""

from __future__ import annotations

from migrate_assets.expand import naming, parse_change_text, plan_expand
from migrate_assets.schema.model import Column, Constraint, Index, Table
from migrate_assets.schema.types import parse_type

TABLE = Table(
    schema="public",
    name="accounts",
    columns=(
        Column("id", parse_type("bigint")),
        Column("email", parse_type("text")),
        Column("amount", parse_type("integer"), nullable=True, default="0"),
        Column("legacy", parse_type("text")),
        Column("x" * 63, parse_type("text"), nullable=True),
    ),
    primary_key=Constraint("accounts_pkey", ("id",)),
    indexes=(Index("accounts_email_idx", ("email",)),),
)

CHANGE = parse_change_text(
    "table: accounts\noperations:\n"
    "  - rename_column: {from: email, to: email_address}\n"
    "  - change_type: {column: amount, to_type: bigint}\n"
    "  - drop_column: {column: legacy}\n"
    f"  - change_type: {{column: {'x' * 63}, to_type: integer}}\n"
)


def sql_text(statements: object) -> list[str]:
    return [s.as_string(None) for s in statements]  # type: ignore[attr-defined]


def test_names_fit_and_are_stable() -> None:
    long_a, long_b = "a" * 60 + "1", "a" * 60 + "2"
    assert naming.new_column("amount") == "_ma_new_amount"
    for n in (naming.new_column(long_a), naming.new_column(long_b)):
        assert len(n.encode()) <= 63
    assert naming.new_column(long_a) != naming.new_column(long_b)
    assert naming.new_column(long_a) == naming.new_column(long_a)
    assert len(naming.new_column("é" * 40).encode()) <= 63


def test_plan_is_data_with_inverses() -> None:
    plan = plan_expand(CHANGE, TABLE)
    assert plan.fingerprint == CHANGE.fingerprint()
    assert plan.new_physical_columns == ("email_address", "_ma_new_amount", naming.new_column("x" * 63))
    assert all(step.inverse for step in plan.expand_steps), "every expand step can be undone"
    forward = sql_text(s for step in plan.expand_steps for s in step.forward)
    assert forward[0] == 'ALTER TABLE "public"."accounts" ADD COLUMN "email_address" text'
    assert 'ALTER TABLE "public"."accounts" ALTER COLUMN "legacy" DROP NOT NULL' in forward
    abort = sql_text(plan.abort_statements)
    assert abort[0].startswith('DROP TRIGGER IF EXISTS "_ma_sync_')
    assert 'ALTER TABLE "public"."accounts" ALTER COLUMN "legacy" SET NOT NULL' in abort
    contract = sql_text(plan.contract_statements)
    assert 'ALTER TABLE "public"."accounts" DROP COLUMN "email"' in contract
    assert 'ALTER TABLE "public"."accounts" RENAME COLUMN "_ma_new_amount" TO "amount"' in contract
    assert 'ALTER TABLE "public"."accounts" ALTER COLUMN "amount" SET DEFAULT CAST((0) AS bigint)' in contract
    assert contract.index('ALTER TABLE "public"."accounts" DROP COLUMN "amount"') < contract.index(
        'ALTER TABLE "public"."accounts" RENAME COLUMN "_ma_new_amount" TO "amount"'
    )
    # email was NOT NULL: contract guards the new column first, then sets NOT NULL
    assert any(
        "VALIDATE CONSTRAINT" in s for s in sql_text(s for st in plan.contract_prepare for s in st.forward)
    )
    # the renamed column's index is rebuilt on the new column (expand/indexes.py), not warned about
    assert not any(w.startswith("index accounts_email_idx") for w in plan.warnings)


def test_same_inputs_same_plan() -> None:
    a, b = plan_expand(CHANGE, TABLE), plan_expand(CHANGE, TABLE)
    assert sql_text(s for st in a.expand_steps for s in st.forward) == sql_text(
        s for st in b.expand_steps for s in st.forward
    )
    assert a.trigger == b.trigger and len(a.trigger.encode()) <= 63
