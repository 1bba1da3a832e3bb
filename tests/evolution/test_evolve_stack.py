"""Pipeline evolution end to end on the local stack, with a writer inserting ~100 rows/s throughout."""

from __future__ import annotations

import psycopg
import pytest

from tests.cdc import poll_until
from tests.pipeline import Pipeline, change_file
from tests.support import run_cli


def test_add_column_and_widen_flow_through_every_layer(pipeline: Pipeline, capsys: pytest.CaptureFixture[str]) -> None:
    cf = change_file(pipeline.tmp, """
table: public.customers
operations:
  - add_column: {name: note, type: text, nullable: true}
  - change_type: {column: amount, to_type: bigint}
""")
    with pipeline.writer(rate=100) as w:
        ran = run_cli(capsys, "evolve", str(cf), config=pipeline.config_path, fmt="json")
        res = ran.doc
        assert ran.code == 0, res
        assert res["status"] == "succeeded"
        assert [s["layer"] for s in res["steps"]] == ["schema_registry", "lakehouse", "source_db", "connector",
                                                     "verify"]
        assert all(s["status"] == "done" for s in res["steps"])
        poll_until(lambda: len(w.ids) > 50, 10, "writer progress")
    assert not w.errors
    with psycopg.connect(pipeline.dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO public.customers (id, name, amount, note) VALUES (99999, 'z', 5000000000, 'hi')")
    ev = pipeline.row_events(99999)[0]  # the row written after the change
    assert ev["after"]["note"] == "hi" and ev["after"]["amount"] == 5000000000
    # no event lost: every id the writer committed is in the topic
    pipeline.assert_no_event_lost(w.ids)
    table = pipeline.iceberg()
    fields = {f.name: str(f.field_type) for f in table.schema().fields}
    assert fields["note"] == "string" and fields["amount"] == "long"
    ran = run_cli(capsys, "verify", config=pipeline.config_path, fmt="json")
    ver = ran.doc
    assert ran.code == 0, ver
    assert ver["consistent"] is True
    assert set(ver["tables"][0]["layers"]) == {"source_db", "schema_registry", "lakehouse", "connector"}
