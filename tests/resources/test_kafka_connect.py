"""`KafkaConnectClient` against the stack's real Kafka Connect worker running Debezium."""

from __future__ import annotations

import time
import uuid
from urllib.parse import quote

import psycopg
import pytest

from migrate_assets.errors import (
    ConnectorNotFoundError,
    LayerRequestError,
    LayerUnreachableError,
    TransientError,
)
from migrate_assets.local import procs
from migrate_assets.local.stack import StackInfo
from migrate_assets.redact import MASK, redact_config
from migrate_assets.resources import KafkaConnectClient
from tests.cdc import connect_request, delete_connector, poll_until, stack_debezium_config

pytestmark = pytest.mark.stack


def test_unreachable_worker_is_a_layer_error_after_retries() -> None:
    client = KafkaConnectClient(f"http://127.0.0.1:{procs.free_port()}", timeout=2, retries=2, backoff=0.05)
    t0 = time.monotonic()
    with pytest.raises(LayerUnreachableError) as err:
        client.status("anything")
    assert err.value.layer == "connector" and "3 attempt(s)" in str(err.value)
    assert time.monotonic() - t0 < 5


def test_missing_connector_is_a_semantic_error(stack_info: StackInfo) -> None:
    client = KafkaConnectClient(stack_info.connect_url, retries=1, backoff=0.05)
    name = "no such connector ?&=" + uuid.uuid4().hex[:4]  # needs URL encoding to reach the right route
    for call in (client.status, client.config, client.restart, client.pause, client.resume, client.delete):
        with pytest.raises(ConnectorNotFoundError) as err:
            call(name)
        assert err.value.name == name and not err.value.transient
    assert client.exists(name) is False
    assert name not in client.list()


def test_connector_lifecycle(stack_info: StackInfo, stack_dsn: str) -> None:
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.items (id int PRIMARY KEY, label text)")
    cfg = stack_debezium_config(stack_info, stack_dsn, ["public.items"])
    client = KafkaConnectClient(stack_info.connect_url, backoff=0.1)
    name = "kc " + uuid.uuid4().hex[:6]  # a space: every call must URL-encode the name
    client.create(name, cfg)
    try:
        assert name in client.list() and client.exists(name)
        # the same config again is this call's own connector (a POST that timed out can have landed) …
        assert client.create(name, cfg)["name"] == name
        # … another config under a taken name is refused
        with pytest.raises(LayerRequestError) as dup:
            client.create(name, {**cfg, "poll.interval.ms": "123"})
        assert dup.value.status == 409 and "already exists" in str(dup.value)

        running = client.wait_running(name, 60)
        assert running.running and running.tasks == ("RUNNING",)

        got = client.config(name)  # secrets masked: the engine never holds them
        assert {k: got[k] for k in cfg} == redact_config(cfg) and got["name"] == name
        assert got["database.password"] == MASK != cfg["database.password"]

        client.put_config(name, {**got, "poll.interval.ms": "200"})  # the masks are filled from the live config
        assert client.config(name)["poll.interval.ms"] == "200"
        live = connect_request("GET", f"{stack_info.connect_url}/connectors/{quote(name)}/config").json()
        assert live["database.password"] == cfg["database.password"]
        client.wait_running(name, 60)

        client.pause(name)
        poll_until(lambda: client.status(name).state == "PAUSED", 30, "connector PAUSED")
        with pytest.raises(TransientError) as stuck:
            client.wait_running(name, 1.0)
        assert "PAUSED" in str(stuck.value) and name in str(stuck.value)
        client.resume(name)
        client.wait_running(name, 60)

        t0 = time.monotonic()
        client.restart(name, include_tasks=True, only_failed=False)
        after = client.wait_running(name, 60)
        print(f"restart -> RUNNING in {time.monotonic() - t0:.2f}s")
        assert after.running
        client.restart(name, include_tasks=True, only_failed=True)  # nothing failed: accepted, still running
        assert client.wait_running(name, 30).running
    finally:
        delete_connector(stack_info.connect_url, name.replace(" ", "%20"), stack_dsn)
    assert not client.exists(name)
