"""Kafka Connect's REST API as the evolution engine needs it (`ConnectorLayer`), on httpx.

A distributed worker answers 409 while its group rebalances and 5xx while it (re)starts; both are retried
here with exponential backoff and jitter, as are refused connections. Whatever is left after the retries is
a typed error: `LayerUnreachableError` (no worker answered), `TransientError` (409/5xx persisted),
`ConnectorNotFoundError` (404) or `LayerRequestError` (any other 4xx: retrying cannot fix it).

Secrets stay in Kafka Connect: `config()` hands out the config with every secret value masked
(`migrate_assets.redact`), so plans, run records and Dagster outputs built from it never hold one, and
`put_config()` fills masked values back from the live config before writing. The URL may carry userinfo
(`http://user:PW@host:8083`; httpx sends it as Basic auth); messages show it without the password.
"""

from __future__ import annotations

import builtins
import time
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

import httpx

from migrate_assets.errors import (
    ConnectorNotFoundError,
    LayerRequestError,
    LayerUnreachableError,
    TransientError,
)
from migrate_assets.evolution.layers import ConnectorStatus, Layer
from migrate_assets.redact import (
    MASK,
    MaskedSecretMissing,
    config_secrets,
    dsn_secrets,
    redact_config,
    redact_url,
    remember,
    restore_masked,
    scrub,
)
from migrate_assets.schema.retry import backoff_delay

if TYPE_CHECKING:
    from migrate_assets.resources.topic_probe import LsnWatch

LAYER = Layer.CONNECTOR
_RETRY_STATUS = frozenset({409, 500, 502, 503, 504})


def _path(name: str) -> str:
    return "/connectors/" + quote(name, safe="")


class KafkaConnectClient:
    """`ConnectorLayer` plus create/delete/list, for one Kafka Connect cluster reached by `url`."""

    def __init__(
        self,
        url: str,
        timeout: float = 10.0,
        retries: int = 5,
        backoff: float = 0.5,
        max_backoff: float = 8.0,
        poll_interval: float = 0.25,
        bootstrap: str | None = None,
    ) -> None:
        self.url = url.rstrip("/")
        self.shown_url = redact_url(self.url)
        remember(*dsn_secrets(self.url))
        self.timeout, self.retries, self.backoff, self.max_backoff = (
            timeout,
            max(0, retries),
            backoff,
            max_backoff,
        )
        self.poll_interval = poll_interval
        #: Kafka, to read how far a Debezium connector has streamed (`streamed_past`); None: not read
        self.bootstrap = bootstrap
        self._watches: dict[str, LsnWatch] = {}
        # one pooled client: creating one per call costs ~50 ms (SSL context) and a new TCP connection; a plain
        # http:// worker gets no CA bundle loaded at all (~0.1 s per client)
        self._http = httpx.Client(timeout=timeout, verify=self.url.lower().startswith("https://"))

    # -- transport -------------------------------------------------------------------------------------------

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: dict[str, str] | None = None,
        connector: str = "",
    ) -> httpx.Response:
        """One REST call with retries; returns the successful response or raises a typed error."""
        last = ""
        for attempt in range(self.retries + 1):
            try:
                resp = self._http.request(method, self.url + path, json=json, params=params)
            except httpx.TransportError as exc:
                last = f"{type(exc).__name__}: {exc}"
                unreachable = True
            else:
                if resp.status_code < 400:
                    return resp
                message = _message(resp)
                if resp.status_code == 404 and connector:
                    raise ConnectorNotFoundError(connector, message)
                if resp.status_code not in _RETRY_STATUS or "already exists" in message:
                    raise LayerRequestError(
                        LAYER,
                        f"{method} {path} answered HTTP {resp.status_code}: {message}",
                        status=resp.status_code,
                    )
                last = f"HTTP {resp.status_code}: {message}"
                unreachable = False
            if attempt < self.retries:
                time.sleep(backoff_delay(attempt + 1, self.backoff, self.max_backoff))
        detail = f"{method} {self.shown_url}{path} failed after {self.retries + 1} attempt(s): {last}"
        if unreachable:
            raise LayerUnreachableError(LAYER, detail)
        raise TransientError(f"{LAYER}: {detail}")

    # -- ConnectorLayer --------------------------------------------------------------------------------------

    def status(self, name: str) -> ConnectorStatus:
        body = self.request("GET", _path(name) + "/status", connector=name).json()
        tasks = sorted(body.get("tasks", []), key=lambda t: t.get("id", 0))
        traces = [body["connector"].get("trace", "")] + [t.get("trace", "") for t in tasks]
        return ConnectorStatus(
            name=name,
            state=str(body["connector"]["state"]),
            tasks=tuple(str(t["state"]) for t in tasks),
            trace="\n".join(t for t in traces if t),
        )

    def _live_config(self, name: str) -> dict[str, str]:
        body = self.request("GET", _path(name) + "/config", connector=name).json()
        live = {str(k): str(v) for k, v in body.items()}
        remember(*config_secrets(live))
        return live

    def config(self, name: str) -> dict[str, str]:
        """The connector's config with every secret value masked (`redact.MASK`)."""
        return redact_config(self._live_config(name))

    def put_config(self, name: str, config: dict[str, str]) -> None:
        """Create or replace the config (Connect restarts the connector itself when it changed). Masked
        values are taken from the live config; a masked key the live config lacks is a LayerRequestError
        (writing the mask as a password would break the connector)."""
        cfg = {k: v for k, v in config.items() if k != "name"}
        if any(MASK in v for v in cfg.values()):
            live: dict[str, str] = {}
            try:
                live = self._live_config(name)
            except ConnectorNotFoundError:
                pass  # nothing to fill the masks from: restore_masked names them
            try:
                cfg = restore_masked(cfg, live)
            except MaskedSecretMissing as exc:
                raise LayerRequestError(LAYER, f"cannot write the config of {name!r}: the secret value(s) of "
                                               f"{exc} are masked and not in the live config") from None
        remember(*config_secrets(cfg))
        self.request("PUT", _path(name) + "/config", json=cfg)

    def restart(self, name: str, include_tasks: bool = True, only_failed: bool = False) -> None:
        params = {"includeTasks": str(include_tasks).lower(), "onlyFailed": str(only_failed).lower()}
        self.request("POST", _path(name) + "/restart", params=params, connector=name)

    def pause(self, name: str) -> None:
        self.request("PUT", _path(name) + "/pause", connector=name)

    def resume(self, name: str) -> None:
        self.request("PUT", _path(name) + "/resume", connector=name)

    def wait_running(self, name: str, timeout: float) -> ConnectorStatus:
        """Poll status until the connector and every task are RUNNING; TransientError names what was seen."""
        deadline = time.monotonic() + timeout
        seen: list[str] = []
        st: ConnectorStatus | None = None
        while True:
            try:
                st = self.status(name)
            except (TransientError, ConnectorNotFoundError) as exc:
                # a restart or a rebalance can briefly hide the connector or refuse the call
                state, st = f"error: {exc}", None
            if st is not None:
                if st.running:
                    return st
                state = f"{st.state} tasks={list(st.tasks)}"
            if not seen or seen[-1] != state:
                seen.append(state)
            if time.monotonic() >= deadline:
                trace = f"; last trace: {st.trace.splitlines()[0]}" if st and st.trace else ""
                raise TransientError(
                    f"{LAYER}: {name!r} not RUNNING after {timeout:g}s; states seen: {' -> '.join(seen)}{trace}"
                )
            time.sleep(self.poll_interval)

    def streamed_past(self, slot: str, lsn: int) -> bool:
        """Has the Debezium connector reading replication slot `slot` written a record at or past `lsn` to Kafka?

        Debezium confirms its slot only when Connect commits offsets (`offset.flush.interval.ms`, 60 s by
        default); its records carry `source.lsn` at once. The marker is the record Debezium writes to
        `<topic.prefix>.message` for each logical decoding message (the source's `write_heartbeat`), so it
        works on an idle table too. False when Kafka is not known or not answering, no connector uses the slot,
        or its messages are filtered out (`message.prefix.exclude.list`): the caller then waits for the slot."""
        if not self.bootstrap:
            return False
        watch = self._watches.get(slot)
        if watch is None:
            cfg = self._config_of_slot(slot)
            if cfg is None or not cfg.get("topic.prefix"):
                return False
            from migrate_assets.resources.topic_probe import LsnWatch  # confluent_kafka only when used

            watch = LsnWatch(self.bootstrap, cfg["topic.prefix"] + ".message",
                             cfg.get("value.converter.schema.registry.url"))
            self._watches[slot] = watch
        try:
            newest = watch.newest()
        except LayerUnreachableError:
            return False  # Kafka down: no evidence either way; the slot check and its bound still run
        return newest is not None and newest >= lsn

    def _config_of_slot(self, slot: str) -> dict[str, str] | None:
        body = self.request("GET", "/connectors", params={"expand": "info"}).json()
        for entry in body.values():
            cfg = {str(k): str(v) for k, v in (entry.get("info") or {}).get("config", {}).items()}
            if cfg.get("slot.name") == slot:
                remember(*config_secrets(cfg))
                return cfg
        return None

    def close(self) -> None:
        for watch in self._watches.values():
            watch.close()
        self._watches.clear()
        self._http.close()

    # -- beyond the protocol ---------------------------------------------------------------------------------

    def create(self, name: str, config: dict[str, str]) -> dict[str, Any]:
        """POST /connectors; a name already taken is a LayerRequestError (409 is not retried forever).
        Returns Connect's answer with secret values masked.

        A POST that timed out can still have created the connector, so the retry meets "already exists":
        when the live config is exactly the one asked for, that is this call's own connector and counts as
        created; any other config under the name stays an error."""
        remember(*config_secrets(config))
        try:
            body: dict[str, Any] = self.request(
                "POST", "/connectors", json={"name": name, "config": config}
            ).json()
        except LayerRequestError as exc:
            if exc.status != 409 or self._live_config(name) != {**config, "name": name}:
                raise
            body = {"name": name, "config": {**config, "name": name}}
        return scrub(body)

    def delete(self, name: str) -> None:
        self.request("DELETE", _path(name), connector=name)

    def list(self) -> builtins.list[str]:
        return sorted(str(n) for n in self.request("GET", "/connectors").json())

    def exists(self, name: str) -> bool:
        try:
            self.request("GET", _path(name), connector=name)
        except ConnectorNotFoundError:
            return False
        return True


def _message(resp: httpx.Response) -> str:
    try:
        body = resp.json()
    except ValueError:
        return resp.text[:300]
    if isinstance(body, dict) and "message" in body:
        return str(body["message"])
    return resp.text[:300]
