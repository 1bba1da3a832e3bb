"""`migrate-assets export`: spec files from the live database, then `plan --check` exits 0 against it; what the
format cannot express is listed by name and kind; existing files are not replaced without --force; the docs'
spec examples parse."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from migrate_assets.schema.spec import parse_spec_text
from tests.schema.helpers import execute, scalar
from tests.support import run_cli

DB = """
CREATE SCHEMA billing;
CREATE TYPE billing.state AS ENUM ('open', 'paid');
CREATE TABLE public.customers (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, email text NOT NULL UNIQUE,
                               "Odd.Name" text COLLATE "C", created timestamptz(3) NOT NULL DEFAULT now());
CREATE TABLE billing.invoices (id serial PRIMARY KEY, customer_id bigint NOT NULL REFERENCES public.customers,
                               state billing.state NOT NULL DEFAULT 'open', span interval day to second(2),
                               amount numeric(12,2) CHECK (amount >= 0), UNIQUE NULLS NOT DISTINCT (customer_id, state));
CREATE INDEX invoices_state ON billing.invoices (state) WHERE state = 'open';
CREATE INDEX invoices_lower ON billing.invoices ((amount * 2));
CREATE VIEW billing.open_invoices AS SELECT * FROM billing.invoices WHERE state = 'open';
COMMENT ON TABLE billing.invoices IS 'one per order';
INSERT INTO public.customers (email) VALUES ('a@example.com');
INSERT INTO billing.invoices (customer_id, amount) VALUES (1, 10);
"""


def _project(tmp_path: Path, dsn: str) -> str:
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database: {{dsn: '{dsn}'}}\nschemas: schemas/\nlock_timeout: 1s\n")
    return str(cfg)


def test_export_then_plan_check_is_clean(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    execute(fresh_dsn, DB)
    cfg = _project(tmp_path, fresh_dsn)
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "json", "export", "--schema", "public", "--schema", "billing")
    doc = json.loads(out)
    assert code == 0 and doc["tables"] == 2
    assert sorted(doc["files"]) == ["billing.invoices.yaml", "billing.open_invoices.view.yaml", "billing.schema.yaml",
                                    "billing.state.enum.yaml", "public.customers.yaml"]
    listed = {(u["kind"], u["name"]) for u in doc["not_expressed"]}
    assert not any(kind == "view" for kind, _ in listed) and ("collation", "Odd.Name") not in listed
    assert "collation: C" in (tmp_path / "schemas" / "public.customers.yaml").read_text()
    assert ("index", "invoices_lower") not in listed  # an expression index is written to the spec
    text = (tmp_path / "schemas" / "billing.invoices.yaml").read_text()
    assert "interval day to second(2)" in text and "foreign_keys:" in text and "nulls_not_distinct: true" in text
    assert "amount * (2)::numeric" in text
    code, out, _ = run_cli(capsys, "--config", cfg, "plan", "--check")
    assert code == 0 and "No changes" in out, out
    # the export is written once; a second one would replace the files
    code, _, err = run_cli(capsys, "--config", cfg, "export", "--schema", "public")
    assert code == 2 and "--force" in err
    code, out, _ = run_cli(capsys, "--config", cfg, "export", "--schema", "public", "--force")
    assert code == 0 and "Exported 1 table(s)" in out
    assert scalar(fresh_dsn, "SELECT count(*) FROM billing.invoices") == 1


def test_docs_spec_examples_parse() -> None:
    doc = (Path(__file__).parents[2] / "docs" / "configuration.md").read_text()
    section = doc.split("## Table specs")[1].split("\n## ")[0]
    blocks = re.findall(r"```yaml\n(.*?)```", section, re.S)
    assert len(blocks) >= 2
    for b in blocks:
        got = parse_spec_text(b, "docs/configuration.md")
        assert [t for t in got if t.columns] or got.enums or got.schema_objects or got.domains or got.composites, b
