"""The lakehouse undo on a real pyiceberg SQL catalog (issue 14): it changes the schema only, never drops a
snapshot committed after the change, refuses to hide values unless allowed, and each action's `reversible` flag
says exactly whether its inverse gives the previous schema back once rows were written in the new shape."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from migrate_assets.errors import DataLossRefused, InvalidLakehouseUpdateError, TransientError
from migrate_assets.evolution.actions import CreateIcebergTable, IcebergUpdate, RunContext
from migrate_assets.evolution.layers import IcebergOp
from migrate_assets.resources import IcebergLakehouse, PostgresSource

ARROW = pa.schema([pa.field("id", pa.int32(), nullable=False), pa.field("name", pa.string()),
                   pa.field("score", pa.float32())])


@pytest.fixture
def lake(tmp_path: Path) -> IcebergLakehouse:
    (tmp_path / "wh").mkdir()
    return IcebergLakehouse("undo", {"type": "sql", "uri": f"sqlite:///{tmp_path}/catalog.db",
                                     "warehouse": f"file://{tmp_path}/wh"})


@pytest.fixture
def ident(lake: IcebergLakehouse) -> str:
    lake.catalog.create_namespace("ns")
    table = lake.catalog.create_table("ns.t", schema=ARROW)
    table.append(pa.table({"id": [1, 2], "name": ["a", "b"], "score": [0.5, 1.5]}, schema=ARROW))
    return "ns.t"


def _ctx(lake: IcebergLakehouse) -> RunContext:
    return RunContext(source=PostgresSource("postgresql://unused/db"), lakehouse=lake)  # the source is never asked


def _append(lake: IcebergLakehouse, ident: str, rows: dict[str, list[Any]]) -> None:
    """Rows in the table's current shape, as a sink writes them; columns not given are null."""
    table = lake.catalog.load_table(ident)
    schema = table.schema().as_arrow()
    n = len(next(iter(rows.values())))
    table.append(pa.table({f.name: rows.get(f.name, [None] * n) for f in schema}, schema=schema))


def _history(lake: IcebergLakehouse, ident: str) -> list[int]:
    return [e.snapshot_id for e in lake.catalog.load_table(ident).history()]


# the forward update, and rows a sink writes afterwards in the new shape
CASES: dict[str, tuple[tuple[IcebergOp, ...], dict[str, list[Any]]]] = {
    "add_column": ((IcebergOp("add_column", "note", "string"),), {"id": [3, 4, 5], "note": ["x", None, "z"]}),
    "rename": ((IcebergOp("rename", "name", new_name="full_name"),), {"id": [3, 4, 5], "full_name": ["c", "d", "e"]}),
    "add_and_rename": ((IcebergOp("add_column", "note", "string"), IcebergOp("rename", "name", new_name="nm")),
                       {"id": [3, 4, 5], "nm": ["c", "d", "e"]}),
    "promote": ((IcebergOp("promote", "id", "long"),), {"id": [2**40, 4, 5]}),
    "make_optional": ((IcebergOp("make_optional", "id"),), {"id": [3, 4, 5]}),
    "delete": ((IcebergOp("delete", "score"),), {"id": [3, 4, 5]}),
}


@pytest.mark.parametrize("case", CASES)
def test_reversible_flag_matches_what_the_undo_restores_after_rows_in_the_new_shape(
    lake: IcebergLakehouse, ident: str, case: str
) -> None:
    ops, rows = CASES[case]
    ctx = _ctx(lake)
    before = lake.state(ident)
    assert before is not None
    update = IcebergUpdate(ident, ops, before.schema_id)
    result = update.run(ctx)
    _append(lake, ident, rows)
    mid = lake.state(ident)
    assert mid is not None and mid.snapshot_id != before.snapshot_id
    history = _history(lake, ident)
    undo = update.inverse(result)
    assert undo is not None
    hidden = sum(v is not None for v in rows.get("note", []))
    if hidden:
        with pytest.raises(DataLossRefused) as refused:
            undo.run(ctx)
        assert f"lakehouse: column {ident}.note holds {hidden} non-null value(s)" in str(refused.value)
        assert lake.state(ident) == mid  # refused: nothing changed
        ctx.allow_data_loss = True
    else:
        assert undo.losses(ctx) == []
    undo.run(ctx)
    after = lake.state(ident)
    assert after is not None
    # never loses a row or a snapshot: main still at the newest snapshot, the history whole
    assert after.snapshot_id == mid.snapshot_id and _history(lake, ident) == history
    assert lake.count_values(ident) == 5
    restored = (after.schema_id, after.fields) == (before.schema_id, before.fields)
    assert restored is update.reversible, (case, after.fields)
    # what the undo kept is still readable, with the rows written in the new shape
    ids = sorted(r["id"] for r in lake.catalog.load_table(ident).scan().to_arrow().to_pylist())
    assert ids == sorted([1, 2, *rows["id"]])


@pytest.mark.parametrize("case", ["promote", "make_optional", "add_column"])
def test_with_no_snapshot_since_the_previous_schema_comes_back_exactly(
    lake: IcebergLakehouse, ident: str, case: str
) -> None:
    ops, _ = CASES[case]
    ctx = _ctx(lake)
    before = lake.state(ident)
    assert before is not None
    update = IcebergUpdate(ident, ops, before.schema_id)
    undo = update.inverse(update.run(ctx))
    assert undo is not None and undo.losses(ctx) == []
    out = undo.run(ctx)
    assert lake.state(ident) == before, out
    assert undo.run(ctx).how == "already"  # idempotent: a retried undo changes nothing


def test_an_added_column_with_no_values_is_deleted_without_the_flag(lake: IcebergLakehouse, ident: str) -> None:
    ctx = _ctx(lake)
    before = lake.state(ident)
    assert before is not None
    update = IcebergUpdate(ident, (IcebergOp("add_column", "note", "string"),), before.schema_id)
    undo = update.inverse(update.run(ctx))
    _append(lake, ident, {"id": [7, 8]})  # the sink wrote rows in the new shape, the new column null
    newest = lake.state(ident)
    assert undo is not None and newest is not None
    undo.run(ctx)
    after = lake.state(ident)
    assert after is not None and (after.schema_id, after.fields) == (before.schema_id, before.fields)
    assert after.snapshot_id == newest.snapshot_id and lake.count_values(ident) == 4


def test_dropping_a_created_table_that_holds_rows_is_refused(lake: IcebergLakehouse) -> None:
    ctx = _ctx(lake)
    create = CreateIcebergTable("made.t", (("id", "long"), ("name", "string")))
    assert create.reversible
    undo = create.inverse(create.run(ctx))
    assert undo is not None
    _append(lake, "made.t", {"id": [1, 2, 3]})
    with pytest.raises(DataLossRefused, match=r"lakehouse: table made.t holds 3 row\(s\)"):
        undo.run(ctx)
    assert lake.count_values("made.t") == 3
    ctx.allow_data_loss = True
    undo.run(ctx)
    assert lake.state("made.t") is None


def test_a_probed_result_naming_a_snapshot_written_in_the_new_shape_is_not_taken_for_before(
    lake: IcebergLakehouse, ident: str
) -> None:
    """After a crash the saga probes the step, and records the *current* snapshot as the one of before: if rows
    were written in the new shape meanwhile, the undo must still see them."""
    ctx = _ctx(lake)
    before = lake.state(ident)
    assert before is not None
    update = IcebergUpdate(ident, (IcebergOp("add_column", "note", "string"),), before.schema_id)
    update.run(ctx)
    _append(lake, ident, {"id": [3], "note": ["x"]})
    mid = lake.state(ident)
    assert mid is not None and mid.snapshot_schema_id == mid.schema_id != before.schema_id
    found = update.probe(ctx)
    assert found is not None and found.previous_snapshot_id == mid.snapshot_id
    undo = update.inverse(found)
    assert undo is not None
    with pytest.raises(DataLossRefused, match=r"note holds 1 non-null value\(s\)"):
        undo.run(ctx)
    with pytest.raises(InvalidLakehouseUpdateError, match=f"written with schema id {mid.schema_id}"):
        lake.restore_schema(ident, before.schema_id, mid.schema_id, mid.snapshot_id)
    assert lake.state(ident) == mid


def test_an_inverse_update_does_not_commit_over_rows_appended_after_its_probe(
    lake: IcebergLakehouse, ident: str
) -> None:
    """The undo probes the column, then commits the delete requiring main where the probe saw it: a sink's append
    in between fails the commit (TransientError: the saga retries, and the retry probes the new rows)."""
    st = lake.state(ident)
    assert st is not None
    added = lake.apply(ident, (IcebergOp("add_column", "note", "string"),), st.schema_id)
    _append(lake, ident, {"id": [3]})
    probed = lake.state(ident)
    assert probed is not None and lake.count_values(ident, "note") == 0
    _append(lake, ident, {"id": [4], "note": ["late"]})  # after the probe
    newest = lake.state(ident)
    with pytest.raises(TransientError, match="concurrent"):
        lake.apply(ident, (IcebergOp("delete", "note"),), added.schema_id, probed.snapshot_id)
    assert lake.state(ident) == newest and lake.count_values(ident, "note") == 1
