"""Composite types in spec files, on a real database: created before their tables, attributes added and dropped
without locking or rewriting a table that holds the type (pg_locks, relfilenode), a retype refused while a column
holds the type, order changes refused, never dropped when undeclared, bad input exit 2 with file, line and key."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.spec import parse_spec_text
from tests.schema.helpers import apply, converge, execute, plan, scalar

SPEC = """
- composite: cash
  attributes:
    - {name: amount, type: 'numeric(12,2)'}
    - {name: currency, type: text, collation: C}
- table: prices
  columns:
    - {name: id, type: integer, primary_key: true}
    - {name: price, type: public.cash, nullable: true}
"""


def _attrs(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT attname, format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                            "'cash'::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum").fetchall()
    return [(str(a), str(b)) for a, b in rows]


def test_composites_are_created_and_attributes_added_and_dropped_without_a_rewrite(fresh_dsn: str) -> None:
    first = converge(fresh_dsn, SPEC)
    kinds = [c.kind for c in first.changes]
    assert kinds.index("create_composite") < kinds.index("create_table")
    execute(fresh_dsn, "INSERT INTO prices SELECT g, ROW(g, 'EUR')::cash FROM generate_series(1, 20) g")
    node = scalar(fresh_dsn, "SELECT relfilenode FROM pg_class WHERE relname = 'prices'")
    changed = SPEC.replace("    - {name: currency, type: text, collation: C}\n", "    - {name: rate, type: float8}\n")
    p = plan(fresh_dsn, changed)
    by = {c.kind: c for c in p.changes}
    assert set(by) == {"drop_attribute", "add_attribute"}, [c.description for c in p.changes]
    assert by["drop_attribute"].breaking and "public.prices.price" in by["drop_attribute"].description
    assert by["add_attribute"].sql == ('ALTER TYPE "public"."cash" ADD ATTRIBUTE "rate" double precision',)
    for c in p.changes:  # ACCESS EXCLUSIVE on the type only
        with psycopg.connect(fresh_dsn, autocommit=True) as conn, conn.transaction(force_rollback=True):
            conn.execute(c.sql[0].encode())
            locked = {str(r[0]) for r in conn.execute(
                "SELECT c.relname FROM pg_locks l JOIN pg_class c ON c.oid = l.relation WHERE l.pid = "
                "pg_backend_pid() AND c.relnamespace = 'public'::regnamespace").fetchall()}
            assert locked == {"cash"}, locked
    apply(fresh_dsn, p, on_breaking_change="warn")
    assert plan(fresh_dsn, changed).empty
    assert _attrs(fresh_dsn) == [("amount", "numeric(12,2)"), ("rate", "double precision")]
    assert scalar(fresh_dsn, "SELECT relfilenode FROM pg_class WHERE relname = 'prices'") == node  # no rewrite
    assert scalar(fresh_dsn, "SELECT count(*) FROM prices WHERE (price).amount IS NOT NULL AND (price).rate IS NULL") == 20


def test_retype_refused_while_a_column_holds_it_and_order_is_kept(fresh_dsn: str) -> None:
    converge(fresh_dsn, SPEC)
    p = plan(fresh_dsn, SPEC.replace("numeric(12,2)", "numeric(14,2)"))
    assert any("public.prices.price" in r and "change type" in r for r in p.refusals), p.refusals
    swapped = SPEC.replace("    - {name: amount, type: 'numeric(12,2)'}\n", "").replace(
        "collation: C}\n", "collation: C}\n    - {name: amount, type: 'numeric(12,2)'}\n", 1)
    assert any("change order" in r for r in plan(fresh_dsn, swapped).refusals)
    alone = SPEC.split("- table: prices")[0].replace("cash", "loose_pair")
    converge(fresh_dsn, alone)
    p = plan(fresh_dsn, alone.replace("numeric(12,2)", "numeric(14,2)"))
    assert [c.kind for c in p.changes] == ["alter_attribute"] and not p.refusals
    apply(fresh_dsn, p)
    assert plan(fresh_dsn, alone.replace("numeric(12,2)", "numeric(14,2)")).empty
    assert plan(fresh_dsn, SPEC.replace("numeric(12,2)", "NUMERIC(12, 2)")).empty  # Postgres' reading compared
    assert scalar(fresh_dsn, "SELECT to_regtype('loose_pair')::text") == "loose_pair"  # undeclared: kept


@pytest.mark.parametrize(("old", "new", "message", "key"), [
    ("type: 'numeric(12,2)'}", "type: 'numeric(12,2); drop table x'}", "invalid type", "[0].attributes[0].type"),
    ("{name: amount, type: 'numeric(12,2)'}", "{name: currency, type: int}", "duplicate attribute", "[0].attributes[1].name"),
    ("- composite: cash\n  attributes:", "- composite: cash\n  attrs:", "unknown key", "[0].attrs"),
])
def test_bad_composite_documents_are_exit_2(old: str, new: str, message: str, key: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec_text(SPEC.replace(old, new), "c.yaml")
    hits = [p for p in exc.value.problems if message in p.message]
    assert exc.value.exit_code == 2 and hits and hits[0].key == key and hits[0].line, exc.value.problems


def test_an_unknown_attribute_type_is_exit_2_naming_the_attribute(fresh_dsn: str) -> None:
    with pytest.raises(SpecError) as exc:
        plan(fresh_dsn, SPEC.replace("type: text, collation: C", "type: no_such_type"))
    (problem,) = exc.value.problems
    assert problem.key == "[0].attributes[1].type" and problem.line == 5, problem
