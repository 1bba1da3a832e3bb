"""A distributed Kafka Connect worker on the stack's broker survives connector churn.

On the old stand-in broker a distributed worker's herder could hang after validating a connector (a read to the
end of an internal topic that never completed), so `POST /connectors` answered HTTP 500 after 90 s. With Apache
Kafka every create and delete in a loop must be answered promptly and take effect.
"""

from __future__ import annotations

import time

import psycopg

from migrate_assets.local.stack import StackInfo
from tests.cdc import connect_request, connector_running, delete_connector, poll_until, stack_debezium_config
from tests.conftest import Service

ROUNDS = 3


def test_connectors_created_and_deleted_in_a_loop(private_worker: Service, stack_info: StackInfo,
                                                  stack_dsn: str) -> None:
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.churn (id integer PRIMARY KEY, v text)")
    url = private_worker.url
    slowest = 0.0
    for i in range(ROUNDS):
        name = f"churn-{i}"
        cfg = stack_debezium_config(stack_info, stack_dsn, ["public.churn"])
        t0 = time.monotonic()
        r = connect_request("POST", f"{url}/connectors", json={"name": name, "config": cfg})
        slowest = max(slowest, time.monotonic() - t0)
        assert r.status_code == 201, r.text
        poll_until(lambda n=name: connector_running(url, n), 60, f"{name} RUNNING")
        delete_connector(url, name, stack_dsn)
        assert connect_request("GET", f"{url}/connectors").json() == []
    assert slowest < 15, f"a create took {slowest:.1f}s"
