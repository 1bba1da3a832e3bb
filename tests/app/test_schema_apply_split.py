"""A spec edit of a pipeline table becomes the operations a change file would hold (issue 16 item 1): rename
through `renamed_from`, type change, nullability, default, add and drop — on a real database, no layers needed."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from migrate_assets.app.schema_apply import split
from migrate_assets.config import load_config
from migrate_assets.resources import database

SPEC = """\
table: public.orders
columns:
  - {name: id, type: integer, primary_key: true}
  - {name: customer_name, type: text, renamed_from: [customer]}
  - {name: total, type: bigint, nullable: true}
  - {name: state, type: text, default: "'new'::text"}
  - {name: note, type: text, nullable: true}
indexes:
  - {name: orders_state, columns: [state]}
"""


@pytest.fixture
def cfg_path(fresh_dsn: str, tmp_path: Path) -> Path:
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE orders (id integer PRIMARY KEY, customer text NOT NULL, total integer, "
                     "state text NOT NULL, legacy text)")
        conn.execute("CREATE TABLE other (id integer PRIMARY KEY)")
    (tmp_path / "schemas").mkdir()
    (tmp_path / "schemas" / "orders.yaml").write_text(SPEC)
    (tmp_path / "schemas" / "other.yaml").write_text(
        "table: other\ncolumns:\n  - {name: id, type: integer, primary_key: true}\n"
        "  - {name: x, type: text, nullable: true}\n")
    path = tmp_path / "migrate.yaml"
    path.write_text(yaml.safe_dump({"database": {"dsn": fresh_dsn}, "schemas": ["schemas/"],
                                    "pipelines": [{"table": "public.orders"}]}))
    return path


def test_spec_edit_becomes_change_file_operations(cfg_path: Path) -> None:
    cfg = load_config(str(cfg_path))
    plan = database.schema_plan(cfg)
    with database.schema_connection(cfg, read_only=True) as conn:
        parts = split(conn, cfg, plan, database.specs(cfg))
    [change] = parts.changes
    assert change.qualified == "public.orders"
    assert sorted((o.to_dict() for o in change.operations), key=str) == sorted([
        {"rename_column": {"from": "customer", "to": "customer_name"}},
        {"change_type": {"column": "total", "to_type": "bigint"}},
        {"set_default": {"column": "state", "default": "'new'::text"}},
        {"add_column": {"name": "note", "type": "text", "nullable": True}},
        {"drop_column": {"column": "legacy"}},
    ], key=str)
    # what the pipeline does not see stays in the direct plan: the index, and every change of other tables
    assert sorted((c.table, c.kind) for c in parts.direct.changes) == [
        ("public.orders", "add_index"), ("public.other", "add_column")]
    assert parts.refusals == [] and parts.expanding == []


def test_a_primary_key_change_of_a_pipeline_table_is_refused(cfg_path: Path) -> None:
    spec = cfg_path.parent / "schemas" / "orders.yaml"
    spec.write_text(SPEC.replace("{name: id, type: integer, primary_key: true}", "{name: id, type: integer}")
                    + "primary_key: [id, state]\n")
    cfg = load_config(str(cfg_path))
    plan = database.schema_plan(cfg)
    with database.schema_connection(cfg, read_only=True) as conn:
        parts = split(conn, cfg, plan, database.specs(cfg))
    assert parts.refusals and all("public.orders" in r and "change file" in r for r in parts.refusals)


def test_constraints_of_a_pipeline_table_run_directly(cfg_path: Path) -> None:
    """A CHECK or FOREIGN KEY changes no published column: the plan keeps it direct, nothing for the saga."""
    spec = cfg_path.parent / "schemas" / "orders.yaml"
    spec.write_text(SPEC.replace("customer_name, type: text, renamed_from: [customer]", "customer, type: text")
                    .replace("{name: total, type: bigint, nullable: true}", "{name: total, type: integer, "
                             "nullable: true}")
                    .replace("{name: state, type: text, default: \"'new'::text\"}", "{name: state, type: text}")
                    .replace("  - {name: note, type: text, nullable: true}\n", "  - {name: legacy, type: text, "
                             "nullable: true}\n  - {name: other_id, type: integer, nullable: true}\n")
                    + "checks:\n  - {name: orders_total_positive, expression: total > 0}\n"
                    + "foreign_keys:\n  - {name: orders_other_fk, columns: [other_id], "
                      "references: {table: public.other, columns: [id]}}\n")
    with psycopg.connect(load_config(str(cfg_path)).database.dsn, autocommit=True) as conn:
        conn.execute("ALTER TABLE orders ADD COLUMN other_id integer")
    cfg = load_config(str(cfg_path))
    plan = database.schema_plan(cfg)
    with database.schema_connection(cfg, read_only=True) as conn:
        parts = split(conn, cfg, plan, database.specs(cfg))
    assert parts.changes == [] and parts.refusals == []
    kinds = {(c.table, c.kind) for c in parts.direct.changes}
    assert {("public.orders", "add_check"), ("public.orders", "add_foreign_key")} <= kinds, kinds
