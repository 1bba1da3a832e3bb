"""Executable actions of an evolution plan, one module per layer (`base` holds the run context, the `Action`
base class and the slot waits). Each action is immutable data (JSON round-trips through `to_dict`) with `run(ctx)`
doing the forward work through the layer protocols and returning a typed result (`evolution.results`), and
`inverse(result)` returning the action that undoes it (None when there is nothing to undo) — the compensation is
code, never a prose description. Importing this package registers every action kind for `action_from_dict`.
"""

from migrate_assets.evolution.actions.base import (
    ACTIONS,
    Action,
    Bounds,
    DriftDetected,
    LayerNotConfigured,
    RunContext,
    StepFailed,
    action_from_dict,
    is_transient,
    refuse_losses,
    wait_published,
    wait_slot,
)
from migrate_assets.evolution.actions.connector import ConnectorSync
from migrate_assets.evolution.actions.lakehouse import (
    CreateIcebergTable,
    DropIcebergTable,
    IcebergRevert,
    IcebergUpdate,
)
from migrate_assets.evolution.actions.onboard import (
    CreateConnector,
    DeleteConnector,
    VerifyOnboarded,
    WaitForSubject,
)
from migrate_assets.evolution.actions.registry import RegisterSchema, SoftDeleteVersion
from migrate_assets.evolution.actions.source import Hazard, SourceDdl, hazards
from migrate_assets.evolution.actions.verify import VerifyLayers

__all__ = ["ACTIONS", "Action", "Bounds", "ConnectorSync", "CreateConnector", "CreateIcebergTable", "DeleteConnector",
           "DriftDetected", "DropIcebergTable",
           "Hazard", "IcebergRevert", "IcebergUpdate", "LayerNotConfigured", "RegisterSchema", "RunContext",
           "SoftDeleteVersion", "SourceDdl", "StepFailed", "VerifyLayers", "VerifyOnboarded", "WaitForSubject",
           "action_from_dict", "hazards",
           "is_transient", "refuse_losses", "wait_published", "wait_slot"]
