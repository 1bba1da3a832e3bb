"""Domains in spec files, on a real database: created (before the tables that use them), altered online (a new check
NOT VALID in the transaction, validated after commit), a changed base type refused, never dropped when undeclared,
the locks each statement takes read from pg_locks, and bad input exit 2 naming file, line and key."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from migrate_assets.errors import SpecError
from migrate_assets.schema.spec import parse_spec_text
from tests.schema.helpers import apply, converge, execute, plan, scalar

SPEC = """
- domain: amount
  type: numeric(12,2)
  default: "0"
  checks:
    - {name: amount_nonneg, expression: VALUE >= 0}
- domain: billing.code
  type: text
  collation: C
- table: invoices
  columns:
    - {name: id, type: integer, primary_key: true}
    - {name: total, type: public.amount}
    - {name: code, type: billing.code, nullable: true}
"""


def _domain(dsn: str, name: str) -> tuple[object, ...]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT format_type(t.typbasetype, t.typtypmod), t.typdefault, t.typnotnull, (SELECT string_agg("
            "c.conname || ' ' || pg_get_constraintdef(c.oid), ', ' ORDER BY c.conname) FROM pg_constraint c "
            "WHERE c.contypid = t.oid) FROM pg_type t WHERE t.oid = %s::regtype", [name]).fetchone()
        assert row is not None
        return tuple(row)


def _locks(dsn: str, stmt: str) -> set[tuple[str, str]]:
    with psycopg.connect(dsn, autocommit=True) as conn, conn.transaction(force_rollback=True):
        conn.execute(stmt.encode())
        rows = conn.execute(
            "SELECT coalesce(c.relname, l.classid::regclass::text), l.mode FROM pg_locks l "
            "LEFT JOIN pg_class c ON c.oid = l.relation WHERE l.pid = pg_backend_pid() "
            "AND l.locktype IN ('relation', 'object') AND (c.oid IS NULL OR c.relnamespace <> 'pg_catalog'::regnamespace)").fetchall()
    return {(str(r), str(m)) for r, m in rows}


def test_domains_are_created_before_their_tables_and_altered_online(fresh_dsn: str) -> None:
    first = converge(fresh_dsn, SPEC)
    kinds = [c.kind for c in first.changes]
    assert kinds.index("create_domain") < kinds.index("create_table")
    assert _domain(fresh_dsn, "amount") == ("numeric(12,2)", "0", False, "amount_nonneg CHECK ((VALUE >= (0)::numeric))")
    assert scalar(fresh_dsn, "SELECT collname FROM pg_collation WHERE oid = (SELECT typcollation FROM pg_type "
                             "WHERE oid = 'billing.code'::regtype)") == "C"
    execute(fresh_dsn, "INSERT INTO invoices SELECT g, g FROM generate_series(1, 20) g")
    changed = SPEC.replace('default: "0"', 'default: "1"\n  not_null: true').replace(
        "{name: amount_nonneg, expression: VALUE >= 0}", "{name: amount_cap, expression: VALUE < 1000}")
    p = plan(fresh_dsn, changed)
    by = {c.kind: c for c in p.changes}
    assert set(by) == {"set_domain_default", "drop_domain_check", "add_domain_check", "validate_domain_check",
                       "domain_not_null"}, [c.description for c in p.changes]
    assert by["add_domain_check"].sql == (
        'ALTER DOMAIN "public"."amount" ADD CONSTRAINT "amount_cap" CHECK ((VALUE < (1000)::numeric)) NOT VALID',)
    assert by["add_domain_check"].transactional and not by["validate_domain_check"].transactional
    assert "public.invoices.total" in by["validate_domain_check"].description
    assert by["drop_domain_check"].breaking and not by["set_domain_default"].hazards
    apply(fresh_dsn, p, on_breaking_change="warn")
    assert plan(fresh_dsn, changed).empty
    assert _domain(fresh_dsn, "amount") == ("numeric(12,2)", "1", True, "amount_cap CHECK ((VALUE < (1000)::numeric))")
    # the undo of each change puts the old state back
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        for c in reversed([c for c in p.changes if c.transactional]):
            for s in c.inverse_sql or ():
                conn.execute(s.encode())
    assert _domain(fresh_dsn, "amount")[:3] == ("numeric(12,2)", "0", False)


def test_locks_of_each_domain_statement(fresh_dsn: str) -> None:
    converge(fresh_dsn, SPEC)
    execute(fresh_dsn, "INSERT INTO invoices VALUES (1, 5)")
    add = 'ALTER DOMAIN amount ADD CONSTRAINT amount_cap CHECK (VALUE < 1000) NOT VALID'
    assert not any(m == "AccessExclusiveLock" or r == "invoices" for r, m in _locks(fresh_dsn, add))
    assert _locks(fresh_dsn, "ALTER DOMAIN amount SET DEFAULT 2") <= {("pg_type", "AccessExclusiveLock")}
    execute(fresh_dsn, add)
    assert ("invoices", "ShareLock") in _locks(fresh_dsn, "ALTER DOMAIN amount VALIDATE CONSTRAINT amount_cap")
    assert ("invoices", "ShareLock") in _locks(fresh_dsn, "ALTER DOMAIN amount SET NOT NULL")
    drop = _locks(fresh_dsn, "ALTER DOMAIN amount DROP CONSTRAINT amount_cap")
    assert drop == {("pg_constraint", "AccessExclusiveLock")}, drop
    # a not-yet-validated check the spec declares is validated by the next plan
    p = plan(fresh_dsn, SPEC.replace("- {name: amount_nonneg, expression: VALUE >= 0}",
                                     "- {name: amount_nonneg, expression: VALUE >= 0}\n"
                                     "    - {name: amount_cap, expression: (VALUE < (1000)::numeric)}"))
    assert [c.kind for c in p.changes] == ["validate_domain_check"], [c.description for c in p.changes]


def test_a_new_base_type_is_refused_and_undeclared_domains_stay(fresh_dsn: str) -> None:
    converge(fresh_dsn, SPEC)
    p = plan(fresh_dsn, SPEC.replace("numeric(12,2)", "numeric(14,2)"))
    assert any("base type would change from numeric(12,2) to numeric(14,2)" in r for r in p.refusals), p.refusals
    p = plan(fresh_dsn, SPEC.replace("  collation: C\n", ""))
    assert any("collation would change" in r for r in p.refusals), p.refusals
    execute(fresh_dsn, "CREATE DOMAIN loose AS int")
    rest = SPEC.split("- table: invoices")[1]
    p = plan(fresh_dsn, SPEC)
    assert p.empty
    assert "loose" not in " ".join(c.description for c in plan(fresh_dsn, SPEC + rest[:0]).changes)
    assert scalar(fresh_dsn, "SELECT to_regtype('loose')::text") == "loose"


def test_spelling_differences_are_read_by_postgres(fresh_dsn: str) -> None:
    converge(fresh_dsn, SPEC)
    same = SPEC.replace("numeric(12,2)", "NUMERIC(12, 2)").replace("VALUE >= 0", "(value >= 0)")
    assert plan(fresh_dsn, same).empty


BAD = [
    ("type: numeric(12,2)", "type: numeric(12,2); drop table x", "invalid type", "[0].type"),
    ('default: "0"', 'default: "0; drop table invoices"', "invalid default", "[0].default"),
    ("expression: VALUE >= 0}", "expression: VALUE >= 0) OR (true}", "invalid check", "[0].checks[0].expression"),
    ("collation: C", "collation: [C]", "expected a name", "[1].collation"),
    ("type: numeric(12,2)", "typ: numeric(12,2)", "unknown key", "[0].typ"),
]


@pytest.mark.parametrize(("old", "new", "message", "key"), BAD)
def test_bad_domain_documents_are_exit_2_with_file_line_and_key(old: str, new: str, message: str, key: str) -> None:
    with pytest.raises(SpecError) as exc:
        parse_spec_text(SPEC.replace(old, new), "domains.yaml")
    assert exc.value.exit_code == 2
    hits = [p for p in exc.value.problems if message in p.message]
    assert hits and hits[0].file == "domains.yaml" and hits[0].line and hits[0].key == key, exc.value.problems


@pytest.mark.parametrize(("old", "new", "key"), [
    ('default: "0"', "default: \"'x'\"", "[0].default"),
    ("expression: VALUE >= 0}", "expression: no_such_column > 0}", "[0].checks[0].expression"),
    ("type: numeric(12,2)", "type: no_such_type", "[0].type"),
    ("expression: VALUE >= 0}", "expression: VALUE + 1}", "[0].checks[0].expression"),
])
def test_what_postgres_refuses_is_exit_2_and_nothing_changes(fresh_dsn: str, old: str, new: str, key: str) -> None:
    with pytest.raises(SpecError) as exc:
        plan(fresh_dsn, SPEC.replace(old, new))
    (problem,) = exc.value.problems
    assert problem.key == key and problem.line and problem.file == "spec.yaml", problem
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_type WHERE typtype = 'd' AND typnamespace <> "
                             "'pg_catalog'::regnamespace AND typnamespace <> 'information_schema'::regnamespace") == 0


def test_a_check_postgres_cannot_validate_under_an_array_column_is_refused(fresh_dsn: str) -> None:
    converge(fresh_dsn, SPEC)
    execute(fresh_dsn, "CREATE TABLE bags (id int PRIMARY KEY, codes billing.code[])")
    p = plan(fresh_dsn, SPEC.replace("  collation: C\n", "  collation: C\n  checks: [{name: short, expression: "
                                                        "length(VALUE) < 9}]\n"))
    assert any("public.bags.codes" in r and "array or composite" in r for r in p.refusals), p.refusals
    assert not p.changes
    # the same when the array column is new in the same plan (VALIDATE would fail after commit otherwise)
    execute(fresh_dsn, "DROP TABLE bags")
    p = plan(fresh_dsn, SPEC.replace("  collation: C\n", "  collation: C\n  checks: [{name: short, expression: "
                                                        "length(VALUE) < 9}]\n")
             + "- table: bags\n  columns: [{name: id, type: integer, primary_key: true}, "
               "{name: codes, type: 'billing.code[]', nullable: true}]\n")
    assert any("public.bags.codes" in r for r in p.refusals), p.refusals


def test_the_documented_domain_composite_and_enum_examples_converge(fresh_dsn: str) -> None:
    import re

    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    blocks = [b for b in re.findall(r"```yaml\n(.*?)```", doc, re.S)
              if "domain:" in b or "composite:" in b or "drop: true            #" in b]
    assert len(blocks) == 3
    execute(fresh_dsn, "CREATE TYPE old_status AS ENUM ('draft', 'sent')")
    for b in blocks:
        p = converge(fresh_dsn, b)
        assert p.changes and not p.refusals
    assert scalar(fresh_dsn, "SELECT to_regtype('old_status')") is None


def test_cli_export_plan_check_and_refusals(fresh_dsn: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI: export writes domain and composite files, `plan --check` finds nothing, a bad check is exit 2
    naming file and key, and an enum `drop: true` still in use is exit 3 naming its user — nothing changed."""
    import json

    from tests.support import run_cli

    execute(fresh_dsn, "CREATE DOMAIN pos AS int CONSTRAINT pos_check CHECK (VALUE > 0); CREATE TYPE pair AS (a pos, "
                       "b text); CREATE TYPE st AS ENUM ('x'); CREATE TABLE t (id int PRIMARY KEY, p pair, s st)")
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database: {{dsn: '{fresh_dsn}'}}\nschemas: schemas/\nlock_timeout: 1s\n")
    code, out, _ = run_cli(capsys, "--config", str(cfg), "--format", "json", "export", "--schema", "public")
    doc = json.loads(out)
    assert code == 0 and {"public.pos.domain.yaml", "public.pair.composite.yaml"} <= set(doc["files"]), doc
    assert not [u for u in doc["not_expressed"] if u["kind"] in ("domain", "composite_type")], doc
    code, out, _ = run_cli(capsys, "--config", str(cfg), "plan", "--check")
    assert code == 0 and "No changes" in out, out
    dom = tmp_path / "schemas" / "public.pos.domain.yaml"
    text = dom.read_text()
    dom.write_text(text.replace("(VALUE > 0)", "(VALUE > 0) OR nope"))
    code, _, err = run_cli(capsys, "--config", str(cfg), "plan")
    assert code == 2 and "public.pos.domain.yaml" in err and "checks[0].expression" in err, err
    dom.write_text(text)
    (tmp_path / "schemas" / "public.st.enum.yaml").write_text("enum: st\nvalues: [x]\ndrop: true\n")
    code, out, err = run_cli(capsys, "--config", str(cfg), "apply", "--auto-approve")
    assert code == 3 and "column s of table t" in out + err, out + err
    assert scalar(fresh_dsn, "SELECT to_regtype('st')::text") == "st"
