"""Versioned migrations as a use case, the same for the CLI and the Dagster jobs.

The runner is built from the project with the tables its `pipelines:` capture: before `up`, `run` or `down`
commits anything, each script is tried in a rolled-back transaction (`versioned.guard`), and one that would
change a pipeline table is refused (`PipelineTableChangeRefused`, exit 3, naming the file and the table) —
plain DDL would leave the registry, Iceberg and the connector behind. With `allow_pipeline_drift` the run goes
on, and every pipeline table it changed is verified across its layers right after, so the drift it left is in
the same report (`Outcome.drift`). Dry runs and `status` never execute a script.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migrate_assets.config import ProjectConfig
from migrate_assets.redact import redact_text
from migrate_assets.resources import database
from migrate_assets.versioned import MigrationRunner, RunReport, Step


@dataclass
class Outcome:
    report: RunReport
    #: verify of each pipeline table the run changed (only with allow_pipeline_drift), as `verify` prints it
    drift: list[dict[str, Any]] = field(default_factory=list)

    @property
    def drifted(self) -> bool:
        return any(not d.get("consistent", False) for d in self.drift)


def pipeline_tables(cfg: ProjectConfig) -> list[str]:
    """`schema.table` of every pipeline table (bare names are in the project's schema)."""
    schema = cfg.database.schema_
    return [p.table if "." in p.table else f"{schema}.{p.table}" for p in cfg.pipelines]


def runner(cfg: ProjectConfig, on_step: Callable[[Step], None] | None = None) -> MigrationRunner:
    """The project's migration runner, guarding its pipeline tables."""
    return MigrationRunner(cfg.database.dsn, cfg.path(cfg.migrations), database.state_table(cfg),
                           lock_wait=cfg.lock_wait, lock_timeout=cfg.lock_timeout,
                           statement_timeout=cfg.statement_timeout, on_step=on_step,
                           pipeline_tables=pipeline_tables(cfg))


def up(cfg: ProjectConfig, *, to: int | None = None, allow_out_of_order: bool = False, dry_run: bool = False,
       allow_pipeline_drift: bool = False, on_step: Callable[[Step], None] | None = None) -> Outcome:
    report = runner(cfg, on_step).up(to=to, allow_out_of_order=allow_out_of_order, dry_run=dry_run,
                                     allow_pipeline_drift=allow_pipeline_drift)
    return Outcome(report, drift_after(cfg, report))


def run(cfg: ProjectConfig, version: int, *, dry_run: bool = False, allow_pipeline_drift: bool = False,
        on_step: Callable[[Step], None] | None = None) -> Outcome:
    report = runner(cfg, on_step).run(version, dry_run=dry_run, allow_pipeline_drift=allow_pipeline_drift)
    return Outcome(report, drift_after(cfg, report))


def down(cfg: ProjectConfig, *, steps: int | None = None, to: int | None = None, dry_run: bool = False,
         allow_pipeline_drift: bool = False, on_step: Callable[[Step], None] | None = None) -> Outcome:
    report = runner(cfg, on_step).down(steps=steps, to=to, dry_run=dry_run,
                                       allow_pipeline_drift=allow_pipeline_drift)
    return Outcome(report, drift_after(cfg, report))


def drift_after(cfg: ProjectConfig, report: RunReport) -> list[dict[str, Any]]:
    """Verify, across every layer, each pipeline table the run changed (allowed with --allow-pipeline-drift).

    A layer that cannot be read is reported as such in the table's entry; the run itself already committed."""
    tables = sorted({t for touch in report.pipeline_changes for t in touch.tables})
    if not tables:
        return []
    from migrate_assets.evolution.preflight import resolve_target  # layer clients: only when there is drift
    from migrate_assets.evolution.verify import verify_table
    from migrate_assets.resources import project

    ctx = project.build_context(cfg)
    out: list[dict[str, Any]] = []
    for table in tables:
        target = project.target(cfg, table)
        try:
            target = resolve_target(target, ctx)
            res = verify_table(target, ctx, progress_bound=5.0, sink_data=False).to_dict()
        except Exception as exc:  # noqa: BLE001 - the migrations committed; say what could not be verified
            res = {"table": table, "consistent": False, "unreachable": ["?"], "layers": {},
                   "error": redact_text(f"{type(exc).__name__}: {exc}")}
        res["changed_by"] = [f"{t.file}: {'; '.join(t.tables[table])}"
                             for t in report.pipeline_changes if table in t.tables]
        out.append(res)
    return out
