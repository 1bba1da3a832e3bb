"""verify while a pipeline table is expanded, on the real stack (issue 16 follow-up): expand–contract's helper
columns (`_ma_*`) exist in the source table but the connector's column.exclude.list keeps them out of the topic,
so verify does not expect them in the registry or Iceberg — it is consistent (exit 0) in the expanded phase, names
the helpers as unpublished, and is consistent again once contracted."""

from __future__ import annotations

import pytest

from tests.pipeline import Pipeline, change_file
from tests.support import column_names, run_cli


def test_verify_is_consistent_while_expanded_and_after_contract(pipeline: Pipeline,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    cfg = pipeline.config_path
    cf = change_file(pipeline.tmp, "table: public.customers\noperations:\n"
                     "  - change_type: {column: amount, to_type: bigint}\n")
    expanded = run_cli(capsys, "expand", str(cf), config=cfg, fmt="json")
    assert expanded.code == 0, expanded
    assert expanded.doc["cdc"]["connector"]["status"] == "excluded", expanded.doc["cdc"]
    helpers = [c for c in column_names(pipeline.dsn, "public.customers") if c.startswith("_ma_")]
    assert helpers, "expand added no helper column"
    ver = run_cli(capsys, "verify", config=cfg, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver
    [table] = ver.doc["tables"]
    assert table["unpublished"] == helpers
    assert all(v["status"] == "consistent" for v in table["layers"].values()), table
    ran = run_cli(capsys, "contract", str(cf), config=cfg, fmt="json")
    assert ran.code == 0 and ran.doc["status"] == "contracted", ran
    assert not [c for c in column_names(pipeline.dsn, "public.customers") if c.startswith("_ma_")]
    ver = run_cli(capsys, "verify", config=cfg, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver
    assert "unpublished" not in ver.doc["tables"][0]
