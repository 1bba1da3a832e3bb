"""a.sql → b.sql pairs (tests/schema/fixtures/*): export B, plan against A (with rows), apply, a second plan is
empty, A's managed catalog equals B's, and an INSERT into every table succeeds. Also: export, then plan against
the same database = no changes, and what the format cannot express is listed, never silently skipped."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import psycopg
import pytest

from migrate_assets.schema.export import export, write
from migrate_assets.schema.planner import PlanOptions, build_plan
from migrate_assets.schema.spec import load_specs
from tests.schema.helpers import apply, execute

FIXTURES = Path(__file__).parent / "fixtures"
CASES = sorted(p.name for p in FIXTURES.iterdir() if p.is_dir())

#: the managed catalog: columns, constraints, plain indexes, comments
CATALOG = """
SELECT 'column', c.relname, a.attname, format_type(a.atttypid, a.atttypmod) || ' ' || a.attnotnull || ' '
       || a.attidentity::text || a.attgenerated::text || ' ' || coalesce(pg_get_expr(d.adbin, d.adrelid), '')
       || ' ' || coalesce(col_description(c.oid, a.attnum), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
JOIN pg_attribute a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
LEFT JOIN pg_attrdef d ON d.adrelid = c.oid AND d.adnum = a.attnum
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'constraint', c.relname, con.conname, pg_get_constraintdef(con.oid)
FROM pg_constraint con JOIN pg_class c ON c.oid = con.conrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'index', c.relname, i.relname, pg_get_indexdef(i.oid)
FROM pg_index x JOIN pg_class i ON i.oid = x.indexrelid JOIN pg_class c ON c.oid = x.indrelid
JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast')
UNION ALL
SELECT 'comment', c.relname, '', coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema', 'pg_toast') AND c.relkind IN ('r', 'p')
UNION ALL
SELECT 'view', n.nspname || '.' || c.relname, c.relkind::text, pg_get_viewdef(c.oid) || ' ' || coalesce(c.reloptions::text, '')
       || ' ' || coalesce(obj_description(c.oid, 'pg_class'), '')
FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema') AND c.relkind IN ('v', 'm')
UNION ALL
SELECT 'extension', e.extname, n.nspname, e.extversion FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace
UNION ALL
SELECT 'schema', nspname, '', coalesce(obj_description(oid, 'pg_namespace'), '') FROM pg_namespace
WHERE nspname NOT LIKE 'pg\\_%' AND nspname NOT IN ('information_schema', 'public')
UNION ALL
SELECT 'partition', p.relname, c.relname, coalesce(pg_get_partkeydef(c.oid), '') || ' ' || pg_get_expr(c.relpartbound, c.oid)
FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid JOIN pg_class p ON p.oid = i.inhparent
WHERE c.relkind IN ('r', 'p')
UNION ALL
SELECT 'partition_key', c.relname, '', pg_get_partkeydef(c.oid) FROM pg_class c WHERE c.relkind = 'p'
UNION ALL
SELECT 'sequence', c.relname, '', concat_ws(' ', format_type(s.seqtypid, NULL), s.seqincrement, s.seqmin, s.seqmax,
       s.seqstart, s.seqcache, s.seqcycle, (SELECT d.refobjid::regclass::text || '.' || d.refobjsubid FROM pg_depend d
       WHERE d.classid = 'pg_class'::regclass AND d.objid = c.oid AND d.refclassid = 'pg_class'::regclass
       AND d.deptype = 'a'))
FROM pg_sequence s JOIN pg_class c ON c.oid = s.seqrelid JOIN pg_namespace n ON n.oid = c.relnamespace
WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'domain', n.nspname || '.' || t.typname, format_type(t.typbasetype, t.typtypmod),
       concat_ws(' ', t.typdefault, t.typnotnull, t.typcollation, (SELECT string_agg(c.conname || ' ' || c.convalidated
       || ' ' || pg_get_constraintdef(c.oid), ', ' ORDER BY c.conname) FROM pg_constraint c WHERE c.contypid = t.oid))
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE t.typtype = 'd' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
UNION ALL
SELECT 'composite', n.nspname || '.' || t.typname, '', (SELECT string_agg(a.attname || ' ' || format_type(a.atttypid,
       a.atttypmod) || ' ' || a.attcollation, ', ' ORDER BY a.attnum) FROM pg_attribute a
       WHERE a.attrelid = t.typrelid AND a.attnum > 0 AND NOT a.attisdropped)
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace JOIN pg_class c ON c.oid = t.typrelid
WHERE t.typtype = 'c' AND c.relkind = 'c' AND n.nspname NOT IN ('pg_catalog', 'information_schema')
"""


def _catalog(dsn: str) -> set[tuple[str, ...]]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return {tuple(map(str, r)) for r in conn.execute(CATALOG).fetchall()}


def _dump(dsn: str) -> list[str]:
    """`pg_dump --schema-only` without comments, blank lines and its per-run `\\restrict` key."""
    out = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "-d", dsn], capture_output=True, text=True,
                         check=True).stdout
    return [line for line in out.splitlines() if line and not line.startswith(("--", "\\restrict", "\\unrestrict"))]


def _schemas(dsn: str) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        rows = conn.execute("SELECT nspname FROM pg_namespace WHERE nspname NOT LIKE 'pg\\_%' "
                            "AND nspname <> 'information_schema'").fetchall()
    return sorted(str(r[0]) for r in rows)


def _export(dsn: str, out: Path) -> list[str]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        result = export(conn, _schemas(dsn))
    write(result, out, overwrite=False)
    return [f"{u.kind} {u.table}.{u.name}" for u in result.not_expressed]


def _plan(dsn: str, specs: Path, schemas: list[str]):  # type: ignore[no-untyped-def]
    with psycopg.connect(dsn, autocommit=True) as conn:
        return build_plan(conn, load_specs([specs]), PlanOptions())


@pytest.mark.parametrize("case", CASES)
def test_pair_converges(fresh_db_factory, tmp_path: Path, case: str) -> None:  # type: ignore[no-untyped-def]
    a_sql = (FIXTURES / case / "a.sql").read_text()
    b_sql, _, inserts = (FIXTURES / case / "b.sql").read_text().partition("-- @inserts")
    a, b = fresh_db_factory(), fresh_db_factory()
    execute(a, a_sql)
    execute(b, b_sql)
    execute(b, inserts)  # B itself takes the rows
    listed = _export(b, tmp_path)
    for line in b_sql.splitlines():  # `-- @drop-enums: s.name …`: enums A has and B does not, declared `drop: true`
        if line.startswith("-- @drop-enums:"):
            for name in line.split(":", 1)[1].split("(")[0].split():
                (tmp_path / f"{name}.dropped.enum.yaml").write_text(f"enum: {name}\nvalues: [x]\ndrop: true\n")
    assert _plan(b, tmp_path, _schemas(b)).empty, "export then plan against the same database must plan nothing"
    first = _plan(a, tmp_path, _schemas(a))
    apply(a, first, on_breaking_change="warn")
    again = _plan(a, tmp_path, _schemas(a))
    assert again.empty, [c.description for c in again.changes] + list(again.refusals)
    assert _catalog(a) == _catalog(b)
    if case.startswith(("partitions_", "sequences", "domains")) and shutil.which("pg_dump"):  # a tool that is not ours agrees
        assert _dump(a) == _dump(b)
    execute(a, inserts)
    if case == "partitions_views":  # views, the sequence and the partitions all managed now, and intact
        kinds = {x.split(" ")[0] for x in listed}
        assert {"partition", "partitioned_table", "sequence", "view", "materialized_view"}.isdisjoint(kinds), listed
        assert all(c.table == "public.measurements" for c in first.changes)
        with psycopg.connect(a, autocommit=True) as conn:
            assert conn.execute("SELECT count(*) FROM recent").fetchone() == (148,)
            assert conn.execute("SELECT last_value FROM batch_seq").fetchone() == (100,)
            assert conn.execute("SELECT count(*) FROM totals").fetchone() == (0,)  # built before the rows, never refreshed
            assert conn.execute("SELECT count(*) FROM pg_inherits WHERE inhparent = 'measurements'::regclass").fetchone() == (2,)
    if case == "domains_composites":  # the enum declared `drop: true` is gone; domains and composites exported
        with psycopg.connect(a, autocommit=True) as conn:
            assert conn.execute("SELECT to_regtype('public.old_status')").fetchone() == (None,)
        assert not {"domain", "composite_type"} & {x.split(" ")[0] for x in listed}, listed
        assert any(c.kind == "drop_enum" for c in first.changes)
    if case == "unmanaged_kept":  # everything the format has no words for is named, with its kind
        kinds = {x.split(" ")[0] for x in listed}
        assert {"trigger", "function"} <= kinds, listed
        assert not {"view", "sequence"} & kinds, listed  # exported as a view file and a `sequence:` file
        assert "exclusion" not in kinds, listed  # EXCLUDE constraints are exported (`excludes:`)
        assert not any("rooms_lower_name" in x for x in listed)
