"""Test helpers for real CDC: create a Debezium connector, wait for it, read and decode its topic."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from typing import Any, cast

import httpx
import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from migrate_assets.local.stack import StackInfo
from migrate_assets.resources.debezium import connector_config
from migrate_assets.resources.topic_probe import read_events


def poll_until(check: Callable[[], Any], timeout: float, what: str, interval: float = 0.2) -> Any:
    """Poll `check` until truthy; HTTP timeouts/refusals (a worker rebalancing) count as 'not yet'."""
    deadline = time.monotonic() + timeout
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except httpx.TransportError as exc:
            last = exc  # not yet (an exception object is truthy: it must not end the wait)
        else:
            if last:
                return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what} (last: {last!r})")


def debezium_config(dsn_info: dict[str, Any], registry_url: str, tables: list[str], prefix: str) -> dict[str, str]:
    """The package's connector settings (migrate_assets.resources.debezium) on a fresh slot and publication."""
    uid = uuid.uuid4().hex[:8]
    dsn = make_conninfo(**{k: str(v) for k, v in dsn_info.items() if v is not None})
    return connector_config(dsn, registry_url, tables, prefix, slot=f"slot_{uid}", publication=f"pub_{uid}",
                            host="127.0.0.1", port=int(dsn_info["port"]))


def stack_debezium_config(stack: StackInfo, dsn: str, tables: list[str], prefix: str | None = None,
                          registry_url: str | None = None) -> dict[str, str]:
    """`debezium_config` for `tables` of the database `dsn` on the stack's PostgreSQL, through the stack's
    registry unless another is given, under a topic prefix of its own unless one is given."""
    return debezium_config({**conninfo_to_dict(dsn), "port": stack.parts["postgres"]["port"]},
                           registry_url or stack.registry_url, tables, prefix or "p" + uuid.uuid4().hex[:6])


def connect_request(method: str, url: str, timeout: float = 60, **kw: Any) -> httpx.Response:
    """A Kafka Connect REST call, asked again while a distributed worker's group rebalances (after a config change
    by any test): it then answers 409 ("stale configuration"; not "already exists", which is an answer) or 500
    ("a rebalance is expected") to the requests its herder serves, which is 'not yet', not the answer."""
    def once() -> httpx.Response | None:
        r = httpx.request(method, url, timeout=30, **kw)
        if (r.status_code == 409 and "already exists" not in r.text) or (
                r.status_code == 500 and "rebalance" in r.text.lower()):
            return None
        return r

    return cast(httpx.Response, poll_until(once, timeout, f"{method} {url} answered past a rebalance", 0.5))


def create_connector(connect_url: str, name: str, config: dict[str, str]) -> None:
    """POST the connector (asked again while the worker's group rebalances) and check it was created."""
    r = connect_request("POST", f"{connect_url}/connectors", json={"name": name, "config": config})
    assert r.status_code in (200, 201), r.text


def live_connector_config(connect_url: str, name: str, timeout: float = 60) -> dict[str, Any]:
    """A connector's config straight from Connect (asked again while the worker's group rebalances, e.g. right
    after a create or a restart)."""
    r = connect_request("GET", f"{connect_url}/connectors/{name}/config", timeout)
    assert r.status_code == 200, r.text
    return dict(r.json())


def connector_in(connect_url: str, name: str, state: str) -> bool:
    """The connector and every task of it (at least one) are in `state` (RUNNING, PAUSED …), as its status says."""
    r = httpx.get(f"{connect_url}/connectors/{name}/status", timeout=10)
    if r.status_code != 200:
        return False
    body = r.json()
    tasks = body.get("tasks", [])
    return body["connector"]["state"] == state and bool(tasks) and all(t["state"] == state for t in tasks)


def connector_running(connect_url: str, name: str) -> bool:
    return connector_in(connect_url, name, "RUNNING")


def start_connector(connect_url: str, name: str, config: dict[str, str], timeout: float = 60) -> None:
    """Create the connector and wait until it and every task of it are RUNNING."""
    create_connector(connect_url, name, config)
    poll_until(lambda: connector_running(connect_url, name), timeout, "connector RUNNING")


def delete_connector(connect_url: str, name: str, dsn: str) -> None:
    httpx.delete(f"{connect_url}/connectors/{name}", timeout=30)
    poll_until(
        lambda: httpx.get(f"{connect_url}/connectors/{name}", timeout=5).status_code == 404, 30, "connector gone"
    )
    drop_slots(dsn)


def drop_slots(dsn: str, timeout: float = 30) -> None:
    """Drop the database's replication slots once no connector holds them (the database can then be dropped)."""

    def dropped() -> bool:
        with psycopg.connect(dsn, autocommit=True) as conn:
            db = conn.info.dbname
            rows = conn.execute(
                "SELECT slot_name, active FROM pg_replication_slots WHERE database = %s", (db,)
            ).fetchall()
            for slot, active in rows:
                if not active:
                    conn.execute("SELECT pg_drop_replication_slot(%s)", (slot,))
            return not any(active for _, active in rows)

    poll_until(dropped, timeout, "replication slots released")


def read_values(bootstrap: str, topic: str, registry_url: str, idle: float = 1.0) -> list[dict[str, Any]]:
    """Every value in `topic`, decoded through the registry, read with the package's own reader (assign, no
    group join; until idle, so events still being written are read too)."""
    return [v for _, v in read_events(bootstrap, topic, registry_url, idle=idle)]
