"""Independent check with a tool that is not ours: a database built by plan/apply from specs and one built
directly from hand-written DDL produce the same `pg_dump --schema-only` output."""

from __future__ import annotations

import shutil
import subprocess
from collections.abc import Callable

import pytest

from tests.schema.helpers import apply, converge, execute, plan

pytestmark = pytest.mark.skipif(shutil.which("pg_dump") is None, reason="pg_dump not installed")

V1 = """
table: accounts
columns:
  - {name: id, type: bigserial, primary_key: true}
  - {name: email, type: varchar(255), unique: true}
  - {name: Status, type: text, default: "'active'"}
  - {name: balance, type: "numeric(12,2)", nullable: true}
  - {name: created_at, type: timestamptz, default: now()}
  - {name: tags, type: "text[]", nullable: true}
indexes:
  - {name: accounts_created, columns: [created_at]}
  - {name: accounts_active, columns: [email], where: "\\"Status\\" = 'active'"}
"""
V1_DDL = [
    "CREATE TABLE accounts (id bigserial PRIMARY KEY, email varchar(255) NOT NULL UNIQUE, "
    "\"Status\" text NOT NULL DEFAULT 'active', balance numeric(12,2), created_at timestamptz NOT NULL DEFAULT now(), tags text[])",
    "CREATE INDEX accounts_created ON accounts (created_at)",
    "CREATE INDEX accounts_active ON accounts (email) WHERE \"Status\" = 'active'",
]
V2 = """
table: accounts
columns:
  - {name: id, type: bigserial, primary_key: true}
  - {name: email_address, type: varchar(255), unique: true, renamed_from: [email]}
  - {name: Status, type: text, default: "'active'", nullable: true}
  - {name: balance, type: "numeric(14,2)", nullable: true}
  - {name: created_at, type: timestamptz, default: now()}
  - {name: tier, type: text, default: "'bronze'"}
indexes:
  - {name: accounts_active, columns: [email_address], where: "\\"Status\\" = 'active'"}
  - {name: accounts_tier, columns: [tier, id], unique: true}
"""
V2_DDL = [
    "CREATE TABLE accounts (id bigserial PRIMARY KEY, email_address varchar(255) NOT NULL, "
    "\"Status\" text DEFAULT 'active', balance numeric(14,2), created_at timestamptz NOT NULL DEFAULT now(), "
    "tier text NOT NULL DEFAULT 'bronze')",
    "ALTER TABLE accounts ADD CONSTRAINT accounts_email_key UNIQUE (email_address)",
    "CREATE INDEX accounts_active ON accounts (email_address) WHERE \"Status\" = 'active'",
    "CREATE UNIQUE INDEX accounts_tier ON accounts (tier, id)",
]


def dump(dsn: str) -> list[str]:
    out = subprocess.run(["pg_dump", "--schema-only", "--no-owner", "-d", dsn], capture_output=True, text=True, check=True).stdout
    keep = []
    for line in out.splitlines():
        s = line.strip()
        if not s or s.startswith("--") or s.startswith("SET ") or s.startswith("SELECT pg_catalog.set_config") or s.startswith("\\"):
            continue
        keep.append(line.rstrip())
    return keep


def test_created_from_spec_equals_hand_written_ddl(fresh_db_factory: Callable[[], str]) -> None:
    ours, theirs = fresh_db_factory(), fresh_db_factory()
    converge(ours, V1)
    execute(theirs, *V1_DDL)
    assert dump(ours) == dump(theirs)


def test_evolved_by_plan_equals_hand_written_target(fresh_db_factory: Callable[[], str]) -> None:
    ours, theirs = fresh_db_factory(), fresh_db_factory()
    converge(ours, V1)
    execute(ours, "INSERT INTO accounts (email) VALUES ('a@x')")
    apply(ours, plan(ours, V2), on_breaking_change="warn")
    assert plan(ours, V2).empty
    execute(theirs, *V2_DDL)
    # the dropped `tags` column leaves no trace in the dump; everything else must match line for line
    assert dump(ours) == dump(theirs)
