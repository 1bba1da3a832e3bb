"""The connector's `decimal.handling.mode` / `time.precision.mode` reach the type map in planning and in verify.

Fast cases plan and verify against the in-memory layers (our protocols only); the real case runs a Debezium
connector configured with each mode on the local stack: an `evolve` adding `numeric(10,2)` and plain `numeric`
succeeds, the registry version we register is the one the AvroConverter reuses for the next row (no extra
version), and `verify` finds every layer consistent.
"""

from __future__ import annotations

import json

import httpx
import psycopg
import pytest
from pyiceberg.catalog import load_catalog

from migrate_assets.errors import UnsupportedTypeError
from migrate_assets.evolution.actions import IcebergUpdate, RegisterSchema
from migrate_assets.evolution.derive import avro_row_fields
from migrate_assets.evolution.layers import IcebergOp, SourceColumn
from migrate_assets.evolution.planner import PipelineTarget, Policy
from migrate_assets.evolution.preflight import preflight
from migrate_assets.evolution.typemap import TypeMapOptions, map_type
from migrate_assets.evolution.verify import verify_table
from migrate_assets.expand.changefile import parse_change_text
from tests.cdc import poll_until
from tests.evolution.memory_stack import World, world
from tests.pipeline import PipelineFactory, change_file
from tests.support import run_cli

ADD_NUMERICS = """table: public.customers
operations:
  - add_column: {name: price, type: "numeric(10,2)", nullable: true}
  - add_column: {name: ratio, type: numeric, nullable: true}
"""
TARGET = PipelineTarget("public.customers", "c", "p.public.customers-value", "ns.customers")


def test_options_follow_the_connector_config_and_keep_the_rest() -> None:
    base = TypeMapOptions(uuid_as="string")
    assert TypeMapOptions.from_connector(None, base) is base
    assert TypeMapOptions.from_connector({}, base) == base  # Debezium's own defaults: precise, adaptive
    got = TypeMapOptions.from_connector({"decimal.handling.mode": "string", "time.precision.mode": "connect"}, base)
    assert (got.decimal_handling_mode, got.time_precision_mode, got.uuid_as) == ("string", "connect", "string")


@pytest.mark.parametrize(("key", "value"), [("decimal.handling.mode", "exact"), ("time.precision.mode", "isostring")])
def test_a_mode_the_map_does_not_model_is_refused_naming_the_key(key: str, value: str) -> None:
    with pytest.raises(UnsupportedTypeError) as e:
        TypeMapOptions.from_connector({key: value}, None, "connector c")
    assert e.value.exit_code == 2
    assert key in str(e.value) and value in str(e.value) and "connector c" in str(e.value)


def test_time_in_adaptive_time_microseconds_mode_is_always_micro_time() -> None:
    assert map_type("time(3)").semantic == "io.debezium.time.Time"  # adaptive: milliseconds in an int
    lt = map_type("time(3)", TypeMapOptions(time_precision_mode="adaptive_time_microseconds"))
    assert lt.semantic == "io.debezium.time.MicroTime"


def _world(config: dict[str, str]) -> World:
    w = world()
    w.stack.connector.connectors["c"].config = dict(config)  # every column captured
    return w


@pytest.mark.parametrize(("mode", "avro", "iceberg"), [("string", "string", "string"),
                                                        ("double", "double", "double")])
def test_preflight_plans_with_the_connector_mode(mode: str, avro: str, iceberg: str) -> None:
    w = _world({"decimal.handling.mode": mode})
    report = preflight(parse_change_text(ADD_NUMERICS, "change.yaml"), TARGET, w.ctx, Policy())
    actions = {s.layer: s.action for s in report.plan.steps}
    reg, lake = actions["schema_registry"], actions["lakehouse"]
    assert isinstance(reg, RegisterSchema) and isinstance(lake, IcebergUpdate)
    fields = avro_row_fields(reg.schema)
    assert fields["price"] == ["null", avro] and fields["ratio"] == ["null", avro]
    assert {(op.name, op.type) for op in lake.ops} == {("price", iceberg), ("ratio", iceberg)}


def test_preflight_with_the_default_mode_plans_plain_numeric_as_debeziums_struct() -> None:
    w = _world({})
    report = preflight(parse_change_text(ADD_NUMERICS, "change.yaml"), TARGET, w.ctx, Policy())
    actions = {s.layer: s.action for s in report.plan.steps}
    reg, lake = actions["schema_registry"], actions["lakehouse"]
    assert isinstance(reg, RegisterSchema) and isinstance(lake, IcebergUpdate)
    assert avro_row_fields(reg.schema)["ratio"][1]["connect.name"] == "io.debezium.data.VariableScaleDecimal"
    assert ("ratio", "struct<scale: int, value: binary>") in {(op.name, op.type) for op in lake.ops}


def test_preflight_refuses_what_debezium_cannot_carry_naming_the_line_and_the_setting() -> None:
    w = _world({})
    change = ADD_NUMERICS + "  - add_column: {name: q, type: tsquery, nullable: true}\n"
    with pytest.raises(UnsupportedTypeError) as e:
        preflight(parse_change_text(change, "change.yaml"), TARGET, w.ctx, Policy())
    assert "include.unknown.datatypes=true" in str(e.value) and "change.yaml" in str(e.value)


def test_preflight_refuses_a_connector_mode_it_does_not_model() -> None:
    w = _world({"time.precision.mode": "nanoseconds"})
    with pytest.raises(UnsupportedTypeError, match="time.precision.mode"):
        preflight(parse_change_text(ADD_NUMERICS, "change.yaml"), TARGET, w.ctx, Policy())


def test_verify_reads_the_mode_of_the_connector() -> None:
    w = _world({"decimal.handling.mode": "string"})
    src, lake, reg = w.stack.source, w.stack.lakehouse, w.stack.registry
    src.tables["public.customers"].append(SourceColumn("ratio", "numeric", True))
    reg.register(TARGET.subject or "", json.dumps({"type": "record", "name": "v", "fields": [
        {"name": "id", "type": "int"}, {"name": "ratio", "type": ["null", "string"], "default": None}]}))
    current = lake.state("ns.customers")
    assert current is not None
    lake.apply("ns.customers", (IcebergOp("add_column", "ratio", "string"),), current.schema_id)
    res = verify_table(TARGET, w.ctx, progress_bound=1.0)
    assert res.consistent, res.differences()
    # the same layers read with the default (precise) map: plain numeric is Debezium's struct there → drift
    res = verify_table(TARGET, w.ctx, TypeMapOptions(), progress_bound=1.0)
    assert not res.consistent and any("ratio" in d for d in res.differences())


# ------------------------------------------------------------------------------------------------------------
# on a real connector
# ------------------------------------------------------------------------------------------------------------


def _versions(registry_url: str, subject: str) -> list[int]:
    r = httpx.get(f"{registry_url}/subjects/{subject}/versions", timeout=10)
    r.raise_for_status()
    return list(r.json())


@pytest.mark.parametrize(("mode", "expected"), [("string", ("12.34", "0.3333333333")),
                                                ("double", (12.34, 0.3333333333))])
def test_real_connector_modes_reach_plan_registry_and_verify(
        make_pipeline: PipelineFactory, capsys: pytest.CaptureFixture[str], mode: str,
        expected: tuple[object, object]) -> None:
    p = make_pipeline(extra_connector={"decimal.handling.mode": mode})
    cf = change_file(p.tmp, ADD_NUMERICS)
    ran = run_cli(capsys, "evolve", str(cf), config=p.config_path, fmt="json")
    assert ran.code == 0, (ran.out, ran.err)
    assert ran.doc["status"] == "succeeded"
    versions = _versions(p.registry_url, p.subject)
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, price, ratio) VALUES (777, 'm', 12.34, 0.3333333333)")
    ev = p.row_events(777)[0]
    assert (ev["after"]["price"], ev["after"]["ratio"]) == expected
    # the converter found our version for the row's schema: no version was added after ours
    assert _versions(p.registry_url, p.subject) == versions
    fields = {f.name: str(f.field_type) for f in p.iceberg().schema().fields}
    assert fields["price"] == fields["ratio"] == mode
    ver = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver.doc


def test_pipeline_add_joins_a_table_with_unconstrained_numeric_to_a_string_mode_connector(
        make_pipeline: PipelineFactory, capsys: pytest.CaptureFixture[str]) -> None:
    """`pipeline add` maps the new table's columns as the existing connector emits them: plain `numeric`, refused
    under the default map, is a string here, end to end."""
    p = make_pipeline(extra_connector={"decimal.handling.mode": "string"})
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.rates (id integer PRIMARY KEY, ratio numeric)")
        conn.execute("INSERT INTO public.rates SELECT g, g / 3.0 FROM generate_series(1, 5) g")
    ran = run_cli(capsys, "pipeline", "add", "public.rates", "--connector", p.name, "--iceberg-table",
                  f"{p.namespace}.rates", config=p.config_path, fmt="json")
    assert ran.code == 0, ran.out + ran.err
    assert ran.doc["mode"] == "join" and ran.doc["verify"]["consistent"] is True, ran.doc
    table = load_catalog("lake", **p.stack.iceberg_properties).load_table(f"{p.namespace}.rates")
    assert {f.name: str(f.field_type) for f in table.schema().fields}["ratio"] == "string"
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.rates VALUES (100, 2.5)")
    evs = poll_until(lambda: [e for e in p.events("rates") if e.get("after") and e["after"]["id"] == 100], 90,
                     "the streamed row of public.rates")
    assert evs[0]["after"]["ratio"] == "2.5"
