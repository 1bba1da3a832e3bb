"""Service fixtures shared by every test: real PostgreSQL (and, for `stack` tests, the whole local stack).

`pg_cluster` is one private cluster for the session; `fresh_dsn` gives each test its own empty database in it,
so tests never see each other's tables and can run in any order.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from migrate_assets.local import postgres, procs, stack

#: set by `make test`, which starts the stack once before pytest and stops it afterwards
STATE_ENV = "MIGRATE_ASSETS_TEST_STATE_DIR"


@pytest.fixture(scope="session")
def stack_info() -> Iterator[stack.StackInfo]:
    """The whole local stack: the one `make test` started, or one started (and stopped) for this session."""
    given = os.environ.get(STATE_ENV)
    if given:
        info, _ = stack.up(Path(given))  # idempotent: keeps healthy parts, restarts dead ones
        yield info
        return
    state = Path(tempfile.mkdtemp(prefix="migrate-assets-stack-"))
    # standalone: no group rebalance on every connector create/delete (~3 s each on Tansu); the
    # distributed mode is covered by tests that start a `private_worker`
    info, _ = stack.up(state, connect_mode="standalone")
    try:
        yield info
    finally:
        stack.down(state, purge=True)


@pytest.fixture(scope="session")
def pg_cluster() -> Iterator[postgres.PostgresInfo]:
    """PostgreSQL only: the test stack's cluster when `make test` runs one, else a private one."""
    given = os.environ.get(STATE_ENV)
    if given:
        info = stack.load_state(Path(given).resolve())
        if "postgres" in info.parts and stack.part_healthy("postgres", info.parts["postgres"]):
            part = info.parts["postgres"]
            yield postgres.PostgresInfo(port=part["port"], pid=part["pid"], datadir=part["datadir"])
            return
    root = Path(tempfile.mkdtemp(prefix="migrate-assets-pg-"))
    info_pg = postgres.start(root / "pg", procs.free_port())
    try:
        yield info_pg
    finally:
        postgres.stop(info_pg.pid)


@pytest.fixture(scope="session")
def pg_admin_dsn(pg_cluster: postgres.PostgresInfo) -> str:
    return pg_cluster.dsn


def _create_db(admin_dsn: str, name: str) -> str:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    return admin_dsn.rsplit("/", 1)[0] + "/" + name


def _drop_db(admin_dsn: str, name: str) -> None:
    with psycopg.connect(admin_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


@pytest.fixture
def fresh_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """DSN of a new, empty database, dropped after the test."""
    name = "t_" + uuid.uuid4().hex[:12]
    dsn = _create_db(pg_admin_dsn, name)
    try:
        yield dsn
    finally:
        _drop_db(pg_admin_dsn, name)


@pytest.fixture
def fresh_db_factory(pg_admin_dsn: str) -> Iterator[object]:
    """Call it to get further empty databases within one test."""
    made: list[str] = []

    def make() -> str:
        name = "t_" + uuid.uuid4().hex[:12]
        made.append(name)
        return _create_db(pg_admin_dsn, name)

    try:
        yield make
    finally:
        for name in made:
            _drop_db(pg_admin_dsn, name)


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the CLI as a subprocess (no inherited config file)."""
    env = dict(os.environ)
    env.pop("MIGRATE_ASSETS_CONFIG", None)
    return env


@pytest.fixture
def stack_dsn(stack_info: stack.StackInfo) -> Iterator[str]:
    """A new, empty database on the stack's own PostgreSQL (the one Debezium can reach)."""
    name = "s_" + uuid.uuid4().hex[:12]
    dsn = _create_db(stack_info.pg_dsn, name)
    try:
        yield dsn
    finally:
        _drop_db(stack_info.pg_dsn, name)


class Service:
    """A service process a test may stop and start again for real (same port, same state)."""

    def __init__(self, start: object, url: str) -> None:
        self._start = start
        self.url = url
        self.pid: int | None = None

    def start(self) -> None:
        self.pid = self._start()  # type: ignore[operator]

    def stop(self) -> None:
        procs.kill(self.pid, grace=10)
        self.pid = None


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[Service]:
    """A registry of this test's own (tests that stop the registry must not stop the shared one)."""
    port = procs.free_port()
    svc = Service(lambda: stack._start_registry(tmp_path, port), f"http://127.0.0.1:{port}")
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()


@pytest.fixture
def private_worker(stack_info: stack.StackInfo, tmp_path: Path) -> Iterator[Service]:
    """A distributed Kafka Connect worker (own group and topics) that a test may stop and start."""
    from migrate_assets.local import connect

    port = procs.free_port()
    group = "w" + uuid.uuid4().hex[:6]
    svc = Service(lambda: connect.start(tmp_path / "worker", stack_info.bootstrap, port, group=group),
                  f"http://127.0.0.1:{port}")
    svc.start()
    try:
        yield svc
    finally:
        svc.stop()
