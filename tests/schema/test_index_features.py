"""Index features in specs: expressions, DESC / NULLS, INCLUDE, operator classes, per-column collation, partial,
any access method, UNIQUE … NULLS NOT DISTINCT. Built CONCURRENTLY, converging (Postgres' own spelling of an
expression equals the spec's), exported and planned back as no change."""

from __future__ import annotations

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.export import table_document
from migrate_assets.schema.introspect import introspect
from migrate_assets.schema.plan import Hazard
from tests.schema.helpers import converge, execute, plan, scalar, tables

BASE = """table: docs
columns:
  - {name: id, type: int, primary_key: true}
  - {name: title, type: text}
  - {name: tags, type: 'text[]', nullable: true}
  - {name: body, type: jsonb, nullable: true}
  - {name: score, type: int, nullable: true}
  - {name: code, type: text, nullable: true}
"""

FEATURED = BASE + """indexes:
  - name: docs_lower_title
    columns: [{expression: lower(title)}, {column: score, order: desc, nulls: last}]
    include: [code]
  - name: docs_code_pattern
    columns: [{column: code, opclass: text_pattern_ops, collation: C}]
    where: code IS NOT NULL
  - {name: docs_tags, columns: [tags], method: gin}
  - {name: docs_body_path, columns: [{column: body, opclass: jsonb_path_ops}], method: gin}
  - {name: docs_code_uq, columns: [code], unique: true, nulls_not_distinct: true}
  - {name: docs_score_brin, columns: [score], method: brin}
  - {name: docs_id_hash, columns: [id], method: hash}
  - {name: docs_title_cast, columns: [{expression: "title || '!'"}, {expression: (score + 1)::bigint}]}
"""


def test_featured_indexes_converge_online(fresh_dsn: str) -> None:
    converge(fresh_dsn, BASE)
    execute(fresh_dsn, "INSERT INTO docs SELECT g, 't' || g, ARRAY['a'], '{\"k\": 1}', g, 'c' || g FROM generate_series(1, 100) g")
    node = scalar(fresh_dsn, "SELECT pg_relation_filenode('docs')")
    p = converge(fresh_dsn, FEATURED)
    assert len(p.changes) == 8 and all(not c.transactional and "CONCURRENTLY" in c.sql[0] for c in p.changes)
    assert all(Hazard.ACCESS_EXCLUSIVE_LOCK not in c.hazards for c in p.changes)
    assert scalar(fresh_dsn, "SELECT pg_relation_filenode('docs')") == node
    got = scalar(fresh_dsn, "SELECT pg_get_indexdef('docs_lower_title'::regclass)")
    assert got == "CREATE INDEX docs_lower_title ON public.docs USING btree (lower(title), score DESC NULLS LAST) INCLUDE (code)"
    got = scalar(fresh_dsn, "SELECT pg_get_indexdef('docs_code_pattern'::regclass)")
    assert got == ('CREATE INDEX docs_code_pattern ON public.docs USING btree (code COLLATE "C" text_pattern_ops) '
                   "WHERE (code IS NOT NULL)")
    execute(fresh_dsn, "INSERT INTO docs VALUES (1000, 'x', NULL, NULL, NULL, NULL)")


def test_changed_features_rebuild_the_index_and_unlisted_ones_stay(fresh_dsn: str) -> None:
    converge(fresh_dsn, FEATURED)
    flipped = FEATURED.replace("{column: score, order: desc, nulls: last}", "{column: score, order: desc}")
    p = converge(fresh_dsn, flipped)
    assert [c.kind for c in p.changes] == ["drop_index", "add_index"]
    assert Hazard.REMOVES_INDEX not in p.changes[0].hazards  # rebuilt under its name
    p = plan(fresh_dsn, BASE)  # the old form of the spec: featured indexes kept, listed as unmanaged
    assert {c.kind for c in p.changes} == {"drop_index"}  # only the plain ones it could always express
    assert {u.name for u in p.unmanaged} >= {"docs_lower_title", "docs_code_pattern", "docs_body_path", "docs_code_uq"}


def test_export_writes_them_and_plans_nothing(fresh_dsn: str) -> None:
    converge(fresh_dsn, FEATURED)
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        live = introspect(conn, ["public"])
    doc, skipped = table_document(live[("public", "docs")])
    assert not [u for u in skipped if u.kind == "index"], skipped
    from migrate_assets.schema.export import dump

    assert plan(fresh_dsn, dump(doc)).empty


@pytest.mark.parametrize(("index", "message", "key"), [
    ("{name: i, columns: [{expression: lower(nope)}]}", "nope", "indexes[0].columns[0].expression"),
    ("{name: i, columns: [title], method: bloomish}", "unknown index method", "indexes[0].method"),
    ("{name: i, columns: [{column: title, order: sideways}]}", "asc or desc", "indexes[0].columns[0].order"),
])
def test_bad_index_specs_are_exit_2(fresh_dsn: str, index: str, message: str, key: str) -> None:
    with pytest.raises(SpecError) as exc:
        plan(fresh_dsn, BASE + f"indexes: [{index}]\n")
    hit = [p for p in exc.value.problems if message in p.message]
    assert hit and hit[0].key == key and hit[0].line and hit[0].file == "spec.yaml", exc.value.problems
    assert scalar(fresh_dsn, "SELECT to_regclass('public.docs')") is None


def test_featured_index_parses_to_elements() -> None:
    (t,) = tables(FEATURED)
    ix = {i.name: i for i in t.indexes}
    assert ix["docs_lower_title"].elements[0].expression == "lower(title)" and ix["docs_lower_title"].include == ("code",)
    assert ix["docs_lower_title"].elements[1].nulls == "last"  # DESC is NULLS FIRST unless told
    assert not ix["docs_tags"].featured and ix["docs_code_uq"].nulls_not_distinct


COLLATED = """table: names
columns:
  - {name: id, type: int, primary_key: true}
  - {name: name, type: text, collation: C}
indexes: [{name: names_name, columns: [name]}]
"""


def test_column_collation_is_created_changed_and_kept_when_unstated(fresh_dsn: str) -> None:
    converge(fresh_dsn, COLLATED)
    execute(fresh_dsn, "INSERT INTO names SELECT g, 'n' || g FROM generate_series(1, 50) g")
    assert scalar(fresh_dsn, "SELECT collname FROM pg_attribute a JOIN pg_collation c ON c.oid = a.attcollation "
                             "WHERE attrelid = 'names'::regclass AND attname = 'name'") == "C"
    assert plan(fresh_dsn, COLLATED.replace(", collation: C", "")).unmanaged[0].kind == "collation"  # kept, listed
    node = scalar(fresh_dsn, "SELECT pg_relation_filenode('names')")
    p = converge(fresh_dsn, COLLATED.replace("collation: C", "collation: POSIX"))
    (c,) = p.changes
    assert c.kind == "set_collation" and Hazard.ACCESS_EXCLUSIVE_LOCK in c.hazards and c.inverse_sql
    assert Hazard.REWRITES_TABLE not in c.hazards and scalar(fresh_dsn, "SELECT pg_relation_filenode('names')") == node
    execute(fresh_dsn, "INSERT INTO names VALUES (100, 'x')")
