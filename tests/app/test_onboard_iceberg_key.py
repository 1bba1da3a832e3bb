"""Iceberg tables made for a pipeline carry the source table's primary key as identifier fields (issue 18,
item 2): `IcebergLakehouse.create_table` on a real pyiceberg SQL catalog (SQLite file), read back with pyiceberg;
the new-table plan passes the spec's key."""

from __future__ import annotations

from pathlib import Path

import pytest
from pyiceberg.catalog import load_catalog

from migrate_assets.errors import InvalidLakehouseUpdateError
from migrate_assets.evolution.actions import CreateIcebergTable, action_from_dict
from migrate_assets.evolution.planner import PipelineTarget, Policy, Snapshot, plan_new_table
from migrate_assets.resources.iceberg import IcebergLakehouse
from migrate_assets.schema.model import Column, Constraint, Table
from migrate_assets.schema.types import parse_type


@pytest.fixture
def lake(tmp_path: Path) -> IcebergLakehouse:
    return IcebergLakehouse("lake", {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db",
                                     "warehouse": f"file://{tmp_path}/warehouse"})


def test_primary_key_becomes_the_identifier_fields(lake: IcebergLakehouse) -> None:
    cols = (("region", "string"), ("id", "long"), ("note", "string"))
    st = lake.create_table("shop.orders", cols, ("id", "region"))
    assert [(f.name, f.required) for f in st.fields] == [("region", True), ("id", True), ("note", False)]
    schema = load_catalog("lake", **lake.properties).load_table("shop.orders").schema()
    assert [schema.find_field(i).name for i in schema.identifier_field_ids] == ["id", "region"]
    plain = lake.create_table("shop.plain", cols)
    assert not any(f.required for f in plain.fields)
    assert load_catalog("lake", **lake.properties).load_table("shop.plain").schema().identifier_field_ids == []


def test_a_key_iceberg_cannot_identify_by_is_refused_before_anything_is_created(lake: IcebergLakehouse) -> None:
    with pytest.raises(InvalidLakehouseUpdateError, match="identifier field nope is not a column"):
        lake.create_table("shop.t", (("id", "long"),), ("nope",))
    with pytest.raises(InvalidLakehouseUpdateError):
        lake.create_table("shop.t", (("x", "double"),), ("x",))  # Iceberg: no float/double identifier fields
    assert lake.state("shop.t") is None


def test_a_table_created_from_its_spec_gets_its_key() -> None:
    spec = Table("public", "items", (Column("sku", parse_type("text"), False), Column("n", parse_type("integer"))),
                 Constraint(None, ("sku",)))
    snap = Snapshot(PipelineTarget("public.items", iceberg_table="lake.items"), None, "absent")
    plan = plan_new_table(spec, snap, Policy())
    create = next(s.action for s in plan.steps if isinstance(s.action, CreateIcebergTable))
    assert create.identifier_fields == ("sku",)
    assert action_from_dict(create.to_dict()) == create  # the stored plan keeps the key
    older = {k: v for k, v in create.to_dict().items() if k != "identifier_fields"}
    assert action_from_dict(older) == CreateIcebergTable("lake.items", create.columns)  # a run stored before
