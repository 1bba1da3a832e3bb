"""Pipeline evolution end to end on the local stack, with a writer inserting ~100 rows/s throughout."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from migrate_assets.cli import main
from migrate_assets.local.stack import StackInfo
from tests.cdc import poll_until
from tests.pipeline import Pipeline, change_file


@pytest.fixture
def pipeline(stack_info: StackInfo, stack_dsn: str, tmp_path: Path) -> Iterator[Pipeline]:
    p = Pipeline(stack_info, stack_dsn, tmp_path).setup()
    try:
        yield p
    finally:
        p.teardown()


def cli_json(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, dict]:
    code = main(["--format", "json", *args])
    out = capsys.readouterr().out
    return code, json.loads(out)


def test_add_column_and_widen_flow_through_every_layer(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    cf = change_file(pipeline.tmp, """
table: public.customers
operations:
  - add_column: {name: note, type: text, nullable: true}
  - change_type: {column: amount, to_type: bigint}
""")
    with pipeline.writer(rate=100) as w:
        code, res = cli_json(capsys, "--config", str(pipeline.config_path), "evolve", str(cf))
        assert code == 0, res
        assert res["status"] == "succeeded"
        assert [s["layer"] for s in res["steps"]] == ["schema_registry", "lakehouse", "source_db", "connector",
                                                     "verify"]
        assert all(s["status"] == "done" for s in res["steps"])
        poll_until(lambda: len(w.ids) > 50, 10, "writer progress")
    assert not w.errors
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, amount, note) VALUES (99999, 'z', 5000000000, 'hi')")
    ev = poll_until(lambda: [e for e in pipeline.events() if e["after"] and e["after"]["id"] == 99999], 60,
                    "event of the row written after the change")[0]
    assert ev["after"]["note"] == "hi" and ev["after"]["amount"] == 5000000000
    # no event lost: every id the writer committed is in the topic
    pipeline.assert_no_event_lost(w.ids)
    table = pipeline.iceberg()
    fields = {f.name: str(f.field_type) for f in table.schema().fields}
    assert fields["note"] == "string" and fields["amount"] == "long"
    code, ver = cli_json(capsys, "--config", str(pipeline.config_path), "verify")
    assert code == 0, ver
    assert ver["consistent"] is True
    assert set(ver["tables"][0]["layers"]) == {"source_db", "schema_registry", "lakehouse", "connector"}
