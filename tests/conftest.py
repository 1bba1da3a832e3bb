"""Service fixtures shared by every test: real PostgreSQL (and, for `stack` tests, the whole local stack).

`pg_cluster` is one private cluster for the session; `fresh_dsn` gives each test its own empty database in it,
so tests never see each other's tables and can run in any order. `pipeline` / `make_pipeline` set up a real CDC
pipeline table (table + Debezium connector + registry subject + Iceberg table) on the stack.
"""

from __future__ import annotations

import os
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path
from typing import Any

import httpx
import pytest

from migrate_assets.local import postgres, procs, stack
from tests.pipeline import Pipeline, PipelineFactory
from tests.support import new_database

#: set by `make test`, which starts the stack once before pytest and stops it afterwards
STATE_ENV = "MIGRATE_ASSETS_TEST_STATE_DIR"


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "pipeline(**kw): arguments of `make_pipeline` for the `pipeline` fixture")


@pytest.fixture(scope="session")
def stack_info() -> Iterator[stack.StackInfo]:
    """The whole local stack: the one `make test` started, or one started (and stopped) for this session."""
    given = os.environ.get(STATE_ENV)
    if given:
        info, _ = stack.up(Path(given))  # idempotent: keeps healthy parts, restarts dead ones
        yield info
        return
    state = Path(tempfile.mkdtemp(prefix="migrate-assets-stack-"))
    # distributed, the stack's default (as `make test` runs it); a standalone worker is covered by the lifecycle test
    info, _ = stack.up(state)
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
            yield postgres.PostgresInfo.from_part(part)
            return
    root = Path(tempfile.mkdtemp(prefix="migrate-assets-pg-"))
    info_pg = postgres.start(root / "pg", procs.free_port())
    try:
        yield info_pg
    finally:
        postgres.stop(info_pg)
        postgres.discard(root / "pg")


@pytest.fixture(scope="session")
def pg_admin_dsn(pg_cluster: postgres.PostgresInfo) -> str:
    return pg_cluster.dsn


@pytest.fixture
def fresh_dsn(pg_admin_dsn: str) -> Iterator[str]:
    """DSN of a new, empty database, dropped after the test."""
    with new_database(pg_admin_dsn) as dsn:
        yield dsn


@pytest.fixture
def fresh_db_factory(pg_admin_dsn: str) -> Iterator[object]:
    """Call it to get further empty databases within one test."""
    with ExitStack() as made:
        yield lambda: made.enter_context(new_database(pg_admin_dsn))


@pytest.fixture
def cli_env(tmp_path: Path) -> dict[str, str]:
    """Environment for running the CLI as a subprocess (no inherited config file)."""
    env = dict(os.environ)
    env.pop("MIGRATE_ASSETS_CONFIG", None)
    return env


@pytest.fixture
def stack_dsn(stack_info: stack.StackInfo) -> Iterator[str]:
    """A new, empty database on the stack's own PostgreSQL (the one Debezium can reach)."""
    with new_database(stack_info.pg_dsn, prefix="s_") as dsn:
        yield dsn


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

    def __enter__(self) -> Service:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@pytest.fixture
def private_registry(tmp_path: Path) -> Iterator[Service]:
    """A registry of this test's own (tests that stop the registry must not stop the shared one)."""
    port = procs.free_port()
    with Service(lambda: stack._start_registry(tmp_path, port), f"http://127.0.0.1:{port}") as svc:
        yield svc


@pytest.fixture
def private_worker(stack_info: stack.StackInfo, tmp_path: Path) -> Iterator[Service]:
    """A distributed Kafka Connect worker (own group and topics) that a test may stop and start."""
    from migrate_assets.local import connect

    port = procs.free_port()
    group = "w" + uuid.uuid4().hex[:6]
    with Service(lambda: connect.start(tmp_path / "worker", stack_info.bootstrap, port, group=group),
                 f"http://127.0.0.1:{port}") as svc:
        yield svc


@pytest.fixture
def make_pipeline(stack_info: stack.StackInfo, stack_dsn: str, tmp_path: Path) -> Iterator[PipelineFactory]:
    """Call it to set up a real pipeline (see `PipelineFactory`); every one made is torn down after the test."""
    made: list[Pipeline] = []

    def make(*, extra_connector: dict[str, str] | None = None, settings: dict[str, Any] | None = None,
             **fields: Any) -> Pipeline:
        p = Pipeline(stack_info, stack_dsn, tmp_path, **fields).setup(extra_connector)
        made.append(p)
        if settings:
            p.write_config(**settings)
        return p

    yield make
    for p in made:
        if p.connect_url == stack_info.connect_url:
            p.teardown()  # the shared worker: a failing cleanup must fail the test
        else:
            try:
                p.teardown()
            except (httpx.TransportError, AssertionError):  # a private worker the test left stopped
                pass


@pytest.fixture
def pipeline(request: pytest.FixtureRequest, make_pipeline: PipelineFactory) -> Pipeline:
    """The default pipeline on `public.customers`; `@pytest.mark.pipeline(**kw)` passes `kw` to `make_pipeline`."""
    marker = request.node.get_closest_marker("pipeline")
    return make_pipeline(**(marker.kwargs if marker else {}))
