"""The cross-layer type map, both directions, and the pure planner's decisions (no services)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from migrate_assets.errors import (
    BreakingChangeBlocked,
    InvalidInputError,
    IrreversibleChangeError,
    UnsupportedTypeError,
)
from migrate_assets.evolution.derive import (
    avro_row_fields,
    derive_avro,
    derive_enum_labels,
    derive_iceberg,
    iceberg_promotion_allowed,
    literal_default,
)
from migrate_assets.evolution.layers import IcebergField, IcebergState, RegistryVersion, SourceColumn
from migrate_assets.evolution.planner import (
    PipelineTarget,
    Policy,
    Snapshot,
    connector_decision,
    plan_evolution,
)
from migrate_assets.evolution.typemap import (
    TypeMapOptions,
    UserType,
    avro_signature,
    expected_avro_signature,
    map_type,
    normalise_iceberg,
)
from migrate_assets.evolution.typetable import render
from migrate_assets.expand.changefile import parse_change_text

SPEC_TABLE = [  # SPEC §6, row by row
    ("integer", "int", "int"), ("bigint", "long", "long"), ("text", "string", "string"),
    ("character varying(20)", "string", "string"), ("numeric(10,2)", "bytes", "decimal(10, 2)"),
    ("timestamptz", "string", "timestamptz"), ("timestamp", "long", "timestamp"), ("date", "int", "date"),
    ("boolean", "boolean", "boolean"), ("uuid", "string", "uuid"), ("jsonb", "string", "string"),
    ("real", "float", "float"), ("double precision", "double", "double"), ("smallint", "int", "int"),
]


@pytest.mark.parametrize(("pg", "avro", "iceberg"), SPEC_TABLE)
def test_spec_rows(pg: str, avro: str, iceberg: str) -> None:
    lt = map_type(pg)
    assert lt.avro == avro and lt.iceberg == iceberg


@pytest.mark.parametrize(("pg", "why"), [
    ("public.mood", "include.unknown.datatypes=true"),  # not an enum the catalog named: a composite, say
    ("integer[][]", "multi-dimensional"), ("money[]", "arrays of money"), ("bit(3)[]", "arrays of bit"),
    ("tsquery", "include.unknown.datatypes=true"), ("numeric(5,-2)", "decimal.handling.mode=string"),
    ("regclass", "not in Debezium's PostgreSQL type table"),
])
def test_what_debezium_cannot_carry_is_refused_with_the_reason_and_the_setting(pg: str, why: str) -> None:
    with pytest.raises(UnsupportedTypeError) as e:
        map_type(pg)
    assert "no mapping" in str(e.value) and pg.split("(")[0] in str(e.value) and why in str(e.value)


def test_modes_change_the_mapping() -> None:
    assert map_type("numeric(5,1)", TypeMapOptions(decimal_handling_mode="double")).iceberg == "double"
    assert map_type("numeric", TypeMapOptions(decimal_handling_mode="string")).avro == "string"
    assert map_type("numeric").iceberg == "struct<scale: int, value: binary>"
    assert map_type("timestamp(3)").semantic == "io.debezium.time.Timestamp"
    assert map_type("timestamp", TypeMapOptions(time_precision_mode="connect")).avro_logical == {
        "connect.version": 1, "connect.name": "org.apache.kafka.connect.data.Timestamp",
        "logicalType": "timestamp-millis"}
    assert map_type("bytea", TypeMapOptions(binary_handling_mode="hex")).avro_schema() == "string"
    assert map_type("interval", TypeMapOptions(interval_handling_mode="string")).semantic == "io.debezium.time.Interval"
    assert map_type("public.hstore", TypeMapOptions(hstore_handling_mode="map")).iceberg == "map<string, string>"
    assert map_type("tsquery", TypeMapOptions(include_unknown_datatypes="true")).iceberg == "binary"
    assert map_type("money", TypeMapOptions(money_fraction_digits=3)).iceberg == "decimal(19, 3)"


def test_user_types_enums_carry_their_labels_and_domains_map_as_their_base() -> None:
    opts = TypeMapOptions(user_types=(UserType("public.mood", "enum", ("sad", "ok")),
                                      UserType("public.posint", "domain", base="integer")))
    enum = map_type("public.mood", opts)
    assert enum.avro_schema() == {"type": "string", "connect.version": 1, "connect.parameters": {"allowed": "sad,ok"},
                                  "connect.name": "io.debezium.data.Enum"}
    assert map_type("public.mood[]", opts).avro_schema()["items"] == enum.avro_schema()  # items not optional
    assert map_type("public.posint", opts).iceberg == "int" and map_type("public.posint", opts).pg == "public.posint"
    grown = TypeMapOptions(user_types=(UserType("public.mood", "enum", ("sad", "ok", "happy")),))
    assert expected_avro_signature(map_type("public.mood", grown)) != expected_avro_signature(enum)


def test_arrays_and_structs() -> None:
    assert map_type("text[]").avro_schema() == {"type": "array", "items": ["null", "string"]}
    assert map_type("numeric(10,2)[]").iceberg == "list<decimal(10, 2)>"
    assert map_type("point").iceberg == "struct<x: double, y: double, wkb: binary, srid: int>"
    assert map_type("public.citext").iceberg == "string" and map_type("ext.ltree[]").iceberg == "list<string>"


PG_TYPES = st.sampled_from(["smallint", "integer", "bigint", "real", "double precision", "boolean", "text", "date",
                            "timestamptz", "uuid", "jsonb", "bytea", "numeric", "point", "text[]", "bit(3)",
                            "public.hstore", "interval", "time(3)", "numeric[]", "money"]) | st.builds(
    lambda p, s: f"numeric({p},{min(s, p)})", st.integers(1, 38), st.integers(0, 10)) | st.builds(
    lambda n: f"varchar({n})", st.integers(1, 10_000))


@given(PG_TYPES, st.booleans())
def test_reverse_direction_recognises_what_the_forward_direction_writes(pg: str, nullable: bool) -> None:
    lt = map_type(pg)
    written = ["null", lt.avro_schema()] if nullable else lt.avro_schema()
    assert avro_signature(written) == expected_avro_signature(lt)
    assert normalise_iceberg(lt.iceberg.replace(", ", ",")) == normalise_iceberg(lt.iceberg)


ENVELOPE = json.dumps({"type": "record", "name": "Envelope", "namespace": "app.public.t", "fields": [
    {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": [
        {"name": "id", "type": "int"}, {"name": "amount", "type": ["null", "int"], "default": None},
        {"name": "email", "type": ["null", "string"], "default": None}]}], "default": None},
    {"name": "after", "type": ["null", "Value"], "default": None}, {"name": "op", "type": "string"}]})
COLUMNS = (SourceColumn("id", "integer", False), SourceColumn("amount", "integer", True),
           SourceColumn("email", "text", True))
ICEBERG = IcebergState("lake.t", 0, None, (IcebergField(1, "id", "int", False), IcebergField(2, "amount", "int", False),
                                           IcebergField(3, "email", "string", False)))


def _change(ops: str) -> object:
    return parse_change_text(f"table: public.t\noperations:\n{ops}", "c.yaml")


def _snap(cfg: dict[str, str] | None = None) -> Snapshot:
    return Snapshot(PipelineTarget("public.t", "c", "app.public.t-value", "lake.t"), COLUMNS, "fp",
                    RegistryVersion("app.public.t-value", 1, 1, ENVELOPE), "BACKWARD", ICEBERG,
                    tuple(sorted((cfg or {"slot.name": "s", "table.include.list": "public.t"}).items())), "RUNNING")


def test_derived_avro_for_each_operation() -> None:
    ops = _change("  - add_column: {name: note, type: text, nullable: true}\n"
                  "  - change_type: {column: amount, to_type: bigint}\n"
                  "  - rename_column: {from: email, to: mail}\n").operations  # type: ignore[attr-defined]
    fields = avro_row_fields(derive_avro(ENVELOPE, ops, {}))
    assert fields["note"] == ["null", "string"] and fields["amount"] == ["null", "long"] and "mail" in fields
    new = json.loads(derive_avro(ENVELOPE, ops, {}))
    mail = next(f for f in new["fields"][0]["type"][1]["fields"] if f["name"] == "mail")
    assert mail["aliases"] == ["email"]


def test_iceberg_rules_incl_our_decimal_rule() -> None:
    assert iceberg_promotion_allowed("decimal(10, 2)", "decimal(14, 2)")[0]
    assert not iceberg_promotion_allowed("decimal(12, 2)", "decimal(12, 3)")[0]  # pyiceberg accepts this
    assert not iceberg_promotion_allowed("decimal(12, 2)", "decimal(10, 2)")[0]
    assert not iceberg_promotion_allowed("long", "int")[0]
    ops = _change("  - rename_column: {from: email, to: mail}\n").operations  # type: ignore[attr-defined]
    assert derive_iceberg(ICEBERG, ops)[0].kind == "rename"


def test_literal_defaults() -> None:
    assert literal_default("'it''s'") == (True, "it's")
    assert literal_default("42") == (True, 42)
    assert literal_default("now()") == (False, None)


def test_plan_orders_layers_and_every_step_has_an_inverse() -> None:
    plan = plan_evolution(_change("  - add_column: {name: note, type: text, nullable: true}\n"),  # type: ignore[arg-type]
                          _snap(), Policy())
    assert [s.layer for s in plan.steps] == ["schema_registry", "lakehouse", "source_db", "connector", "verify"]
    ddl = next(s for s in plan.steps if s.layer == "source_db").action
    inv = ddl.inverse({})
    assert inv is not None and 'DROP COLUMN "note"' in inv.describe()
    assert all(s.precondition for s in plan.steps if s.layer != "verify")


def test_policy_gates() -> None:
    drop = _change("  - drop_column: {column: email}\n")
    with pytest.raises(BreakingChangeBlocked, match="deletes data"):
        plan_evolution(drop, _snap(), Policy())  # type: ignore[arg-type]
    with pytest.raises(IrreversibleChangeError):
        plan_evolution(drop, _snap(), Policy(on_breaking_change="warn"))  # type: ignore[arg-type]
    plan = plan_evolution(drop, _snap(), Policy(on_breaking_change="warn", allow_irreversible=True))  # type: ignore[arg-type]
    assert not next(s for s in plan.steps if s.layer == "source_db").reversible
    with pytest.raises(InvalidInputError, match="needs a"):
        plan_evolution(_change("  - add_column: {name: x, type: int}\n"), _snap(), Policy())  # type: ignore[arg-type]


def test_connector_restarts_only_when_filters_change() -> None:
    cfg = {"slot.name": "s", "table.include.list": "public.t"}
    assert connector_decision(cfg, "public.t", ())[0] is None
    new, why = connector_decision(cfg, "public.orders", ())
    assert new is not None and "public\\.orders" in new["table.include.list"] and "publication" in why
    cfg2 = {**cfg, "column.include.list": "public.t.id"}
    ops = _change("  - add_column: {name: note, type: text, nullable: true}\n").operations  # type: ignore[attr-defined]
    new2, _ = connector_decision(cfg2, "public.t", ops)
    assert new2 is not None and "public\\.t\\.note" in new2["column.include.list"]


def test_the_type_table_in_the_docs_is_generated_from_the_map() -> None:
    doc = Path(__file__).resolve().parents[2] / "docs" / "evolution.md"
    text = doc.read_text()
    assert render(text) == text, "run: python -m migrate_assets.evolution.typetable docs/evolution.md"
    assert "| `numeric` | defaults | STRUCT (io.debezium.data.VariableScaleDecimal) |" in text
    assert render(text.replace("`list<string>`", "`list<int>`")) == text  # drift is overwritten, not kept


def test_an_enum_label_addition_derives_the_next_subject_version() -> None:
    old = TypeMapOptions(user_types=(UserType("public.mood", "enum", ("sad", "ok")),))
    new = TypeMapOptions(user_types=(UserType("public.mood", "enum", ("sad", "ok", "happy")),))
    cols = {"id": "integer", "m": "public.mood", "ms": "public.mood[]", "note": "text"}
    env = json.loads(ENVELOPE)
    env["fields"][0]["type"][1]["fields"] = [
        {"name": n, "type": ["null", map_type(t, old).avro_schema()], "default": None} for n, t in cols.items()]
    got = derive_enum_labels(json.dumps(env), cols, "public.mood", ("sad", "ok", "happy"))
    assert got is not None
    fields = avro_row_fields(got)
    assert all(fields[n] == ["null", map_type(cols[n], new).avro_schema()] for n in cols)  # what Debezium will say
    assert derive_enum_labels(json.dumps(env), {"id": "integer"}, "public.mood", ("sad",)) is None
