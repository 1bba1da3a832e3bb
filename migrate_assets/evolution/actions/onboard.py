"""Onboarding actions (`pipeline add` with a connector that does not exist yet): create the Debezium connector and
delete it again, wait for the subject its converter registers, and a verify that lets an empty table's subject be
missing (the converter registers it with the first row).

`CreateConnector` runs with the compensation `DeleteConnector`, which takes back everything the connector made:
the connector itself (stopped first and its source offsets removed, so a connector created later under the same
name snapshots again instead of resuming from an offset whose slot is gone), its replication slot once released,
its publication, and the registry subjects its converters registered that did not exist before. Each part is
idempotent, so a compensation that stopped half-way (the registry down) finishes on `evolve --rollback RUN`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any, ClassVar, Protocol, cast

from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

from migrate_assets.errors import (
    ConnectorNotFoundError,
    LayerObjectNotFoundError,
    MigrateAssetsError,
    TransientError,
)
from migrate_assets.evolution.actions.base import Action, DriftDetected, RunContext, StepFailed
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.results import StepResult, Verified
from migrate_assets.redact import MASK

#: seconds the undo waits for Connect to release the slot and to report the connector STOPPED
RELEASE_WAIT = 30.0


class ConnectorAdmin(Protocol):
    """What creating and deleting a connector needs beyond `ConnectorLayer` (KafkaConnectClient has it)."""

    def create(self, name: str, config: dict[str, str]) -> dict[str, Any]: ...

    def delete(self, name: str) -> None: ...

    def exists(self, name: str) -> bool: ...


def _admin(ctx: RunContext) -> ConnectorAdmin:
    conn = ctx.require_connector()
    if not all(hasattr(conn, m) for m in ("create", "delete", "exists")):
        raise StepFailed(f"the connector layer ({type(conn).__name__}) cannot create or delete connectors")
    return cast(ConnectorAdmin, conn)


@dataclass(frozen=True, slots=True)
class ConnectorCreated(StepResult):
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"state", "probed"})
    created: bool = True
    state: str | None = None
    probed: bool = False  # found in Connect after a crash


@dataclass(frozen=True, slots=True)
class ConnectorDeleted(StepResult):
    deleted: bool
    offsets_reset: bool
    slot_dropped: bool
    publication_dropped: bool
    subjects_deleted: tuple[str, ...] = ()
    note: str | None = None


@dataclass(frozen=True, slots=True)
class SubjectSeen(StepResult):
    version: int
    id: int


@dataclass(frozen=True)
class CreateConnector(Action[ConnectorCreated]):
    """POST the connector (its config as built by `resources.debezium`) and wait until it and its task run. The
    stored plan holds the config with its secrets masked: a resumed run takes the password from the source DSN."""

    kind: ClassVar[str] = "connector_create"
    layer: ClassVar[str] = Layer.CONNECTOR
    result_type: ClassVar[type[StepResult]] = ConnectorCreated
    name: str
    config: tuple[tuple[str, str], ...]
    slot: str
    publication: str
    #: registry subjects the converters will register that did not exist at pre-flight (the undo deletes them)
    new_subjects: tuple[str, ...] = ()

    def _config(self, ctx: RunContext) -> dict[str, str]:
        cfg = dict(self.config)
        if cfg.get("database.password") == MASK:
            dsn = getattr(ctx.source, "dsn", None)
            if not dsn:
                raise StepFailed(f"the password of connector {self.name} is masked in the stored plan and the "
                                 "source layer has no DSN to take it from")
            cfg["database.password"] = str(conninfo_to_dict(dsn).get("password") or "")
        if any(MASK in v for v in cfg.values()):
            raise StepFailed(f"connector {self.name}: secret values are masked in the stored plan")
        return cfg

    def run(self, ctx: RunContext) -> ConnectorCreated:
        admin = _admin(ctx)
        admin.create(self.name, self._config(ctx))
        st = ctx.require_connector().wait_running(self.name, ctx.bounds.running)
        return ConnectorCreated(True, st.state)

    def probe(self, ctx: RunContext) -> ConnectorCreated | None:
        return ConnectorCreated(True, probed=True) if _admin(ctx).exists(self.name) else None

    def inverse(self, result: ConnectorCreated) -> Action[Any] | None:
        if not result.created:
            return None
        return DeleteConnector(name=self.name, slot=self.slot, publication=self.publication,
                               subjects=self.new_subjects)

    def touches(self) -> set[tuple[str, str]]:
        return {("connector", self.name), ("replication slot", self.slot)}

    def describe(self) -> str:
        include = dict(self.config).get("table.include.list", "")
        return (f"create connector {self.name} (pgoutput, slot {self.slot}, filtered publication "
                f"{self.publication}, tables {include}) and wait until it runs; its initial snapshot carries the "
                "existing rows")


@dataclass(frozen=True)
class DeleteConnector(Action[ConnectorDeleted]):
    kind: ClassVar[str] = "connector_delete"
    layer: ClassVar[str] = Layer.CONNECTOR
    result_type: ClassVar[type[StepResult]] = ConnectorDeleted
    name: str
    slot: str
    publication: str
    subjects: tuple[str, ...] = ()

    def run(self, ctx: RunContext) -> ConnectorDeleted:
        admin = _admin(ctx)
        deleted = reset = False
        note = None
        if admin.exists(self.name):
            try:
                reset = _stop_and_reset_offsets(ctx, self.name)
            except MigrateAssetsError as exc:  # an older Connect (< 3.6) has no offsets API: say so, go on
                note = f"source offsets of {self.name} not removed: {exc}"
            try:
                admin.delete(self.name)
            except ConnectorNotFoundError:
                pass
            deleted = True
        slot_dropped, pub_dropped = _drop_slot_and_publication(ctx, self.slot, self.publication)
        done = []
        if self.subjects:
            registry = ctx.require_registry()
            for subject in self.subjects:
                versions = registry.versions(subject)
                for v in versions:
                    try:
                        registry.soft_delete(subject, v)
                    except LayerObjectNotFoundError:
                        pass
                if versions:
                    done.append(subject)
        return ConnectorDeleted(deleted, reset, slot_dropped, pub_dropped, tuple(done), note)

    def describe(self) -> str:
        subjects = f", soft-delete {', '.join(self.subjects)}" if self.subjects else ""
        return (f"stop connector {self.name}, remove its source offsets and delete it; drop replication slot "
                f"{self.slot} once released and publication {self.publication}{subjects}")


def _stop_and_reset_offsets(ctx: RunContext, name: str) -> bool:
    """PUT /connectors/NAME/stop, wait for STOPPED, DELETE its offsets (Kafka Connect 3.6+, KIP-875)."""
    request = getattr(ctx.connector, "request", None)
    if request is None:
        return False
    conn = ctx.require_connector()
    request("PUT", f"/connectors/{name}/stop", connector=name)
    deadline = time.monotonic() + RELEASE_WAIT
    while conn.status(name).state != "STOPPED":
        if time.monotonic() > deadline:
            raise TransientError(f"connector {name} not STOPPED {RELEASE_WAIT:.0f}s after the stop request")
        time.sleep(0.2)
    request("DELETE", f"/connectors/{name}/offsets", connector=name)
    return True


def _drop_slot_and_publication(ctx: RunContext, slot: str, publication: str) -> tuple[bool, bool]:
    connect = getattr(ctx.source, "connect", None)
    if connect is None:
        raise StepFailed("the source layer cannot drop a replication slot")
    deadline = time.monotonic() + RELEASE_WAIT
    dropped = False
    while (st := ctx.source.slot(slot)) is not None:
        if not st.active:
            with connect() as conn:
                conn.execute("SELECT pg_drop_replication_slot(slot_name) FROM pg_replication_slots "
                             "WHERE slot_name = %s AND NOT active", (slot,))
            dropped = True
            continue
        if time.monotonic() > deadline:
            raise TransientError(f"replication slot {slot} still in use {RELEASE_WAIT:.0f}s after its connector "
                                 "was deleted")
        time.sleep(0.2)
    with connect() as conn:
        found = conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (publication,)).fetchone()
        if found:
            conn.execute(sql.SQL("DROP PUBLICATION IF EXISTS {}").format(sql.Identifier(publication)))
    return dropped, found is not None


@dataclass(frozen=True)
class WaitForSubject(Action[SubjectSeen]):
    """Wait until the connector's converter has registered the table's subject (with the snapshot's first row).
    It changes nothing itself: the subject is taken back with the connector (`DeleteConnector`)."""

    kind: ClassVar[str] = "registry_wait_subject"
    layer: ClassVar[str] = Layer.SCHEMA_REGISTRY
    result_type: ClassVar[type[StepResult]] = SubjectSeen
    subject: str
    bound: float = 90.0

    def run(self, ctx: RunContext) -> SubjectSeen:
        registry = ctx.require_registry()
        deadline = time.monotonic() + self.bound
        while (latest := registry.latest(self.subject)) is None:
            if time.monotonic() > deadline:
                raise StepFailed(f"subject {self.subject} did not appear in the registry within {self.bound:.0f}s")
            time.sleep(0.3)
        return SubjectSeen(latest.version, latest.schema_id)

    def describe(self) -> str:
        return f"wait for the converter to register {self.subject}"


@dataclass(frozen=True)
class VerifyOnboarded(Action[Verified]):
    """Verify every layer of the table; while the table has no row its subject may be missing (the converter
    registers it with the first row)."""

    kind: ClassVar[str] = "verify_onboarded"
    layer: ClassVar[str] = Layer.VERIFY
    result_type: ClassVar[type[StepResult]] = Verified
    table: str
    subject: str | None = None

    def run(self, ctx: RunContext) -> Verified:
        if ctx.verifier is None:
            return Verified(skipped_check=True)
        differences = ctx.verifier(self.table, ctx)
        missing = f"{Layer.SCHEMA_REGISTRY}: subject {self.subject} does not exist"
        if missing in differences and ctx.source.count_values(self.table) == 0:
            differences = [d for d in differences if d != missing]
        if differences:
            raise DriftDetected(differences)
        return Verified(consistent=True)

    def describe(self) -> str:
        return f"verify {self.table} across all configured layers"
