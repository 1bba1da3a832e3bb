"""Helpers for expand–contract tests: a realistic table, change files, runner calls, catalog snapshots."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import psycopg
import pytest

from migrate_assets.expand import ChangeSet, parse_change_text, runner

ITEMS_DDL = """
CREATE TABLE items (
    id      bigint PRIMARY KEY,
    email   text NOT NULL,
    amount  integer DEFAULT 0,
    code    text,
    legacy  text NOT NULL,
    region  text,
    note    text
);
CREATE INDEX items_region_idx ON items (region);
"""


def make_items(dsn: str, rows: int) -> None:
    """`items` with `rows` rows: every third code is '' (not an integer), every other region NULL."""
    with psycopg.connect(dsn) as conn:
        conn.execute(ITEMS_DDL)
        conn.execute(
            "INSERT INTO items SELECT g, 'user' || g || '@example.com', g %% 100000, "
            "CASE WHEN g %% 3 = 0 THEN '' ELSE (g %% 1000)::text END, 'legacy' || g, "
            "CASE WHEN g %% 2 = 0 THEN 'us' END, 'n' FROM generate_series(1, %s) g",
            (rows,),
        )


def change(text: str, file: str = "change.yaml") -> ChangeSet:
    return parse_change_text(text, file)


def expand(dsn: str, ch: ChangeSet, **kw: Any) -> dict[str, Any]:
    with psycopg.connect(dsn) as conn:
        return runner.expand(conn, ch, runner.Options(**kw))


def status(dsn: str, ch: ChangeSet) -> Any:
    with psycopg.connect(dsn) as conn:
        return runner.status(conn, ch)


def columns(dsn: str, table: str = "items") -> list[tuple[str, str, bool]]:
    """(name, type, not null) in column order — what the table's shape is."""
    with psycopg.connect(dsn) as conn:
        return [
            (r[0], r[1], r[2])
            for r in conn.execute(
                "SELECT attname, format_type(atttypid, atttypmod), attnotnull FROM pg_attribute "
                "WHERE attrelid = %s::regclass AND attnum > 0 AND NOT attisdropped ORDER BY attnum",
                (table,),
            ).fetchall()
        ]


def helper_objects(dsn: str) -> list[str]:
    """Every function, trigger and constraint expand may have created (names start with _ma_)."""
    with psycopg.connect(dsn) as conn:
        rows = conn.execute(
            "SELECT proname FROM pg_proc WHERE proname LIKE '\\_ma\\_%' "
            "UNION ALL SELECT tgname FROM pg_trigger WHERE tgname LIKE '\\_ma\\_%' "
            "UNION ALL SELECT conname FROM pg_constraint WHERE conname LIKE '\\_ma\\_%'"
        ).fetchall()
    return sorted(r[0] for r in rows)


@pytest.fixture
def project(tmp_path: Path, fresh_dsn: str) -> Path:
    """A migrate.yaml for `fresh_dsn` in which public.items is a CDC pipeline table."""
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(
        f"database:\n  dsn: {fresh_dsn}\n  schema: public\nlock_timeout: 2s\n"
        "pipelines:\n  - table: public.items\n    connector: app-cdc\n"
    )
    return cfg


def cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "migrate_assets.cli", *args]
