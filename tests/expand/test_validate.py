"""Change-file validation against a real table (`expand.validate`): every operation kind, accepted and refused,
through both entry points — `validate_change` (expand's full check: canonical types, implied casts, the columns
each generated function reads, volatile defaults) and `expression_problems` (what evolve and the Dagster jobs
check before embedding an expression; also with no table). Messages name file, line and key, byte for byte."""

from __future__ import annotations

from typing import Any

import psycopg
import pytest

from migrate_assets.errors import ChangeFileError
from migrate_assets.expand import parse_change_text
from migrate_assets.expand.ops import op_to_dict
from migrate_assets.expand.shape import read_live
from migrate_assets.expand.validate import expression_problems, validate_change

DDL = """
CREATE TYPE mood AS ENUM ('ok', 'sad');
CREATE TABLE items (
    id      bigint PRIMARY KEY,
    email   text NOT NULL,
    amount  integer DEFAULT 0,
    code    text,
    region  text,
    ident   bigint GENERATED ALWAYS AS IDENTITY
);
CREATE TABLE nopk (a int);
"""


def _change(body: str, table: str = "items") -> Any:
    return parse_change_text(f"table: {table}\noperations:\n{body}", "change.yaml")


def _validate(conn: psycopg.Connection[Any], body: str, table: str = "items") -> Any:
    try:
        v = validate_change(conn, _change(body, table))
    except ChangeFileError as exc:
        return [str(p) for p in exc.problems]
    return ([op_to_dict(o) for o in v.change.operations], v.refs, sorted(v.volatile_defaults))


def _expressions(conn: psycopg.Connection[Any], body: str, table: str | None = "items") -> list[str]:
    ch = _change(body, table or "missing")
    live = read_live(conn, ch.schema, ch.table) if table else None
    return [str(p) for p in expression_problems(conn, ch, live)]


@pytest.fixture
def conn(fresh_dsn: str) -> Any:
    with psycopg.connect(fresh_dsn, autocommit=True) as c:
        c.execute(DDL)
        yield c


ACCEPTED = {
    "every kind": (
        "  - add_column: {name: a, type: int4, nullable: true, default: '7'}\n"
        "  - add_column: {name: b, type: varchar(5), backfill: upper(code)}\n"
        "  - add_column: {name: c, type: timestamptz, default: clock_timestamp()}\n"
        "  - add_column: {name: d, type: float8, default: random(), backfill: amount * 2}\n"
        "  - change_type: {column: amount, to_type: int8}\n"
        "  - change_type: {column: code, to_type: integer, up: \"nullif(code, '')::int\", down: code::text}\n"
        "  - rename_column: {from: region, to: area}\n"
        "  - set_not_null: {column: email, backfill: \"'none'\"}\n",
        (
            [
                {"add_column": {"name": "a", "type": "integer", "nullable": True, "default": "7"}},
                {"add_column": {"name": "b", "type": "character varying(5)", "nullable": False,
                                "backfill": "upper(code)"}},
                {"add_column": {"name": "c", "type": "timestamp with time zone", "nullable": False,
                                "default": "clock_timestamp()"}},
                {"add_column": {"name": "d", "type": "double precision", "nullable": False, "default": "random()",
                                "backfill": "amount * 2"}},
                {"change_type": {"column": "amount", "to_type": "bigint"}},
                {"change_type": {"column": "code", "to_type": "integer", "up": "nullif(code, '')::int",
                                 "down": "code::text"}},
                {"rename_column": {"from": "region", "to": "area"}},
                {"set_not_null": {"column": "email", "backfill": "'none'"}},
            ],
            {
                "default0": (), "fill1": ("code",), "default2": (), "fill2": (), "fill3": ("amount",),
                "default3": (), "up4": ("amount",), "down4": ("amount",), "default4": (), "up5": ("code",),
                "down5": ("code",), "up6": ("region",), "down6": ("area",), "fill7": (),
            },
            [2, 3],
        ),
    ),
    "drop and enum type": (
        "  - drop_column: {column: code}\n  - add_column: {name: m, type: public.mood, nullable: true}\n",
        ([{"drop_column": {"column": "code"}}, {"add_column": {"name": "m", "type": "public.mood",
                                                                "nullable": True}}], {}, []),
    ),
}

REFUSED = {
    "no table": (
        "  - drop_column: {column: code}\n", "ghost",
        ["change.yaml:1: table: table public.ghost does not exist"],
    ),
    "no primary key": (
        "  - drop_column: {column: zz}\n", "nopk",
        ["change.yaml:1: table: table public.nopk has no primary key; the backfill needs one",
         "change.yaml:3: operations[0].drop_column.column: column 'zz' does not exist in public.nopk"],
    ),
    "structure": (
        "  - rename_column: {from: region, to: email}\n  - change_type: {column: id, to_type: int4}\n"
        "  - change_type: {column: ident, to_type: int4}\n  - set_not_null: {column: nope}\n"
        "  - add_column: {name: code, type: text, nullable: true}\n",
        "items",
        ["change.yaml:3: operations[0].rename_column.to: column 'email' already exists in public.items",
         "change.yaml:4: operations[1].change_type.column: 'id' is part of the primary key, which the backfill "
         "is keyed on; change it with a versioned migration",
         "change.yaml:5: operations[2].change_type.column: 'ident' is an identity, generated or serial column; "
         "expand–contract cannot copy it",
         "change.yaml:6: operations[3].set_not_null.column: column 'nope' does not exist in public.items",
         "change.yaml:7: operations[4].add_column.name: column 'code' already exists in public.items"],
    ),
    "types": (
        "  - add_column: {name: a, type: nosuchtype, nullable: true}\n"
        "  - add_column: {name: b, type: serial, nullable: true}\n"
        "  - change_type: {column: code, to_type: public.nomood}\n",
        "items",
        ["change.yaml:3: operations[0].add_column.type: invalid type 'nosuchtype': use a built-in type or a "
         "schema-qualified user type such as public.mood",
         "change.yaml:4: operations[1].add_column.type: invalid type 'serial': a serial type adds a sequence; "
         "use the plain type and a default",
         "change.yaml:5: operations[2].change_type.to_type: invalid type 'public.nomood': type public.nomood "
         "does not exist"],
    ),
    "expressions": (
        "  - add_column: {name: a, type: int4, default: 'nope + 1', backfill: 'code +'}\n"
        "  - add_column: {name: b, type: int4, default: '1/0'}\n"
        "  - change_type: {column: code, to_type: int4, up: 'missing_col', down: 'other_missing'}\n"
        "  - change_type: {column: region, to_type: int4}\n"
        "  - set_not_null: {column: email, backfill: 'no_such_col'}\n",
        "items",
        ["change.yaml:3: operations[0].add_column.backfill: invalid expression 'code +': expression ends with '+'",
         "change.yaml:3: operations[0].add_column.default: invalid expression 'nope + 1': column \"nope\" does not "
         "exist",
         "change.yaml:4: operations[1].add_column.default: invalid default '1/0': division by zero",
         "change.yaml:5: operations[2].change_type.up: invalid expression 'missing_col': column \"missing_col\" "
         "does not exist",
         "change.yaml:5: operations[2].change_type.down: invalid expression 'other_missing': column "
         "\"other_missing\" does not exist",
         "change.yaml:7: operations[4].set_not_null.backfill: invalid expression 'no_such_col': column "
         "\"no_such_col\" does not exist"],
    ),
}


@pytest.mark.parametrize("name", sorted(ACCEPTED))
def test_accepted_change_resolves_types_refs_and_volatile_defaults(conn: Any, name: str) -> None:
    body, want = ACCEPTED[name]
    assert _validate(conn, body) == want


@pytest.mark.parametrize("name", sorted(REFUSED))
def test_refused_change_names_file_line_and_key(conn: Any, name: str) -> None:
    body, table, want = REFUSED[name]
    got = _validate(conn, body, table)
    assert got == want, got


def test_expression_problems_on_the_live_table_and_without_one(conn: Any) -> None:
    body = REFUSED["expressions"][0] + "  - add_column: {name: t, type: nosuchtype, backfill: 'code ||'}\n"
    unknown = ("change.yaml:8: operations[5].add_column.type: unknown type 'nosuchtype': use a built-in type or a "
               "schema-qualified user type such as public.mood")
    offline = ["change.yaml:3: operations[0].add_column.backfill: invalid expression 'code +': expression ends "
               "with '+'",
               "change.yaml:8: operations[5].add_column.backfill: invalid expression 'code ||': expression ends "
               "with '||'",
               "change.yaml:3: operations[0].add_column.default: invalid default 'nope + 1': column \"nope\" does "
               "not exist"]
    live = ["change.yaml:5: operations[2].change_type.up: invalid expression 'missing_col': column "
            "\"missing_col\" does not exist",
            "change.yaml:5: operations[2].change_type.down: invalid expression 'other_missing': column "
            "\"other_missing\" does not exist",
            "change.yaml:7: operations[4].set_not_null.backfill: invalid expression 'no_such_col': column "
            "\"no_such_col\" does not exist"]
    assert _expressions(conn, body) == [unknown, *offline, *live]
    assert _expressions(conn, body, None) == [unknown, *offline]
    assert _expressions(conn, ACCEPTED["every kind"][0]) == []


