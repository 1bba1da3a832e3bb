"""Enums declared in specs: created before the tables using them, values added BEFORE/AFTER outside the main
transaction, values renamed; removing or reordering values is refused (Postgres cannot); never dropped."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.plan import Hazard
from tests.schema.helpers import apply, converge, execute, plan, scalar

TABLE = """- table: people
  columns:
    - {name: id, type: int, primary_key: true}
    - {name: mood, type: public.mood, default: "'happy'"}
    - {name: history, type: 'public.mood[]', nullable: true}
"""


def _spec(values: str) -> str:
    return f"- enum: public.mood\n  values: {values}\n" + TABLE


def _labels(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [r[0] for r in conn.execute("SELECT unnest(enum_range(NULL::public.mood))::text").fetchall()]


def test_enum_lifecycle(fresh_dsn: str) -> None:
    p = converge(fresh_dsn, _spec("[happy, sad]"))
    assert [c.kind for c in p.changes] == ["create_enum", "create_table"]
    execute(fresh_dsn, "INSERT INTO people SELECT g, 'sad', '{happy}' FROM generate_series(1, 20) g")
    p = converge(fresh_dsn, _spec("[ecstatic, happy, {name: content, renamed_from: [sad]}, meh, grumpy]"))
    kinds = [(c.kind, c.transactional) for c in p.changes]
    assert kinds == [("rename_enum_value", True)] + [("add_enum_value", False)] * 3, kinds
    adds = [c.sql[0] for c in p.changes if c.kind == "add_enum_value"]
    assert "BEFORE 'happy'" in adds[0] and "AFTER 'content'" in adds[1] and "AFTER 'meh'" in adds[2]
    rename = p.changes[0]
    assert Hazard.BREAKS_READERS in rename.hazards and rename.inverse_sql
    assert all(Hazard.NOT_REVERSIBLE in c.hazards and c.inverse_sql is None for c in p.changes[1:])
    assert _labels(fresh_dsn) == ["ecstatic", "happy", "content", "meh", "grumpy"]
    assert scalar(fresh_dsn, "SELECT count(*) FROM people WHERE mood = 'content'") == 20  # the rows followed
    execute(fresh_dsn, "INSERT INTO people VALUES (100, 'grumpy', '{ecstatic}')")


def test_removing_or_reordering_values_is_refused(fresh_dsn: str) -> None:
    converge(fresh_dsn, _spec("[happy, sad]"))
    assert any("cannot do" in r for r in plan(fresh_dsn, _spec("[happy]")).refusals)
    assert any("order" in r for r in plan(fresh_dsn, _spec("[sad, happy]")).refusals)
    assert _labels(fresh_dsn) == ["happy", "sad"]


def test_enum_adds_take_no_table_lock(fresh_dsn: str) -> None:
    converge(fresh_dsn, _spec("[happy, sad]"))
    (change,) = plan(fresh_dsn, _spec("[happy, sad, odd]")).changes
    with psycopg.connect(fresh_dsn) as conn:  # in a transaction only to look at the locks (it runs outside one)
        conn.execute(change.sql[0].encode())
        held = conn.execute("SELECT count(*) FROM pg_locks WHERE pid = pg_backend_pid() AND relation = 'people'::regclass").fetchone()
        conn.rollback()
    assert held == (0,) and Hazard.ACCESS_EXCLUSIVE_LOCK not in change.hazards


@pytest.mark.parametrize(("values", "message"), [("[]", "non-empty list"), ("[a, a]", "duplicate value")])
def test_bad_enum_specs_name_file_line_and_key(fresh_dsn: str, values: str, message: str) -> None:
    with pytest.raises(SpecError) as exc:
        plan(fresh_dsn, _spec(values))
    (p,) = exc.value.problems
    assert message in p.message and p.file == "spec.yaml" and p.line and p.key.startswith("[0].values")


def test_an_unknown_enum_in_a_column_is_exit_2(fresh_dsn: str) -> None:
    with pytest.raises(SpecError) as exc:
        apply(fresh_dsn, plan(fresh_dsn, TABLE))
    assert exc.value.exit_code == 2 and exc.value.problems[0].key == "[0].columns[1].type"


def test_enum_with_drop_true_is_dropped_only_when_unused(fresh_dsn: str) -> None:
    """issue 15: `drop: true` drops an unused enum; a used one is refused (exit 3) naming each user."""
    from migrate_assets.errors import SafetyRefusal

    execute(fresh_dsn, "CREATE TYPE old_mood AS ENUM ('a', 'b'); CREATE TABLE t (id int PRIMARY KEY, m old_mood); "
                        "CREATE DOMAIN dm AS old_mood[]; CREATE FUNCTION f(old_mood) RETURNS int LANGUAGE sql AS 'select 1'")
    spec = "- enum: old_mood\n  values: [a]\n  drop: true\n"
    p = plan(fresh_dsn, spec)
    (refusal,) = p.refusals
    assert "column m of table t" in refusal and "type dm" in refusal and "function f(old_mood)" in refusal, refusal
    with pytest.raises(SafetyRefusal) as exc:
        apply(fresh_dsn, p)
    assert exc.value.exit_code == 3
    execute(fresh_dsn, "ALTER TABLE t DROP COLUMN m; DROP DOMAIN dm; DROP FUNCTION f(old_mood)")
    p = plan(fresh_dsn, spec)
    assert [c.kind for c in p.changes] == ["drop_enum"] and p.changes[0].breaking
    assert p.changes[0].inverse_sql == ("CREATE TYPE \"public\".\"old_mood\" AS ENUM ('a', 'b')",)
    apply(fresh_dsn, p, on_breaking_change="warn")
    assert scalar(fresh_dsn, "SELECT to_regtype('old_mood')") is None
    assert plan(fresh_dsn, spec).empty  # gone: nothing more to do
    execute(fresh_dsn, "CREATE TYPE kept AS ENUM ('x')")
    assert plan(fresh_dsn, spec).empty and scalar(fresh_dsn, "SELECT to_regtype('kept')::text") == "kept"
