"""Verify: compare one pipeline table across every layer by field name and mapped type.

Per layer the verdict is `consistent`, `drift` (differences listed), `skipped` (not configured — never reported
as consistent) or `unreachable` (the layer could not be read: not drift — the CLI exits 1 for it, not 4). A missing table or subject is drift. The connector is consistent only when it
and all its tasks are RUNNING and its replication slot makes progress: `confirmed_flush_lsn` must reach a LSN
taken when verify started, within a bound — a connector that says RUNNING while its slot is stuck is drift.

Only the columns the connector publishes are expected downstream: a column its live `column.include.list` /
`column.exclude.list` leaves out (an expand's `_ma_*` helpers, a column kept out on purpose) is not published, so
the registry, Iceberg, the sink and the topic are not asked to carry it; the connector's verdict names it in its
notes and the table's `unpublished` list. When the connector's config cannot be read, every column is expected.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from migrate_assets.errors import InvalidInputError, MigrateAssetsError, Problem, TransientError
from migrate_assets.evolution.actions import RunContext, wait_slot
from migrate_assets.evolution.derive import avro_row_fields
from migrate_assets.evolution.filters import captures_column, captures_table
from migrate_assets.evolution.layers import DATA_LAYERS, Layer
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.evolution.preflight import with_user_types
from migrate_assets.evolution.sink import verify_sink
from migrate_assets.evolution.typemap import (
    LayerTypes,
    TypeMapOptions,
    avro_signature,
    drift_hint,
    expected_avro_signature,
    map_type,
    normalise_iceberg,
)

LAYERS = DATA_LAYERS


@dataclass(frozen=True)
class LayerVerdict:
    status: str  # consistent | drift | skipped | unreachable
    differences: tuple[str, ...] = ()
    notes: tuple[str, ...] = ()  # what was found when consistent (the sink's rows and lag)

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"status": self.status, "differences": list(self.differences)}
        return out | ({"notes": list(self.notes)} if self.notes else {})


@dataclass
class TableVerification:
    table: str
    layers: dict[str, LayerVerdict] = field(default_factory=dict)
    #: source columns the connector's column filters leave out: not expected in the registry, Iceberg or sink
    unpublished: tuple[str, ...] = ()

    @property
    def consistent(self) -> bool:
        return all(v.status in ("consistent", "skipped") for v in self.layers.values())

    @property
    def unreachable(self) -> list[str]:
        """The layers that could not be read: their verdict is unknown, which is neither drift nor consistency
        (the CLI exits 1 for them, as for any service that is down, not 4)."""
        return [str(layer) for layer, v in self.layers.items() if v.status == "unreachable"]

    def differences(self) -> list[str]:
        return [f"{layer}: {d}" for layer, v in self.layers.items() for d in v.differences]

    def to_dict(self) -> dict[str, Any]:
        out = {"table": self.table, "consistent": self.consistent, "unreachable": self.unreachable,
               "layers": {str(k): v.to_dict() for k, v in self.layers.items()}}
        return out | ({"unpublished": list(self.unpublished)} if self.unpublished else {})


def _unreachable(exc: Exception) -> LayerVerdict:
    return LayerVerdict("unreachable", (f"{type(exc).__name__}: {exc}",))


def _compare(expected: dict[str, LayerTypes], actual: dict[str, Any], want: Callable[[LayerTypes], Any],
             where: str, layer: str) -> LayerVerdict:
    """Field names and mapped types of one layer against the source columns (missing, wrong type, extra)."""
    diffs = []
    for name, lt in expected.items():
        if name not in actual:
            diffs.append(f"column {name} missing from {where}")
        elif actual[name] != want(lt):
            diffs.append(f"column {name}: {layer} has {actual[name]}, {lt.pg} maps to {want(lt)}"
                         + drift_hint(actual[name], want(lt)))
    diffs += [f"{layer} field {n} in {where} has no source column" for n in actual if n not in expected]
    return LayerVerdict("drift" if diffs else "consistent", tuple(diffs))


def verify_table(target: PipelineTarget, ctx: RunContext, opts: TypeMapOptions | None = None,
                 progress_bound: float = 20.0, progress_target: int | None = None,
                 sink_data: bool = True, restart_failed_sink: bool = False) -> TableVerification:
    """`progress_target`: the LSN the slot must reach (default: the current LSN when verify starts). Inside
    an evolution run, the connector step's fresh post-DDL LSN is passed, so a slot that already proved
    progress in this run is not made to wait for another offset flush. `sink_data`: wait for the pipeline's
    named sink to bring the source's rows into Iceberg (the saga's own verify step does not wait on the sink's
    commit interval). `restart_failed_sink`: restart a FAILED sink task once (`evolution.sink.verify_sink`);
    otherwise verify changes nothing anywhere."""
    if not math.isfinite(progress_bound) or progress_bound < 0:  # nan never ends a wait; < 0 never waits
        raise InvalidInputError([Problem(file="<arguments>", key="progress_bound",
                                         message=f"expected a finite number of seconds >= 0, got {progress_bound!r}")])
    out = TableVerification(target.table)
    problems: list[str] = []
    cfg = live_config(target, ctx)
    if opts is None:  # what the live connector emits (decimal/time modes), as pre-flight planned with
        opts, problem = connector_types(target, ctx, cfg)
        problems += [problem] if problem else []
    start_lsn: int | None = None
    try:
        cols = ctx.source.columns(target.table)
        start_lsn = progress_target if progress_target is not None else ctx.source.current_lsn()
        opts = opts if opts.user_types else with_user_types(opts, ctx)  # enums' labels, domains' base types
    except MigrateAssetsError as exc:
        out.layers = {layer: _unreachable(exc) if layer == Layer.SOURCE_DB else LayerVerdict("unreachable", (
            "source database unreachable: nothing to compare with",)) for layer in LAYERS}
        return out
    if cols is None:
        out.layers[Layer.SOURCE_DB] = LayerVerdict("drift", (f"table {target.table} does not exist",))
        expected: dict[str, Any] = {}
    else:
        expected = {}
        out.unpublished = tuple(unpublished(cfg, target.table, [c.name for c in cols]))
        for c in cols:
            if c.name in out.unpublished:  # never reaches the topic: its type matters to no other layer
                continue
            try:
                expected[c.name] = map_type(c.type, opts)
            except MigrateAssetsError as exc:
                problems.append(f"column {c.name}: {exc}")
        out.layers[Layer.SOURCE_DB] = LayerVerdict("drift" if problems else "consistent", tuple(problems))

    # --- registry -------------------------------------------------------------------------------------
    if ctx.registry is None or not target.subject:
        out.layers[Layer.SCHEMA_REGISTRY] = LayerVerdict("skipped")
    else:
        try:
            latest = ctx.registry.latest(target.subject)
            if latest is None:
                out.layers[Layer.SCHEMA_REGISTRY] = LayerVerdict("drift", (f"subject {target.subject} does not exist",))
            else:
                fields = {n: avro_signature(t) for n, t in avro_row_fields(latest.schema).items()}
                out.layers[Layer.SCHEMA_REGISTRY] = _compare(
                    expected, fields, expected_avro_signature, f"{target.subject} v{latest.version}", "registry")
        except MigrateAssetsError as exc:
            out.layers[Layer.SCHEMA_REGISTRY] = _unreachable(exc)

    # --- lakehouse ------------------------------------------------------------------------------------
    if ctx.lakehouse is None or not target.iceberg_table:
        out.layers[Layer.LAKEHOUSE] = LayerVerdict("skipped")
    else:
        try:
            st = ctx.lakehouse.state(target.iceberg_table)
            if st is None:
                out.layers[Layer.LAKEHOUSE] = LayerVerdict("drift", (f"Iceberg table {target.iceberg_table} does not exist",))
            else:
                ice = {f.name: normalise_iceberg(f.type) for f in st.fields}
                out.layers[Layer.LAKEHOUSE] = _compare(
                    expected, ice, lambda lt: normalise_iceberg(lt.iceberg), target.iceberg_table, "Iceberg")
        except MigrateAssetsError as exc:
            out.layers[Layer.LAKEHOUSE] = _unreachable(exc)

    # --- connector ------------------------------------------------------------------------------------
    if ctx.connector is None or not target.connector:
        out.layers[Layer.CONNECTOR] = LayerVerdict("skipped")
    else:
        out.layers[Layer.CONNECTOR] = _verify_connector(target, ctx, out.unpublished, start_lsn, progress_bound)
    if sink_data and target.sink and ctx.connector is not None and ctx.lakehouse is not None and target.iceberg_table:
        try:  # the named Iceberg sink: the source's rows and values read back from the table, and its lag
            out.layers["sink"] = LayerVerdict(*verify_sink(target, ctx, list(expected), progress_bound,
                                                               restart_failed_sink))
        except MigrateAssetsError as exc:
            out.layers["sink"] = _unreachable(exc)
    return out


def live_config(target: PipelineTarget, ctx: RunContext) -> dict[str, str] | None:
    """The table's connector config as Kafka Connect holds it; None without a connector or when it cannot be
    read (the connector layer then reports the connector itself)."""
    if ctx.connector is None or not target.connector:
        return None
    try:
        return ctx.connector.config(target.connector)
    except MigrateAssetsError:
        return None


def unpublished(cfg: dict[str, str] | None, table: str, columns: list[str]) -> list[str]:
    """The columns of `table` the connector's column filters leave out (none when its config is unknown)."""
    return [] if cfg is None else [c for c in columns if not captures_column(cfg, table, c)]


def connector_types(target: PipelineTarget, ctx: RunContext,
                    cfg: dict[str, str] | None = None) -> tuple[TypeMapOptions, str | None]:
    """The type map of the table's connector config (`cfg`, else read); the defaults (and why) when it cannot be
    read or is not one this map models — the connector layer then reports the connector itself."""
    cfg = cfg if cfg is not None else live_config(target, ctx)
    if cfg is None:
        return TypeMapOptions(), None
    try:
        return TypeMapOptions.from_connector(cfg, None, f"connector {target.connector}"), None
    except InvalidInputError as exc:
        return TypeMapOptions(), str(exc)


def _verify_connector(target: PipelineTarget, ctx: RunContext, left_out: tuple[str, ...],
                      start_lsn: int | None, bound: float) -> LayerVerdict:
    assert ctx.connector is not None and target.connector is not None
    try:
        status = ctx.connector.status(target.connector)
        cfg = ctx.connector.config(target.connector)
    except MigrateAssetsError as exc:
        return _unreachable(exc)
    diffs: list[str] = []
    if not status.running:
        diffs.append(f"connector {target.connector} is {status.state}, tasks {list(status.tasks)}"
                     + (f": {status.trace.splitlines()[0]}" if status.trace else ""))
    if not captures_table(cfg, target.table):
        diffs.append(f"{target.table} is not captured under the connector's table.include/exclude.list")
    notes = tuple(f"column {c} is not published: the connector's column.include.list/column.exclude.list "
                  "leaves it out, so no other layer is expected to carry it" for c in left_out)
    slot = cfg.get("slot.name", "debezium")
    try:
        if ctx.source.slot(slot) is None:
            diffs.append(f"replication slot {slot} does not exist")
        elif start_lsn is not None:
            wait_slot(ctx, slot, start_lsn, bound, "a LSN taken when verify started", streamed=True)
    except TransientError as exc:  # the bound passed: RUNNING or not, the slot is stuck
        diffs.append(f"replication slot {slot} makes no progress: {exc}; Kafka Connect says {status.state}")
    except MigrateAssetsError as exc:
        diffs.append(f"slot check failed: {exc}")
    return LayerVerdict("drift", tuple(diffs)) if diffs else LayerVerdict("consistent", (), notes)
