"""Pure evolution planning: (change, what pre-flight read from each layer, policy) → an immutable plan.

One step per configured layer, in the order registry → lakehouse → source DDL → connector → verify; each step
carries its forward action, whether it can be undone, and the layer's precondition fingerprint. Nothing here
touches a system: pre-flight (`evolution.preflight`) gathers the `Snapshot`, the saga runs the plan.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from typing import Any

from migrate_assets.errors import (
    BreakingChangeBlocked,
    InvalidInputError,
    IrreversibleChangeError,
    Problem,
    UnsupportedTypeError,
)
from migrate_assets.evolution.actions import (
    Action,
    ConnectorSync,
    CreateIcebergTable,
    IcebergUpdate,
    RegisterSchema,
    SourceDdl,
    VerifyLayers,
    action_from_dict,
)
from migrate_assets.evolution.derive import derive_avro, derive_iceberg, new_subject_schema
from migrate_assets.evolution.filters import in_list
from migrate_assets.evolution.layers import STEP_ORDER, IcebergState, Layer, RegistryVersion, SourceColumn
from migrate_assets.evolution.typemap import TypeMapOptions, map_type
from migrate_assets.expand.ops import ChangeSet, Operation, op_to_dict
from migrate_assets.schema.ddl import create_table, q, table_ident
from migrate_assets.schema.model import Column, Table
from migrate_assets.schema.ops import Refused
from migrate_assets.schema.ops.shape import TableShape
from migrate_assets.schema.types import parse_type
from migrate_assets.schema.yamlsrc import format_path

LAYER_ORDER = STEP_ORDER


@dataclass(frozen=True)
class PipelineTarget:
    """Where one table travels: its connector, registry subject and Iceberg table (None = layer skipped)."""

    table: str  # schema.table
    connector: str | None = None
    subject: str | None = None
    iceberg_table: str | None = None
    sink: str | None = None  # the Kafka Connect sink writing iceberg_table (pre-flight checks its settings)


@dataclass(frozen=True)
class Snapshot:
    """Everything pre-flight read, per layer, before anything changes."""

    target: PipelineTarget
    columns: tuple[SourceColumn, ...] | None
    source_fingerprint: str
    registry_latest: RegistryVersion | None = None
    registry_level: str | None = None
    iceberg: IcebergState | None = None
    connector_config: tuple[tuple[str, str], ...] | None = None
    connector_state: str | None = None

    def fingerprints(self) -> dict[str, str | None]:
        cfg = None
        if self.connector_config is not None:
            cfg = hashlib.sha256(json.dumps(sorted(self.connector_config)).encode()).hexdigest()[:16]
        return {
            Layer.SOURCE_DB: self.source_fingerprint,
            Layer.SCHEMA_REGISTRY: (f"{self.registry_latest.subject}@v{self.registry_latest.version}"
                                f"#id{self.registry_latest.schema_id}") if self.registry_latest else None,
            Layer.LAKEHOUSE: f"{self.iceberg.identifier}@schema{self.iceberg.schema_id}" if self.iceberg else None,
            Layer.CONNECTOR: cfg,
        }


@dataclass(frozen=True)
class Policy:
    on_breaking_change: str = "block"
    allow_irreversible: bool = False
    lock_timeout: float = 2.0
    type_options: TypeMapOptions = field(default_factory=TypeMapOptions)
    #: every pipeline of the project: a change to a type (add_enum_value) carries the other tables that use it
    pipelines: tuple[PipelineTarget, ...] = ()


@dataclass(frozen=True)
class PlannedStep:
    id: str
    layer: str
    action: Action
    reversible: bool
    precondition: str | None
    compensation: str  # what undoing it will do, for people; the executable inverse is action.inverse()

    def __post_init__(self) -> None:
        # the layer's plain name: plans, run records, JSON and Dagster metadata hold strings, never the enum
        object.__setattr__(self, "layer", str(Layer.of(self.layer)))

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "layer": self.layer, "action": self.action.to_dict(), "reversible": self.reversible,
                "precondition": self.precondition, "compensation": self.compensation,
                "description": self.action.describe()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlannedStep:
        return cls(d["id"], Layer.of(d["layer"]), action_from_dict(d["action"]), d["reversible"], d["precondition"],
                   d["compensation"])


@dataclass(frozen=True)
class EvolutionPlan:
    table: str
    operations: tuple[dict[str, Any], ...]
    steps: tuple[PlannedStep, ...]
    skipped_layers: tuple[str, ...] = ()
    breaking: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        object.__setattr__(self, "skipped_layers", tuple(str(x) for x in self.skipped_layers))

    def to_dict(self) -> dict[str, Any]:
        return {"table": self.table, "operations": list(self.operations),
                "steps": [s.to_dict() for s in self.steps], "skipped_layers": list(self.skipped_layers),
                "breaking": list(self.breaking), "warnings": list(self.warnings)}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> EvolutionPlan:
        return cls(d["table"], tuple(d["operations"]), tuple(PlannedStep.from_dict(s) for s in d["steps"]),
                   tuple(d.get("skipped_layers", ())), tuple(d.get("breaking", ())), tuple(d.get("warnings", ())))


# --------------------------------------------------------------------------------------------------------
# source DDL
# --------------------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DdlPlan:
    statements: tuple[str, ...]
    inverse: tuple[str, ...] | None  # None: some operation has no inverse at all
    breaking: tuple[str, ...]
    #: every operation's inverse gives back everything (False also when the shape comes back but values do not)
    lossless: bool = True


def live_table(schema: str, table: str, columns: dict[str, SourceColumn]) -> Table:
    """The live columns as schema's table model (what operations are checked and planned against)."""
    return Table(schema, table, tuple(Column(c.name, parse_type(c.type), c.nullable) for c in columns.values()))


def _problem(change: ChangeSet | None, i: int, key: str, message: str) -> InvalidInputError:
    """An exit-2 error naming the change file, line and key of operation `i`."""
    if change is None:
        return InvalidInputError([Problem(file="<change>", key=key, message=message)])
    path = (*change.location(i), key)
    return InvalidInputError([Problem(change.source, message, format_path(path), change.line_of(path))])


def render_ddl(schema: str, table: str, ops: tuple[Operation, ...], columns: dict[str, SourceColumn],
               change: ChangeSet | None = None) -> DdlPlan:
    """Plain (non expand–contract) DDL for the change: each operation's own, planned against the shape the
    operations before it leave; the inverse where every operation has a lossless one. A problem names the
    change file's line and key (`change`)."""
    shape = TableShape(live_table(schema, table, columns))
    fwd: list[str] = []
    inv: list[str] | None = []
    lossless = True
    breaking: list[str] = []
    for i, op in enumerate(ops):
        here = shape.table
        try:
            problems = op.check(here)
            if problems:
                raise Refused(problems[0].key, problems[0].message)
            ddl = op.plain(here)
        except Refused as exc:
            raise _problem(change, i, exc.key, exc.message) from None
        fwd += ddl.forward
        inv = None if inv is None or ddl.inverse is None else [*ddl.inverse, *inv]
        lossless = lossless and ddl.lossless
        breaking += ddl.breaking
        op.effects(shape)
    # an inverse that cannot give back what the change lost is no inverse (issue 14 item 8)
    lossless = lossless and inv is not None
    return DdlPlan(tuple(fwd), tuple(inv) if lossless and inv is not None else None, tuple(breaking), lossless)


def _ddl_compensation(ddl: DdlPlan) -> str:
    if ddl.inverse is None:
        return "none: no lossless inverse"
    return "run the inverse DDL" if ddl.lossless else "run the inverse DDL (puts the shape back, not the lost values)"


# --------------------------------------------------------------------------------------------------------
# connector
# --------------------------------------------------------------------------------------------------------


class Touched:
    """A `ShapeSink` noting the columns a change names anew (added or renamed to) and the types it sets."""

    def __init__(self) -> None:
        self.new_names: list[str] = []
        self.types: dict[str, str] = {}
        self.keys: dict[str, str] = {}  # column → the change-file key that set its type

    def added(self, name: str, type_: str, nullable: bool, default: str | None) -> None:
        self.new_names.append(name)
        self.types[name], self.keys[name] = type_, "type"

    def retyped(self, name: str, type_: str) -> None:
        self.types[name], self.keys[name] = type_, "to_type"

    def renamed(self, old: str, new: str) -> None:
        self.new_names.append(new)

    def dropped(self, name: str) -> None:
        pass

    def required(self, name: str) -> None:
        pass

    def optional(self, name: str) -> None:
        pass


def connector_decision(cfg: dict[str, str], table: str, ops: tuple[Operation, ...]) -> tuple[dict | None, str]:
    """(new config or None, why) — a restart is needed only when publication membership or filters change."""
    new = dict(cfg)
    reasons: list[str] = []
    include = cfg.get("table.include.list")
    if include is not None and not in_list(include, table):
        new["table.include.list"] = include + "," + re.escape(table)
        reasons.append(f"{table} joins table.include.list (publication membership changes on restart)")
    col_inc = cfg.get("column.include.list")
    touched = Touched()
    for op in ops:
        op.effects(touched)
    for added in touched.new_names:
        if col_inc is not None and not in_list(col_inc, f"{table}.{added}"):
            new["column.include.list"] = new["column.include.list"] + "," + re.escape(f"{table}.{added}")
            reasons.append(f"column {added} added to column.include.list")
    if new == cfg:
        return None, ("pgoutput carries added columns and type changes through relation messages: "
                      "no restart, only wait for the slot to pass the DDL and make progress")
    return new, "; ".join(reasons)


# --------------------------------------------------------------------------------------------------------
# the plan
# --------------------------------------------------------------------------------------------------------


def plan_evolution(change: ChangeSet, snap: Snapshot, policy: Policy) -> EvolutionPlan:
    ops = change.operations
    table = change.qualified
    if snap.columns is None:
        raise InvalidInputError([Problem(file=change.source, key="table", message=f"table {table} does not exist")])
    from migrate_assets.evolution import enum_values

    if enum_values.is_enum_change(change):  # a new enum label: its own steps (registry, ALTER TYPE, restart)
        return enum_values.plan_enum_values(change, snap, policy)
    cols = {c.name: c for c in snap.columns}
    retyped: set[str] = set()
    for i, op in enumerate(ops):  # every type that will exist must map across the layers (refused at plan time)
        touched = Touched()
        op.effects(touched)
        for name, typ in touched.types.items():
            retyped.add(name)
            try:
                map_type(typ, policy.type_options)
            except UnsupportedTypeError as exc:  # named at the change file's line, not as "<type map>"
                where = _problem(change, i, touched.keys[name], "; ".join(p.message for p in exc.problems))
                raise UnsupportedTypeError(where.problems) from None
    for c in snap.columns:
        if c.name not in retyped:
            map_type(c.type, policy.type_options)

    ddl = render_ddl(change.schema, change.table, ops, cols, change)
    breaking = ddl.breaking
    if breaking and policy.on_breaking_change == "block":
        raise BreakingChangeBlocked(breaking)
    if breaking and policy.on_breaking_change == "expand_contract":
        raise BreakingChangeBlocked([*breaking, "on_breaking_change=expand_contract: run `migrate-assets expand` "
                                     "for this change, then evolve the new columns"])
    if not ddl.lossless and not policy.allow_irreversible:
        raise IrreversibleChangeError(
            f"the change to {table} has no lossless inverse ({'; '.join(breaking)}); "
            "pass --allow-irreversible to run it anyway"
        )
    fps = snap.fingerprints()
    steps: list[PlannedStep] = []
    skipped: list[str] = []
    warnings: list[str] = []
    t = snap.target

    if t.subject and snap.registry_latest is not None:
        schema = derive_avro(snap.registry_latest.schema, ops, {c.name: c.type for c in snap.columns},
                             policy.type_options)
        steps.append(PlannedStep(Layer.SCHEMA_REGISTRY.step, Layer.SCHEMA_REGISTRY,
                                 RegisterSchema(t.subject, schema, snap.registry_latest.version), True,
                                 fps[Layer.SCHEMA_REGISTRY], "soft-delete the registered version if still the latest"))
    elif t.subject:
        warnings.append(f"subject {t.subject} does not exist yet: the converter registers it with the first event")
        skipped.append(Layer.SCHEMA_REGISTRY)
    else:
        skipped.append(Layer.SCHEMA_REGISTRY)

    if t.iceberg_table and snap.iceberg is not None:
        iops = derive_iceberg(snap.iceberg, ops, policy.type_options,
                              allow_delete=policy.allow_irreversible and policy.on_breaking_change == "warn")
        if iops:
            update = IcebergUpdate(t.iceberg_table, iops, snap.iceberg.schema_id)
            steps.append(PlannedStep(Layer.LAKEHOUSE.step, Layer.LAKEHOUSE, update, update.reversible, fps[Layer.LAKEHOUSE],
                                     f"revert to schema id {snap.iceberg.schema_id}, keeping every snapshot "
                                     "committed since (a column holding values: only with --allow-data-loss)"))
    elif t.iceberg_table:
        raise InvalidInputError([Problem(file="<pipelines>", key="iceberg_table",
                                         message=f"Iceberg table {t.iceberg_table} does not exist")])
    else:
        skipped.append(Layer.LAKEHOUSE)

    steps.append(PlannedStep(Layer.SOURCE_DB.step, Layer.SOURCE_DB,
                             SourceDdl(table, ddl.statements, ddl.inverse, policy.lock_timeout,
                                       snap.source_fingerprint),
                             ddl.lossless, fps[Layer.SOURCE_DB], _ddl_compensation(ddl)))

    if t.connector and snap.connector_config is not None:
        cfg = dict(snap.connector_config)
        new_cfg, reason = connector_decision(cfg, table, ops)
        slot = cfg.get("slot.name", "debezium")
        steps.append(PlannedStep(
            Layer.CONNECTOR.step, Layer.CONNECTOR,
            ConnectorSync(t.connector, slot, tuple(sorted(new_cfg.items())) if new_cfg else None,
                          tuple(sorted(cfg.items())), reason),
            True, fps[Layer.CONNECTOR],
            "put back the previous config and restart the same safe way" if new_cfg else "nothing to undo"))
    else:
        skipped.append(Layer.CONNECTOR)

    steps.append(PlannedStep(Layer.VERIFY.step, Layer.VERIFY, VerifyLayers(table), True, None, "nothing to undo"))
    return EvolutionPlan(table, tuple(op_to_dict(o) for o in ops), tuple(steps), tuple(skipped),
                         tuple(breaking), tuple(warnings))


# --------------------------------------------------------------------------------------------------------
# a new table joining the pipeline
# --------------------------------------------------------------------------------------------------------


def plan_new_table(table: Table, snap: Snapshot, policy: Policy, template: RegistryVersion | None = None,
                   topic_prefix: str | None = None) -> EvolutionPlan:
    """Create a declared table and bring it into the pipeline: its subject (derived from a sibling subject of
    the same connector), its Iceberg table, the CREATE TABLE, and the connector's table filter (a safe restart:
    under `publication.autocreate.mode=filtered` the publication only changes when the connector restarts)."""
    name = table.qualified
    if snap.columns is not None:
        raise InvalidInputError([Problem(file="<specs>", key=name, message=f"table {name} already exists")])
    cols = [(c.name, c.type.render(), c.nullable and not (table.primary_key and c.name in table.primary_key.columns),
             c.default) for c in table.columns]
    mapped = [(n, map_type(t, policy.type_options)) for n, t, _, _ in cols]
    t = snap.target
    steps: list[PlannedStep] = []
    skipped: list[str] = []
    warnings: list[str] = []
    if t.subject and template is not None and topic_prefix:
        schema = new_subject_schema(template.schema, topic_prefix, table.schema, table.name, cols, policy.type_options)
        steps.append(PlannedStep(Layer.SCHEMA_REGISTRY.step, Layer.SCHEMA_REGISTRY, RegisterSchema(t.subject, schema, None), True, None,
                                 "soft-delete the registered version if still the latest"))
    else:
        skipped.append(Layer.SCHEMA_REGISTRY)
        if t.subject:
            warnings.append(f"no sibling subject to derive {t.subject} from: the converter registers it with "
                            "the first event")
    if t.iceberg_table:
        if snap.iceberg is not None:
            raise InvalidInputError([Problem(file="<pipelines>", key="iceberg_table",
                                             message=f"Iceberg table {t.iceberg_table} already exists")])
        steps.append(PlannedStep(Layer.LAKEHOUSE.step, Layer.LAKEHOUSE,
                                 CreateIcebergTable(t.iceberg_table, tuple((n, lt.iceberg) for n, lt in mapped),
                                                    table.primary_key.columns if table.primary_key else ()),
                                 True, "absent", f"drop {t.iceberg_table}"))
    else:
        skipped.append(Layer.LAKEHOUSE)
    drop = q("DROP TABLE {}", table_ident(table.schema, table.name))
    steps.append(PlannedStep(Layer.SOURCE_DB.step, Layer.SOURCE_DB, SourceDdl(name, tuple(create_table(table)), (drop,),
                                                           policy.lock_timeout, None),
                             True, "absent", "drop the table"))
    if t.connector and snap.connector_config is not None:
        cfg = dict(snap.connector_config)
        new_cfg, reason = connector_decision(cfg, name, ())
        steps.append(PlannedStep(
            Layer.CONNECTOR.step, Layer.CONNECTOR,
            ConnectorSync(t.connector, cfg.get("slot.name", "debezium"),
                          tuple(sorted(new_cfg.items())) if new_cfg else None, tuple(sorted(cfg.items())), reason),
            True, snap.fingerprints()[Layer.CONNECTOR],
            "put back the previous config and restart the same safe way" if new_cfg else "nothing to undo"))
    else:
        skipped.append(Layer.CONNECTOR)
    steps.append(PlannedStep(Layer.VERIFY.step, Layer.VERIFY, VerifyLayers(name), True, None, "nothing to undo"))
    return EvolutionPlan(name, ({"create_table": {"table": name, "columns": [c[0] for c in cols]}},),
                         tuple(steps), tuple(skipped), (), tuple(warnings))


SIGNAL_TABLE = "debezium_signal"


def plan_join_table(snap: Snapshot, policy: Policy, template: RegistryVersion | None, topic_prefix: str | None,
                    signal_exists: bool, key: tuple[str, ...] = ()) -> EvolutionPlan:
    """An existing table (with rows) joins its connector: subject and Iceberg table are created, the connector's
    filters take the table and a signal table, and after the safe restart an incremental snapshot is requested
    through that signal table, so the rows that existed before the join reach the topic too."""
    t = snap.target
    if snap.columns is None:
        raise InvalidInputError([Problem(file="<pipelines>", key=t.table, message=f"table {t.table} does not exist")])
    if not t.connector or snap.connector_config is None:
        raise InvalidInputError([Problem(file="<pipelines>", key=t.table, message="no connector to join")])
    schema, name = t.table.split(".", 1)
    cfg = dict(snap.connector_config)
    signal = cfg.get("signal.data.collection") or f"{schema}.{SIGNAL_TABLE}"
    cols: list[tuple[str, str, bool, str | None]] = [(c.name, c.type, c.nullable, None) for c in snap.columns]
    mapped = [(n, map_type(ty, policy.type_options)) for n, ty, _, _ in cols]
    steps: list[PlannedStep] = []
    skipped: list[str] = []
    if t.subject and template is not None and topic_prefix and snap.registry_latest is None:
        schema_text = new_subject_schema(template.schema, topic_prefix, schema, name, cols, policy.type_options)
        steps.append(PlannedStep(Layer.SCHEMA_REGISTRY.step, Layer.SCHEMA_REGISTRY, RegisterSchema(t.subject, schema_text, None), True,
                                 None, "soft-delete the registered version if still the latest"))
    else:
        skipped.append(Layer.SCHEMA_REGISTRY)
    if t.iceberg_table and snap.iceberg is None:
        steps.append(PlannedStep(Layer.LAKEHOUSE.step, Layer.LAKEHOUSE,
                                 CreateIcebergTable(t.iceberg_table, tuple((n, lt.iceberg) for n, lt in mapped), key),
                                 True, "absent", f"drop {t.iceberg_table}"))
    else:
        skipped.append(Layer.LAKEHOUSE)
    if not signal_exists:
        s_schema, s_name = signal.split(".", 1)
        ident_ = table_ident(s_schema, s_name)
        create = q("CREATE TABLE {} (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))",
                   ident_)
        steps.append(PlannedStep(Layer.SOURCE_DB.step, Layer.SOURCE_DB, SourceDdl(signal, (create,), (q("DROP TABLE {}", ident_),),
                                                               policy.lock_timeout, None),
                                 True, "absent", f"drop the signal table {signal}"))
    new_cfg, reason = connector_decision(cfg, t.table, ())
    new_cfg = dict(new_cfg or cfg)
    if not in_list(new_cfg.get("table.include.list"), signal):
        new_cfg["table.include.list"] = new_cfg["table.include.list"] + "," + re.escape(signal)
    new_cfg["signal.data.collection"] = signal
    steps.append(PlannedStep(
        Layer.CONNECTOR.step, Layer.CONNECTOR,
        ConnectorSync(t.connector, cfg.get("slot.name", "debezium"), tuple(sorted(new_cfg.items())),
                      tuple(sorted(cfg.items())), reason + f"; incremental snapshot of {t.table} via {signal}",
                      snapshot=(t.table,), signal_table=signal),
        True, snap.fingerprints()[Layer.CONNECTOR], "put back the previous config and restart the same safe way"))
    steps.append(PlannedStep(Layer.VERIFY.step, Layer.VERIFY, VerifyLayers(t.table), True, None, "nothing to undo"))
    return EvolutionPlan(t.table, ({"join_pipeline": {"table": t.table, "snapshot": True}},), tuple(steps),
                         tuple(skipped), (), ())
