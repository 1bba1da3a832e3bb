"""The connector action: carry a change through Kafka Connect the CDC-safe way."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from migrate_assets.evolution.actions.base import Action, RunContext, wait_published, wait_slot
from migrate_assets.evolution.layers import Layer, int_to_lsn
from migrate_assets.evolution.results import ConnectorSynced, StepResult


@dataclass(frozen=True)
class ConnectorSync(Action[ConnectorSynced]):
    """Carry the change through the connector the CDC-safe way (issue 8).

    Restart only when the connector's config must change (publication membership, table or column filters);
    before any restart wait until the slot has confirmed the DDL's commit LSN (restarting Debezium right after a
    table rewrite breaks the walsender for good); afterwards require RUNNING *and* slot progress past a fresh LSN.
    """

    kind: ClassVar[str] = "connector_sync"
    layer: ClassVar[str] = Layer.CONNECTOR
    result_type: ClassVar[type[StepResult]] = ConnectorSynced
    name: str
    slot: str
    new_config: tuple[tuple[str, str], ...] | None
    old_config: tuple[tuple[str, str], ...] | None
    reason: str
    #: tables whose existing rows must reach the topic: an incremental snapshot requested through the
    #: connector's signal table (`signal.data.collection`) once it runs with the new config
    snapshot: tuple[str, ...] = ()
    signal_table: str | None = None
    #: restart with the config unchanged (Debezium reads an enum's labels when its task starts)
    restart: bool = False

    def run(self, ctx: RunContext) -> ConnectorSynced:
        conn = ctx.require_connector()
        b = ctx.bounds
        target = ctx.latest_ddl_lsn() or ctx.source.current_lsn()

        def alive() -> None:
            conn.status(self.name)  # raises LayerUnreachableError when the worker is down

        caught_up = wait_slot(ctx, self.slot, target, b.slot_catch_up, "the DDL's commit LSN", alive,
                              streamed=self.new_config is None and not self.restart)
        restarted = False
        if self.new_config is not None or self.restart:
            if self.new_config is not None:
                conn.put_config(self.name, dict(self.new_config))
            conn.restart(self.name, include_tasks=True, only_failed=False)
            restarted = True
        st = conn.wait_running(self.name, b.running)
        if self.snapshot and self.signal_table:
            # a signal written before Debezium's publication holds the signal table is never decoded: RUNNING
            # can come before the task has altered its (filtered) publication
            publication = dict(self.new_config or ()).get("publication.name", "dbz_publication")
            wait_published(ctx, publication, (self.signal_table, *self.snapshot), b.running)
            ctx.source.execute_ddl([_snapshot_signal(self.signal_table, self.snapshot)], 5.0)
        fresh = ctx.source.current_lsn()
        progressed = wait_slot(ctx, self.slot, fresh, b.progress, "a LSN taken after the step began", alive,
                               streamed=True)
        return ConnectorSynced(restarted, int_to_lsn(target), int_to_lsn(caught_up), int_to_lsn(progressed),
                               st.state, self.snapshot)

    def probe(self, ctx: RunContext) -> ConnectorSynced | None:
        if self.new_config is None:
            return None
        current = ctx.require_connector().config(self.name)
        return ConnectorSynced(True, probed=True) if current == dict(self.new_config) else None

    def inverse(self, result: ConnectorSynced) -> Action[Any] | None:
        if self.new_config is None:
            return None
        return ConnectorSync(name=self.name, slot=self.slot, new_config=self.old_config,
                             old_config=self.new_config, reason="put back the previous config")

    def to_dict(self) -> dict[str, Any]:
        out = super().to_dict()
        if not self.restart:  # the stored form of every run planned before the flag existed stays the same
            del out["restart"]
        return out

    def touches(self) -> set[tuple[str, str]]:
        """The filter entries the config change adds (the connector itself is shared: its config changes are
        rebased on the live config, `app.fanout`)."""
        if self.new_config is None:
            return set()
        old, new = dict(self.old_config or ()), dict(self.new_config)
        out: set[tuple[str, str]] = set()
        for key in set(old) | set(new):
            if key.endswith(".list") and old.get(key) != new.get(key):
                added = set(_list_items(new.get(key))) - set(_list_items(old.get(key)))
                out.update(("connector filter entry", f"{self.name} {key} {item}") for item in added)
        return out

    def describe(self) -> str:
        what = ("update config and restart safely" if self.new_config is not None else
                "restart safely, config unchanged" if self.restart else "no restart needed")
        return f"{self.name}: {what} ({self.reason}); wait for slot {self.slot} to pass the DDL and make progress"


def _list_items(value: str | None) -> list[str]:
    return [x.strip() for x in (value or "").split(",") if x.strip()]


def _snapshot_signal(signal_table: str, tables: tuple[str, ...]) -> str:
    """The INSERT that asks Debezium for an incremental snapshot of `tables` (Debezium's signal format)."""
    import uuid

    from psycopg import sql

    schema, name = signal_table.split(".", 1)
    data = json.dumps({"data-collections": list(tables), "type": "incremental"})
    return sql.SQL("INSERT INTO {} (id, type, data) VALUES ({}, 'execute-snapshot', {})").format(
        sql.Identifier(schema, name), sql.Literal(uuid.uuid4().hex), sql.Literal(data)).as_string(None)
