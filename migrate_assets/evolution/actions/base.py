"""What every action shares: the run context (`RunContext`: the layers, earlier steps' typed results, bounds),
the `Action` base class and its JSON registry, and the waits on the connector's replication slot.

An undo never loses data silently (issue 14): an inverse that would drop a column holding non-null values or
delete rows says so in `losses(ctx)` (probed in the layer, never assumed) and refuses to run
(`DataLossRefused`, exit 3) unless `RunContext.allow_data_loss`. The lakehouse undo changes only the schema: it
never moves the table back to an older snapshot, so rows committed after the change stay in the table.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field, fields
from typing import Any, ClassVar, Generic, TypeVar, cast

from migrate_assets.errors import (
    DataLoss,
    DataLossRefused,
    MigrateAssetsError,
    RuntimeFailure,
    TransientError,
)
from migrate_assets.evolution.layers import (
    ConnectorLayer,
    LakehouseLayer,
    Layer,
    RegistryLayer,
    SourceLayer,
    int_to_lsn,
)
from migrate_assets.evolution.results import DdlApplied, StepResult


class LayerNotConfigured(RuntimeFailure):
    pass


class StepFailed(RuntimeFailure):
    """A step's own check failed (semantic: not retried)."""


class DriftDetected(RuntimeFailure):
    """Verify found the layers inconsistent after the change."""

    def __init__(self, differences: list[str]) -> None:
        self.differences = differences
        super().__init__("verify found drift: " + "; ".join(differences))


L = TypeVar("L")
R = TypeVar("R", bound=StepResult)


@dataclass
class Bounds:
    """How long the connector step may wait (seconds)."""

    slot_catch_up: float = 60.0
    running: float = 60.0
    progress: float = 30.0


@dataclass
class RunContext:
    source: SourceLayer
    registry: RegistryLayer | None = None
    lakehouse: LakehouseLayer | None = None
    connector: ConnectorLayer | None = None
    bounds: Bounds = field(default_factory=Bounds)
    #: the result of each step done so far in this run, by step id
    results: dict[str, StepResult] = field(default_factory=dict)
    log: Callable[[str], None] = lambda _msg: None
    verifier: Callable[[str, RunContext], list[str]] | None = None
    resuming: bool = False
    #: the connector's replication slot, when the plan has a connector step (compensation drains through it)
    slot: str | None = None
    #: an undo may drop columns that hold values and delete rows (`--allow-data-loss`); refused otherwise
    allow_data_loss: bool = False
    #: the source's WAL position when this process got the exclusive evolution layer lock (`app.fanout`): a
    #: connector restart waits for the slot to pass it too (another table's DDL committed before the lock)
    lock_lsn: int | None = None

    def require_registry(self) -> RegistryLayer:
        return self._configured(self.registry, Layer.SCHEMA_REGISTRY)

    def require_lakehouse(self) -> LakehouseLayer:
        return self._configured(self.lakehouse, Layer.LAKEHOUSE)

    def require_connector(self) -> ConnectorLayer:
        return self._configured(self.connector, Layer.CONNECTOR)

    @staticmethod
    def _configured(layer: L | None, name: Layer) -> L:
        if layer is None:
            raise LayerNotConfigured(f"{name} is not configured")
        return layer

    def result(self, step_id: str, kind: type[R]) -> R | None:
        """The result of step `step_id` in this run, when it is done and of type `kind`."""
        found = self.results.get(step_id)
        return found if isinstance(found, kind) else None

    def latest_ddl_lsn(self) -> int | None:
        """The highest commit LSN of this run's DDL (and of the layer lock's LSN, when held)."""
        lsns = [r.commit_lsn for r in self.results.values() if isinstance(r, DdlApplied) and r.commit_lsn]
        if self.lock_lsn:
            lsns.append(self.lock_lsn)
        return max(lsns) if lsns else None


ACTIONS: dict[str, type[Action[Any]]] = {}


@dataclass(frozen=True)
class Action(Generic[R]):
    """A step's executable action; `R` is the type of what `run` and `probe` report (`evolution.results`)."""

    kind: ClassVar[str] = "action"
    layer: ClassVar[str] = ""
    result_type: ClassVar[type[StepResult]] = StepResult

    def __init_subclass__(cls, **kw: Any) -> None:
        super().__init_subclass__(**kw)
        ACTIONS[cls.kind] = cls

    def run(self, ctx: RunContext) -> R:
        raise NotImplementedError

    def inverse(self, result: R) -> Action[Any] | None:
        return None

    def probe(self, ctx: RunContext) -> R | None:
        """After a crash mid-step: the result if the forward effect is in the layer, else None."""
        return None

    def read_result(self, stored: Mapping[str, Any]) -> R:
        """A result of this action from its stored JSON form (the run record's `result`)."""
        return cast(R, self.result_type.from_dict(stored))

    def inverse_of(self, stored: Mapping[str, Any]) -> Action[Any] | None:
        """The undo of a done step, from the result its run record stores."""
        return self.inverse(self.read_result(stored))

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Action[Any]:
        """The action from its stored fields (lists read back as tuples)."""
        for k, v in data.items():
            if isinstance(v, list):
                data[k] = tuple(tuple(x) if isinstance(x, list) else x for x in v)
        return cls(**data)

    @property
    def reversible(self) -> bool:
        """True when `inverse()` puts the layer's schema back exactly as it was before `run()`, also after rows
        were written in the new shape (dropping values written since needs `allow_data_loss`)."""
        return True

    def losses(self, ctx: RunContext) -> list[DataLoss]:
        """What running this action now would lose (probed in its layer); only undo actions lose anything."""
        return []

    def touches(self) -> set[tuple[str, str]]:
        """The objects this action changes, as (kind, name): two tables evolved at once must not share one
        (`app.fanout.refuse_overlapping_plans`)."""
        return set()

    def describe(self) -> str:
        return self.kind

    def to_dict(self) -> dict[str, Any]:
        """JSON-shaped (tuples as lists) for the run record; `action_from_dict` reads it back."""
        return {"kind": self.kind, **_json_shaped(asdict(self))}


def refuse_losses(action: Action[Any], ctx: RunContext) -> None:
    """Raise DataLossRefused when running `action` now would lose data and the context does not allow it."""
    if not ctx.allow_data_loss:
        found = action.losses(ctx)
        if found:
            raise DataLossRefused(found)


def _json_shaped(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _json_shaped(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_shaped(v) for v in value]
    return value


def action_from_dict(data: dict[str, Any]) -> Action[Any]:
    cls = ACTIONS[data["kind"]]
    names = {f.name for f in fields(cls)}
    return cls.from_json({k: v for k, v in data.items() if k in names})



# --------------------------------------------------------------------------------------------------------
# waiting for the connector's slot (the connector step and the registry undo)
# --------------------------------------------------------------------------------------------------------


def wait_slot(ctx: RunContext, slot: str, target: int, bound: float, why: str,
              alive: Callable[[], object] | None = None, streamed: bool = False) -> int:
    """Wait until the slot's confirmed_flush_lsn reaches `target`; TransientError after `bound` seconds.

    `alive` (e.g. the connector's status call) runs every ~2 s, so a worker that is down fails the wait at
    once with its own error instead of after the whole bound. With `streamed`, a record the connector wrote to
    Kafka at or past `target` is enough (a connector layer's `streamed_past`): the slot is confirmed only when
    Connect flushes offsets (60 s by default), so only a restart, which resumes from the slot, needs that."""
    deadline = time.monotonic() + bound
    last = None
    next_alive = 0.0
    seen = getattr(ctx.connector, "streamed_past", None) if streamed else None
    while True:
        if alive is not None and time.monotonic() >= next_alive:
            alive()
            next_alive = time.monotonic() + 2.0
        if seen is not None and seen(slot, target):
            return target
        st = ctx.source.slot(slot)
        last = st.confirmed_flush_lsn if st else None
        if last is not None and last >= target:
            return last
        if time.monotonic() > deadline:
            lag = (target - last) if last is not None else None
            raise TransientError(
                f"replication slot {slot!r} did not reach {int_to_lsn(target)} ({why}) within {bound:.0f}s: "
                + (f"confirmed_flush_lsn {int_to_lsn(last)} (lag {lag} bytes)" if last is not None else "slot missing")
            )
        ctx.source.write_heartbeat()
        time.sleep(0.2)


def wait_published(ctx: RunContext, publication: str, tables: tuple[str, ...], bound: float) -> None:
    """Wait until every table is a member of the connector's publication."""
    deadline = time.monotonic() + bound
    while not ctx.source.published(publication, tables):
        if time.monotonic() > deadline:
            raise TransientError(f"publication {publication!r} did not include {', '.join(tables)} within "
                                 f"{bound:.0f}s of the connector running with its new config")
        time.sleep(0.2)



def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, MigrateAssetsError) and exc.transient
