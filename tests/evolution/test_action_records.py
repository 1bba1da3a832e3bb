"""Actions are stored in the run record as JSON and read back by another process (resume, rollback)."""

from __future__ import annotations

import json

import pytest

from migrate_assets.evolution import actions as a
from migrate_assets.evolution.layers import IcebergOp

ACTIONS = [
    a.IcebergUpdate(identifier="db.t", expected_schema_id=3, ops=(IcebergOp("add_column", "x", "long"),
                                                               IcebergOp("rename", "y", None, "z"))),
    a.CreateIcebergTable(identifier="db.t", columns=(("id", "long"), ("x", "string"))),
    a.IcebergRevert(identifier="db.t", ops=(IcebergOp("add_column", "x", "long"),), schema_id=3,
                    previous_schema_id=2, previous_snapshot_id=None),
    a.ConnectorSync(name="c", slot="s", new_config=(("a", "1"), ("b", "2")), old_config=(("a", "0"),), reason="r",
                    snapshot=("public.t",), signal_table="public.sig"),
    a.ConnectorSync(name="c", slot="s", new_config=None, old_config=None, reason="no restart"),
]  # fmt: skip


@pytest.mark.parametrize("action", ACTIONS, ids=lambda x: type(x).__name__)
def test_an_action_survives_its_json_record(action: a.Action) -> None:
    stored = json.loads(json.dumps(action.to_dict()))
    assert stored == action.to_dict()  # already JSON-shaped: what is saved is what was planned
    restored = a.action_from_dict(stored)
    assert type(restored) is type(action) and restored.to_dict() == action.to_dict()
    assert restored.describe() == action.describe()
