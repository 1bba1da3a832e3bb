"""Small helpers shared by the schema tests: plan/apply against a real database by DSN."""

from __future__ import annotations

from collections.abc import Sequence

import psycopg

from migrate_assets.schema.apply import ApplyOptions, ApplyResult, apply_plan
from migrate_assets.schema.model import Table
from migrate_assets.schema.plan import Plan
from migrate_assets.schema.planner import PlanOptions, build_plan
from migrate_assets.schema.spec import parse_spec_text


def tables(text: str, file: str = "spec.yaml") -> list[Table]:
    return parse_spec_text(text, file)


def plan(dsn: str, desired: str | Sequence[Table], **opts: object) -> Plan:
    want = tables(desired) if isinstance(desired, str) else list(desired)
    with psycopg.connect(dsn, autocommit=True) as conn:
        return build_plan(conn, want, PlanOptions(**opts))  # type: ignore[arg-type]


def apply(dsn: str, p: Plan, **opts: object) -> ApplyResult:
    with psycopg.connect(dsn, autocommit=True) as conn:
        return apply_plan(conn, p, ApplyOptions(**opts))  # type: ignore[arg-type]


def converge(dsn: str, desired: str | Sequence[Table], **apply_opts: object) -> Plan:
    """Plan, apply (warn policy unless told otherwise), then assert the next plan is empty. Returns the first plan."""
    apply_opts.setdefault("on_breaking_change", "warn")
    first = plan(dsn, desired)
    apply(dsn, first, **apply_opts)
    again = plan(dsn, desired)
    assert again.empty, [c.description + " :: " + "; ".join(c.sql) for c in again.changes] + list(again.refusals)
    return first


def execute(dsn: str, *statements: str) -> None:
    with psycopg.connect(dsn, autocommit=True) as conn:
        for s in statements:
            conn.execute(s.encode())


def scalar(dsn: str, query: str, *params: object) -> object:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query.encode(), list(params) or None).fetchone()
        return row[0] if row else None
