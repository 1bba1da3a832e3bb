"""Run an evolution through the engine's API with a fault injected for real when a given step starts."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from migrate_assets.config import load_config
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.actions import Bounds
from migrate_assets.evolution.store import StepState
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.resources import project
from tests.pipeline import Pipeline


def run_evolve(p: Pipeline, change: str, at: str | None = None, fault: Callable[[], None] | None = None,
               bounds: Bounds | None = None, allow_irreversible: bool = False) -> dict[str, Any]:
    cfg = load_config(str(p.config_path))
    ctx = project.build_context(cfg, bounds=bounds or Bounds(slot_catch_up=30, running=30, progress=20))
    fired: list[str] = []

    def hook(st: StepState) -> None:
        if at and st.id == at and st.status == "running" and not fired:
            fired.append(at)
            assert fault is not None
            fault()

    store = project.store(cfg)
    try:
        cs = parse_change_text(change, "change.yaml")
        target = next(t for t in project.targets(cfg) if t.table == cs.qualified)
        _, rec = evo.evolve(cs, target, ctx, project.policy(cfg, allow_irreversible), store,
                            project.retry_policy(cfg), on_step=hook)
    finally:
        store.close()
    if at:
        assert fired == [at], f"the fault at {at} never fired"
    return evo.result_dict(rec)
