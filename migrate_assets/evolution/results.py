"""What each saga action reports: one small frozen type per outcome.

An action's `run` and `probe` return one of these, `inverse` reads it, and later steps read earlier ones through
`RunContext.results` (the connector step needs the DDL's commit LSN). The run record keeps each as JSON
(`to_dict`), with the keys the first run records were written with, so a stored run — old or new — reads back
with `from_dict`: unknown keys are ignored, and a key in `OPTIONAL` is left out while it holds its default.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, fields
from typing import Any, ClassVar, Self


@dataclass(frozen=True, slots=True)
class StepResult:
    #: fields left out of the stored form while they hold their default (the stored shapes of the first records)
    OPTIONAL: ClassVar[frozenset[str]] = frozenset()

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for f in fields(self):
            value = getattr(self, f.name)
            if f.name in self.OPTIONAL and value == f.default:
                continue
            out[f.name] = list(value) if isinstance(value, tuple) else value
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        names = {f.name for f in fields(cls)}
        return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in data.items() if k in names})

    @property
    def waiting(self) -> str | None:
        """An undo that did nothing yet and must be tried again later: why (else None)."""
        return None

    @property
    def skipped(self) -> str | None:
        """An undo that had nothing to do: why (else None)."""
        return None


# -- schema registry -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SchemaRegistered(StepResult):
    version: int
    id: int
    created: bool  # False: the identical schema was already registered (nothing to undo)


#: what a `VersionDeleted.reason` starts with when the undo must wait (the connector has not drained yet)
UNDO_WAITS = "not undoable yet"


@dataclass(frozen=True, slots=True)
class VersionDeleted(StepResult):
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"reason"})
    deleted: bool
    reason: str | None = None

    @property
    def waiting(self) -> str | None:
        return self.reason if not self.deleted and (self.reason or "").startswith(UNDO_WAITS) else None

    @property
    def skipped(self) -> str | None:
        return self.reason if not self.deleted and self.reason else None


# -- lakehouse -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IcebergUpdated(StepResult):
    schema_id: int  # made current by the update
    previous_schema_id: int
    previous_snapshot_id: int | None  # main's snapshot before the update (the revert restores only while unmoved)


@dataclass(frozen=True, slots=True)
class IcebergReverted(StepResult):
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"schema_id", "snapshot_id", "how", "kept", "reason"})
    reverted: bool
    schema_id: int | None = None
    snapshot_id: int | None = None
    how: str | None = None
    #: what an inverse schema update could not undo, and why
    kept: tuple[str, ...] | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class IcebergTableCreated(StepResult):
    schema_id: int
    created: bool = True


@dataclass(frozen=True, slots=True)
class IcebergTableDropped(StepResult):
    dropped: bool = True


# -- source database -------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class DdlApplied(StepResult):
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"attempts", "probed"})
    commit_lsn: int
    attempts: int | None = None
    probed: bool = False  # found committed after a crash (commit_lsn: the LSN when probed)


# -- connector -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ConnectorSynced(StepResult):
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"ddl_lsn", "caught_up_lsn", "progress_lsn", "state",
                                                    "snapshot_requested", "probed"})
    restarted: bool
    ddl_lsn: str | None = None
    caught_up_lsn: str | None = None
    progress_lsn: str | None = None  # the slot's confirmed LSN past a fresh LSN: the connector made progress
    state: str | None = None
    snapshot_requested: tuple[str, ...] | None = None
    probed: bool = False  # the new config found in place after a crash


# -- verify ----------------------------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Verified(StepResult):
    OPTIONAL: ClassVar[frozenset[str]] = frozenset({"consistent", "skipped_check"})
    consistent: bool = False
    #: no verifier attached (stored as "skipped", the key of the first records)
    skipped_check: bool = False

    def to_dict(self) -> dict[str, Any]:
        return {"skipped": True} if self.skipped_check else {"consistent": self.consistent}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Verified:
        return cls(consistent=bool(data.get("consistent")), skipped_check=bool(data.get("skipped")))
