"""Success paths and refusals of `evolve` on the local stack, each checked in every layer."""

from __future__ import annotations

import json

import psycopg
import pytest

from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import run_cli

pytestmark = pytest.mark.pipeline(columns="id integer PRIMARY KEY, name text NOT NULL, amount integer, "
                                          "price numeric(10,2), email text")


def evolve(p: Pipeline, capsys: pytest.CaptureFixture[str], text: str, *flags: str) -> tuple[int, dict]:
    r = run_cli(capsys, "evolve", str(change_file(p.tmp, text)), *flags, config=p.config_path, fmt="json")
    return r.code, r.doc


def iceberg_fields(p: Pipeline) -> dict[str, tuple[int, str]]:
    return {f.name: (f.field_id, str(f.field_type)) for f in p.iceberg().schema().fields}


def verify_ok(p: Pipeline, capsys: pytest.CaptureFixture[str]) -> dict:
    r = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert r.code == 0, r.doc
    return r.doc


def newest_after(p: Pipeline, row_id: int) -> dict:
    return p.row_events(row_id)[-1]["after"]


def test_add_column_with_default_and_widen_numeric(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    with pipeline.writer(rate=100) as w:
        code, res = evolve(pipeline, capsys, """
table: public.customers
operations:
  - add_column: {name: tier, type: text, default: "'bronze'"}
  - change_type: {column: price, to_type: "numeric(14,2)"}
""")
        assert code == 0, res
    assert iceberg_fields(pipeline)["price"][1] == "decimal(14, 2)"
    assert iceberg_fields(pipeline)["tier"][1] == "string"
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, price) VALUES (90001, 'x', 123456789012.34)")
        assert conn.execute("SELECT tier FROM public.customers WHERE id = 1").fetchone() == ("bronze",)
    after = newest_after(pipeline, 90001)
    assert after["tier"] == "bronze"
    pipeline.assert_no_event_lost(w.ids)
    verify_ok(pipeline, capsys)


def test_rename_keeps_the_iceberg_field_id(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    before = iceberg_fields(pipeline)
    change = "table: public.customers\noperations:\n  - rename_column: {from: email, to: email_address}\n"
    code, res = evolve(pipeline, capsys, change)
    assert code == 3 and "breaks readers" in json.dumps(res)  # block is the default policy
    assert iceberg_fields(pipeline) == before
    pipeline.write_config(on_breaking_change="warn")
    with pipeline.writer(rate=100) as w:
        code, res = evolve(pipeline, capsys, change)
        assert code == 0, res
    pipeline.assert_no_event_lost(w.ids)
    after = iceberg_fields(pipeline)
    assert "email" not in after and after["email_address"][0] == before["email"][0]
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, email_address) VALUES (90002, 'r', 'a@b')")
    assert newest_after(pipeline, 90002)["email_address"] == "a@b"
    verify_ok(pipeline, capsys)


def test_drop_column_only_when_the_policy_allows(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    change = "table: public.customers\noperations:\n  - drop_column: {column: email}\n"
    before = pipeline.layer_state()
    code, res = evolve(pipeline, capsys, change)
    assert code == 3 and "deletes data" in res["error"]["message"]
    pipeline.write_config(on_breaking_change="warn")
    code, res = evolve(pipeline, capsys, change)
    assert code == 3 and "--allow-irreversible" in res["error"]["message"]
    assert pipeline.layer_state() == before  # refusals change nothing
    with pipeline.writer(rate=100) as w:
        code, res = evolve(pipeline, capsys, change, "--allow-irreversible")
        assert code == 0, res
    pipeline.assert_no_event_lost(w.ids)
    assert next(s for s in res["steps"] if s["layer"] == "source_db")["reversible"] is False
    assert "email" not in iceberg_fields(pipeline)
    verify_ok(pipeline, capsys)


def test_dry_run_and_preflight_failures_change_nothing(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    before = pipeline.layer_state()
    code, res = evolve(pipeline, capsys, ADD_NOTE, "--dry-run")
    assert code == 0 and res["status"] == "dry_run"
    assert [s["status"] for s in res["steps"]] == ["pending"] * 5
    assert {c["layer"] for c in res["preflight"]} == {"source_db", "schema_registry", "lakehouse", "connector"}
    assert all(res["fingerprints"].values())
    assert pipeline.layer_state() == before
    # NOT NULL turns an optional Avro field required: the subject's BACKWARD check refuses it in pre-flight
    # (the converter would fail the same way once Debezium emitted it)
    code, res = evolve(pipeline, capsys, "table: public.customers\noperations:\n"
                                         "  - set_not_null: {column: email, backfill: \"'none'\"}\n",
                       "--allow-irreversible")  # the backfill has no lossless inverse (issue 14 item 8)
    assert code == 3, res
    assert "not BACKWARD-compatible" in res["error"]["message"] and "email" in res["error"]["message"]
    # an Iceberg decimal scale change is refused at plan time although pyiceberg would accept it
    pipeline.write_config(on_breaking_change="warn")  # so that our Iceberg rule, not the DDL policy, decides
    code, res = evolve(pipeline, capsys, "table: public.customers\noperations:\n"
                                         "  - change_type: {column: price, to_type: \"numeric(10,3)\"}\n",
                       "--allow-irreversible")
    assert code == 2 and "scale" in res["error"]["message"]
    # a type Debezium does not carry is named, with the setting that would change it
    code, res = evolve(pipeline, capsys, "table: public.customers\noperations:\n"
                                         "  - add_column: {name: q, type: tsquery, nullable: true}\n")
    assert code == 2 and "tsquery" in res["error"]["message"]
    assert "include.unknown.datatypes=true" in res["error"]["message"]
    assert pipeline.layer_state() == before
