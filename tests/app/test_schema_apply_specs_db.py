"""Specs stay true on a real database: after `contract` and `abort` the spec file says what the table holds
(`plan --check` exits 0 without a hand edit, comments kept), and a column the spec lacks is reported as
"in the database but not in FILE", not as a DROP to run."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from tests.support import run_cli

SPEC = """\
# the shop's customers (owned by the data team)
table: public.customers
columns:
  - {name: id, type: integer, primary_key: true}   # key
  - name: name
    type: text     # display name
  - {name: amount, type: integer, nullable: true}  # cents
"""


@pytest.fixture
def project(fresh_dsn: str, tmp_path: Path) -> Path:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE customers (id integer PRIMARY KEY, name text NOT NULL, amount integer)")
        conn.execute("INSERT INTO customers SELECT g, 'n' || g, g FROM generate_series(1, 50) g")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "customers.yaml").write_text(SPEC)
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(yaml.safe_dump({"database": {"dsn": fresh_dsn}, "schemas": ["schemas/"]}))
    return cfg


def _change(tmp: Path, body: str) -> str:
    p = tmp / "change.yaml"
    p.write_text("table: public.customers\noperations:\n" + body)
    return str(p)


def test_contract_writes_the_new_type_back(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "plan", "--check", config=project).code == 0
    cf = _change(project.parent, "  - change_type: {column: amount, to_type: bigint}\n")
    assert run_cli(capsys, "expand", cf, config=project).code == 0
    ran = run_cli(capsys, "contract", cf, config=project, fmt="json")
    assert ran.code == 0, ran
    spec = ran.doc["spec"]
    assert spec["status"] == "written" and spec["file"].endswith("customers.yaml"), spec
    text = (project.parent / "schemas" / "customers.yaml").read_text()
    assert text == SPEC.replace("{name: amount, type: integer, nullable: true}",
                                "{name: amount, type: bigint, nullable: true}")
    assert run_cli(capsys, "plan", "--check", config=project).code == 0


def test_abort_leaves_the_spec_as_it_was(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cf = _change(project.parent, "  - rename_column: {from: name, to: full_name}\n")
    assert run_cli(capsys, "expand", cf, config=project).code == 0
    ran = run_cli(capsys, "abort", cf, config=project, fmt="json")
    assert ran.code == 0, ran
    assert ran.doc["spec"]["status"] == "unchanged"
    assert (project.parent / "schemas" / "customers.yaml").read_text() == SPEC
    assert run_cli(capsys, "plan", "--check", config=project).code == 0


def test_a_column_missing_from_the_spec_is_said_so(project: Path, fresh_dsn: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE customers ADD COLUMN note text")
    spec_file = str(project.parent / "schemas" / "customers.yaml")
    ran = run_cli(capsys, "plan", "--check", config=project, fmt="json")
    assert ran.code == 4
    assert ran.doc["spec_gaps"] == [f"column note of public.customers is in the database but not in {spec_file}"]
    text = run_cli(capsys, "plan", config=project).out
    assert f"column note of public.customers is in the database but not in {spec_file}" in text
    assert "declare these columns in their spec files" in text
    md = run_cli(capsys, "plan", config=project, fmt="markdown").out
    assert "**Spec behind the database:** column note" in md


def test_contract_of_a_rename_renames_the_spec_column(project: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cf = _change(project.parent, "  - rename_column: {from: name, to: full_name}\n")
    assert run_cli(capsys, "expand", cf, config=project).code == 0
    ran = run_cli(capsys, "contract", cf, config=project, fmt="json")
    assert ran.code == 0, ran
    assert ran.doc["spec"]["status"] == "written", ran.doc["spec"]
    assert (project.parent / "schemas" / "customers.yaml").read_text() == SPEC.replace("name: name", "name: full_name")
    assert run_cli(capsys, "plan", "--check", config=project).code == 0
