"""`IcebergLakehouse` against the stack's real pyiceberg SQL catalog and file warehouse."""

from __future__ import annotations

import uuid
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from pyiceberg.catalog import load_catalog
from pyiceberg.types import StringType

from migrate_assets.errors import (
    InvalidLakehouseUpdateError,
    LakehouseTableNotFoundError,
    LayerUnreachableError,
    TransientError,
)
from migrate_assets.evolution.layers import IcebergField, IcebergOp
from migrate_assets.local.stack import StackInfo
from migrate_assets.resources import IcebergLakehouse

pytestmark = pytest.mark.stack

ARROW = pa.schema(
    [
        pa.field("id", pa.int32(), nullable=False),
        pa.field("name", pa.string()),
        pa.field("amount", pa.decimal128(12, 2)),
        pa.field("score", pa.float32()),
    ]
)
ROWS: dict[str, list[object]] = {
    "id": [1, 2],
    "name": ["ada", "grace"],
    "amount": [Decimal("1.50"), Decimal("2.25")],
    "score": [0.5, 1.5],
}


@pytest.fixture
def lake(stack_info: StackInfo) -> IcebergLakehouse:
    return IcebergLakehouse("lake", stack_info.iceberg_properties)


@pytest.fixture
def table_id(lake: IcebergLakehouse) -> str:
    ns = "res_" + uuid.uuid4().hex[:8]
    lake.catalog.create_namespace(ns)
    table = lake.catalog.create_table(f"{ns}.orders", schema=ARROW)
    table.append(pa.table(ROWS, schema=ARROW))
    return f"{ns}.orders"


def test_state(lake: IcebergLakehouse, table_id: str) -> None:
    st = lake.state(table_id)
    assert st is not None and st.identifier == table_id and st.schema_id == 0 and st.snapshot_id is not None
    assert st.fields == (
        IcebergField(1, "id", "int", True),
        IcebergField(2, "name", "string", False),
        IcebergField(3, "amount", "decimal(12, 2)", False),
        IcebergField(4, "score", "float", False),
    )
    assert lake.state(table_id + "_absent") is None
    with pytest.raises(LakehouseTableNotFoundError):
        lake.validate(table_id + "_absent", (IcebergOp("delete", "x"),))


def test_validate_does_not_commit(lake: IcebergLakehouse, table_id: str) -> None:
    before = lake.state(table_id)
    assert before is not None
    planned = lake.validate(
        table_id, (IcebergOp("add_column", "note", "string"), IcebergOp("promote", "id", "long"))
    )
    assert planned.schema_id == before.schema_id + 1
    assert planned.field("note") == IcebergField(5, "note", "string", False)
    assert planned.field("id") == IcebergField(1, "id", "long", True)
    assert lake.state(table_id) == before  # nothing committed


def test_apply_add_promote_rename_delete(lake: IcebergLakehouse, table_id: str) -> None:
    s0 = lake.state(table_id)
    assert s0 is not None
    s1 = lake.apply(
        table_id,
        (
            IcebergOp("add_column", "note", "string"),
            IcebergOp("promote", "id", "long"),
            IcebergOp("promote", "amount", "decimal(14, 2)"),
            IcebergOp("promote", "score", "double"),
            IcebergOp("rename", "name", new_name="full_name"),
            IcebergOp("make_optional", "id"),
        ),
        expected_schema_id=s0.schema_id,
    )
    assert s1.schema_id == s0.schema_id + 1 and s1.snapshot_id == s0.snapshot_id
    assert s1.fields == (
        IcebergField(1, "id", "long", False),
        IcebergField(2, "full_name", "string", False),  # the rename kept field id 2
        IcebergField(3, "amount", "decimal(14, 2)", False),
        IcebergField(4, "score", "double", False),
        IcebergField(5, "note", "string", False),
    )
    assert lake.state(table_id) == s1
    s2 = lake.apply(table_id, (IcebergOp("delete", "note"),), expected_schema_id=s1.schema_id)
    assert s2.field("note") is None and [f.field_id for f in s2.fields] == [1, 2, 3, 4]
    rows = lake.catalog.load_table(table_id).scan().to_arrow().sort_by("id").to_pylist()
    assert [(r["id"], r["full_name"], r["amount"]) for r in rows] == [
        (1, "ada", Decimal("1.50")),
        (2, "grace", Decimal("2.25")),
    ]


@pytest.mark.parametrize(
    ("op", "why"),
    [
        (
            IcebergOp("promote", "amount", "decimal(12, 3)"),
            "scale cannot change",
        ),  # pyiceberg would accept it
        (IcebergOp("promote", "amount", "decimal(10, 2)"), "precision cannot shrink"),
        (IcebergOp("promote", "score", "int"), "Iceberg cannot change"),
        (IcebergOp("promote", "name", "long"), "Iceberg cannot change"),
        (IcebergOp("add_column", "name", "string"), "already exists"),
        (IcebergOp("add_column", "x", "varchar"), "unsupported Iceberg type"),
        (IcebergOp("delete", "nope"), "nope"),
        (IcebergOp("make_required", "name"), "unknown operation kind"),
    ],
)
def test_invalid_updates_are_refused_before_any_commit(
    lake: IcebergLakehouse, table_id: str, op: IcebergOp, why: str
) -> None:
    before = lake.state(table_id)
    assert before is not None
    with pytest.raises(InvalidLakehouseUpdateError) as err:
        lake.validate(table_id, (op,))
    assert why in str(err.value)
    with pytest.raises(InvalidLakehouseUpdateError):
        lake.apply(table_id, (op,), expected_schema_id=before.schema_id)
    assert lake.state(table_id) == before


def test_competing_commit_is_transient(lake: IcebergLakehouse, table_id: str, stack_info: StackInfo) -> None:
    seen = lake.state(table_id)
    assert seen is not None
    other = load_catalog("lake", **stack_info.iceberg_properties).load_table(table_id)  # another client
    with other.update_schema() as upd:
        upd.add_column("theirs", StringType())
    with pytest.raises(TransientError) as err:
        lake.apply(table_id, (IcebergOp("add_column", "ours", "string"),), expected_schema_id=seen.schema_id)
    assert "concurrent" in str(err.value)
    now = lake.state(table_id)
    assert now is not None and now.field("theirs") is not None and now.field("ours") is None


def _append(lake: IcebergLakehouse, ident: str, ids: list[int], **extra: list[object]) -> None:
    """Rows in the table's current shape, as a sink would write them (values of the first row elsewhere)."""
    table = lake.catalog.load_table(ident)
    n = len(ids)
    cols = {**{k: v[:1] * n for k, v in ROWS.items()}, "id": ids, **extra}
    table.append(pa.table(cols, schema=table.schema().as_arrow()))


def test_restore_schema_makes_an_earlier_schema_current_and_keeps_every_snapshot(
    lake: IcebergLakehouse, table_id: str
) -> None:
    s0 = lake.state(table_id)
    assert s0 is not None
    s1 = lake.apply(table_id, (IcebergOp("promote", "id", "long"),), expected_schema_id=s0.schema_id)
    history = [e.snapshot_id for e in lake.catalog.load_table(table_id).history()]
    restored = lake.restore_schema(table_id, s0.schema_id, s1.schema_id, s0.snapshot_id)
    assert (restored.schema_id, restored.snapshot_id, restored.fields) == (s0.schema_id, s0.snapshot_id, s0.fields)
    assert [e.snapshot_id for e in lake.catalog.load_table(table_id).history()] == history


def test_restore_schema_is_refused_once_a_snapshot_was_committed_since(
    lake: IcebergLakehouse, table_id: str
) -> None:
    s0 = lake.state(table_id)
    assert s0 is not None
    s1 = lake.apply(table_id, (IcebergOp("promote", "id", "long"),), expected_schema_id=s0.schema_id)
    with pytest.raises(TransientError, match="concurrent"):  # main is not where the caller read it
        lake.restore_schema(table_id, s0.schema_id, s1.schema_id, None)
    assert lake.state(table_id) == s1
    _append(lake, table_id, [2**40])  # a value the old `int` schema could not read
    s2 = lake.state(table_id)
    assert s2 is not None and s2.snapshot_id != s0.snapshot_id
    with pytest.raises(InvalidLakehouseUpdateError, match=f"written with schema id {s1.schema_id}"):
        lake.restore_schema(table_id, s0.schema_id, s1.schema_id, s2.snapshot_id)
    assert lake.state(table_id) == s2  # nothing moved: schema, snapshot, rows
    assert lake.count_values(table_id) == 3
    with pytest.raises(InvalidLakehouseUpdateError, match="schema id 42"):
        lake.restore_schema(table_id, 42, s2.schema_id, s2.snapshot_id)


def test_count_values(lake: IcebergLakehouse, table_id: str) -> None:
    s0 = lake.state(table_id)
    assert s0 is not None
    lake.apply(table_id, (IcebergOp("add_column", "note", "string"),), expected_schema_id=s0.schema_id)
    assert (lake.count_values(table_id), lake.count_values(table_id, "note")) == (2, 0)
    _append(lake, table_id, [3, 4, 5], note=["a", None, "c"])
    assert (lake.count_values(table_id), lake.count_values(table_id, "note")) == (5, 2)
    assert lake.count_values(table_id, "name") == 5
    assert lake.count_values(table_id, "absent") == 0 and lake.count_values(table_id + "_absent") == 0


def test_unreachable_catalog_is_a_layer_error(tmp_path: Path) -> None:
    missing = tmp_path / "no" / "such" / "dir"
    lake = IcebergLakehouse(
        "gone", {"type": "sql", "uri": f"sqlite:///{missing}/c.db", "warehouse": f"file://{missing}"}
    )
    with pytest.raises(LayerUnreachableError) as err:
        lake.state("ns.t")
    assert err.value.layer == "lakehouse"
