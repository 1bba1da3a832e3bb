"""Every column type Debezium carries, proven against the converter (issue 22).

One real pipeline per combination of connector settings (four connectors cover every value of every setting that
changes the mapping). Each `evolve` adds a column of every type to the live table; a row with a value in each is
written; then: the AvroConverter found the version we registered (no extra version), the event decodes to each
value, every new Iceberg column has the mapped type, and `verify` is consistent. What Debezium cannot carry is
refused at plan time (exit 2) naming the reason and the setting that would change it, with nothing changed.
"""

from __future__ import annotations

import base64
import datetime as dt
import json
import struct
import uuid
from decimal import Decimal
from typing import Any

import httpx
import psycopg
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from migrate_assets.evolution.derive import derive_enum_labels
from migrate_assets.evolution.preflight import user_types
from migrate_assets.evolution.typemap import TypeMapOptions, map_type
from migrate_assets.resources.iceberg import type_text
from migrate_assets.resources.postgres import PostgresSource
from tests.cdc import poll_until
from tests.pipeline import PipelineFactory, change_file
from tests.support import run_cli

UTC = dt.UTC
SETUP = [
    "CREATE EXTENSION citext", "CREATE EXTENSION hstore", "CREATE EXTENSION ltree",
    "CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')",
    "CREATE DOMAIN public.posint AS integer CHECK (VALUE > 0)", "CREATE DOMAIN public.email AS text",
    "CREATE TYPE public.comp_t AS (a integer)",
]
#: the connector settings of each pipeline (A: Debezium's defaults)
COMBOS = {
    "A": {},
    "B": {"decimal.handling.mode": "double", "time.precision.mode": "adaptive_time_microseconds",
          "binary.handling.mode": "base64", "interval.handling.mode": "string", "hstore.handling.mode": "map",
          "include.unknown.datatypes": "true"},
    "C": {"decimal.handling.mode": "string", "time.precision.mode": "connect", "binary.handling.mode": "hex"},
    "D": {"binary.handling.mode": "base64-url-safe", "money.fraction.digits": "3"},
}
TS3, TS6, TS0 = 1704164645123, 1704164645123456, 1704164645000000
VSD = {"scale": 1, "value": b"\x0f"}

# (column, type, SQL value, expected decoded value: one for every combination, or {combination: value, "*": rest})
CASES: list[tuple[str, str, str, Any]] = [
    ("c_bool", "boolean", "true", True), ("c_bit1", "bit(1)", "B'1'", True),
    ("c_bit3", "bit(3)", "B'101'", b"\x05"), ("c_varbit", "bit varying(8)", "B'1011'", b"\x0b"),
    ("c_varbitn", "bit varying", "B'11'", b"\x03"), ("c_vc", "character varying", "'v'", "v"),
    ("c_int2", "smallint", "7", 7), ("c_int4", "integer", "7", 7), ("c_int8", "bigint", "7", 7), ("c_oid", "oid", "7", 7),
    ("c_real", "real", "1.5", 1.5), ("c_float8", "double precision", "2.5", 2.5),
    ("c_char", "character(3)", "'abc'", "abc"), ("c_bpchar", "bpchar", "'x'", "x"),
    ("c_varchar", "varchar(10)", "'v'", "v"), ("c_qchar", '"char"', "'q'", "q"),
    ("c_tstz", "timestamptz", "'2024-01-02 03:04:05.123456+00'", "2024-01-02T03:04:05.123456Z"),
    ("c_tstz3", "timestamptz(3)", "'2024-01-02 03:04:05.123+00'", "2024-01-02T03:04:05.123Z"),
    ("c_ts3", "timestamp(3)", "'2024-01-02 03:04:05.123'",
     {"C": dt.datetime(2024, 1, 2, 3, 4, 5, 123000, UTC), "*": TS3}),
    ("c_ts6", "timestamp", "'2024-01-02 03:04:05.123456'",
     {"C": dt.datetime(2024, 1, 2, 3, 4, 5, 123000, UTC), "*": TS6}),
    ("c_timetz", "timetz", "'03:04:05.123456+02'", "01:04:05.123456Z"),
    ("c_time3", "time(3)", "'03:04:05.123'", {"B": 11045123000, "C": dt.time(3, 4, 5, 123000), "*": 11045123}),
    ("c_time6", "time", "'03:04:05.123456'", {"C": dt.time(3, 4, 5, 123000), "*": 11045123456}),
    ("c_date", "date", "'2024-01-02'", {"C": dt.date(2024, 1, 2), "*": 19724}),
    ("c_interval", "interval", "'1 day 2 hours'", {"B": "P0Y0M1DT2H0M0S", "*": 93600000000}),
    ("c_interval3", "interval(3)", "'1 sec'", {"B": "P0Y0M0DT0H0M1S", "*": 1000000}),
    ("c_bytea", "bytea", "'\\xfbff'::bytea", {"A": b"\xfb\xff", "B": "+/8=", "C": "fbff", "D": "-_8="}),
    ("c_json", "json", "'{\"a\":1}'", '{"a":1}'), ("c_jsonb", "jsonb", "'{\"a\":1}'", '{"a": 1}'),
    ("c_xml", "xml", "'<a/>'", "<a/>"),
    ("c_uuid", "uuid", "'a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11'", "a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"),
    ("c_point", "point", "'(1,2)'", {"x": 1.0, "y": 2.0}),
    ("c_ltree", "public.ltree", "'a.b'", "a.b"), ("c_citext", "public.citext", "'Ci'", "Ci"),
    ("c_inet", "inet", "'10.0.0.1'", "10.0.0.1"), ("c_cidr", "cidr", "'10.0.0.0/8'", "10.0.0.0/8"),
    ("c_macaddr", "macaddr", "'08:00:2b:01:02:03'", "08:00:2b:01:02:03"),
    ("c_macaddr8", "macaddr8", "'08:00:2b:01:02:03:04:05'", "08:00:2b:01:02:03:04:05"),
    ("c_i4r", "int4range", "'[1,5)'", "[1,5)"), ("c_i8r", "int8range", "'[1,5)'", "[1,5)"),
    ("c_numr", "numrange", "'[1.5,2.5)'", "[1.5,2.5)"),
    ("c_tsr", "tsrange", "'[2024-01-01,2024-01-02)'", '["2024-01-01 00:00:00","2024-01-02 00:00:00")'),
    ("c_tstzr", "tstzrange", "'[2024-01-01,2024-01-02)'", '["2024-01-01 00:00:00+00","2024-01-02 00:00:00+00")'),
    ("c_dr", "daterange", "'[2024-01-01,2024-01-02)'", "[2024-01-01,2024-01-02)"),
    ("c_enum", "public.mood", "'happy'", "happy"),
    ("c_money", "money", "12.34", {"A": Decimal("12.34"), "B": 12.34, "C": "12.34", "D": Decimal("12.340")}),
    ("c_num", "numeric(10,2)", "12.34", {"B": 12.34, "C": "12.34", "*": Decimal("12.34")}),
    ("c_numu", "numeric", "1.5", {"B": 1.5, "C": "1.5", "*": VSD}),
    ("c_numbig", "numeric(50,2)", "12.34", {"B": 12.34, "C": "12.34", "*": Decimal("12.34")}),
    ("c_hstore", "public.hstore", "'a=>1'", {"B": {"a": "1"}, "*": '{"a":"1"}'}),
    ("c_tsvector", "tsvector", "'a b'", "'a' 'b'"),
    ("c_domain", "public.posint", "5", 5), ("c_domtext", "public.email", "'a@b'", "a@b"),
    ("c_a_text", "text[]", "'{a,b}'", ["a", "b"]), ("c_a_int4", "integer[]", "'{1,2}'", [1, 2]),
    ("c_a_int2", "smallint[]", "'{1}'", [1]), ("c_a_int8", "bigint[]", "'{1}'", [1]),
    ("c_a_real", "real[]", "'{1.5}'", [1.5]), ("c_a_f8", "double precision[]", "'{1.5}'", [1.5]),
    ("c_a_bool", "boolean[]", "'{t}'", [True]), ("c_a_varchar", "varchar(5)[]", "'{a}'", ["a"]),
    ("c_a_char", "character(2)[]", "'{ab}'", ["ab"]),
    ("c_a_num", "numeric(10,2)[]", "'{1.5}'", {"B": [1.5], "C": ["1.50"], "*": [Decimal("1.50")]}),
    ("c_a_numu", "numeric[]", "'{1.5}'", {"B": [1.5], "C": ["1.5"], "*": [VSD]}),
    ("c_a_date", "date[]", "'{2024-01-02}'", {"C": [dt.date(2024, 1, 2)], "*": [19724]}),
    ("c_a_ts", "timestamp[]", "'{2024-01-02 03:04:05}'", {"C": [dt.datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)], "*": [TS0]}),
    ("c_a_tstz", "timestamptz[]", "'{2024-01-02 03:04:05+00}'", ["2024-01-02T03:04:05.000000Z"]),
    ("c_a_time", "time[]", "'{03:04:05}'", {"C": [dt.time(3, 4, 5)], "*": [11045000000]}),
    ("c_a_timetz", "timetz[]", "'{03:04:05+00}'", ["03:04:05Z"]),
    ("c_a_uuid", "uuid[]", "'{a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11}'", ["a0eebc99-9c0b-4ef8-bb6d-6bb9bd380a11"]),
    ("c_a_bytea", "bytea[]", "ARRAY['\\xfbff'::bytea]", {"A": [b"\xfb\xff"], "B": ["+/8="], "C": ["fbff"], "D": ["-_8="]}),
    ("c_a_json", "json[]", "ARRAY['{}'::json]", ["{}"]), ("c_a_jsonb", "jsonb[]", "ARRAY['{}'::jsonb]", ["{}"]),
    ("c_a_inet", "inet[]", "'{10.0.0.1}'", ["10.0.0.1"]), ("c_a_cidr", "cidr[]", "'{10.0.0.0/8}'", ["10.0.0.0/8"]),
    ("c_a_mac", "macaddr[]", "'{08:00:2b:01:02:03}'", ["08:00:2b:01:02:03"]),
    ("c_a_enum", "public.mood[]", "'{happy}'", ["happy"]), ("c_a_citext", "public.citext[]", "'{a}'", ["a"]),
    ("c_a_ltree", "public.ltree[]", "'{a.b}'", ["a.b"]), ("c_a_i4r", "int4range[]", "'{\"[1,5)\"}'", ["[1,5)"]),
    ("c_a_hstore", "public.hstore[]", "ARRAY['a=>1'::public.hstore]", {"B": [{"a": "1"}], "*": ['{"a":"1"}']}),
    ("c_a_bpchar", "bpchar[]", "'{x}'", ["x"]), ("c_a_qchar", '"char"[]', "'{q}'", ["q"]),
    ("c_a_mac8", "macaddr8[]", "'{08:00:2b:01:02:03:04:05}'", ["08:00:2b:01:02:03:04:05"]),
    ("c_a_i8r", "int8range[]", "'{\"[1,5)\"}'", ["[1,5)"]), ("c_a_numr", "numrange[]", "'{\"[1.5,2.5)\"}'", ["[1.5,2.5)"]),
    ("c_a_tsr", "tsrange[]", "ARRAY['[2024-01-01,2024-01-02)'::tsrange]", ['["2024-01-01 00:00:00","2024-01-02 00:00:00")']),
    ("c_a_tstzr", "tstzrange[]", "ARRAY['[2024-01-01,2024-01-02)'::tstzrange]",
     ['["2024-01-01 00:00:00+00","2024-01-02 00:00:00+00")']),
    ("c_a_dr", "daterange[]", "ARRAY['[2024-01-01,2024-01-02)'::daterange]", ["[2024-01-01,2024-01-02)"]),
    ("c_a_time3", "time(3)[]", "'{03:04:05.123}'", {"B": [11045123000], "C": [dt.time(3, 4, 5, 123000)], "*": [11045123]}),
    ("c_a_ts3", "timestamp(3)[]", "'{2024-01-02 03:04:05.123}'",
     {"C": [dt.datetime(2024, 1, 2, 3, 4, 5, 123000, UTC)], "*": [TS3]}),
    ("c_a_oid", "oid[]", "'{1}'", [1]), ("c_a_tsvector", "tsvector[]", "ARRAY['a'::tsvector]", ["'a'"]),
]
#: carried only with include.unknown.datatypes=true (combination B), as their text in binary data
UNKNOWN = [
    ("c_tsquery", "tsquery", "'a & b'", b"'a' & 'b'"), ("c_lsn", "pg_lsn", "'0/16B6C50'", b"0/16B6C50"),
    ("c_circle", "circle", "'<(0,0),1>'", b"<(0.0,0.0),1.0>"), ("c_box", "box", "'((0,0),(1,1))'", b"(1.0,1.0),(0.0,0.0)"),
    ("c_line", "line", "'{1,2,3}'", b"{1.0,2.0,3.0}"), ("c_lseg", "lseg", "'((0,0),(1,1))'", b"[(0.0,0.0),(1.0,1.0)]"),
    ("c_path", "path", "'((0,0),(1,1))'", b"((0.0,0.0),(1.0,1.0))"),
    ("c_polygon", "polygon", "'((0,0),(1,1),(1,0))'", b"((0.0,0.0),(1.0,1.0),(1.0,0.0))"),
    ("c_i4mr", "int4multirange", "'{[1,5)}'", b"{[1,5)}"), ("c_comp", "public.comp_t", "ROW(1)::public.comp_t", b"(1)"),
]
#: refused under Debezium's defaults (combination A): (type, what the refusal must say)
REFUSED = [
    ("tsquery", "include.unknown.datatypes=true"), ("money[]", "arrays of money"),
    ("integer[][]", "multi-dimensional"), ("bit(3)[]", "arrays of bit"), ("interval[]", "arrays of interval"),
    ("xml[]", "arrays of xml"), ("point[]", "arrays of point"), ("name[]", "arrays of name"),
    ("bit varying[]", "arrays of bit varying"), ("public.posint[]", "arrays of a domain"), ("numeric(5,-2)", "decimal.handling.mode=string"),
    ("regclass", "not in Debezium's PostgreSQL type table"), ("name", "streams its values as null"), ("public.comp_t", "include.unknown.datatypes=true"),
]


def _expected(value: Any, combo: str) -> Any:
    if isinstance(value, dict) and value and all(k in COMBOS or k == "*" for k in value):
        return value.get(combo, value.get("*"))
    return value


def _add_columns(cases: list[tuple[str, str, str, Any]]) -> str:
    ops = "".join(f"  - add_column: {{name: {n}, type: {json.dumps(t)}, nullable: true}}\n" for n, t, _, _ in cases)
    return f"table: public.customers\noperations:\n{ops}"


def _versions(registry_url: str, subject: str) -> list[int]:
    r = httpx.get(f"{registry_url}/subjects/{subject}/versions", timeout=10)
    r.raise_for_status()
    return list(r.json())


@pytest.mark.parametrize("combo", list(COMBOS))
def test_every_type_is_carried_as_the_converter_writes_it(
        make_pipeline: PipelineFactory, stack_dsn: str, capsys: pytest.CaptureFixture[str], combo: str) -> None:
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        for sql in SETUP:
            conn.execute(sql)
    p = make_pipeline(extra_connector=COMBOS[combo])
    unknown = [(n, v) for n, _, _, v in UNKNOWN] if COMBOS[combo].get("include.unknown.datatypes") == "true" else []
    cases = CASES + (UNKNOWN if unknown else [])

    if combo == "A":  # what Debezium cannot carry: refused at plan time, naming why and the setting; nothing changed
        before = p.layer_state()
        for pg, why in REFUSED:
            cf = change_file(p.tmp, _add_columns([("bad", pg, "", None)]), "refused.yaml")
            ran = run_cli(capsys, "evolve", str(cf), config=p.config_path, fmt="json")
            assert ran.code == 2, (pg, ran.out, ran.err)
            assert why in ran.out + ran.err and "refused.yaml" in ran.out + ran.err, (pg, ran.out, ran.err)
        assert p.layer_state() == before

    cf = change_file(p.tmp, _add_columns(cases))
    ran = run_cli(capsys, "evolve", str(cf), config=p.config_path, fmt="json")
    assert ran.code == 0, (ran.out, ran.err)
    assert ran.doc["status"] == "succeeded", ran.doc
    versions = _versions(p.registry_url, p.subject)
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        names = ", ".join(n for n, _, _, _ in cases)
        conn.execute(f"INSERT INTO public.customers (id, name, {names}) "  # noqa: S608 - the test's own literals
                     f"VALUES (777, 'm', {', '.join(v for _, _, v, _ in cases)})")
    after = p.row_events(777)[0]["after"]
    wrong = {}
    for name, _, _, value in cases:
        want, got = _expected(value, combo), after[name]
        if (name, want) in unknown:  # their text, as binary data under binary.handling.mode
            want = base64.b64encode(want).decode() if COMBOS[combo]["binary.handling.mode"] == "base64" else want
        if name == "c_point":  # the WKB beside x and y is Debezium's own encoding
            got = {k: got[k] for k in ("x", "y")}
        if got != want:
            wrong[name] = (got, want)
    assert not wrong, wrong
    # the converter found our version for the row's schema: no version was added after ours
    assert _versions(p.registry_url, p.subject) == versions
    opts = TypeMapOptions.from_connector(p.config, TypeMapOptions(user_types=user_types_of(p.dsn)))
    ice = {f.name: type_text(f.field_type) for f in p.iceberg().schema().fields}
    mismatched = {n: (ice.get(n), map_type(t, opts).iceberg) for n, t, _, _ in cases
                  if ice.get(n) != map_type(t, opts).iceberg}
    assert not mismatched, mismatched
    ver = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver.doc


def user_types_of(dsn: str) -> tuple[Any, ...]:
    class _Ctx:  # user_types reads only ctx.source
        source = PostgresSource(dsn)

    return user_types(_Ctx())  # type: ignore[arg-type]



def test_an_enum_label_added_outside_a_run_is_drift_until_debezium_reloads_its_types(
        make_pipeline: PipelineFactory, stack_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """Debezium keeps announcing an enum's labels from when its task started: after `ALTER TYPE … ADD VALUE` the
    events still say the old `allowed` (the new label's rows do arrive), so verify reports the registry's labels
    against the catalog's; once the connector restarts, the converter registers one version with the new labels
    and verify is consistent."""
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')")
    p = make_pipeline()
    ran = run_cli(capsys, "evolve", str(change_file(p.tmp, _add_columns([("c_enum", "public.mood", "", None)]))),
                  config=p.config_path, fmt="json")
    assert ran.code == 0, ran.out + ran.err
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("ALTER TYPE public.mood ADD VALUE 'ecstatic'")
        conn.execute("INSERT INTO public.customers (id, name, c_enum) VALUES (778, 'm', 'ecstatic')")
    assert p.row_events(778)[0]["after"]["c_enum"] == "ecstatic"
    versions = _versions(p.registry_url, p.subject)
    ver = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert ver.code == 4, ver.out
    diffs = ver.doc["tables"][0]["layers"]["schema_registry"]["differences"]
    assert any("c_enum" in d and "sad,ok,happy,ecstatic" in d and "restart the connector" in d for d in diffs), diffs

    _restart(p.connect_url, p.name)
    ids = iter(range(779, 10_000))

    def reloaded() -> bool:  # a row per try: the one written after the task restarted carries the new labels
        with psycopg.connect(p.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO public.customers (id, name, c_enum) VALUES (%s, 'm', 'ecstatic')", (next(ids),))
        return len(_versions(p.registry_url, p.subject)) == len(versions) + 1

    poll_until(reloaded, 90, "a registry version with the new label", interval=1.0)
    ver = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver.doc


def test_pipeline_add_joins_a_table_of_debezium_structs_arrays_and_enums(
        make_pipeline: PipelineFactory, stack_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """`pipeline add` maps a joining table's columns as the connector emits them, catalog types included: the
    subject copied from a sibling defines Debezium's records once, the Iceberg table is created with struct and
    list columns, and the joined table verifies consistent."""
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')")
    p = make_pipeline()
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.kinds (id integer PRIMARY KEY, n numeric, ns numeric[], tags text[], "
                     "m public.mood, pt point)")
        conn.execute("INSERT INTO public.kinds SELECT g, g / 4.0, ARRAY[g / 2.0], ARRAY['t' || g], 'ok', "
                     "point(g, 1) FROM generate_series(1, 3) g")
    ran = run_cli(capsys, "pipeline", "add", "public.kinds", "--connector", p.name, "--iceberg-table",
                  f"{p.namespace}.kinds", config=p.config_path, fmt="json")
    assert ran.code == 0, ran.out + ran.err
    assert ran.doc["mode"] == "join" and ran.doc["verify"]["consistent"] is True, ran.doc
    table = p.iceberg().catalog.load_table(f"{p.namespace}.kinds")
    assert {f.name: type_text(f.field_type) for f in table.schema().fields} == {
        "id": "int", "n": "struct<scale: int, value: binary>", "ns": "list<struct<scale: int, value: binary>>",
        "tags": "list<string>", "m": "string", "pt": "struct<x: double, y: double, wkb: binary, srid: int>"}
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.kinds VALUES (100, 2.5, '{1.5}', '{x}', 'happy', point(3, 4))")
    evs = poll_until(lambda: [e for e in p.events("kinds") if e.get("after") and e["after"]["id"] == 100], 90,
                     "the streamed row of public.kinds")
    after = evs[0]["after"]
    assert (after["n"], after["ns"], after["tags"], after["m"]) == (
        {"scale": 1, "value": b"\x19"}, [{"scale": 1, "value": b"\x0f"}], ["x"], "happy")


def test_a_planned_enum_label_addition_adds_only_the_version_it_registered(
        make_pipeline: PipelineFactory, stack_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    """The steps of a planned label addition, on the real converter: register `derive_enum_labels`' schema,
    `ALTER TYPE … ADD VALUE`, restart the connector; the rows before and after the restart add no version."""
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TYPE public.mood AS ENUM ('sad', 'ok', 'happy')")
    p = make_pipeline()
    cols = [("c_enum", "public.mood", "", None), ("c_moods", "public.mood[]", "", None)]
    ran = run_cli(capsys, "evolve", str(change_file(p.tmp, _add_columns(cols))), config=p.config_path, fmt="json")
    assert ran.code == 0, ran.out + ran.err
    latest = httpx.get(f"{p.registry_url}/subjects/{p.subject}/versions/latest", timeout=10).json()["schema"]
    new = derive_enum_labels(latest, {"c_enum": "public.mood", "c_moods": "public.mood[]"}, "public.mood",
                             ("sad", "ok", "happy", "ecstatic"))
    assert new is not None
    r = httpx.post(f"{p.registry_url}/subjects/{p.subject}/versions", json={"schema": new}, timeout=10)
    assert r.is_success, r.text
    ours, versions = r.json()["id"], _versions(p.registry_url, p.subject)
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("ALTER TYPE public.mood ADD VALUE 'ecstatic'")
        conn.execute("INSERT INTO public.customers (id, name, c_enum, c_moods) VALUES (778, 'm', 'ecstatic', "
                     "'{ecstatic}')")
    assert p.row_events(778)[0]["after"]["c_moods"] == ["ecstatic"]
    assert _schema_ids(p.stack.bootstrap, p.topic)[-1] != ours  # Debezium still announces the old labels
    _restart(p.connect_url, p.name)
    ids = iter(range(779, 10_000))

    def written_with_ours() -> bool:  # a row per try, until the restarted task writes one with our version
        with psycopg.connect(p.dsn, autocommit=True) as conn:
            conn.execute("INSERT INTO public.customers (id, name, c_enum) VALUES (%s, 'm', 'ecstatic')", (next(ids),))
        return _schema_ids(p.stack.bootstrap, p.topic)[-1] == ours

    poll_until(written_with_ours, 90, "an event written with the planned version", interval=1.0)
    assert _versions(p.registry_url, p.subject) == versions  # the converter added none of its own
    ver = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver.doc


def _restart(connect_url: str, name: str) -> None:
    """Restart the connector and its tasks (a distributed worker answers 409 while its group rebalances)."""
    poll_until(lambda: httpx.post(f"{connect_url}/connectors/{name}/restart?includeTasks=true", timeout=30).is_success,
               60, f"restart of {name} accepted")


def _schema_ids(bootstrap: str, topic: str) -> list[int]:
    """The registry id in each event's wire header (magic byte, 4-byte id), in topic order."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "t-" + uuid.uuid4().hex[:6],
                         "enable.auto.commit": False})
    try:
        consumer.assign([TopicPartition(topic, 0, OFFSET_BEGINNING)])
        ids = []
        while (msg := consumer.poll(0.7)) is not None:
            value = msg.value()
            if not msg.error() and value:
                ids.append(struct.unpack(">I", value[1:5])[0])
        return ids
    finally:
        consumer.close()
