"""Each layer's live schema as asset metadata, one reader per layer, and the asset keys they are reported under.

Three assets per pipeline table — the source table, the registry subject, the Iceberg table — keyed
`["pipeline", <table>, "source" | "registry" | "iceberg"]` unless the definitions were built with other keys
(`PipelineAssetKeys`, the key translator). The observable assets (`assets.py`) and every job that changes a layer
report the same metadata through `observe_layer`: `dagster/column_schema` (a `TableSchema`) and what identifies the
layer's state (fingerprint, subject version, Iceberg schema id), so an asset page shows the columns a change left.

`recorded_since` reads the evolution runs the run store holds past a cursor — how the `cli_evolutions` sensor sees
evolutions made outside Dagster (the CLI) and observes their tables.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from dagster import AssetKey, AssetObservation, TableColumn, TableColumnConstraints, TableSchema

from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.derive import avro_row_fields
from migrate_assets.evolution.layers import Layer
from migrate_assets.evolution.planner import PipelineTarget
from migrate_assets.evolution.preflight import resolve_target
from migrate_assets.evolution.store import EvolutionStore
from migrate_assets.evolution.typemap import avro_signature

#: the asset group of every pipeline layer asset
GROUP = "pipeline_schema"
#: the asset of each layer (connector and verify have none: they hold no schema of their own)
ASSET_LAYERS = ("source", "registry", "iceberg")
#: engine layer → asset layer
OF_ENGINE_LAYER: dict[str, str] = {Layer.SOURCE_DB.value: "source", Layer.SCHEMA_REGISTRY.value: "registry",
                                   Layer.LAKEHOUSE.value: "iceberg"}


def key_name(table: str, default_schema: str) -> str:
    schema, _, name = table.rpartition(".")
    return name if schema in ("", default_schema) else f"{schema}__{name}"


def default_key(table: str, default_schema: str, layer: str) -> AssetKey:
    return AssetKey(["pipeline", key_name(table, default_schema), layer])


@dataclass(frozen=True)
class PipelineAssetKeys:
    """The key translator: which asset key each layer of a pipeline table is reported under.

    `overrides` maps `(table, layer)` to a key of the user's graph (e.g. the dagster-dbt source key of the table
    or the dagster-iceberg asset key of its Iceberg table); `prefix` goes before every default key (several
    projects in one code location). `layer` is one of `source`, `registry`, `iceberg`; `table` is qualified.
    """

    default_schema: str = "public"
    prefix: tuple[str, ...] = ()
    overrides: dict[tuple[str, str], AssetKey] = field(default_factory=dict)

    def key(self, table: str, layer: str) -> AssetKey:
        given = self.overrides.get((table, layer))
        if given is not None:
            return given
        return AssetKey([*self.prefix, *default_key(table, self.default_schema, layer).path])


def _schema(columns: Iterable[tuple[str, str, bool]]) -> TableSchema:
    return TableSchema(columns=[TableColumn(name=n, type=t, constraints=TableColumnConstraints(nullable=nullable))
                                for n, t, nullable in columns])


def _avro_type(sig: tuple[str, str | None]) -> str:
    return sig[0] if sig[1] is None else f"{sig[0]} ({sig[1]})"


def source_metadata(t: PipelineTarget, ctx: RunContext) -> dict[str, Any]:
    cols = ctx.source.columns(t.table)
    fp = ctx.source.fingerprint(t.table) if cols is not None else "absent"
    return {"dagster/column_schema": _schema((c.name, c.type, c.nullable) for c in cols or []),
            "table": t.table, "exists": cols is not None, "fingerprint": fp}


def registry_metadata(t: PipelineTarget, ctx: RunContext) -> dict[str, Any]:
    target = resolve_target(t, ctx)
    latest = ctx.registry.latest(target.subject) if ctx.registry and target.subject else None
    meta: dict[str, Any] = {"subject": target.subject or "", "exists": latest is not None}
    fields: list[tuple[str, str, bool]] = []
    if latest is not None:
        for name, typ in avro_row_fields(latest.schema).items():
            fields.append((name, _avro_type(avro_signature(typ)), isinstance(typ, list) and "null" in typ))
        meta.update({"version": latest.version, "schema_id": latest.schema_id})
    meta["dagster/column_schema"] = _schema(fields)
    return meta


def iceberg_metadata(t: PipelineTarget, ctx: RunContext) -> dict[str, Any]:
    assert t.iceberg_table is not None
    st = ctx.lakehouse.state(t.iceberg_table) if ctx.lakehouse is not None else None
    meta: dict[str, Any] = {"identifier": t.iceberg_table, "exists": st is not None}
    if st is not None:
        meta.update({"schema_id": st.schema_id, "snapshot_id": str(st.snapshot_id)})
    meta["dagster/column_schema"] = _schema([(f.name, f.type, not f.required) for f in st.fields] if st else [])
    return meta


READERS: dict[str, Callable[[PipelineTarget, RunContext], dict[str, Any]]] = {
    "source": source_metadata, "registry": registry_metadata, "iceberg": iceberg_metadata}


def has_layer(t: PipelineTarget, layer: str, registry_configured: bool) -> bool:
    """Does the table have this layer's asset? (A layer that is not configured has none.)"""
    if layer == "registry":
        return registry_configured and bool(t.subject or t.connector)
    if layer == "iceberg":
        return bool(t.iceberg_table)
    return layer == "source"


def observe_layers(t: PipelineTarget, ctx: RunContext, keys: PipelineAssetKeys, layers: Iterable[str],
                   registry_configured: bool, log: Callable[[str], None], **extra: Any) -> list[AssetObservation]:
    """One observation per layer (of those the table has): its live schema now. A layer that cannot be read is
    logged and left out — the op that changed it has already said what it did."""
    out = []
    for layer in layers:
        if not has_layer(t, layer, registry_configured):
            continue
        try:
            meta = READERS[layer](t, ctx)
        except Exception as exc:  # noqa: BLE001 - a report, not a step: never fails the op
            log(f"cannot read the {layer} schema of {t.table} for its asset: {exc}")
            continue
        out.append(AssetObservation(asset_key=keys.key(t.table, layer), metadata={**meta, **extra}))
    return out


# ------------------------------------------------------------------------------------------------------------
# evolutions recorded in the run store (by the CLI or any other process)
# ------------------------------------------------------------------------------------------------------------

#: statuses after which a run leaves the layers as they will stay (a running one is seen again when it ends)
FINISHED = ("succeeded", "rolled_back", "failed", "rollback_failed", "interrupted")
#: the cursor before the first record: every run recorded from then on is new
STORE_START = ("1970-01-01T00:00:00+00:00", "")


@dataclass(frozen=True)
class RecordedRun:
    run_id: str
    table: str
    status: str
    position: tuple[str, str]  # (updated_at, run_id): the store cursor just past this run's last save


def recorded_since(store: EvolutionStore, after: tuple[str, str] | None, limit: int = 100) -> list[RecordedRun]:
    """The evolution runs saved (created or updated) after the store cursor `after`, oldest first; `after=None`:
    the newest run only (where a new cursor starts). No table yet: nothing recorded yet."""
    from psycopg import sql

    from migrate_assets.evolution.store import TABLE

    conn = store.conn
    (exists,) = conn.execute("SELECT to_regclass(%s) IS NOT NULL",
                             (sql.Identifier(store.schema, TABLE).as_string(conn),)).fetchone() or (False,)
    if not exists:
        return []
    ident = sql.Identifier(store.schema, TABLE)
    if after is None:
        query = sql.SQL("SELECT run_id, table_name, status, updated_at FROM {} ORDER BY updated_at DESC, run_id DESC "
                        "LIMIT 1").format(ident)
        rows = conn.execute(query).fetchall()
    else:
        query = sql.SQL("SELECT run_id, table_name, status, updated_at FROM {} WHERE (updated_at, run_id) > "
                        "(%s::timestamptz, %s) ORDER BY updated_at, run_id LIMIT %s").format(ident)
        rows = conn.execute(query, (after[0], after[1], limit)).fetchall()
    return [RecordedRun(r[0], r[1], r[2], (r[3].isoformat(), r[0])) for r in rows]
