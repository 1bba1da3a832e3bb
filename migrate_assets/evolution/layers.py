"""The narrow protocols the evolution engine needs from each real system.

The engine (planner, saga, verify) only speaks these; `migrate_assets.resources` implements them on the real
clients (psycopg 3, Kafka Connect REST via httpx, confluent-kafka's SchemaRegistryClient, pyiceberg), and the
Dagster resources hand those implementations to the engine. Every method either does what it says or raises a
typed error from `migrate_assets.errors`: `LayerUnreachableError` / `TransientError` (retryable: connection
refused, HTTP 5xx/409, lock timeout, Iceberg CommitFailedException) or a semantic error (not retryable).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Protocol

# --------------------------------------------------------------------------------------------------------
# the vocabulary: layers and the plan steps that change them
# --------------------------------------------------------------------------------------------------------


class Layer(StrEnum):
    """The layers a change travels through, in plan order. The value is the layer's name in JSON output, run
    records and errors; `step` is the id of the plan step that changes it (kept from the first run records:
    "registry", "ddl")."""

    SCHEMA_REGISTRY = "schema_registry"
    LAKEHOUSE = "lakehouse"
    SOURCE_DB = "source_db"
    CONNECTOR = "connector"
    VERIFY = "verify"

    @property
    def step(self) -> str:
        return _STEP_IDS.get(self, self.value)

    @classmethod
    def of(cls, name: str) -> Layer:
        """The layer named by a layer name or a step id (both forms appear in stored run records)."""
        for layer in cls:
            if name in (layer.value, layer.step):
                return layer
        raise ValueError(f"unknown layer or step {name!r}")


_STEP_IDS = {Layer.SCHEMA_REGISTRY: "registry", Layer.SOURCE_DB: "ddl"}

#: the order of a plan's steps (and, reversed, of its compensation)
STEP_ORDER: tuple[Layer, ...] = tuple(Layer)
#: the layers `verify` compares
DATA_LAYERS: tuple[Layer, ...] = (Layer.SOURCE_DB, Layer.SCHEMA_REGISTRY, Layer.LAKEHOUSE, Layer.CONNECTOR)

# --------------------------------------------------------------------------------------------------------
# schema registry
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RegistryVersion:
    subject: str
    version: int
    schema_id: int
    schema: str  # the schema text as registered (Avro JSON for every subject the engine evolves)
    schema_type: str = "AVRO"  # AVRO, JSON or PROTOBUF
    #: (name, subject, version) of each schema reference: the engine evolves self-contained Avro only
    references: tuple[tuple[str, str, int], ...] = ()


@dataclass(frozen=True)
class CompatibilityResult:
    compatible: bool
    level: str
    messages: tuple[str, ...] = ()


class RegistryLayer(Protocol):
    def latest(self, subject: str) -> RegistryVersion | None:
        """The subject's latest non-deleted version, or None when the subject does not exist."""

    def versions(self, subject: str) -> list[int]:
        """Non-deleted version numbers, ascending ([] when the subject does not exist)."""

    def compatibility_level(self, subject: str) -> str:
        """The subject's level, falling back to the global level (e.g. BACKWARD)."""

    def check_compatibility(self, subject: str, schema: str) -> CompatibilityResult:
        """Would registering `schema` be accepted under the subject's level? Verbose messages kept."""

    def register(self, subject: str, schema: str) -> RegistryVersion:
        """Register (idempotent: an identical schema returns the existing version)."""

    def soft_delete(self, subject: str, version: int) -> None:
        """Soft-delete one version (Confluent `DELETE /subjects/{s}/versions/{v}`)."""


# --------------------------------------------------------------------------------------------------------
# Iceberg
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class IcebergField:
    field_id: int
    name: str
    type: str  # pyiceberg type string: int, long, string, decimal(14, 2), timestamptz, ...
    required: bool


@dataclass(frozen=True)
class IcebergState:
    identifier: str  # namespace.table
    schema_id: int
    snapshot_id: int | None
    fields: tuple[IcebergField, ...]
    #: the schema id the current snapshot was written with (None: no snapshot, or not recorded)
    snapshot_schema_id: int | None = None

    def field(self, name: str) -> IcebergField | None:
        return next((f for f in self.fields if f.name == name), None)


@dataclass(frozen=True)
class IcebergOp:
    """One schema update: kind in add_column | promote | rename | delete | make_optional."""

    kind: str
    name: str
    type: str | None = None  # add_column / promote
    new_name: str | None = None  # rename

    @classmethod
    def of(cls, stored: IcebergOp | dict[str, Any] | Sequence[Any]) -> IcebergOp:
        """One op from a run record: an object `{kind, name, type, new_name}`, or the positional list form."""
        if isinstance(stored, IcebergOp):
            return stored
        if isinstance(stored, dict):
            return cls(**stored)
        return cls(*stored)

    @classmethod
    def many(cls, stored: Sequence[Any]) -> tuple[IcebergOp, ...]:
        return tuple(cls.of(o) for o in stored)


#: `LakehouseLayer.apply` without a requirement on the main branch's snapshot (real snapshot ids are positive)
ANY_SNAPSHOT = -1


class LakehouseLayer(Protocol):
    def state(self, identifier: str) -> IcebergState | None:
        """Current schema id, snapshot id and top-level fields, or None when the table does not exist."""

    def validate(self, identifier: str, ops: tuple[IcebergOp, ...]) -> IcebergState:
        """Compute the updated schema WITHOUT committing (pyiceberg's pure apply); raise on an invalid update."""

    def apply(self, identifier: str, ops: tuple[IcebergOp, ...], expected_schema_id: int,
              expected_snapshot_id: int | None = ANY_SNAPSHOT) -> IcebergState:
        """Commit the update, requiring the current schema id to still be `expected_schema_id` (and, unless
        ANY_SNAPSHOT, main to still point at `expected_snapshot_id`: no row appended since it was read)."""

    def restore_schema(self, identifier: str, schema_id: int, expected_schema_id: int,
                       expected_snapshot_id: int | None) -> IcebergState:
        """Make the earlier `schema_id` current again, requiring schema `expected_schema_id` and main at
        `expected_snapshot_id` (no snapshot since); never moves a ref."""

    def count_values(self, identifier: str, column: str | None = None) -> int:
        """Rows of the current snapshot, or (with `column`) how many of them hold a non-null value there."""

    def create_table(self, identifier: str, columns: tuple[tuple[str, str], ...],
                     identifier_fields: tuple[str, ...] = ()) -> IcebergState:
        """Create a table of columns `(name, iceberg type)`, optional except `identifier_fields` (required, the
        schema's identifier fields: the source's primary key); an existing table is an error."""

    def drop_table(self, identifier: str) -> None:
        """Drop the table (absent is fine): the inverse of create_table."""


# --------------------------------------------------------------------------------------------------------
# Kafka Connect
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class ConnectorStatus:
    name: str
    state: str  # RUNNING | PAUSED | FAILED | UNASSIGNED | RESTARTING | STOPPED
    tasks: tuple[str, ...] = ()  # each task's state
    trace: str = ""

    @property
    def running(self) -> bool:
        return self.state == "RUNNING" and bool(self.tasks) and all(t == "RUNNING" for t in self.tasks)


class ConnectorLayer(Protocol):
    def status(self, name: str) -> ConnectorStatus: ...

    def config(self, name: str) -> dict[str, str]: ...

    def put_config(self, name: str, config: dict[str, str]) -> None: ...

    def restart(self, name: str, include_tasks: bool = True, only_failed: bool = False) -> None: ...

    def pause(self, name: str) -> None: ...

    def resume(self, name: str) -> None: ...

    def wait_running(self, name: str, timeout: float) -> ConnectorStatus:
        """Poll until the connector and every task are RUNNING; raise TransientError after `timeout`."""


# --------------------------------------------------------------------------------------------------------
# PostgreSQL (the source database)
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SourceColumn:
    name: str
    type: str  # canonical PgType spelling (migrate_assets.schema.types.PgType.render())
    nullable: bool


@dataclass(frozen=True)
class SlotState:
    name: str
    active: bool
    confirmed_flush_lsn: int | None  # LSNs as integers so they compare
    restart_lsn: int | None


@dataclass(frozen=True)
class DdlResult:
    commit_lsn: int
    attempts: int = 1
    warnings: tuple[str, ...] = field(default_factory=tuple)


class SourceLayer(Protocol):
    def columns(self, table: str) -> list[SourceColumn] | None:
        """Columns of `schema.table` in order, or None when the table does not exist."""

    def fingerprint(self, table: str) -> str:
        """A stable hash of the table's live shape (columns, types, nullability, defaults, constraints)."""

    def execute_ddl(self, statements: list[str], lock_timeout: float) -> DdlResult:
        """Run the statements in one transaction with `lock_timeout` (retrying 55P03 with backoff)
        and return the commit LSN (pg_current_wal_lsn() right after commit)."""

    def current_lsn(self) -> int: ...

    def count_values(self, table: str, column: str | None = None) -> int:
        """Rows of the table, or (with `column`) how many hold a non-null value there (0 when absent)."""

    def count_changed(self, table: str, column: str, type_sql: str, using_sql: str) -> int:
        """How many values of `column` would not survive `ALTER COLUMN ... TYPE type_sql USING using_sql`
        unchanged (cast there and back); raises when the cast rejects a value."""

    def slot(self, slot_name: str) -> SlotState | None: ...

    def published(self, publication: str, tables: Sequence[str]) -> bool:
        """Are all `tables` members of `publication` now? pgoutput sends a row only for a table that was a member
        when the row was written."""

    def write_heartbeat(self) -> None:
        """Generate WAL so an idle slot can show progress (pg_logical_emit_message)."""


def lsn_to_int(lsn: str | None) -> int | None:
    if not lsn:
        return None
    hi, lo = lsn.split("/")
    return (int(hi, 16) << 32) + int(lo, 16)


def int_to_lsn(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


JSON = dict[str, Any]
