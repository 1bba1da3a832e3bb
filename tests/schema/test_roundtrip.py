"""Create → plan again is empty, whatever the spelling; every change kind converges; odd identifiers work."""

from __future__ import annotations

import json

import pytest

from tests.schema.helpers import converge, execute, plan, scalar, tables

SPELLINGS = [
    "int", "int4", "integer", "INT", "int2", "smallint", "int8", "bigint", "serial", "serial4", "bigserial",
    "smallserial", "varchar(20)", "character varying(20)", "varchar", "character varying", "char", "char(3)",
    "character(3)", "bpchar", "text", "text[]", "int[]", "int[][]", "integer[3]", "varchar(5)[]",
    "timestamptz", "timestamp with time zone", "timestamp(3) with time zone", "timestamptz(3)", "timestamp",
    "timestamp without time zone", "timestamp(0)", "time", "timetz", "time(2) with time zone", "date", "interval",
    "interval(3)", "float", "float8", "double precision", "float4", "real", "float(10)", "decimal", "numeric",
    "numeric(10,2)", "decimal(10, 2)", "numeric(12)", "bool", "boolean", "jsonb", "json", "uuid", "bytea", "inet",
    "cidr", "macaddr", "money", "bit(3)", "varbit(8)", "tsvector", "int4range", "xml", "pg_catalog.int8",
]  # fmt: skip


@pytest.mark.parametrize("spelling", SPELLINGS)
def test_every_spelling_diffs_to_nothing_after_create(module_dsn: str, spelling: str) -> None:
    name = f"t{SPELLINGS.index(spelling)}_" + "".join(ch if ch.isalnum() else "_" for ch in spelling)
    spec = f"table: {name}\ncolumns:\n  - {{name: id, type: bigint, primary_key: true}}\n  - {{name: v, type: '{spelling}'}}\n"
    first = converge(module_dsn, spec)
    assert [c.kind for c in first.changes] == ["create_table"]


DEFAULTS = [
    ("text", "'active'"), ("varchar(20)", "'x'"), ("int", "0"), ("int", "-1"), ("bigint", "42"),
    ("numeric(10,2)", "1.5"), ("boolean", "true"), ("boolean", "FALSE"), ("timestamptz", "now()"),
    ("timestamptz", "CURRENT_TIMESTAMP"), ("date", "current_date"), ("jsonb", "'{}'::jsonb"), ("jsonb", "'{}'"),
    ("text[]", "'{}'"), ("uuid", "gen_random_uuid()"), ("text", "lower('ABC')"), ("interval", "'1 day'"),
    ("double precision", "1e3"), ("text", "'it''s'"), ("int", "(1 + 2) * 3"),
]  # fmt: skip


@pytest.mark.parametrize(("type_", "default"), DEFAULTS)
def test_defaults_written_any_way_diff_to_nothing(module_dsn: str, type_: str, default: str) -> None:
    name = "d_" + str(abs(hash((type_, default))))
    spec = f"table: {name}\ncolumns:\n  - name: v\n    type: '{type_}'\n    default: {json.dumps(default)}\n"
    converge(module_dsn, spec)


def test_every_change_kind_converges(fresh_dsn: str) -> None:
    v1 = """
table: acct
comment: accounts
columns:
  - {name: id, type: bigserial, primary_key: true}
  - {name: email, type: varchar(50), unique: true}
  - {name: legacy, type: text, nullable: true}
  - {name: old_name, type: text, nullable: true}
  - {name: n, type: int, default: '0'}
  - {name: note, type: text, nullable: true, comment: free text}
indexes:
  - {name: acct_n, columns: [n]}
  - {name: acct_gone, columns: [note]}
"""
    converge(fresh_dsn, v1)
    execute(fresh_dsn, "INSERT INTO acct (email, n) VALUES ('a@x', 1), ('b@x', 2)")
    v2 = """
table: acct
comment: all accounts
columns:
  - {name: id, type: bigserial}
  - {name: email, type: varchar(100)}
  - {name: new_name, type: text, nullable: true, renamed_from: [old_name]}
  - {name: n, type: bigint, default: '1', unique: true}
  - {name: note, type: text, comment: changed}
  - {name: tier, type: text, default: "'bronze'"}
  - {name: token, type: uuid, default: gen_random_uuid()}
  - {name: extra, type: int, nullable: true}
primary_key: [email]
indexes:
  - {name: acct_n, columns: [n, id]}
  - {name: acct_note, columns: [note], where: "note <> ''"}
"""
    execute(fresh_dsn, "UPDATE acct SET note = 'x'")
    p = converge(fresh_dsn, v2)
    kinds = {c.kind for c in p.changes}
    assert {
        "rename_column", "drop_column", "add_column", "alter_type", "set_default", "set_not_null", "add_unique",
        "drop_unique", "drop_primary_key", "add_primary_key", "drop_index", "add_index", "set_comment",
    } <= kinds  # fmt: skip
    assert scalar(fresh_dsn, "SELECT count(*) FROM acct WHERE tier = 'bronze' AND token IS NOT NULL") == 2
    v3 = v2.replace("{name: note, type: text, comment: changed}", "{name: note, type: text, nullable: true}").replace(
        "default: '1', unique: true", "unique: true"
    )
    p3 = converge(fresh_dsn, v3)
    assert {"drop_not_null", "drop_default", "set_comment"} <= {c.kind for c in p3.changes}


def test_odd_identifiers_end_to_end(fresh_dsn: str) -> None:
    execute(fresh_dsn, 'CREATE SCHEMA "Odd Schema"')
    spec = """
- table: 'Odd Schema.Order "Items"'
  columns:
    - {name: select, type: int, primary_key: true}
    - {name: "Mixed Case", type: text, unique: true}
    - {name: "it's", type: text, nullable: true, default: "'o''k'"}
    - {name: "ünïcødé", type: int, nullable: true}
  indexes:
    - {name: "Index With Space", columns: ["Mixed Case", "it's"]}
- table: user
  columns:
    - {name: from, type: text, primary_key: true}
"""
    converge(fresh_dsn, spec)
    assert scalar(fresh_dsn, """SELECT count(*) FROM pg_index WHERE indexrelid = '"Odd Schema"."Index With Space"'::regclass""") == 1
    p = plan(fresh_dsn, spec.replace('name: "ünïcødé"', 'name: "Ünïcødé", renamed_from: ["ünïcødé"]'))
    assert [c.kind for c in p.changes] == ["rename_column"]


def test_create_table_sql_quotes_every_identifier() -> None:
    from migrate_assets.schema.ddl import create_table

    (t,) = tables('table: a"b\ncolumns: [{name: "x; drop table y", type: int, primary_key: true}]\n')
    (stmt,) = create_table(t)
    assert stmt.startswith('CREATE TABLE "public"."a""b" ("x; drop table y" integer NOT NULL')


def test_missing_schema_is_created_first(fresh_dsn: str) -> None:
    p = converge(fresh_dsn, "table: 'New Schema.t'\ncolumns: [{name: a, type: int}]\n")
    assert [c.kind for c in p.changes] == ["create_schema", "create_table"]
    assert p.changes[0].sql == ('CREATE SCHEMA IF NOT EXISTS "New Schema"',)
