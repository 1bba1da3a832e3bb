"""CDC-aware expand–contract of a pipeline table on the real stack, with a writer running (issue 16 item 5):
expand makes the connector skip the helper columns first (registry and Iceberg never see them), the backfill
emits exactly one event per row with the published columns unchanged, and contract runs as one evolution saga
(registry → lakehouse → contract DDL → connector → verify); the spec is written back, `plan --check` is 0 and
no event is lost. The measured numbers go to docs/configuration.md and the issue's closing note."""

from __future__ import annotations

import time

import psycopg
import pytest
from confluent_kafka.schema_registry import SchemaRegistryClient

from tests.app.test_schema_apply_stack import LAYERS, SPEC, _with_spec
from tests.cdc import poll_until
from tests.pipeline import Pipeline, change_file
from tests.support import run_cli, table_columns

ROWS = 2000


def test_type_change_by_expand_contract_through_every_layer(pipeline: Pipeline,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    spec = _with_spec(pipeline)
    cfg = pipeline.config_path
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, amount) "
                     "SELECT g, 'r' || g, g FROM generate_series(100000, %s) g", (100000 + ROWS - 6,))
        ids = {r[0] for r in conn.execute("SELECT id FROM public.customers").fetchall()}
    total = len(ids)
    poll_until(lambda: ids <= pipeline.event_ids(), 60, "the inserts' events")
    reg = SchemaRegistryClient({"url": pipeline.registry_url})
    versions_before = reg.get_versions(pipeline.subject)
    cf = change_file(pipeline.tmp, "table: public.customers\noperations:\n"
                     "  - change_type: {column: amount, to_type: bigint}\n")
    with pipeline.writer(rate=50) as w:  # the topic is read once it stops: a busy topic never goes idle
        t0 = time.monotonic()
        expanded = run_cli(capsys, "expand", str(cf), config=cfg, fmt="json")
        expand_s = time.monotonic() - t0
        assert expanded.code == 0, expanded
        helper_versions = reg.get_versions(pipeline.subject)
        t0 = time.monotonic()
        ran = run_cli(capsys, "contract", str(cf), config=cfg, fmt="json")
        contract_s = time.monotonic() - t0
        assert ran.code == 0, ran
    assert expanded.doc["cdc"]["connector"]["status"] == "excluded", expanded.doc["cdc"]
    assert expanded.doc["cdc"]["new_columns_emitted"] == []
    assert helper_versions == versions_before  # expand registered nothing: no helper in the registry
    updates = [e for e in pipeline.events() if e.get("op") == "u"]
    per_row: dict[int, int] = {}
    for e in updates:
        per_row[e["after"]["id"]] = per_row.get(e["after"]["id"], 0) + 1
    backfilled = {i for i in ids if i >= 100000}  # amount NULL rows need no backfill
    assert backfilled <= set(per_row) and max(per_row.values()) == 1  # one event per row, never more
    assert not any("_ma_new_amount" in e["after"] for e in updates)  # the helper never reached the topic
    assert all(e["after"]["amount"] == e["after"]["id"] for e in updates if e["after"]["id"] >= 100000)
    doc = ran.doc
    assert doc["status"] == "contracted"
    assert [s["layer"] for s in doc["pipeline"]["steps"]] == LAYERS
    assert all(s["status"] == "done" for s in doc["pipeline"]["steps"]), doc["pipeline"]
    assert doc["spec"]["status"] == "written"
    assert spec.read_text() == SPEC.replace("{name: amount, type: integer, nullable: true}",
                                            "{name: amount, type: bigint, nullable: true}")
    assert {c.name: c.type for c in table_columns(pipeline.dsn, "public.customers")}["amount"] == "bigint"
    assert len(reg.get_versions(pipeline.subject)) == len(versions_before) + 1  # registered by the saga
    assert {f.name: str(f.field_type) for f in pipeline.iceberg().schema().fields}["amount"] == "long"
    ver = run_cli(capsys, "verify", config=cfg, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver
    assert run_cli(capsys, "plan", "--check", config=cfg).code == 0
    pipeline.assert_no_event_lost(w.ids)
    with capsys.disabled():
        print(f"\nexpand of {total} rows {expand_s:.2f}s: {len(updates)} update events "
              f"({len(updates) / total:.2f} per row, helper never published); contract through the saga "
              f"{contract_s:.2f}s; {len(w.ids)} rows written meanwhile, none lost")
