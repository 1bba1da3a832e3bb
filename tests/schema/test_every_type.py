"""Every type Postgres accepts in a spec: created, read back through format_type, planned as no change, and an
INSERT works; a type that does not exist is a spec error naming file, line and key, with nothing changed."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.types import parse_type
from tests.schema.helpers import converge, execute, plan, scalar

#: (spec spelling, a value to insert)
TYPES = [
    ("interval day to second(2)", "'1 day 02:03:04.567'"),
    ("interval year to month", "'1 year 2 months'"),
    ("interval hour", "'3 hours'"),
    ("interval(3)", "'1 second'"),
    ("jsonpath", "'$.a[*] ? (@ > 1)'"),
    ("xid8", "'42'"),
    ("int4range", "'[1,5)'"),
    ("tstzmultirange", "'{[2020-01-01,2021-01-01)}'"),
    ("datemultirange[]", "ARRAY['{[2020-01-01,2020-02-01)}'::datemultirange]"),
    ("bit(3)", "B'101'"),
    ("varbit(8)", "B'1'"),
    ("bit varying", "B'1101'"),
    ("money", "12.34"),
    ("xml", "'<a/>'"),
    ("uuid[][]", "'{{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}}'"),
    ("timestamptz(3)[]", "ARRAY[now()]"),
    ('"char"', "'x'"),
    ("tsvector", "'a b'"),
    ("pg_lsn", "'0/16B3748'"),
    ("numeric(10,2)[]", "'{1.5}'"),
    ("public.mood", "'happy'"),
    ("public.mood[]", "'{happy,sad}'"),
    ("other.posint", "5"),
    ('other."Odd Dom"[]', "'{x}'"),
    ("other.pair", "ROW(1, 'a')"),
]


def test_every_type_converges_and_takes_a_row(fresh_dsn: str) -> None:
    execute(
        fresh_dsn,
        "CREATE TYPE public.mood AS ENUM ('happy', 'sad')",
        "CREATE SCHEMA other",
        "CREATE DOMAIN other.posint AS integer CHECK (VALUE > 0)",
        'CREATE DOMAIN other."Odd Dom" AS text',
        "CREATE TYPE other.pair AS (a int, b text)",
    )
    cols = "".join(f"  - {{name: c{i}, type: '{t}', nullable: true}}\n" for i, (t, _) in enumerate(TYPES))
    spec = f"table: every_type\ncolumns:\n  - {{name: id, type: int, primary_key: true}}\n{cols}"
    converge(fresh_dsn, spec)
    values = ", ".join(v for _, v in TYPES)
    execute(fresh_dsn, f"INSERT INTO every_type VALUES (1, {values})")  # noqa: S608
    assert scalar(fresh_dsn, "SELECT count(*) FROM every_type") == 1
    # each column's catalog spelling is what the spec's spelling canonicalises to (a domain stays the domain)
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("SET search_path = pg_catalog")
        live = dict(conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute "
                                 "WHERE attrelid = 'public.every_type'::regclass AND attnum > 1").fetchall())
    assert live == {f"c{i}": parse_type(t).render().replace("[][]", "[]") for i, (t, _) in enumerate(TYPES)}
    assert live["c0"] == "interval day to second(2)" and live["c22"] == "other.posint"


def test_spellings_postgres_reads_differently_still_converge(fresh_dsn: str) -> None:
    """The hand alias table is not the last word: an enum array and a domain are read back by Postgres and
    compared in its spelling, so a second plan is empty."""
    execute(fresh_dsn, 'CREATE SCHEMA "S"', 'CREATE TYPE "S".e AS ENUM (\'a\')')
    spec = 'table: t\ncolumns: [{name: id, type: int, primary_key: true}, {name: v, type: \'"S".E\', nullable: true}]\n'
    with pytest.raises(SpecError) as exc:  # "S"."e" exists, "S".E folds to "S".e — exists; E quoted would not
        plan(fresh_dsn, spec.replace('"S".E', '"S"."E"'))
    p = exc.value.problems[0]
    assert p.file == "spec.yaml" and p.line == 2 and p.key == "columns[1].type" and "does not exist" in p.message
    converge(fresh_dsn, spec)


def test_missing_type_is_exit_2_and_changes_nothing(fresh_dsn: str) -> None:
    spec = "table: t\ncolumns:\n  - {name: id, type: int, primary_key: true}\n  - {name: v, type: public.nope}\n"
    with pytest.raises(SpecError) as exc:
        plan(fresh_dsn, spec)
    assert exc.value.exit_code == 2
    (p,) = exc.value.problems
    assert (p.file, p.line, p.key) == ("spec.yaml", 4, "columns[1].type") and "public.nope" in p.message
    assert scalar(fresh_dsn, "SELECT to_regclass('public.t')") is None


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("INTERVAL DAY TO SECOND (2)", "interval day to second(2)"), ("interval minute to second", "interval minute to second"),
        ("jsonpath[]", "jsonpath[]"), ("xid8", "xid8"), ("regnamespace", "regnamespace"),
    ],
)  # fmt: skip
def test_new_builtin_spellings(spelling: str, canonical: str) -> None:
    assert parse_type(spelling).render() == canonical


@pytest.mark.parametrize("bad", ["interval day(2)", "interval fortnight", "interval second(7)"])
def test_bad_interval_spellings_are_refused(bad: str) -> None:
    from migrate_assets.schema.types import UnknownTypeError

    with pytest.raises(UnknownTypeError):
        parse_type(bad)
