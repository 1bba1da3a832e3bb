"""Use case: verify a pipeline — every table compared across source, registry, lakehouse and connector.

The one recipe the CLI (`migrate-assets verify`), the Dagster `verify_pipeline` job and the `layers_consistent`
asset check share: each table's registry subject is resolved from its connector when it can be (verify still
reports an unreachable connector itself when it cannot), the table is verified, and optionally the newest event
of its topic is read back. Columns the connector's column filters leave out (an expand's helpers) are not
published and expected in no downstream layer. The verdict is typed: `consistent`, `unreachable` (a layer could
not be read: its state is unknown, exit 1) or `drift` (every layer answered and one differs, exit 4).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

from migrate_assets.errors import DriftError, MigrateAssetsError, RuntimeFailure, UsageError
from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.evolution.preflight import resolve_target
from migrate_assets.evolution.verify import TableVerification, live_config, unpublished, verify_table

if TYPE_CHECKING:
    from migrate_assets.config import ProjectConfig

Verdict = Literal["consistent", "unreachable", "drift"]
#: reads the newest event of a table's topic: `{"status": consistent|drift|unreachable|skipped, "differences"}`
TopicProbe = Callable[[PipelineTarget, RunContext], dict[str, Any]]


@dataclass(frozen=True, slots=True)
class PipelineVerification:
    tables: tuple[TableVerification, ...]
    #: table → the topic probe's verdict, when asked for
    probes: dict[str, dict[str, Any]] = field(default_factory=dict)

    def _layers(self, t: TableVerification) -> dict[str, dict[str, Any]]:
        layers = {str(k): v.to_dict() for k, v in t.layers.items()}
        if t.table in self.probes:
            layers["topic_probe"] = self.probes[t.table]
        return layers

    def table_consistent(self, t: TableVerification) -> bool:
        probe = self.probes.get(t.table)
        return t.consistent and (probe is None or probe["status"] != "drift")

    @property
    def consistent(self) -> bool:
        return all(self.table_consistent(t) for t in self.tables)

    @property
    def verdict(self) -> Verdict:
        err = self.error()
        return "consistent" if err is None else "drift" if isinstance(err, DriftError) else "unreachable"

    def error(self) -> MigrateAssetsError | None:
        """The typed error of the verdict (None when consistent): its exit code is the command's."""
        return verdict_error(self.to_dict()["tables"])

    def to_dict(self) -> dict[str, Any]:
        tables = []
        for t in self.tables:
            out = t.to_dict()
            out["layers"], out["consistent"] = self._layers(t), self.table_consistent(t)
            tables.append(out)
        return {"consistent": self.consistent, "tables": tables}


def verdict_error(tables: Sequence[Mapping[str, Any]]) -> MigrateAssetsError | None:
    """The verdict of verified tables (their JSON form) as a typed error, None when consistent: a layer that could
    not be read is a service down (exit 1) — also when another layer drifted, since the comparison is incomplete;
    drift (exit 4) only when every layer answered."""

    def where(status: str) -> list[str]:
        return [f"{t['table']}/{layer}: {', '.join(v['differences']) or status}"
                for t in tables for layer, v in t["layers"].items() if v["status"] == status]

    down, drift = where("unreachable"), where("drift")
    if down:
        return RuntimeFailure("layer unreachable, verify is incomplete: " + "; ".join(down)
                              + ("; drift in the layers that answered: " + "; ".join(drift) if drift else ""))
    if drift:
        return DriftError("drift found: " + "; ".join(drift))
    return None


def verify_pipeline(targets: Sequence[PipelineTarget], ctx: RunContext, *, progress_bound: float = 20.0,
                    probe: TopicProbe | None = None, warn: Callable[[str], None] | None = None,
                    restart_failed_sink: bool = False) -> PipelineVerification:
    """Verify every target (resolving its registry subject first) and, with `probe`, read its topic back."""
    results, probes = [], {}
    for t in targets:
        try:
            t = resolve_target(t, ctx)
        except Exception as exc:  # noqa: BLE001 - verify reports the connector as unreachable itself
            if warn is not None:
                warn(f"cannot resolve the subject of {t.table}: {exc}")
        results.append(verify_table(t, ctx, progress_bound=progress_bound, restart_failed_sink=restart_failed_sink))
        if probe is not None:
            probes[t.table] = probe(t, ctx)
    return PipelineVerification(tuple(results), probes)


def verify_project(cfg: ProjectConfig, ctx: RunContext, tables: Sequence[str], *, file: str, key: str,
                   progress_bound: float = 20.0, probe: bool = False, require_tables: bool = True,
                   warn: Callable[[str], None] | None = None,
                   restart_failed_sink: bool = False) -> PipelineVerification:
    """`verify_pipeline` for the pipelines of a project (`tables`: only these; a table that is no pipeline's is a
    usage error at `file`/`key`). With `require_tables`, a project without pipelines is a usage error: "consistent"
    on zero tables would be a lie."""
    from migrate_assets.resources import project

    targets = project.select_targets(cfg, tables, file=file, key=key)
    if not targets and require_tables:
        raise UsageError("no pipelines to verify: add one with `migrate-assets pipeline add SCHEMA.TABLE` or "
                         "list them under `pipelines:` (docs/configuration.md)", file=cfg.source_file,
                         key="pipelines")
    return verify_pipeline(targets, ctx, progress_bound=progress_bound, warn=warn,
                           probe=topic_probe(cfg) if probe else None, restart_failed_sink=restart_failed_sink)


def topic_probe(cfg: ProjectConfig) -> TopicProbe:
    """The topic probe of a project: the newest event of each table's topic must carry every source column the
    connector publishes (one its column filters leave out is expected nowhere downstream, as in `verify_table`)."""

    def read(target: PipelineTarget, ctx: RunContext) -> dict[str, Any]:
        from migrate_assets.resources.topic_probe import probe

        if cfg.kafka is None or cfg.schema_registry is None or not target.subject:
            return {"status": "skipped",
                    "differences": ["needs kafka.bootstrap_servers, schema_registry and a subject"]}
        names = [c.name for c in ctx.source.columns(target.table) or []]
        left_out = set(unpublished(live_config(target, ctx), target.table, names))
        try:
            return probe(cfg.kafka.bootstrap_servers, target.subject, cfg.schema_registry.url,
                         [n for n in names if n not in left_out])
        except MigrateAssetsError as exc:
            return {"status": "unreachable", "differences": [str(exc)]}

    return read
