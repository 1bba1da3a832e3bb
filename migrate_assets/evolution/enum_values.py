"""Planning a new enum label through the pipeline (issue 22 item 1: "adding an enum value is planned").

Debezium carries an enum column as a string whose schema lists the type's labels (`connect.parameters.allowed`),
read from the catalog when its task starts. A label added with `ALTER TYPE … ADD VALUE` therefore reaches the
topic's schema only after a connector restart, and the AvroConverter would register a version of its own then.
The plan does it in the order that leaves no unplanned version:

1. registry — the subject's next version with the new `allowed` list (`derive.derive_enum_labels`); undone by
   deleting that version while it is still the latest;
2. DDL — `ALTER TYPE … ADD VALUE IF NOT EXISTS … [BEFORE|AFTER …]` under `lock_timeout` (a lock on the type,
   not the table; allowed in a transaction since PostgreSQL 12, and the transaction commits at once so the label
   is usable when the step ends). Postgres cannot remove a label: the step is not reversible, so the change needs
   `--allow-irreversible` like any other, and a failure after it leaves the label in place while the registry
   version is deleted; the same change file run again finishes the other layers (the DDL is then a no-op);
3. connector — a restart with the config unchanged, the CDC-safe way (the slot first passes the DDL's commit,
   then RUNNING and slot progress), so Debezium announces the new labels and the converter finds our version;
4. verify.

Every other pipeline table whose columns use the enum (behind the same connector or another) goes in the same
run: pre-flight reads each one's layers (`preflight.related_snapshots`), its subject gets the next version with the
new labels (step `registry:<table>`), every connector involved restarts once (`connector:<name>`), and each table
is verified (`verify:<table>`) — otherwise those tables would keep announcing the old labels until their connector
happened to restart, and the converter would then register a version of its own. Undo is real where the layer
allows it: each registered version is deleted while it is still the latest; the restarts have nothing to undo;
the label itself stays (the DDL step is not reversible, for every table alike).

The Iceberg column is a string: nothing changes there.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Sequence

from migrate_assets.errors import InvalidInputError, IrreversibleChangeError, Problem
from migrate_assets.evolution.actions import ConnectorSync, RegisterSchema, SourceDdl, VerifyLayers
from migrate_assets.evolution.derive import derive_enum_labels
from migrate_assets.evolution.layers import Layer, SourceColumn
from migrate_assets.evolution.planner import EvolutionPlan, PlannedStep, Policy, Snapshot
from migrate_assets.expand.ops import ChangeSet, op_to_dict
from migrate_assets.schema.ops.add_enum_value import AddEnumValue, qualified_type
from migrate_assets.schema.types import UnknownTypeError, parse_type
from migrate_assets.schema.yamlsrc import format_path

#: what the plan says about the one step that cannot be undone
NOT_REVERSIBLE = ("Postgres cannot remove an enum label: if a later step fails, the registry versions this run "
                  "registered are deleted but the label stays in the type; run the same change file again to finish "
                  "the other layers (ADD VALUE IF NOT EXISTS is then a no-op)")
STALE_UNTIL_RESTART = ("until the connector restarts, Debezium announces the previous labels: rows written in "
                       "between are published with the previous registry version")


def is_enum_change(change: ChangeSet) -> bool:
    return any(op.changes_type for op in change.operations)


def _enum_ops(change: ChangeSet) -> list[AddEnumValue]:
    """The change's operations, typed: a change file that adds enum labels holds nothing else (the change-file
    loader refuses a mix), so this only narrows the type."""
    ops = [op for op in change.operations if isinstance(op, AddEnumValue)]
    assert len(ops) == len(change.operations)
    return ops


def _problem(change: ChangeSet, i: int, key: str, message: str) -> InvalidInputError:
    path = (*change.location(i), key)
    return InvalidInputError([Problem(change.source, message, format_path(path), change.line_of(path))])


def new_labels(change: ChangeSet, policy: Policy) -> dict[str, tuple[str, ...]]:
    """{enum: its labels after the change} for every enum the change adds to, in sort order; a label already
    there keeps its place (the DDL will not move it). Problems name the change file's line and key."""
    enums = {u.name: u.labels for u in policy.type_options.user_types if u.kind == "enum"}
    out: dict[str, tuple[str, ...]] = {}
    for i, op in enumerate(_enum_ops(change)):
        try:
            name = qualified_type(op.type, change.schema)
        except UnknownTypeError as exc:
            raise _problem(change, i, "type", exc.message) from None
        if name not in enums:
            raise _problem(change, i, "type", f"{name} is not an enum type of the source database")
        labels = list(out.get(name, enums[name]))
        anchor = op.before if op.before is not None else op.after
        if anchor is not None and anchor not in labels:
            raise _problem(change, i, "before" if op.before is not None else "after",
                           f"{name} has no label {anchor!r} (labels: {', '.join(labels)})")
        if op.value not in labels:
            at = len(labels) if anchor is None else labels.index(anchor) + (0 if op.before is not None else 1)
            labels.insert(at, op.value)
        out[name] = tuple(labels)
    return out


def related_step(layer: Layer, key: str) -> str:
    """The step id of another table's (or another connector's) part of a run: `registry:public.orders`."""
    return f"{layer.step}:{key}"


def enum_columns(columns: Sequence[SourceColumn], enums: Iterable[str]) -> dict[str, list[str]]:
    """{enum: the columns of `columns` whose type is it or an array of it}."""
    types = {c.name: parse_type(c.type).element.name for c in columns}
    return {e: [n for n, ty in types.items() if ty == e] for e in enums}


def uses_enums(columns: Sequence[SourceColumn] | None, enums: Iterable[str]) -> bool:
    return bool(columns) and any(enum_columns(columns or (), enums).values())


def _register(snap: Snapshot, labels: dict[str, tuple[str, ...]], step_id: str) -> PlannedStep | None | str:
    """The registry step giving `snap`'s subject the new labels; None without a subject; a warning when the
    subject already lists them."""
    t = snap.target
    if not t.subject or snap.registry_latest is None:
        return None
    types = {c.name: c.type for c in snap.columns or ()}
    schema = snap.registry_latest.schema
    for enum, new in labels.items():
        schema = derive_enum_labels(schema, types, enum, new) or schema
    if json.loads(schema) == json.loads(snap.registry_latest.schema):
        return f"{t.subject} already lists the new labels: nothing to register"
    return PlannedStep(step_id, Layer.SCHEMA_REGISTRY, RegisterSchema(t.subject, schema, snap.registry_latest.version),
                       True, snap.fingerprints()[Layer.SCHEMA_REGISTRY],
                       "soft-delete the registered version if still the latest (the label stays in Postgres)")


def _restart(snap: Snapshot, step_id: str) -> PlannedStep:
    assert snap.target.connector and snap.connector_config is not None
    cfg = dict(snap.connector_config)
    return PlannedStep(step_id, Layer.CONNECTOR,
                       ConnectorSync(snap.target.connector, cfg.get("slot.name", "debezium"), None,
                                     tuple(sorted(cfg.items())), "Debezium reads an enum's labels when its task starts",
                                     restart=True),
                       True, snap.fingerprints()[Layer.CONNECTOR], "nothing to undo (the config is unchanged)")


def plan_enum_values(change: ChangeSet, snap: Snapshot, policy: Policy,
                     related: Sequence[Snapshot] = ()) -> EvolutionPlan:
    """The plan of a change file of add_enum_value operations on the pipeline table `change` names (see the
    module): registry → DDL → connector restart → verify, for that table and for every `related` pipeline table
    whose columns use one of the enums (its subject, its connector — each connector restarted once — and its
    verify), in one run. A related table's step of a layer comes before the named table's."""
    table, t = change.qualified, snap.target
    if snap.columns is None:
        raise InvalidInputError([Problem(file=change.source, key="table", message=f"table {table} does not exist")])
    if not policy.allow_irreversible:
        raise IrreversibleChangeError(f"adding an enum label to {table}'s type cannot be undone ({NOT_REVERSIBLE}); "
                                      "pass --allow-irreversible to run it")
    labels = new_labels(change, policy)
    users = enum_columns(snap.columns, labels)
    for i, op in enumerate(_enum_ops(change)):
        name = qualified_type(op.type, change.schema)
        if not users[name]:
            raise _problem(change, i, "type", f"no column of {table} uses {name}: name the pipeline table whose "
                                              "columns carry it")
    others = [o for o in related if o.target.table != table and uses_enums(o.columns, labels)]
    steps: list[PlannedStep] = []
    skipped: list[str] = []
    warnings = [NOT_REVERSIBLE]
    for planned in [*(_register(o, labels, related_step(Layer.SCHEMA_REGISTRY, o.target.table)) for o in others),
                    _register(snap, labels, Layer.SCHEMA_REGISTRY.step)]:
        if isinstance(planned, PlannedStep):
            steps.append(planned)
        elif planned is not None:
            warnings.append(planned)
    if not any(s.layer == Layer.SCHEMA_REGISTRY for s in steps) and not (t.subject and snap.registry_latest):
        skipped.append(Layer.SCHEMA_REGISTRY)
    statements = tuple(op.statement(change.schema) for op in _enum_ops(change))
    steps.append(PlannedStep(Layer.SOURCE_DB.step, Layer.SOURCE_DB,
                             SourceDdl(table, statements, None, policy.lock_timeout, snap.source_fingerprint),
                             False, snap.fingerprints()[Layer.SOURCE_DB], "none: " + NOT_REVERSIBLE))
    main = t.connector if t.connector and snap.connector_config is not None else None
    restarted = {main}
    for o in others:
        conn = o.target.connector
        if conn and o.connector_config is not None and conn not in restarted:
            restarted.add(conn)
            steps.append(_restart(o, related_step(Layer.CONNECTOR, conn)))
    if main:
        steps.append(_restart(snap, Layer.CONNECTOR.step))
    else:
        skipped.append(Layer.CONNECTOR)
    if restarted - {None}:
        warnings.append(STALE_UNTIL_RESTART)
    for o in others:
        steps.append(PlannedStep(related_step(Layer.VERIFY, o.target.table), Layer.VERIFY,
                                 VerifyLayers(o.target.table), True, None, "nothing to undo"))
        cols = sorted({c for cs in enum_columns(o.columns or (), labels).values() for c in cs})
        via = f", connector {o.target.connector} restarts" if o.target.connector else ""
        warnings.append(f"{o.target.table} uses the type too (columns {', '.join(cols)}): its subject gets the new "
                        f"labels{via} and it is verified in this run")
    steps.append(PlannedStep(Layer.VERIFY.step, Layer.VERIFY, VerifyLayers(table), True, None, "nothing to undo"))
    return EvolutionPlan(table, tuple(op_to_dict(o) for o in change.operations), tuple(steps), tuple(skipped),
                         (), tuple(warnings))
