"""verify expects downstream only what the connector publishes (issue 16 follow-up): a source column the live
connector's column.include.list / column.exclude.list leaves out — an expand's `_ma_*` helper, or any column kept
out on purpose — is not drift in the registry, Iceberg or the connector, and is named as unpublished; a column the
connector does publish and a downstream layer lacks is still drift. In-memory layers; the same on the real stack
with an expanded pipeline table is tests/app/test_verify_expanded.py."""

from __future__ import annotations

from migrate_assets.app.verify import verify_pipeline
from migrate_assets.evolution.layers import Layer, SourceColumn
from tests.app.stack import CONFIG, TARGETS, stack

T = TARGETS["public.t"]


def test_a_column_the_include_list_leaves_out_is_not_expected_downstream() -> None:
    s = stack()
    s.source.add_slot("s")
    s.source.tables["public.t"].append(SourceColumn("_ma_new_amount", "bigint", True))
    res = verify_pipeline([T], s.context(), progress_bound=0.5)
    assert res.verdict == "consistent", res.to_dict()
    [table] = res.to_dict()["tables"]
    assert table["unpublished"] == ["_ma_new_amount"]
    assert any("_ma_new_amount is not published" in n for n in table["layers"][Layer.CONNECTOR]["notes"])


def test_an_excluded_column_of_any_name_is_not_published() -> None:
    s = stack()
    s.source.add_slot("s")
    cfg = {k: v for k, v in CONFIG.items() if k != "column.include.list"}
    s.connector.put_config("c", {**cfg, "column.exclude.list": r"public\.t\.secret"})
    s.source.tables["public.t"].append(SourceColumn("secret", "text", True))
    res = verify_pipeline([T], s.context(), progress_bound=0.5)
    assert res.verdict == "consistent", res.to_dict()
    assert res.tables[0].unpublished == ("secret",)


def test_a_published_column_missing_downstream_is_still_drift() -> None:
    s = stack()
    s.source.add_slot("s")
    cfg = {k: v for k, v in CONFIG.items() if k != "column.include.list"}
    s.connector.put_config("c", {**cfg, "column.exclude.list": r"public\.t\._ma_.*"})
    s.source.tables["public.t"].append(SourceColumn("note", "text", True))
    res = verify_pipeline([T], s.context(), progress_bound=0.5)
    err = res.error()
    assert res.verdict == "drift" and err is not None and err.exit_code == 4
    assert "column note missing from app.public.t-value" in str(err) and "lake.t" in str(err)
    assert res.tables[0].unpublished == ()
