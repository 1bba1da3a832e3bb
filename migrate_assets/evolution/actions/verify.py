"""The last step: verify every layer of the table (a failure is drift, and the saga rolls back)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from migrate_assets.evolution.actions.base import Action, DriftDetected, RunContext
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.results import StepResult, Verified


@dataclass(frozen=True)
class VerifyLayers(Action[Verified]):
    kind: ClassVar[str] = "verify"
    layer: ClassVar[str] = Layer.VERIFY
    result_type: ClassVar[type[StepResult]] = Verified
    table: str

    def run(self, ctx: RunContext) -> Verified:
        if ctx.verifier is None:
            return Verified(skipped_check=True)
        differences = ctx.verifier(self.table, ctx)
        if differences:
            raise DriftDetected(differences)
        return Verified(consistent=True)

    def describe(self) -> str:
        return f"verify {self.table} across all configured layers"
