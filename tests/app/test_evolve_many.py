"""The evolve use cases (`migrate_assets.app.evolve`) on in-memory layers: a launch of several tables is planned
whole before anything changes, refuses two changes of one table and overlapping plans, runs each table under the
layer lock with its connector change rebased on the live config (so one table's run or undo never drops another
table's change), and stops at the first table that does not evolve."""

from __future__ import annotations

import pytest

from migrate_assets.app import evolve as app
from migrate_assets.errors import LayerUnreachableError, RuntimeFailure, UsageError
from migrate_assets.evolution.memory import MemoryStore
from migrate_assets.evolution.planner import Policy
from tests.app.stack import FAST, TARGETS, MemoryLock, add, change, stack

POLICY = Policy()
T_NOTE, U_NOTE = r"public\.t\.note", r"public\.u\.note"


def _plan(s, *changes):  # type: ignore[no-untyped-def]
    return app.plan_changes(list(changes), s.context(), TARGETS.__getitem__, POLICY, FAST, "<test>")


def test_two_tables_of_one_connector_both_evolve_and_neither_change_is_lost() -> None:
    s = stack()
    lock = MemoryLock()
    planned = _plan(s, add("public.t", "note"), add("public.u", "note"))
    assert [p.record.status for p in planned] == ["dry_run", "dry_run"]
    assert s.columns("public.t") == ["id", "email", "amount"], "planning changed nothing"
    out = app.evolve_tables(planned, s.context(), MemoryStore(), FAST, lock)
    assert out.succeeded and [p.record.status for p in out.runs] == ["succeeded", "succeeded"]
    assert "note" in s.columns("public.t") and "note" in s.columns("public.u")
    # both plans read the config before either ran: without the rebase the second write drops the first's entry
    assert T_NOTE in s.captured() and U_NOTE in s.captured()
    assert lock.holds == ["exclusive", "exclusive"]  # a config change (restart) holds the lock alone


def test_without_the_rebase_the_second_table_drops_the_first_tables_change() -> None:
    s = stack()  # the protection's reason, shown: the same launch with no lock and no rebase
    planned = _plan(s, add("public.t", "note"), add("public.u", "note"))
    app.evolve_tables(planned, s.context(), MemoryStore(), FAST, lock=None)
    assert U_NOTE in s.captured() and T_NOTE not in s.captured()


def test_a_change_without_connector_config_change_holds_the_lock_shared() -> None:
    s = stack()
    lock = MemoryLock()
    planned = _plan(s, change("public.t", "change_type: {column: amount, to_type: bigint}"))
    out = app.evolve_tables(planned, s.context(), MemoryStore(), FAST, lock)
    assert out.succeeded and lock.holds == ["shared"]


def test_two_changes_of_one_table_are_refused_before_anything_runs() -> None:
    s = stack()
    with pytest.raises(UsageError) as refused:
        _plan(s, add("public.t", "note", file="a.yaml"), add("public.t", "memo", file="b.yaml"))
    assert "public.t is already changed by a.yaml" in str(refused.value)
    assert s.registry.versions("app.public.t-value") == [1]


def test_plans_touching_the_same_object_are_refused() -> None:
    s = stack()
    other = TARGETS["public.t"]
    with pytest.raises(UsageError) as refused:  # two tables' plans writing one Iceberg table
        app.plan_changes([add("public.t", "note"), add("public.u", "memo")], s.context(),
                         lambda t: other if t == "public.t" else TARGETS[t].__class__(t, "c", "app.public.u-value",
                                                                                      "lake.t"),
                         POLICY, FAST, "<test>")
    assert "would both change Iceberg table lake.t" in str(refused.value)
    assert s.columns("public.t") == ["id", "email", "amount"]


def test_the_first_table_that_fails_ends_the_launch() -> None:
    s = stack()
    planned = _plan(s, add("public.t", "note"), add("public.u", "note"))
    s.source.fail("execute_ddl", RuntimeFailure("injected"))
    out = app.evolve_tables(planned, s.context(), MemoryStore(), FAST, MemoryLock())
    assert not out.succeeded
    assert [p.record.status for p in out.runs] == ["rolled_back"] and out.not_started == ("public.u",)
    assert s.registry.versions("app.public.u-value") == [1] and "note" not in s.columns("public.u")


def test_a_table_changed_after_the_launch_was_planned_is_refused_as_stale() -> None:
    s = stack()
    planned = _plan(s, add("public.t", "note"), add("public.u", "note"))
    s.source.execute_ddl(['ALTER TABLE "public"."u" ADD COLUMN "sneaky" text'], 1.0)  # someone else, meanwhile
    out = app.evolve_tables(planned, s.context(), MemoryStore(), FAST, MemoryLock())
    assert [p.record.status for p in out.runs] == ["succeeded", "rolled_back"]
    assert "StalePlanError" in (out.runs[1].record.error or "")
    assert s.registry.versions("app.public.u-value") == [1], "the stale table's layers were undone"


def test_rolling_back_one_table_keeps_the_other_tables_connector_change() -> None:
    s = stack()
    store = MemoryStore()
    out = app.evolve_tables(_plan(s, add("public.t", "note"), add("public.u", "note")), s.context(), store, FAST,
                            MemoryLock())
    first = out.runs[0].record.run_id
    lock = MemoryLock()
    rec = app.rollback_run(first, s.context(), store, FAST, lock)
    assert rec.status == "rolled_back", [(st.id, st.status, st.compensation) for st in rec.steps]
    assert lock.holds == ["exclusive"]
    assert "note" not in s.columns("public.t") and "note" in s.columns("public.u")
    assert T_NOTE not in s.captured() and U_NOTE in s.captured(), "the undo is rebased on the live config"


def test_a_dry_run_returns_the_plans_and_takes_no_lock() -> None:
    s = stack()
    lock = MemoryLock()
    planned = _plan(s, add("public.t", "note"))
    out = app.evolve_tables(planned, s.context(), None, FAST, lock, dry_run=True)
    assert out.succeeded and out.runs[0].record.status == "dry_run" and lock.holds == []
    assert s.registry.versions("app.public.t-value") == [1]


def test_nothing_to_add_from_the_specs_is_a_usage_error() -> None:
    with pytest.raises(UsageError, match="nothing to evolve"):
        app.plan_new_tables([], stack().context(), POLICY, FAST, "<command line>")


def test_a_rollback_with_the_connector_down_still_undoes_the_other_layers() -> None:
    s = stack()
    store = MemoryStore()
    out = app.evolve_tables(_plan(s, add("public.t", "note")), s.context(), store, FAST, MemoryLock())
    run_id = out.runs[0].record.run_id
    for method in ("config", "status", "put_config"):  # the worker is down: the rebase cannot read the config
        s.connector.fail(method, LayerUnreachableError("kafka connect", "connection refused"), times=50)
    rec = app.rollback_run(run_id, s.context(), store, FAST, MemoryLock())
    assert rec.status == "rollback_failed"
    states = {st.id: st.status for st in rec.steps}
    assert states["connector"] == "compensation_failed"
    assert states["ddl"] == states["lakehouse"] == "compensated"
    assert "note" not in s.columns("public.t")
