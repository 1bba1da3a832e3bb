"""The pre-expand shape in the state row: schema's `Table` as JSON, and rows older versions wrote."""

from __future__ import annotations

import json
from typing import Any

import psycopg
import pytest
from psycopg.types.json import Jsonb

from migrate_assets.errors import ChangeFileError
from migrate_assets.expand import read_live, runner, shape, state
from migrate_assets.schema.model import fingerprint
from tests.expand.conftest import change, columns, expand, make_items

CHANGE = """
table: items
operations:
  - change_type: {column: amount, to_type: bigint}
  - rename_column: {from: email, to: email_address}
  - drop_column: {column: legacy}
"""


def _format_1(not_null: frozenset[str] = frozenset({"id", "email", "legacy"})) -> dict[str, Any]:
    """`items` as versions before schema's model recorded it (expand/catalog.py's TableInfo)."""
    types = {"id": "bigint", "email": "text", "amount": "integer", "code": "text", "legacy": "text"}
    return {
        "schema": "public",
        "name": "items",
        "columns": [
            {"name": n, "type": types.get(n, "text"), "not_null": n in not_null, "default": "0" if n == "amount" else None,
             "identity": False, "generated": False}
            for n in ("id", "email", "amount", "code", "legacy", "region", "note")
        ],
        "primary_key": ["id"],
        "indexes": [["items_pkey", ["id"]], ["items_region_idx", ["region"]]],
    }  # fmt: skip


FORMAT_1_FINGERPRINT = "9f2c" * 16  # a catalog hash of the old kind: nothing computes it any more


def test_state_json_keeps_every_fact_schema_fingerprints(fresh_dsn: str) -> None:
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
        conn.execute(
            'CREATE TABLE "Odd ""T""" (id serial PRIMARY KEY, n bigint GENERATED ALWAYS AS IDENTITY, '
            "m public.mood[], p numeric(10,2) DEFAULT 1.5 NOT NULL, g int GENERATED ALWAYS AS (id * 2) STORED, "
            "at timestamp(3) with time zone, UNIQUE (p, m))"
        )
        conn.execute('CREATE INDEX odd_desc ON "Odd ""T""" (at DESC) WHERE p > 0')
        # the kinds #15 added: each must come back from the state row as it was read
        conn.execute("CREATE TABLE parent (id int PRIMARY KEY)")
        conn.execute('ALTER TABLE "Odd ""T""" ADD COLUMN parent_id int REFERENCES parent ON DELETE CASCADE, '
                     'ADD COLUMN label text COLLATE "C", ADD CONSTRAINT p_positive CHECK (p > 0) NO INHERIT, '
                     "ADD CONSTRAINT one_label EXCLUDE USING btree (label WITH =) WHERE (label <> '')")
        conn.execute('CREATE INDEX odd_incl ON "Odd ""T""" (lower(label) text_pattern_ops NULLS FIRST) INCLUDE (p)')
        conn.execute('COMMENT ON COLUMN "Odd ""T""".p IS \'price\'')
        live = read_live(conn, "public", 'Odd "T"')
    assert live is not None
    back = shape.from_json(json.loads(json.dumps(shape.to_json(live))))
    assert live.foreign_keys and live.checks and live.excludes and len(live.indexes) == 2
    assert back == live and fingerprint([back]) == fingerprint([live])


def test_expand_recorded_by_an_older_version_is_recognised(fresh_dsn: str) -> None:
    make_items(fresh_dsn, 300)
    before = columns(fresh_dsn)
    ch = change(CHANGE)
    expand(fresh_dsn, ch)
    with psycopg.connect(fresh_dsn) as conn:
        current = state.get(conn, "public", ch.qualified, ch.fingerprint())
        assert current is not None and current.table_info["format"] == shape.FORMAT
        conn.execute(
            "UPDATE migrate_assets_operations SET table_info = %s, pre_fingerprint = %s",
            (Jsonb(_format_1()), FORMAT_1_FINGERPRINT),
        )
        conn.commit()
        old = state.get(conn, "public", ch.qualified, ch.fingerprint())
        assert old is not None
        conn.rollback()

        def sql(st: state.OperationState) -> list[list[str]]:
            plan = runner.plan_from_state(st, ch)
            steps = [*plan.expand_steps, *plan.contract_prepare, *plan.contract_steps]
            return [runner.render(None, s.forward) for s in steps] + [
                runner.render(None, plan.abort_statements)
            ]

        assert sql(old) == sql(current), "the older row rebuilds the very plan expand ran"
        assert runner.expand(conn, ch)["status"] == "already_expanded"
        assert runner.status(conn, ch).safe_to_contract
        out = runner.abort(conn, ch)
        assert out["status"] == "aborted" and out["schema_restored"] is True
        assert columns(fresh_dsn) == before
        # the older row's check is on what abort undoes: a recorded NOT NULL that is not back is reported
        conn.execute(
            "UPDATE migrate_assets_operations SET table_info = %s",
            (Jsonb(_format_1(frozenset({"id", "email", "legacy", "note"}))),),
        )
        conn.commit()
        assert runner.abort(conn, ch) | {"sql": []} == {
            "table": "public.items", "fingerprint": ch.fingerprint(), "status": "already_aborted", "sql": [],
            "schema_restored": False,
        }  # fmt: skip


def test_abort_notices_a_helper_it_left_behind(fresh_dsn: str) -> None:
    """The table model has no triggers or CHECK constraints; abort still proves none of expand's are left."""
    make_items(fresh_dsn, 10)
    ch = change("table: items\noperations:\n  - set_not_null: {column: region, backfill: \"'eu'\"}\n")
    expand(fresh_dsn, ch)
    with psycopg.connect(fresh_dsn) as conn:
        plan = runner.plan_change(conn, ch)
        assert runner.abort(conn, ch)["schema_restored"] is True
        (check,) = [o.check for o in plan.ops if o.check]
        conn.execute(f'ALTER TABLE items ADD CONSTRAINT "{check}" CHECK (region IS NOT NULL) NOT VALID')
        conn.commit()
        assert runner.abort(conn, ch)["schema_restored"] is False


@pytest.mark.parametrize(
    ("type_text", "message"),
    [
        ("int8", ""),
        ("public.mood", ""),
        ("mood", "schema-qualified user type"),
        ("public.nosuch", "type public.nosuch does not exist"),
        ("serial", "serial type"),
        ("varchar(0)", "length must be"),
    ],
)
def test_types_are_parsed_by_the_one_type_model(fresh_dsn: str, type_text: str, message: str) -> None:
    make_items(fresh_dsn, 5)
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TYPE mood AS ENUM ('ok', 'sad')")
    ch = change(
        f"table: items\noperations:\n  - add_column: {{name: t, type: '{type_text}', nullable: true}}\n"
    )
    if not message:
        expand(fresh_dsn, ch)
        assert columns(fresh_dsn)[-1] == ("t", {"int8": "bigint"}.get(type_text, "mood"), False)
        return
    with pytest.raises(ChangeFileError) as exc:
        expand(fresh_dsn, ch)
    (problem,) = exc.value.problems
    assert problem.key.endswith(".type") and problem.message.startswith(f"invalid type {type_text!r}: ")
    assert message in problem.message


def test_serial_column_is_not_copied(fresh_dsn: str) -> None:
    """Contract would drop the owned sequence with the old column: refused before anything is changed."""
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TABLE s (id int PRIMARY KEY, seq serial)")
    with pytest.raises(ChangeFileError, match="identity, generated or serial"):
        expand(fresh_dsn, change("table: s\noperations:\n  - rename_column: {from: seq, to: n}\n"))
