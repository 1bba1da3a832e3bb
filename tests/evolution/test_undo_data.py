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


# --------------------------------------------------------------------------------------------------------------
# the source DDL's `reversible` flag against what its inverse restores (real PostgreSQL)
# --------------------------------------------------------------------------------------------------------------

SOURCE_CASES = {
    # op, a row written after the change in the new shape (column → value), reversible, refusal without the flag
    "add_column": ("add_column: {name: note, type: text, nullable: true}", {"note": "'v'"}, True,
                   "column public.t.note holds 1 non-null value(s)"),
    "widen_int": ("change_type: {column: n, to_type: bigint}", {"n": "7"}, True, None),
    "widen_varchar": ("change_type: {column: s, to_type: text}", {"s": "'longer than five'"}, True,
                      "column public.t.s: 1 value(s) changed by the cast back to character varying(5)"),
    "rename": ("rename_column: {from: s, to: s2}", {}, True, None),
    "set_not_null": ("set_not_null: {column: k}", {"k": "9"}, True, None),
    "set_not_null_backfill": ("set_not_null: {column: s, backfill: \"'none'\"}", {"s": "'x'"}, False, None),
    "narrow": ("change_type: {column: n, to_type: smallint}", {"n": "7"}, False, None),
    "drop_column": ("drop_column: {column: s}", {}, False, None),
}


@pytest.mark.parametrize("case", SOURCE_CASES)
def test_source_ddl_reversible_flag_matches_what_its_inverse_restores(fresh_dsn: str, case: str) -> None:
    from migrate_assets.errors import DataLossRefused
    from migrate_assets.evolution.actions import RunContext, SourceDdl
    from migrate_assets.evolution.planner import render_ddl
    from migrate_assets.expand.changefile import parse_change_text
    from migrate_assets.resources import PostgresSource

    op, row, reversible, refusal = SOURCE_CASES[case]
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.t (id integer PRIMARY KEY, n integer, s varchar(5), k integer)")
        conn.execute("INSERT INTO public.t VALUES (1, 1, 'a', 1), (2, NULL, NULL, 2), (3, 3, 'ccc', 3)")
    src = PostgresSource(fresh_dsn)
    ctx = RunContext(source=src)
    cs = parse_change_text(f"table: public.t\noperations:\n  - {op}\n", "change.yaml")
    ddl = render_ddl("public", "t", cs.operations, {c.name: c for c in src.columns("public.t") or []})
    step = SourceDdl("public.t", ddl.statements, ddl.inverse)
    assert step.reversible is reversible
    before_shape = src.fingerprint("public.t")
    with psycopg.connect(fresh_dsn) as conn:
        before_rows = conn.execute("SELECT * FROM public.t ORDER BY id").fetchall()
    step.run(ctx)
    assert src.fingerprint("public.t") != before_shape
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:  # a row written in the new shape
        names = ", ".join(["id", *row])
        conn.execute(f"INSERT INTO public.t ({names}) VALUES ({', '.join(['4', *row.values()])})")  # noqa: S608
    undo = step.inverse({})
    if not reversible:
        assert undo is None  # nothing claims to give the old table back
        return
    assert undo is not None
    if refusal:
        with pytest.raises(DataLossRefused) as refused:
            undo.run(ctx)
        assert f"source_db: {refusal}" in str(refused.value)
        ctx.allow_data_loss = True
    else:
        assert undo.losses(ctx) == []
    undo.run(ctx)
    assert src.fingerprint("public.t") == before_shape  # the previous schema, exactly
    with psycopg.connect(fresh_dsn) as conn:
        rows = conn.execute("SELECT * FROM public.t WHERE id < 4 ORDER BY id").fetchall()
        assert conn.execute("SELECT count(*) FROM public.t").fetchone() == (4,)  # no row deleted
    assert rows == before_rows  # and every row written before the change as it was
