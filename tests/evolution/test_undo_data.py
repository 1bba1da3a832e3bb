"""Undo never loses data (issue 14 item 4), on the real stack: rows written after an add-column evolution — in
the new shape, to Iceberg (as a sink would: a pyiceberg append) and to the source with the new column filled —
survive `evolve --rollback`, and an undo that would drop the values is refused (exit 3) unless allowed."""

from __future__ import annotations

from typing import Any

import psycopg
import pyarrow as pa
import pytest

from migrate_assets.jobs.evolve import rollback_evolution
from tests.evolution.faults import run_evolve
from tests.jobs.conftest import project_for
from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import CliResult, run_cli


def sink_append(p: Pipeline, ids: list[int], note: str | None = None) -> int:
    """Append rows in the Iceberg table's current shape (`note` filled when the table has it); the new snapshot."""
    table = p.iceberg()
    schema = table.schema().as_arrow()
    n = len(ids)
    cols: dict[str, list[Any]] = {"id": ids, "name": [f"s{i}" for i in ids], "note": [note] * n}
    table.append(pa.table({f.name: cols.get(f.name, [None] * n) for f in schema}, schema=schema))
    snap = p.iceberg().metadata.current_snapshot_id
    assert snap is not None
    return snap


def source_insert(p: Pipeline, first: int, n: int, note: bool) -> None:
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        if note:
            conn.execute("INSERT INTO public.customers (id, name, note) "
                         "SELECT g, 'w' || g, 'v' || g FROM generate_series(%s::int, %s::int) g", (first, first + n - 1))
        else:
            conn.execute("INSERT INTO public.customers (id, name) "
                         "SELECT g, 'w' || g FROM generate_series(%s::int, %s::int) g", (first, first + n - 1))


def iceberg_rows(p: Pipeline) -> tuple[int, int | None, list[int]]:
    """(row count of the current table, current snapshot id, snapshot ids of the history)."""
    table = p.iceberg()
    return table.scan().count(), table.metadata.current_snapshot_id, [h.snapshot_id for h in table.history()]


def evolve(p: Pipeline, capsys: pytest.CaptureFixture[str], text: str = ADD_NOTE) -> str:
    ran = run_cli(capsys, "evolve", str(change_file(p.tmp, text)), config=p.config_path, fmt="json")
    assert ran.code == 0 and ran.doc["status"] == "succeeded", ran
    return str(ran.doc["run_id"])


def rollback(p: Pipeline, capsys: pytest.CaptureFixture[str], run_id: str, *flags: str,
             fmt: str = "json") -> CliResult:
    return run_cli(capsys, "evolve", "--rollback", run_id, *flags, config=p.config_path, fmt=fmt)


def test_rollback_with_values_in_the_new_column_is_refused_then_allowed_and_keeps_every_row(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    p = pipeline
    sink_append(p, list(range(1, 21)))  # 20 rows in the old shape
    before = p.layer_state()
    run_id = evolve(p, capsys)
    ours = sink_append(p, list(range(1001, 1051)), note="filled")  # 50 rows in the new shape, after our change
    source_insert(p, 1001, 50, note=True)
    mid, mid_rows = p.layer_state(), iceberg_rows(p)
    assert mid_rows[0] == 70 and mid_rows[1] == ours

    refused = rollback(p, capsys, run_id)
    assert refused.code == 3, refused
    losses = {(x["layer"], x["table"], x["column"], x["count"]) for x in refused.doc["error"]["losses"]}
    assert losses == {("source_db", "public.customers", "note", 50), ("lakehouse", p.iceberg_table, "note", 50)}
    assert refused.doc["error"]["type"] == "DataLossRefused"
    assert f"--rollback {run_id} --allow-data-loss" in refused.err
    assert p.layer_state() == mid and iceberg_rows(p) == mid_rows  # refused: no layer changed
    text = rollback(p, capsys, run_id, fmt="text")
    assert text.code == 3 and "public.customers.note holds 50 non-null value(s)" in text.err

    done = rollback(p, capsys, run_id, "--allow-data-loss")
    assert done.code == 0, done
    assert done.doc["status"] == "rolled_back"
    after = p.layer_state()
    assert after["db"] == before["db"] and after["iceberg"] == before["iceberg"]
    assert after["registry"][0] == before["registry"][0]
    count, current, history = iceberg_rows(p)
    assert count == mid_rows[0] == 70  # every row kept, also the 50 written after the change
    assert current == ours and ours in history and history == mid_rows[2]  # no snapshot dropped, none older current


def test_rollback_with_no_value_in_the_new_column_needs_no_flag_and_loses_nothing(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    p = pipeline
    sink_append(p, list(range(1, 11)))
    before = p.layer_state()
    run_id = evolve(p, capsys)
    ours = sink_append(p, list(range(2001, 2031)))  # new shape, note null
    source_insert(p, 2001, 30, note=False)
    mid_rows = iceberg_rows(p)
    done = rollback(p, capsys, run_id)
    assert done.code == 0, done
    assert done.doc["status"] == "rolled_back"
    after = p.layer_state()
    assert after["db"] == before["db"] and after["iceberg"] == before["iceberg"]
    assert iceberg_rows(p) == mid_rows and mid_rows[:2] == (40, ours)
    with psycopg.connect(p.dsn) as conn:
        assert conn.execute("SELECT count(*) FROM public.customers").fetchone() == (35,)


def test_dagster_rollback_job_refuses_the_same_way_and_allow_data_loss_finishes(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    p = pipeline
    before = p.layer_state()
    run_id = evolve(p, capsys)
    source_insert(p, 3001, 7, note=True)
    mid = p.layer_state()
    resources = {"project": project_for(p.config_path)}

    def job(**config: Any) -> Any:
        return rollback_evolution.execute_in_process(
            run_config={"ops": {"rollback_run": {"config": {"run_id": run_id, **config}}}}, resources=resources,
            raise_on_error=False)

    res = job()
    assert not res.success
    fail = next(e for e in res.all_events if e.event_type_value == "STEP_FAILURE")
    data = fail.event_specific_data
    message = data.error.message  # type: ignore[union-attr]
    assert "refused by safety rule" in message and "public.customers.note holds 7 non-null value(s)" in message
    assert data.user_failure_data.metadata["exit_code"].value == 3  # type: ignore[union-attr]
    assert p.layer_state() == mid

    res = job(allow_data_loss=True)
    assert res.success
    after = p.layer_state()
    assert after["db"] == before["db"] and after["iceberg"] == before["iceberg"]


def test_a_refused_compensation_of_a_failed_run_is_left_for_rollback_with_allow_data_loss(
    pipeline: Pipeline, capsys: pytest.CaptureFixture[str]
) -> None:
    """A column added with a default holds values right after our own DDL: the compensation probes, is refused,
    changes nothing, and says how to finish; `--rollback RUN --allow-data-loss` does."""
    p = pipeline
    before = p.layer_state()
    change = "table: public.customers\noperations:\n  - add_column: {name: tier, type: text, default: \"'basic'\"}\n"
    res = run_evolve(p, change, at="verify", fault=lambda: p.add_iceberg_column("sneaky"))
    assert res["status"] == "failed" and res["failed_step"] == "verify"
    assert "public.customers.tier holds 5 non-null value(s)" in res["error"]
    assert f"--rollback {res['run_id']} --allow-data-loss" in res["error"]
    assert [s["status"] for s in res["steps"]] == ["done"] * 4 + ["failed"]
    assert "tier" in [c[0] for c in p.layer_state()["db"]]
    done = rollback(p, capsys, res["run_id"], "--allow-data-loss")
    assert done.code == 0 and done.doc["status"] == "rolled_back", done
    after = p.layer_state()
    assert after["db"] == before["db"] and after["registry"][0] == before["registry"][0]
    assert [f[1] for f in after["iceberg"][1]] == [f[1] for f in before["iceberg"][1]] + ["sneaky"]
