"""Registry actions: register the derived schema; soft-delete it again (only while it is the latest)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, ClassVar

from migrate_assets.errors import IncompatibleSchemaError, StalePlanError, TransientError
from migrate_assets.evolution.actions.base import Action, RunContext, wait_slot
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.results import UNDO_WAITS, SchemaRegistered, StepResult, VersionDeleted


@dataclass(frozen=True)
class RegisterSchema(Action[SchemaRegistered]):
    kind: ClassVar[str] = "register_schema"
    layer: ClassVar[str] = Layer.SCHEMA_REGISTRY
    result_type: ClassVar[type[StepResult]] = SchemaRegistered
    subject: str
    schema: str
    expected_version: int | None  # latest version when planned (precondition)

    def run(self, ctx: RunContext) -> SchemaRegistered:
        reg = ctx.require_registry()
        latest = reg.latest(self.subject)
        current = latest.version if latest else None
        if current != self.expected_version and not (latest and latest.schema == self.schema):
            raise StalePlanError(f"{self.subject} v{self.expected_version}", f"{self.subject} v{current}")
        before = set(reg.versions(self.subject))
        check = reg.check_compatibility(self.subject, self.schema)
        if not check.compatible:
            raise IncompatibleSchemaError(self.subject, check.level, check.messages)
        out = reg.register(self.subject, self.schema)
        return SchemaRegistered(out.version, out.schema_id, created=out.version not in before)

    def inverse(self, result: SchemaRegistered) -> Action[Any] | None:
        if not result.created:
            return None
        return SoftDeleteVersion(subject=self.subject, version=result.version)

    def probe(self, ctx: RunContext) -> SchemaRegistered | None:
        latest = ctx.require_registry().latest(self.subject)
        if latest is None or latest.version == self.expected_version:
            return None
        same = json.loads(latest.schema) == json.loads(self.schema)
        return SchemaRegistered(latest.version, latest.schema_id, created=True) if same else None

    def touches(self) -> set[tuple[str, str]]:
        return {("registry subject", self.subject)}

    def describe(self) -> str:
        return f"register new schema under {self.subject} (after v{self.expected_version})"


@dataclass(frozen=True)
class SoftDeleteVersion(Action[VersionDeleted]):
    kind: ClassVar[str] = "soft_delete_version"
    layer: ClassVar[str] = Layer.SCHEMA_REGISTRY
    result_type: ClassVar[type[StepResult]] = VersionDeleted
    subject: str
    version: int

    def run(self, ctx: RunContext) -> VersionDeleted:
        reg = ctx.require_registry()
        latest = reg.latest(self.subject)
        if latest is None or self.version not in reg.versions(self.subject):
            return VersionDeleted(False, "already gone")
        if latest.version != self.version:
            # a later version exists: producers (the converter) already moved on; deleting ours would lie
            return VersionDeleted(False, f"not undoable: v{latest.version} was registered after v{self.version}")
        if ctx.slot and ctx.latest_ddl_lsn() is not None:
            # rows written while the source had the new shape still need this schema when the connector emits
            # them: deleting it first makes the converter register it again as a new version, so let the
            # connector drain past the inverse DDL (compensated before us) and only then delete
            try:
                wait_slot(ctx, ctx.slot, ctx.source.current_lsn(), ctx.bounds.slot_catch_up,
                          "the rows written in the new shape", streamed=True)
            except TransientError as exc:
                return VersionDeleted(False, f"{UNDO_WAITS}: the connector has not emitted the rows written in "
                                             f"the new shape ({exc})")
        reg.soft_delete(self.subject, self.version)
        return VersionDeleted(True)

    def describe(self) -> str:
        return f"soft-delete {self.subject} v{self.version} (only if still the latest)"
