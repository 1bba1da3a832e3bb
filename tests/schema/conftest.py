"""A database shared by the tests of one module (each test uses its own tables or schema in it)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator

import psycopg
import pytest
from psycopg import sql


@pytest.fixture(scope="module")
def module_dsn(pg_admin_dsn: str) -> Iterator[str]:
    name = "m_" + uuid.uuid4().hex[:12]
    with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield pg_admin_dsn.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(pg_admin_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))
