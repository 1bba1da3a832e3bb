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

from psycopg import sql

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
from migrate_assets.evolution.layers import IcebergState, RegistryVersion, SourceColumn
from migrate_assets.evolution.typemap import TypeMapOptions, map_type
from migrate_assets.expand.ops import (
    AddColumn,
    ChangeSet,
    ChangeType,
    DropColumn,
    Operation,
    RenameColumn,
    SetNotNull,
    op_to_dict,
)
from migrate_assets.schema.ddl import create_table, expr, ident, q, table_ident
from migrate_assets.schema.model import Table
from migrate_assets.schema.types import parse_type, type_change
from migrate_assets.schema.yamlsrc import format_path

LAYER_ORDER = ("schema_registry", "lakehouse", "source_db", "connector", "verify")


@dataclass(frozen=True)
class PipelineTarget:
    """Where one table travels: its connector, registry subject and Iceberg table (None = layer skipped)."""

    table: str  # schema.table
    connector: str | None = None
    subject: str | None = None
    iceberg_table: str | None = None


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
            "source_db": self.source_fingerprint,
            "schema_registry": (f"{self.registry_latest.subject}@v{self.registry_latest.version}"
                                f"#id{self.registry_latest.schema_id}") if self.registry_latest else None,
            "lakehouse": f"{self.iceberg.identifier}@schema{self.iceberg.schema_id}" if self.iceberg else None,
            "connector": cfg,
        }


@dataclass(frozen=True)
class Policy:
    on_breaking_change: str = "block"
    allow_irreversible: bool = False
    lock_timeout: float = 2.0
    type_options: TypeMapOptions = field(default_factory=TypeMapOptions)


@dataclass(frozen=True)
class PlannedStep:
    id: str
    layer: str
    action: Action
    reversible: bool
    precondition: str | None
    compensation: str  # what undoing it will do, for people; the executable inverse is action.inverse()

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "layer": self.layer, "action": self.action.to_dict(), "reversible": self.reversible,
                "precondition": self.precondition, "compensation": self.compensation,
                "description": self.action.describe()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> PlannedStep:
        return cls(d["id"], d["layer"], action_from_dict(d["action"]), d["reversible"], d["precondition"],
                   d["compensation"])


@dataclass(frozen=True)
class EvolutionPlan:
    table: str
    operations: tuple[dict[str, Any], ...]
    steps: tuple[PlannedStep, ...]
    skipped_layers: tuple[str, ...] = ()
    breaking: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()

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
    inverse: tuple[str, ...] | None  # None: no lossless inverse
    breaking: tuple[str, ...]


def _problem(change: ChangeSet | None, i: int, key: str, message: str) -> InvalidInputError:
    """An exit-2 error naming the change file, line and key of operation `i`."""
    if change is None:
        return InvalidInputError([Problem(file="<change>", key=key, message=message)])
    path = (*change.location(i), key)
    return InvalidInputError([Problem(change.source, message, format_path(path), change.line_of(path))])


def render_ddl(schema: str, table: str, ops: tuple[Operation, ...], columns: dict[str, SourceColumn],
               change: ChangeSet | None = None) -> DdlPlan:
    """Plain (non expand–contract) DDL for the change, with its inverse where one is lossless."""
    t = table_ident(schema, table)
    fwd: list[str] = []
    inv: list[str] = []
    lossless = True
    breaking: list[str] = []
    for i, op in enumerate(ops):
        if isinstance(op, AddColumn):
            if op.backfill is not None:  # expand honours it (a batched UPDATE); one ALTER here cannot
                raise _problem(change, i, "backfill", "evolve adds a column in one ALTER TABLE and cannot "
                               "backfill it; use `default`, or run `migrate-assets expand` for a backfill")
            if not op.nullable and op.default is None:
                raise _problem(change, i, "nullable", "a NOT NULL column needs a default (or nullable: true) "
                               "to be added to a table that has rows")
            typ = parse_type(op.type)
            parts = "ALTER TABLE {} ADD COLUMN {} " + _braces(typ.render_declared())
            args: list[Any] = [t, ident(op.name)]
            if op.default is not None:
                parts += " DEFAULT {}"
                args.append(expr(op.default))
            if not op.nullable:
                parts += " NOT NULL"
            fwd.append(q(parts, *args))
            inv.insert(0, q("ALTER TABLE {} DROP COLUMN {}", t, ident(op.name)))
        elif isinstance(op, ChangeType):
            col = columns.get(op.column)
            if col is None:
                raise _problem(change, i, "column", f"no such column {op.column!r} in the live table")
            old_t, new_t = parse_type(col.type), parse_type(op.to_type)
            tc = type_change(old_t, new_t)
            up = expr(op.up) if op.up else _cast(op.column, new_t.render())
            down = expr(op.down) if op.down else _cast(op.column, old_t.render())
            fwd.append(q("ALTER TABLE {} ALTER COLUMN {} TYPE " + _braces(new_t.render()) + " USING {}",
                         t, ident(op.column), up))
            inv.insert(0, q("ALTER TABLE {} ALTER COLUMN {} TYPE " + _braces(old_t.render()) + " USING {}",
                            t, ident(op.column), down))
            if not tc.widening:  # the cast back cannot return what the narrowing rounded or cut off
                breaking.append(f"change_type {op.column}: {old_t.render()} → {new_t.render()} is not a widening")
                lossless = False
        elif isinstance(op, RenameColumn):
            fwd.append(q("ALTER TABLE {} RENAME COLUMN {} TO {}", t, ident(op.from_), ident(op.to)))
            inv.insert(0, q("ALTER TABLE {} RENAME COLUMN {} TO {}", t, ident(op.to), ident(op.from_)))
            breaking.append(f"rename_column {op.from_} → {op.to} breaks readers of the old name")
        elif isinstance(op, DropColumn):
            fwd.append(q("ALTER TABLE {} DROP COLUMN {}", t, ident(op.column)))
            lossless = False
            breaking.append(f"drop_column {op.column} deletes data")
        elif isinstance(op, SetNotNull):
            if op.backfill:  # DROP NOT NULL cannot tell which values were NULL before the backfill
                fwd.append(q("UPDATE {} SET {} = {} WHERE {} IS NULL", t, ident(op.column), expr(op.backfill),
                             ident(op.column)))
                lossless = False
            fwd.append(q("ALTER TABLE {} ALTER COLUMN {} SET NOT NULL", t, ident(op.column)))
            inv.insert(0, q("ALTER TABLE {} ALTER COLUMN {} DROP NOT NULL", t, ident(op.column)))
    return DdlPlan(tuple(fwd), tuple(inv) if lossless else None, tuple(breaking))


def _braces(text: str) -> str:
    return text.replace("{", "{{").replace("}", "}}")


def _cast(column: str, type_sql: str) -> sql.Composable:
    """`"column"::type`, the default USING expression (the type spelling is the canonical PgType one)."""
    return sql.SQL("{}::" + _braces(type_sql)).format(ident(column))  # noqa: S608


# --------------------------------------------------------------------------------------------------------
# connector
# --------------------------------------------------------------------------------------------------------


def connector_decision(cfg: dict[str, str], table: str, ops: tuple[Operation, ...]) -> tuple[dict | None, str]:
    """(new config or None, why) — a restart is needed only when publication membership or filters change."""
    new = dict(cfg)
    reasons: list[str] = []
    include = cfg.get("table.include.list")
    if include is not None and not in_list(include, table):
        new["table.include.list"] = include + "," + re.escape(table)
        reasons.append(f"{table} joins table.include.list (publication membership changes on restart)")
    col_inc = cfg.get("column.include.list")
    for op in ops:
        added = op.name if isinstance(op, AddColumn) else op.to if isinstance(op, RenameColumn) else None
        if added and col_inc is not None and not in_list(col_inc, f"{table}.{added}"):
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
    cols = {c.name: c for c in snap.columns}
    new_types = dict({c.name: c.type for c in snap.columns})
    for i, op in enumerate(ops):  # every type that will exist must map across the layers (refused at plan time)
        if isinstance(op, AddColumn | ChangeType):
            typ, key = (op.type, "type") if isinstance(op, AddColumn) else (op.to_type, "to_type")
            new_types[op.name if isinstance(op, AddColumn) else op.column] = typ
            try:
                map_type(typ, policy.type_options)
            except UnsupportedTypeError as exc:  # named at the change file's line, not as "<type map>"
                where = _problem(change, i, key, "; ".join(p.message for p in exc.problems))
                raise UnsupportedTypeError(where.problems) from None
    for typ in new_types.values():
        map_type(typ, policy.type_options)

    ddl = render_ddl(change.schema, change.table, ops, cols, change)
    breaking = ddl.breaking
    if breaking and policy.on_breaking_change == "block":
        raise BreakingChangeBlocked(breaking)
    if breaking and policy.on_breaking_change == "expand_contract":
        raise BreakingChangeBlocked([*breaking, "on_breaking_change=expand_contract: run `migrate-assets expand` "
                                     "for this change, then evolve the new columns"])
    if ddl.inverse is None and not policy.allow_irreversible:
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
        steps.append(PlannedStep("registry", "schema_registry",
                                 RegisterSchema(t.subject, schema, snap.registry_latest.version), True,
                                 fps["schema_registry"], "soft-delete the registered version if still the latest"))
    elif t.subject:
        warnings.append(f"subject {t.subject} does not exist yet: the converter registers it with the first event")
        skipped.append("schema_registry")
    else:
        skipped.append("schema_registry")

    if t.iceberg_table and snap.iceberg is not None:
        iops = derive_iceberg(snap.iceberg, ops, policy.type_options,
                              allow_delete=policy.allow_irreversible and policy.on_breaking_change == "warn")
        if iops:
            update = IcebergUpdate(t.iceberg_table, iops, snap.iceberg.schema_id)
            steps.append(PlannedStep("lakehouse", "lakehouse", update, update.reversible, fps["lakehouse"],
                                     f"revert to schema id {snap.iceberg.schema_id}, keeping every snapshot "
                                     "committed since (a column holding values: only with --allow-data-loss)"))
    elif t.iceberg_table:
        raise InvalidInputError([Problem(file="<pipelines>", key="iceberg_table",
                                         message=f"Iceberg table {t.iceberg_table} does not exist")])
    else:
        skipped.append("lakehouse")

    steps.append(PlannedStep("ddl", "source_db",
                             SourceDdl(table, ddl.statements, ddl.inverse, policy.lock_timeout,
                                       snap.source_fingerprint),
                             ddl.inverse is not None, fps["source_db"],
                             "run the inverse DDL" if ddl.inverse is not None else "none: no lossless inverse"))

    if t.connector and snap.connector_config is not None:
        cfg = dict(snap.connector_config)
        new_cfg, reason = connector_decision(cfg, table, ops)
        slot = cfg.get("slot.name", "debezium")
        steps.append(PlannedStep(
            "connector", "connector",
            ConnectorSync(t.connector, slot, tuple(sorted(new_cfg.items())) if new_cfg else None,
                          tuple(sorted(cfg.items())), reason),
            True, fps["connector"],
            "put back the previous config and restart the same safe way" if new_cfg else "nothing to undo"))
    else:
        skipped.append("connector")

    steps.append(PlannedStep("verify", "verify", VerifyLayers(table), True, None, "nothing to undo"))
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
        steps.append(PlannedStep("registry", "schema_registry", RegisterSchema(t.subject, schema, None), True, None,
                                 "soft-delete the registered version if still the latest"))
    else:
        skipped.append("schema_registry")
        if t.subject:
            warnings.append(f"no sibling subject to derive {t.subject} from: the converter registers it with "
                            "the first event")
    if t.iceberg_table:
        if snap.iceberg is not None:
            raise InvalidInputError([Problem(file="<pipelines>", key="iceberg_table",
                                             message=f"Iceberg table {t.iceberg_table} already exists")])
        steps.append(PlannedStep("lakehouse", "lakehouse",
                                 CreateIcebergTable(t.iceberg_table, tuple((n, lt.iceberg) for n, lt in mapped)),
                                 True, "absent", f"drop {t.iceberg_table}"))
    else:
        skipped.append("lakehouse")
    drop = q("DROP TABLE {}", table_ident(table.schema, table.name))
    steps.append(PlannedStep("ddl", "source_db", SourceDdl(name, tuple(create_table(table)), (drop,),
                                                           policy.lock_timeout, None),
                             True, "absent", "drop the table"))
    if t.connector and snap.connector_config is not None:
        cfg = dict(snap.connector_config)
        new_cfg, reason = connector_decision(cfg, name, ())
        steps.append(PlannedStep(
            "connector", "connector",
            ConnectorSync(t.connector, cfg.get("slot.name", "debezium"),
                          tuple(sorted(new_cfg.items())) if new_cfg else None, tuple(sorted(cfg.items())), reason),
            True, snap.fingerprints()["connector"],
            "put back the previous config and restart the same safe way" if new_cfg else "nothing to undo"))
    else:
        skipped.append("connector")
    steps.append(PlannedStep("verify", "verify", VerifyLayers(name), True, None, "nothing to undo"))
    return EvolutionPlan(name, ({"create_table": {"table": name, "columns": [c[0] for c in cols]}},),
                         tuple(steps), tuple(skipped), (), tuple(warnings))


SIGNAL_TABLE = "debezium_signal"


def plan_join_table(snap: Snapshot, policy: Policy, template: RegistryVersion | None, topic_prefix: str | None,
                    signal_exists: bool) -> EvolutionPlan:
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
        steps.append(PlannedStep("registry", "schema_registry", RegisterSchema(t.subject, schema_text, None), True,
                                 None, "soft-delete the registered version if still the latest"))
    else:
        skipped.append("schema_registry")
    if t.iceberg_table and snap.iceberg is None:
        steps.append(PlannedStep("lakehouse", "lakehouse",
                                 CreateIcebergTable(t.iceberg_table, tuple((n, lt.iceberg) for n, lt in mapped)),
                                 True, "absent", f"drop {t.iceberg_table}"))
    else:
        skipped.append("lakehouse")
    if not signal_exists:
        s_schema, s_name = signal.split(".", 1)
        ident_ = table_ident(s_schema, s_name)
        create = q("CREATE TABLE {} (id varchar(42) PRIMARY KEY, type varchar(32) NOT NULL, data varchar(2048))",
                   ident_)
        steps.append(PlannedStep("ddl", "source_db", SourceDdl(signal, (create,), (q("DROP TABLE {}", ident_),),
                                                               policy.lock_timeout, None),
                                 True, "absent", f"drop the signal table {signal}"))
    new_cfg, reason = connector_decision(cfg, t.table, ())
    new_cfg = dict(new_cfg or cfg)
    if not in_list(new_cfg.get("table.include.list"), signal):
        new_cfg["table.include.list"] = new_cfg["table.include.list"] + "," + re.escape(signal)
    new_cfg["signal.data.collection"] = signal
    steps.append(PlannedStep(
        "connector", "connector",
        ConnectorSync(t.connector, cfg.get("slot.name", "debezium"), tuple(sorted(new_cfg.items())),
                      tuple(sorted(cfg.items())), reason + f"; incremental snapshot of {t.table} via {signal}",
                      snapshot=(t.table,), signal_table=signal),
        True, snap.fingerprints()["connector"], "put back the previous config and restart the same safe way"))
    steps.append(PlannedStep("verify", "verify", VerifyLayers(t.table), True, None, "nothing to undo"))
    return EvolutionPlan(t.table, ({"join_pipeline": {"table": t.table, "snapshot": True}},), tuple(steps),
                         tuple(skipped), (), ())
