"""Only what the spec manages is changed (issue 14, items 1 and 3), on a real PostgreSQL.

Acceptance cases in a table: the live DDL, the spec, the expected change kinds with their hazards; each case is
then applied, re-planned (must be empty: `plan --check` exit 0) and written to (an INSERT must work).
A database full of objects the spec format cannot express plans nothing, lists each of them as unmanaged,
and its catalog is byte-for-byte the same after `apply` under every breaking-change policy.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from migrate_assets.config import BREAKING_CHANGE_POLICIES
from migrate_assets.errors import BreakingChangeBlocked, UnsafeChangeRefused
from migrate_assets.schema.plan import Plan
from tests.schema.helpers import apply, execute, plan, scalar
from tests.support import run_cli

#: every object below is something the spec format has no words for
UNMANAGED_DDL = """
CREATE TABLE parent (id int PRIMARY KEY);
CREATE TABLE pair (
    id int PRIMARY KEY,
    a int NOT NULL,
    b int NOT NULL,
    parent_id int REFERENCES parent (id),
    during tsrange,
    name text COLLATE "C",
    CONSTRAINT pair_a_b_key UNIQUE (a, b),
    CONSTRAINT pair_b_key UNIQUE (b) DEFERRABLE,
    CONSTRAINT pair_a_positive CHECK (a > 0),
    CONSTRAINT pair_no_overlap EXCLUDE USING gist (during WITH &&)
);
CREATE INDEX pair_lower_name ON pair (lower(name));
CREATE INDEX pair_b_desc ON pair (b DESC);
CREATE INDEX pair_a_incl ON pair (a) INCLUDE (b);
CREATE INDEX pair_name_pattern ON pair (name text_pattern_ops);
CREATE INDEX pair_name_posix ON pair (name COLLATE "POSIX");
CREATE UNIQUE INDEX pair_parent_nnd ON pair (parent_id) NULLS NOT DISTINCT;
CREATE VIEW pair_view AS SELECT a, b FROM pair;
CREATE FUNCTION pair_touch() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RETURN NEW; END$$;
CREATE TRIGGER pair_touch BEFORE UPDATE ON pair FOR EACH ROW EXECUTE FUNCTION pair_touch();
INSERT INTO parent VALUES (1);
INSERT INTO pair VALUES (1, 1, 1, 1, '[2020-01-01,2020-01-02)', 'x');
"""

#: the spec written from that database: everything it can say, nothing more
UNMANAGED_SPEC = """
- table: parent
  columns: [{name: id, type: int, primary_key: true}]
- table: pair
  columns:
    - {name: id, type: int, primary_key: true}
    - {name: a, type: int}
    - {name: b, type: int, unique: true}
    - {name: parent_id, type: int, nullable: true}
    - {name: during, type: tsrange, nullable: true}
    - {name: name, type: text, nullable: true}
"""

EXPECTED_UNMANAGED = {
    ("unique", "pair_a_b_key"), ("unique", "pair_b_key"), ("check", "pair_a_positive"),
    ("foreign_key", "pair_parent_id_fkey"), ("exclusion", "pair_no_overlap"), ("index", "pair_lower_name"),
    ("index", "pair_b_desc"), ("index", "pair_a_incl"), ("index", "pair_name_pattern"),
    ("index", "pair_name_posix"), ("index", "pair_parent_nnd"), ("view", "public.pair_view"),
    ("trigger", "pair_touch"), ("collation", "name"),
}  # fmt: skip

#: the catalog as far as this database goes: constraints, indexes, triggers, views, columns with collations
CATALOG = """
SELECT 'con', conrelid::regclass::text || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint
 WHERE connamespace = 'public'::regnamespace
UNION ALL SELECT 'idx', indexdef FROM pg_indexes WHERE schemaname = 'public'
UNION ALL SELECT 'trg', pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal
UNION ALL SELECT 'view', pg_get_viewdef('public.pair_view'::regclass)
UNION ALL SELECT 'col', attrelid::regclass::text || '.' || attname || ' ' || format_type(atttypid, atttypmod)
       || ' ' || attnotnull || ' ' || attcollation::regcollation::text FROM pg_attribute
 WHERE attrelid IN ('public.pair'::regclass, 'public.parent'::regclass) AND attnum > 0 AND NOT attisdropped
UNION ALL SELECT 'seq', relname FROM pg_class WHERE relkind = 'S'
ORDER BY 1, 2
"""


def catalog(dsn: str) -> list[tuple[str, str]]:
    with psycopg.connect(dsn) as conn:
        return [(str(a), str(b)) for a, b in conn.execute(CATALOG).fetchall()]


def project(tmp_path: Path, dsn: str, spec: str, policy: str) -> Path:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    (tmp_path / "schemas" / "spec.yaml").write_text(spec)
    cfg = tmp_path / f"migrate-{policy}.yaml"
    cfg.write_text(f"database: {{dsn: '{dsn}'}}\nschemas: schemas/\non_breaking_change: {policy}\nlock_timeout: 2s\n")
    return cfg


def test_a_database_full_of_unmanaged_objects_is_left_exactly_as_it_is_under_every_policy(
    tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]
) -> None:
    execute(fresh_dsn, UNMANAGED_DDL)
    before = catalog(fresh_dsn)
    p = plan(fresh_dsn, UNMANAGED_SPEC)
    assert p.empty, [c.description + " :: " + "; ".join(c.sql) for c in p.changes] + list(p.refusals)
    assert {(u.kind, u.name) for u in p.unmanaged} == EXPECTED_UNMANAGED
    assert all(u.table == "public.pair" and u.reason for u in p.unmanaged)
    policies = BREAKING_CHANGE_POLICIES
    assert set(policies) == {"block", "warn", "expand_contract"}
    for policy in policies:
        cfg = project(tmp_path, fresh_dsn, UNMANAGED_SPEC, policy)
        r = run_cli(capsys, "plan", "--check", config=cfg, fmt="json")
        assert r.code == 0, (policy, r.out, r.err)
        assert {(u["kind"], u["name"]) for u in r.doc["unmanaged"]} == EXPECTED_UNMANAGED
        r = run_cli(capsys, "apply", "--auto-approve", config=cfg)
        assert r.code == 0, (policy, r.out, r.err)
        assert catalog(fresh_dsn) == before, policy
    r = run_cli(capsys, "plan", config=cfg)
    assert "Unmanaged (kept as they are, 14)" in r.out and "pair_a_b_key (UNIQUE over several columns)" in r.out
    execute(fresh_dsn, "INSERT INTO pair (id, a, b, parent_id, during, name) VALUES (2, 2, 2, NULL, NULL, 'y')")


def test_a_stored_plan_keeps_its_unmanaged_list(fresh_dsn: str) -> None:
    execute(fresh_dsn, UNMANAGED_DDL)
    p = plan(fresh_dsn, UNMANAGED_SPEC)
    back = Plan.from_json(p.to_json())
    assert back.unmanaged == p.unmanaged and json.loads(p.to_json())["unmanaged"][0].keys() == {"table", "kind", "name", "reason"}


@dataclass(frozen=True)
class Case:
    name: str
    ddl: str
    spec: str
    #: (kind, hazards) of each planned change, in plan order
    changes: tuple[tuple[str, frozenset[str]], ...]
    insert: str
    unmanaged: frozenset[tuple[str, str]] = frozenset()


T = "  - {name: id, type: int, primary_key: true}\n"
CASES = [
    Case(
        "unique on the key column, as the database was written",
        "CREATE TABLE c (cc int PRIMARY KEY); ALTER TABLE c ADD CONSTRAINT c_cc_key UNIQUE (cc)",
        "table: c\ncolumns: [{name: cc, type: int, primary_key: true, unique: true}]\n",
        (),
        "INSERT INTO c VALUES (1)",
        frozenset({("unique", "c_cc_key")}),
    ),
    Case(
        "a UNIQUE on the key column the spec does not mention is a breaking removal",
        "CREATE TABLE c (cc int PRIMARY KEY); ALTER TABLE c ADD CONSTRAINT c_cc_key UNIQUE (cc)",
        "table: c\ncolumns: [{name: cc, type: int, primary_key: true}]\n",
        (("drop_unique", frozenset({"access_exclusive_lock", "removes_constraint"})),),
        "INSERT INTO c VALUES (1)",
    ),
    Case(
        "a single-column UNIQUE the spec no longer lists is a breaking removal",
        "CREATE TABLE u (id int PRIMARY KEY, email text UNIQUE)",
        "table: u\ncolumns:\n" + T + "  - {name: email, type: text, nullable: true}\n",
        (("drop_unique", frozenset({"access_exclusive_lock", "removes_constraint"})),),
        "INSERT INTO u VALUES (1, 'a'), (2, 'a')",
    ),
    Case(
        "a plain index the spec no longer lists is a breaking removal",
        "CREATE TABLE i (id int PRIMARY KEY, a int); CREATE INDEX i_a_idx ON i (a)",
        "table: i\ncolumns:\n" + T + "  - {name: a, type: int, nullable: true}\n",
        (("drop_index", frozenset({"removes_index"})),),
        "INSERT INTO i VALUES (1, 1)",
    ),
    Case(
        "a primary key the spec no longer lists is a breaking removal",
        "CREATE TABLE k (id int PRIMARY KEY)",
        "table: k\ncolumns: [{name: id, type: int}]\n",
        (("drop_primary_key", frozenset({"access_exclusive_lock", "removes_constraint"})),),
        "INSERT INTO k VALUES (1), (1)",
    ),
    Case(
        "an index on a column with its own collation converges (issue 14 item 3)",
        'CREATE TABLE coll (id int PRIMARY KEY, name text COLLATE "C")',
        "table: coll\ncolumns:\n" + T + "  - {name: name, type: text, nullable: true}\nindexes: [{columns: [name]}]\n",
        (("add_index", frozenset({"long_running"})),),
        "INSERT INTO coll VALUES (1, 'b'), (2, 'a')",
        frozenset({("collation", "name")}),
    ),
    Case(
        "an index rebuilt under its name (new columns) is not a removal",
        "CREATE TABLE r (id int PRIMARY KEY, a int, b int); CREATE INDEX r_idx ON r (a)",
        "table: r\ncolumns:\n" + T + "  - {name: a, type: int, nullable: true}\n  - {name: b, type: int, nullable: true}\n"
        "indexes: [{name: r_idx, columns: [a, b]}]\n",
        (("drop_index", frozenset()), ("add_index", frozenset({"long_running"}))),
        "INSERT INTO r VALUES (1, 1, 1)",
    ),
]


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_acceptance_case(case: Case, fresh_dsn: str) -> None:
    execute(fresh_dsn, case.ddl)
    p = plan(fresh_dsn, case.spec)
    got = tuple((c.kind, frozenset(h.value for h in c.hazards)) for c in p.changes)
    assert got == case.changes, [(c.kind, c.sql) for c in p.changes]
    assert not p.refusals
    assert {(u.kind, u.name) for u in p.unmanaged} == case.unmanaged
    breaking = any(h in {"removes_constraint", "removes_index"} for _, hz in case.changes for h in hz)
    if breaking:
        assert not p.safe
        with pytest.raises(BreakingChangeBlocked):
            apply(fresh_dsn, p, on_breaking_change="block")
        assert plan(fresh_dsn, case.spec).fingerprint == p.fingerprint  # nothing changed
    apply(fresh_dsn, p, on_breaking_change="warn" if breaking else "block")
    again = plan(fresh_dsn, case.spec)
    assert again.empty, [(c.kind, c.sql) for c in again.changes]  # `plan --check` would exit 0
    execute(fresh_dsn, case.insert)


def test_collation_index_converges_through_the_cli(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    execute(fresh_dsn, 'CREATE TABLE coll (id int PRIMARY KEY, name text COLLATE "C")')
    cfg = project(tmp_path, fresh_dsn, next(c.spec for c in CASES if c.ddl.startswith("CREATE TABLE coll")), "block")
    assert run_cli(capsys, "plan", "--check", config=cfg).code == 4
    assert run_cli(capsys, "apply", "--auto-approve", config=cfg).code == 0
    r = run_cli(capsys, "plan", "--check", config=cfg)
    assert r.code == 0 and "No changes" in r.out
    assert scalar(fresh_dsn, "SELECT indcollation::text FROM pg_index WHERE indexrelid = 'coll_name_idx'::regclass") == str(
        scalar(fresh_dsn, "SELECT oid FROM pg_collation WHERE collname = 'C'")
    )


def test_a_wanted_index_named_like_an_unmanaged_one_is_refused_not_rebuilt(fresh_dsn: str) -> None:
    execute(fresh_dsn, "CREATE TABLE d (id int PRIMARY KEY, a int); CREATE INDEX d_a_idx ON d (a DESC)")
    p = plan(fresh_dsn, "table: d\ncolumns:\n" + T + "  - {name: a, type: int, nullable: true}\nindexes: [{columns: [a]}]\n")
    assert not p.changes and len(p.refusals) == 1 and "d_a_idx" in p.refusals[0] and "DESC" in p.refusals[0]
    with pytest.raises(UnsafeChangeRefused):
        apply(fresh_dsn, p, on_breaking_change="warn")
    assert scalar(fresh_dsn, "SELECT indexdef FROM pg_indexes WHERE indexname = 'd_a_idx'").endswith("(a DESC)")  # type: ignore[union-attr]


def test_dropping_a_column_that_unmanaged_objects_use_is_refused(fresh_dsn: str) -> None:
    """DROP COLUMN would silently take the multi-column UNIQUE, the DESC and INCLUDE indexes along (and trip
    over the view): the plan refuses and names them, under every policy; nothing changes."""
    execute(fresh_dsn, UNMANAGED_DDL)
    before = catalog(fresh_dsn)
    spec = UNMANAGED_SPEC.replace("    - {name: b, type: int, unique: true}\n", "")
    p = plan(fresh_dsn, spec)
    assert not p.changes and len(p.refusals) == 1, (p.changes, p.refusals)
    for name in ("unique pair_a_b_key", "unique pair_b_key", "index pair_b_desc", "index pair_a_incl", "view public.pair_view"):
        assert name in p.refusals[0], name
    assert "pair_a_positive" not in p.refusals[0] and "pair_lower_name" not in p.refusals[0]  # they do not use b
    for policy in ("block", "warn", "expand_contract"):
        with pytest.raises(UnsafeChangeRefused):
            apply(fresh_dsn, p, on_breaking_change=policy)
    assert catalog(fresh_dsn) == before


def test_dropping_a_column_only_managed_objects_use_still_plans(fresh_dsn: str) -> None:
    execute(fresh_dsn, "CREATE TABLE g (id int PRIMARY KEY, a int, b int UNIQUE); CREATE INDEX g_a_idx ON g (a)",
            "CREATE INDEX g_lower ON g ((id * 2))")
    spec = "table: g\ncolumns:\n" + T + "  - {name: a, type: int, nullable: true}\nindexes: [{name: g_a_idx, columns: [a]}]\n"
    p = plan(fresh_dsn, spec)
    assert [c.kind for c in p.changes] == ["drop_column"] and not p.refusals
    apply(fresh_dsn, p, on_breaking_change="warn")
    assert plan(fresh_dsn, spec).empty
    assert scalar(fresh_dsn, "SELECT count(*) FROM pg_indexes WHERE indexname = 'g_lower'") == 1
