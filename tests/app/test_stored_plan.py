"""The stored-plan use case (`migrate_assets.app.stored_plan`) on a real PostgreSQL: a reviewed plan is applied
only while the live table still has the fingerprint it was computed from and the specs still ask for the same
changes; a stale or mismatched plan changes nothing."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from migrate_assets.app.stored_plan import apply_stored_plan, read_stored_plan
from migrate_assets.config import ProjectConfig, load_config
from migrate_assets.errors import InvalidInputError, PlanMismatchError, StalePlanError
from migrate_assets.resources import database

SPEC = """\
table: public.customers
columns:
  - {name: id, type: integer, primary_key: true}
  - {name: name, type: text}
  - {name: note, type: text, nullable: true}
"""


@pytest.fixture
def project(fresh_dsn: str, tmp_path: Path) -> tuple[ProjectConfig, str]:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL)")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "customers.yaml").write_text(SPEC)
    path = tmp_path / "migrate.yaml"
    path.write_text(yaml.safe_dump({"database": {"dsn": fresh_dsn}, "schemas": ["schemas/"]}))
    cfg = load_config(str(path))
    stored = tmp_path / "plan.json"
    stored.write_text(database.schema_plan(cfg, []).to_json())
    return cfg, str(stored)


def _apply(cfg: ProjectConfig, path: str, **kw: object):  # type: ignore[no-untyped-def]
    with database.schema_connection(cfg) as conn:
        return apply_stored_plan(conn, cfg, path, database.specs(cfg), database.plan_options(cfg), **kw)  # type: ignore[arg-type]


def _columns(dsn: str) -> list[str]:
    with psycopg.connect(dsn) as conn:
        return [r[0] for r in conn.execute("SELECT column_name FROM information_schema.columns WHERE "
                                           "table_name = 'customers' ORDER BY ordinal_position")]


def test_a_fresh_stored_plan_is_applied_after_approval(project: tuple[ProjectConfig, str], fresh_dsn: str) -> None:
    cfg, path = project
    seen = []
    out = _apply(cfg, path, approve=lambda plan: seen.append(len(plan.changes)))
    assert seen == [1] and [c.kind for c in out.plan.changes] == [c.kind for c in read_stored_plan(path).changes]
    assert _columns(fresh_dsn) == ["id", "name", "note"]


def test_a_table_changed_since_the_plan_is_stale_and_nothing_runs(project: tuple[ProjectConfig, str],
                                                                 fresh_dsn: str) -> None:
    cfg, path = project
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE customers ADD COLUMN sneaky text")
    with pytest.raises(StalePlanError) as refused:
        _apply(cfg, path)
    assert refused.value.exit_code == 3 and refused.value.expected == read_stored_plan(path).fingerprint
    assert _columns(fresh_dsn) == ["id", "name", "sneaky"]


def test_specs_edited_since_the_plan_are_a_mismatch(project: tuple[ProjectConfig, str], fresh_dsn: str,
                                                    tmp_path: Path) -> None:
    cfg, path = project
    (tmp_path / "schemas" / "customers.yaml").write_text(SPEC.replace("name: note", "name: memo"))
    with pytest.raises(PlanMismatchError):
        _apply(load_config(str(tmp_path / "migrate.yaml")), path)
    assert _columns(fresh_dsn) == ["id", "name"]


def test_an_unreadable_plan_file_is_bad_input(tmp_path: Path) -> None:
    with pytest.raises(InvalidInputError) as bad:
        read_stored_plan(tmp_path / "missing.json")
    assert bad.value.exit_code == 2 and "missing.json" in str(bad.value)
