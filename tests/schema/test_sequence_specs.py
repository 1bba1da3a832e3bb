"""Sequences of their own in spec files, on a real database: created with every option, altered without moving their
value, owned by a column (after the table exists), never dropped when undeclared; identity and serial sequences stay
with their columns; bad options are exit 2 naming file, line and key. Also `export` / `plan --check` through the CLI
with sequences and a partitioned table."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.spec import parse_spec_text
from tests.schema.helpers import apply, converge, execute, plan, scalar
from tests.support import run_cli

SPEC = """
- sequence: batch_seq
  as: integer
  increment: 5
  minvalue: 10
  maxvalue: 100000
  start: 50
  cache: 4
  cycle: true
- sequence: public.order_no
  owned_by: orders.ticket
- table: orders
  columns: [{name: id, type: bigint, primary_key: true}, {name: ticket, type: bigint, nullable: true}]
"""

_OPTIONS = """SELECT format_type(seqtypid, NULL), seqincrement, seqmin, seqmax, seqstart, seqcache, seqcycle
FROM pg_sequence WHERE seqrelid = %s::regclass"""


def _options(dsn: str, seq: str) -> tuple[object, ...]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(_OPTIONS, [seq]).fetchone()
        assert row is not None
        return tuple(row)


def test_sequences_are_created_altered_and_owned_without_moving_their_value(fresh_dsn: str) -> None:
    first = converge(fresh_dsn, SPEC)
    kinds = [c.kind for c in first.changes]
    assert kinds.index("create_table") < kinds.index("sequence_owned_by")  # OWNED BY once the table exists
    assert _options(fresh_dsn, "batch_seq") == ("integer", 5, 10, 100000, 50, 4, True)
    assert scalar(fresh_dsn, "SELECT d.refobjsubid FROM pg_depend d WHERE d.objid = 'order_no'::regclass "
                             "AND d.deptype = 'a'") == 2
    execute(fresh_dsn, "SELECT nextval('batch_seq'), nextval('batch_seq')")  # 50, 55
    changed = SPEC.replace("increment: 5", "increment: 2").replace("cycle: true", "cycle: false")
    changed = changed.replace("  owned_by: orders.ticket\n", "")
    p = plan(fresh_dsn, changed)
    by = {c.kind: c for c in p.changes}
    assert set(by) == {"alter_sequence", "sequence_owned_by"}, [c.description for c in p.changes]
    alter = by["alter_sequence"]
    assert alter.sql == ('ALTER SEQUENCE "public"."batch_seq" INCREMENT BY 2 NO CYCLE',)
    assert alter.inverse_sql == ('ALTER SEQUENCE "public"."batch_seq" INCREMENT BY 5 CYCLE',) and not alter.breaking
    last = scalar(fresh_dsn, "SELECT last_value FROM batch_seq")  # 65: a session cached 4 values
    apply(fresh_dsn, p)
    assert plan(fresh_dsn, changed).empty
    assert scalar(fresh_dsn, "SELECT nextval('batch_seq')") == last + 2  # type: ignore[operator]  # the position is kept
    execute(fresh_dsn, *(alter.inverse_sql or ()))
    assert _options(fresh_dsn, "batch_seq")[1] == 5


def test_locks_of_alter_sequence(fresh_dsn: str) -> None:
    converge(fresh_dsn, SPEC)
    p = plan(fresh_dsn, SPEC.replace("cache: 4", "cache: 8"))
    (stmt,) = p.changes[0].sql
    with psycopg.connect(fresh_dsn, autocommit=True) as conn, conn.transaction():
        conn.execute(stmt.encode())
        locks = conn.execute("SELECT c.relname, l.mode FROM pg_locks l JOIN pg_class c ON c.oid = l.relation "
                             "WHERE l.pid = pg_backend_pid() AND c.relnamespace = 'public'::regnamespace").fetchall()
    assert {(str(r), str(m)) for r, m in locks} <= {("batch_seq", "ShareRowExclusiveLock"), ("batch_seq", "RowExclusiveLock")}
    assert not p.changes[0].hazards  # no table lock, no scan: a concurrent nextval waits for the instant


def test_undeclared_sequences_stay_and_column_sequences_are_the_columns(fresh_dsn: str) -> None:
    execute(fresh_dsn, "CREATE SEQUENCE loose START 7; CREATE TABLE t (id serial PRIMARY KEY, "
                       "code int GENERATED ALWAYS AS IDENTITY)")
    spec = "table: t\ncolumns: [{name: id, type: serial, primary_key: true}, {name: code, type: integer, identity: always}]\n"
    p = plan(fresh_dsn, spec)
    assert p.empty, [c.description for c in p.changes]
    assert scalar(fresh_dsn, "SELECT to_regclass('loose')::text") == "loose"
    for seq in ("t_id_seq", "t_code_seq"):
        p = plan(fresh_dsn, f"- sequence: {seq}\n  cache: 3\n- {spec.replace(chr(10), chr(10) + '  ')}")
        assert any("belongs to column" in r for r in p.refusals), p.refusals


def test_a_current_value_outside_the_new_range_is_refused(fresh_dsn: str) -> None:
    converge(fresh_dsn, SPEC)
    execute(fresh_dsn, "SELECT setval('batch_seq', 90000)")
    p = plan(fresh_dsn, SPEC.replace("maxvalue: 100000", "maxvalue: 1000"))
    assert any("current value 90000 is outside" in r for r in p.refusals), p.refusals


BAD = [
    ("as: integer", "as: smallint", "MAXVALUE 100000 is out of range for a sequence of type smallint", "[0].maxvalue"),
    ("start: 50", "start: 5", "START 5 is outside MINVALUE 10", "[0].start"),
    ("increment: 5", "increment: 0", "must not be zero", "[0].increment"),
    ("cache: 4", "cache: 0", "CACHE 0 must be at least 1", "[0].cache"),
    ("as: integer", "as: numeric", "expected smallint, integer or bigint", "[0].as"),
    ("owned_by: orders.ticket", "owned_by: other.orders.ticket", "in its own schema", "[1].owned_by"),
    ("cycle: true", "cycle: true\n  restart: 3", "unknown key", "[0].restart"),
]


@pytest.mark.parametrize(("old", "new", "message", "key"), BAD,
                         ids=["type_range", "start", "increment", "cache", "type", "schema", "key"])
def test_bad_sequence_options_name_file_line_and_key(old: str, new: str, message: str, key: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec_text(SPEC.replace(old, new), "seqs.yaml")
    assert exc.value.exit_code == 2
    hits = [p for p in exc.value.problems if message in p.message]
    assert hits and hits[0].file == "seqs.yaml" and hits[0].line and hits[0].key == key, exc.value.problems


def test_owned_by_a_missing_column_is_exit_2_and_nothing_changes(fresh_dsn: str) -> None:
    with pytest.raises(SpecError) as exc:
        apply(fresh_dsn, plan(fresh_dsn, SPEC.replace("owned_by: orders.ticket", "owned_by: orders.nope")))
    (problem,) = exc.value.problems
    assert problem.key == "[1].owned_by" and problem.line == 11 and "orders.nope" in problem.message
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_class WHERE relkind = 'S'") == 0


DB = """
CREATE SEQUENCE batch_seq AS integer INCREMENT 3 START 40 MINVALUE 4 CACHE 2;
CREATE TABLE m (id bigint NOT NULL, taken date NOT NULL, PRIMARY KEY (id, taken)) PARTITION BY RANGE (taken);
CREATE TABLE m_old PARTITION OF m FOR VALUES FROM (MINVALUE) TO ('2024-01-01');
CREATE TABLE m_rest PARTITION OF m DEFAULT;
CREATE SEQUENCE m_id OWNED BY m.id;
"""


def test_cli_export_then_plan_check_and_bad_bound_exit_2(tmp_path: Path, fresh_dsn: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    execute(fresh_dsn, DB)
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database: {{dsn: '{fresh_dsn}'}}\nschemas: schemas/\nlock_timeout: 1s\n")
    code, out, _ = run_cli(capsys, "--config", str(cfg), "--format", "json", "export", "--schema", "public")
    doc = json.loads(out)
    assert code == 0 and sorted(doc["files"]) == ["public.batch_seq.sequence.yaml", "public.m.yaml", "public.m_id.sequence.yaml"]
    assert not [u for u in doc["not_expressed"] if u["kind"] in ("partition", "partitioned_table", "sequence")], doc
    text = (tmp_path / "schemas" / "public.m.yaml").read_text()
    assert "partition_by:" in text and "- MINVALUE" in text and "default: true" in text
    assert "owned_by: m.id" in (tmp_path / "schemas" / "public.m_id.sequence.yaml").read_text()
    code, out, _ = run_cli(capsys, "--config", str(cfg), "plan", "--check")
    assert code == 0 and "No changes" in out, out
    spec = tmp_path / "schemas" / "public.m.yaml"
    spec.write_text(text + "- {name: m_bad, from: ['2023-06-01'], to: ['2025-01-01']}\n")
    code, _, err = run_cli(capsys, "--config", str(cfg), "plan")
    assert code == 2 and "public.m.yaml" in err and "overlaps partition m_old" in err and "partitions[2]" in err, err
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_inherits WHERE inhparent = 'm'::regclass") == 2


def test_a_sequence_named_like_a_declared_table_is_exit_2(fresh_dsn: str) -> None:
    with pytest.raises(SpecError) as exc:
        plan(fresh_dsn, SPEC.replace("sequence: batch_seq", "sequence: orders"))
    assert any("has the name of a table" in p.message and p.key == "[0].sequence" for p in exc.value.problems)
