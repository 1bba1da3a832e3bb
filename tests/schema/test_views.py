# ruff: noqa: S608 - the SQL here is built from the tests' own constant names
"""Views and materialized views in specs, on a real database: created, replaced, dropped and created again
(with their dependents) in the table change's transaction; bad definitions are refused as input (exit 2)."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.plan import Hazard
from migrate_assets.schema.planner import PlanOptions, build_plan
from migrate_assets.schema.spec import parse_spec_text
from tests.schema.helpers import apply, converge, execute, plan, scalar

ORDERS = """
- table: {t}
  columns:
    - {{name: id, type: int, primary_key: true}}
    - {{name: customer, type: text}}
    - {{name: amount, type: {amount}}}
"""


def _orders(t: str, amount: str = "int") -> str:
    return ORDERS.format(t=t, amount=amount)


def _view(name: str, definition: str, extra: str = "") -> str:
    return f"- view: {name}\n  definition: {definition}\n{extra}"


def _kinds(p) -> list[str]:  # type: ignore[no-untyped-def]
    return [c.kind for c in p.changes]


def test_create_replace_alter_and_rebuild(module_dsn: str) -> None:
    t = "o_basic"
    spec = _orders(t) + _view("o_basic_big", f"SELECT id, amount FROM {t} WHERE amount > 10",
                              "  comment: big orders\n")
    first = converge(module_dsn, spec)
    assert _kinds(first)[-1] == "create_view"
    execute(module_dsn, f"INSERT INTO {t} SELECT g, 'c' || g, g FROM generate_series(1, 20) g")
    assert scalar(module_dsn, "SELECT count(*) FROM o_basic_big") == 10
    # a column added at the end: CREATE OR REPLACE
    spec2 = _orders(t) + _view("o_basic_big", f"SELECT id, amount, customer FROM {t} WHERE amount > 10",
                               "  comment: big orders\n  options: {security_barrier: true}\n")
    p = converge(module_dsn, spec2)
    assert _kinds(p) == ["replace_view", "alter_view"], [c.description for c in p.changes]
    assert not p.breaking
    assert scalar(module_dsn, "SELECT reloptions::text FROM pg_class WHERE relname = 'o_basic_big'") == \
        "{security_barrier=true}"
    # a column goes away: dropped and created in one transaction, breaking readers of that column
    spec3 = _orders(t) + _view("o_basic_big", f"SELECT id FROM {t} WHERE amount > 10", "  comment: big orders\n")
    p = converge(module_dsn, spec3)
    assert _kinds(p) == ["drop_view", "create_view"], [c.description for c in p.changes]  # options go with it
    assert Hazard.BREAKS_READERS in p.changes[0].hazards
    assert scalar(module_dsn, "SELECT obj_description('o_basic_big'::regclass, 'pg_class')") == "big orders"
    assert scalar(module_dsn, "SELECT count(*) FROM o_basic_big") == 10


def test_same_view_spelled_differently_plans_nothing(module_dsn: str) -> None:
    t = "o_spell"
    converge(module_dsn, _orders(t) + _view("o_spell_v", f"select id , amount from {t} where amount>1"))
    again = plan(module_dsn, _orders(t) + _view("o_spell_v", f"SELECT {t}.id, {t}.amount FROM public.{t} "
                                                             "WHERE (amount > 1)"))
    assert again.empty, [c.description for c in again.changes]


@pytest.mark.parametrize(("definition", "says"), [
    ("select 1; drop table o_bad", "';' is not allowed"),
    ("drop table o_bad", "one query"),
    ("select 1 -- hi", "comments are not allowed"),
    ("select (1", "unbalanced"),
])
def test_hostile_definition_refused_offline(definition: str, says: str) -> None:
    with pytest.raises(SpecError) as err:
        parse_spec_text(f"view: v\ndefinition: {definition!r}\n", "views.yaml")
    problem = err.value.problems[0]
    assert (problem.file, problem.line, problem.key) == ("views.yaml", 2, "definition")
    assert says in problem.message
    assert err.value.exit_code == 2


@pytest.mark.parametrize(("definition", "says"), [
    ("select * from o_bad_nope", "does not exist"),
    ("WITH x AS (DELETE FROM o_bad RETURNING *) SELECT * FROM x", "data-modifying"),
    ("select id from o_bad group", "syntax error"),
    ("select pg_sleep(10)::text AS s, id from o_bad", None),  # parsed and stored, never run
])
def test_definition_read_by_postgres(module_dsn: str, definition: str, says: str | None) -> None:
    execute(module_dsn, "CREATE TABLE IF NOT EXISTS o_bad (id int)",
            "INSERT INTO o_bad SELECT 1 WHERE NOT EXISTS (SELECT FROM o_bad)")
    spec = f"- view: o_bad_v\n  definition: {definition!r}\n"
    if says is None:
        p = plan(module_dsn, spec)
        assert _kinds(p) == ["create_view"]
        return
    with pytest.raises(SpecError) as err:
        with psycopg.connect(module_dsn, autocommit=True) as conn:
            build_plan(conn, parse_spec_text(spec, "views.yaml"), PlanOptions())
    problem = err.value.problems[0]
    assert (problem.file, problem.line, problem.key) == ("views.yaml", 2, "[0].definition")
    assert says in problem.message, problem.message
    assert scalar(module_dsn, "SELECT count(*) FROM o_bad") == 1
    assert scalar(module_dsn, "SELECT to_regclass('o_bad_v')") is None


def test_unmanaged_dependents_recreated_exactly(module_dsn: str) -> None:
    t = "o_dep"
    converge(module_dsn, _orders(t))
    execute(module_dsn,
            f"INSERT INTO {t} SELECT g, 'c' || g, g FROM generate_series(1, 30) g",
            f"CREATE VIEW o_dep_amounts WITH (security_barrier) AS SELECT id, amount FROM {t}",
            "CREATE VIEW o_dep_top AS SELECT id, amount * 2 AS twice FROM o_dep_amounts WHERE amount > 20",
            f"CREATE MATERIALIZED VIEW o_dep_sum AS SELECT customer, sum(amount) AS total FROM {t} GROUP BY customer",
            "CREATE UNIQUE INDEX o_dep_sum_customer ON o_dep_sum (customer)",
            f"CREATE VIEW o_dep_other AS SELECT id, customer FROM {t}",  # does not read amount: left alone
            "COMMENT ON VIEW o_dep_top IS 'top orders'",
            "COMMENT ON COLUMN o_dep_top.twice IS 'doubled'",
            "DO $$BEGIN CREATE ROLE o_dep_reader; EXCEPTION WHEN duplicate_object THEN NULL; END$$",
            "GRANT SELECT ON o_dep_top TO o_dep_reader")
    before = _view_state(module_dsn, ["o_dep_amounts", "o_dep_top", "o_dep_sum"])
    other = scalar(module_dsn, "SELECT 'o_dep_other'::regclass::oid")
    p = plan(module_dsn, _orders(t, "bigint"))
    kinds = _kinds(p)
    assert kinds[:3] == ["drop_view"] * 3 and kinds.count("create_view") == 3, [c.description for c in p.changes]
    dropped = [c.table for c in p.changes if c.kind == "drop_view"]
    assert dropped.index("public.o_dep_top") < dropped.index("public.o_dep_amounts")  # dependents first
    created = [c.table for c in p.changes if c.kind == "create_view"]
    assert created.index("public.o_dep_amounts") < created.index("public.o_dep_top")
    assert all("public.o_dep.amount" in c.description or "o_dep_amounts" in c.description
               for c in p.changes if c.kind == "drop_view")
    apply(module_dsn, p, on_breaking_change="warn")
    assert plan(module_dsn, _orders(t, "bigint")).empty
    assert _view_state(module_dsn, ["o_dep_amounts", "o_dep_top", "o_dep_sum"]) == before
    assert scalar(module_dsn, "SELECT 'o_dep_other'::regclass::oid") == other
    assert scalar(module_dsn, "SELECT count(*) FROM o_dep_top") == 10
    assert scalar(module_dsn, "SELECT count(*) FROM o_dep_sum") == 30  # populated again
    assert scalar(module_dsn, "SELECT format_type(atttypid, atttypmod) FROM pg_attribute "
                              "WHERE attrelid = 'o_dep_amounts'::regclass AND attname = 'amount'") == "bigint"


def _view_state(dsn: str, names: list[str]) -> list[tuple[object, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return [tuple(conn.execute(
            "SELECT c.relkind, replace(pg_get_viewdef(c.oid, true), 'integer', 'bigint'), c.reloptions, "
            "obj_description(c.oid, 'pg_class'), c.relacl::text, pg_get_userbyid(c.relowner), "
            "(SELECT array_agg(col_description(c.oid, a.attnum) ORDER BY a.attnum) FROM pg_attribute a "
            " WHERE a.attrelid = c.oid AND a.attnum > 0), "
            "(SELECT array_agg(pg_get_indexdef(i.indexrelid)) FROM pg_index i WHERE i.indrelid = c.oid) "
            "FROM pg_class c WHERE c.relname = %s", [n]).fetchone() or ()) for n in names]


def test_unmanaged_dependent_reading_dropped_column_is_refused(module_dsn: str) -> None:
    t = "o_drop"
    converge(module_dsn, _orders(t))
    execute(module_dsn, f"CREATE VIEW o_drop_v AS SELECT id, amount FROM {t}")
    p = plan(module_dsn, _orders(t).replace("    - {name: amount, type: int}\n", ""))
    assert any("o_drop_v" in r and "would be lost" in r for r in p.refusals), p.refusals


def test_managed_view_lets_its_column_go(module_dsn: str) -> None:
    t = "o_mdrop"
    spec = _orders(t) + _view("o_mdrop_v", f"SELECT id, amount FROM {t}") + \
        _view("o_mdrop_w", "SELECT id FROM o_mdrop_v")
    converge(module_dsn, spec)
    execute(module_dsn, f"INSERT INTO {t} VALUES (1, 'a', 5)")
    no_amount = _orders(t).replace("    - {name: amount, type: int}\n", "")
    spec2 = no_amount + _view("o_mdrop_v", f"SELECT id, customer FROM {t}") + \
        _view("o_mdrop_w", "SELECT id FROM o_mdrop_v")
    p = converge(module_dsn, spec2)
    assert "drop_column" in _kinds(p)
    assert [c.table for c in p.changes if c.kind == "drop_view"] == ["public.o_mdrop_w", "public.o_mdrop_v"]
    assert scalar(module_dsn, "SELECT customer FROM o_mdrop_v") == "a"
    # the spec's definition still reading the column: refused with the reason
    spec3 = no_amount + _view("o_mdrop_v", f"SELECT id, customer FROM {t}") + \
        _view("o_mdrop_w", "SELECT id FROM o_mdrop_v")
    assert plan(module_dsn, spec3).empty


def test_materialized_view_with_indexes(module_dsn: str) -> None:
    t = "o_mat"
    mv = ("- view: o_mat_totals\n  materialized: true\n"
          f"  definition: SELECT customer, sum(amount) AS total FROM {t} GROUP BY customer\n"
          "  indexes:\n    - {name: o_mat_totals_customer, columns: [customer], unique: true}\n")
    converge(module_dsn, _orders(t))
    execute(module_dsn, f"INSERT INTO {t} SELECT g, 'c' || (g % 5), g FROM generate_series(1, 50) g")
    p = converge(module_dsn, _orders(t) + mv)
    assert _kinds(p) == ["create_view"] and Hazard.LONG_RUNNING in p.changes[0].hazards
    assert scalar(module_dsn, "SELECT count(*) FROM o_mat_totals") == 5
    # one more index: built CONCURRENTLY after commit
    mv2 = mv + "    - {name: o_mat_totals_total, columns: [total], where: total > 100}\n"
    p = converge(module_dsn, _orders(t) + mv2)
    assert [(c.kind, c.transactional) for c in p.changes] == [("add_index", False)]
    assert "CONCURRENTLY" in p.changes[0].sql[0]
    # a new definition: dropped and created again, with its indexes
    mv3 = mv2.replace("sum(amount)", "max(amount)")
    p = converge(module_dsn, _orders(t) + mv3)
    assert _kinds(p) == ["drop_view", "create_view"]
    assert scalar(module_dsn, "SELECT count(*) FROM pg_index WHERE indrelid = 'o_mat_totals'::regclass") == 2
    assert scalar(module_dsn, "SELECT max(total) FROM o_mat_totals") == 50


def test_undeclared_views_are_never_dropped(module_dsn: str) -> None:
    t = "o_keep"
    converge(module_dsn, _orders(t) + _view("o_keep_v", f"SELECT id FROM {t}"))
    p = plan(module_dsn, _orders(t))  # the view's document removed
    assert p.empty
    assert any(u.kind == "view" and u.name == "public.o_keep_v" for u in p.unmanaged)
    declared = plan(module_dsn, _orders(t) + _view("o_keep_v", f"SELECT id FROM {t}"))
    assert not any(u.kind == "view" for u in declared.unmanaged)


def test_view_reading_a_column_the_plan_adds(module_dsn: str) -> None:
    t = "o_add"
    converge(module_dsn, _orders(t) + _view("o_add_v", f"SELECT id FROM {t}"))
    spec = _orders(t) + "    - {name: note, type: text, nullable: true}\n" + \
        _view("o_add_v", f"SELECT id, note FROM {t}") + _view("o_add_w", "SELECT note FROM o_add_v")
    p = converge(module_dsn, spec)  # read by Postgres only after the column exists: planned as written
    assert _kinds(p) == ["add_column", "drop_view", "create_view", "create_view"] or \
        _kinds(p) == ["drop_view", "add_column", "create_view", "create_view"], [c.description for c in p.changes]
    # a column no change adds is still bad input, whatever else the plan does
    with pytest.raises(SpecError) as err, psycopg.connect(module_dsn, autocommit=True) as conn:
        build_plan(conn, parse_spec_text(_orders(t).replace("type: int}\n", "type: bigint}\n", 1) +
                                         _view("o_add_x", f"SELECT nope FROM {t}"), "v.yaml"), PlanOptions())
    assert 'column "nope" does not exist' in err.value.problems[0].message


def test_unpopulated_matview_stays_unpopulated_and_dropped_table_refused(module_dsn: str) -> None:
    t = "o_nodata"
    converge(module_dsn, _orders(t))
    execute(module_dsn, f"CREATE MATERIALIZED VIEW o_nodata_m AS SELECT amount FROM {t} WITH NO DATA")
    p = converge(module_dsn, _orders(t, "bigint"))
    assert [c.kind for c in p.changes] == ["drop_view", "alter_type", "create_view"]
    assert scalar(module_dsn, "SELECT relispopulated FROM pg_class WHERE relname = 'o_nodata_m'") is False
    # --allow-drop-table never takes a view along
    keep = "- table: o_basic\n  columns: [{name: id, type: int, primary_key: true}]\n"
    dropping = plan(module_dsn, keep, allow_drop_table=True)
    assert any("o_nodata_m reads table public.o_nodata, which the plan drops" in r for r in dropping.refusals), \
        dropping.refusals


def test_rename_under_a_view_that_is_rebuilt_is_refused(module_dsn: str) -> None:
    t = "o_ren"
    converge(module_dsn, _orders(t))
    execute(module_dsn, f"CREATE VIEW o_ren_v AS SELECT id, customer, amount FROM {t}")
    spec = _orders(t, "bigint").replace("{name: customer, type: text}",
                                        "{name: buyer, type: text, renamed_from: [customer]}")
    p = plan(module_dsn, spec)
    assert any("o_ren_v reads column customer" in r and "renames to buyer" in r for r in p.refusals), p.refusals
    # the rename alone keeps the view (Postgres follows the column), then the type change goes through
    converge(module_dsn, _orders(t).replace("{name: customer, type: text}",
                                            "{name: buyer, type: text, renamed_from: [customer]}"))
    converge(module_dsn, spec)
    assert scalar(module_dsn, "SELECT count(*) FROM o_ren_v") == 0


def test_view_in_a_new_schema(module_dsn: str) -> None:
    converge(module_dsn, _orders("o_ns") + "- view: o_ns_reports.summary\n  definition: SELECT count(*) AS n FROM public.o_ns\n")
    assert scalar(module_dsn, "SELECT n FROM o_ns_reports.summary") == 0
