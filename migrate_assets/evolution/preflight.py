"""Pre-flight: read every layer's state and run every check before anything changes.

Every layer reachable, every fingerprint read, the registry compatibility test of the derived schema under the
subject's level, the Iceberg update validated without commit, DDL hazards against `on_breaking_change` (in the
planner), the connector RUNNING. Any failure raises before the saga starts, so nothing has changed.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from migrate_assets.errors import (
    IncompatibleSchemaError,
    InvalidInputError,
    Problem,
    RuntimeFailure,
    SafetyRefusal,
)
from migrate_assets.evolution import enum_values
from migrate_assets.evolution.actions import IcebergUpdate, RegisterSchema, RunContext
from migrate_assets.evolution.filters import in_list, listed_tables
from migrate_assets.evolution.layers import Layer, RegistryVersion
from migrate_assets.evolution.planner import (
    EvolutionPlan,
    PipelineTarget,
    Policy,
    Snapshot,
    plan_evolution,
    plan_join_table,
    plan_new_table,
)
from migrate_assets.evolution.sink import check_sink
from migrate_assets.evolution.typemap import EXTENSION_TYPES, TypeMapOptions, UserType
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.schema.model import Table


class ConnectorNotRunning(RuntimeFailure):
    pass


@dataclass(frozen=True)
class PreflightReport:
    snapshot: Snapshot
    plan: EvolutionPlan
    checks: tuple[tuple[str, str], ...]  # (layer, what was checked and found)
    #: other pipeline tables the plan carries too (a new enum label reaches every table using the type)
    related: tuple[Snapshot, ...] = ()

    @property
    def targets(self) -> list[PipelineTarget]:
        return [self.snapshot.target, *(s.target for s in self.related)]

    def __post_init__(self) -> None:
        object.__setattr__(self, "checks", tuple((str(layer), what) for layer, what in self.checks))


def resolve_target(target: PipelineTarget, ctx: RunContext) -> PipelineTarget:
    """Fill the subject from the connector config (`<topic.prefix>.<schema>.<table>-value`) when not given."""
    if target.subject or not target.connector or ctx.connector is None or ctx.registry is None:
        return target
    cfg = ctx.connector.config(target.connector)
    prefix = cfg.get("topic.prefix") or cfg.get("database.server.name")
    if not prefix:
        return target
    return replace(target, subject=f"{prefix}.{target.table}-value")


def read_snapshot(target: PipelineTarget, ctx: RunContext) -> Snapshot:
    cols = ctx.source.columns(target.table)
    fp = ctx.source.fingerprint(target.table) if cols is not None else "absent"
    latest = level = None
    if ctx.registry is not None and target.subject:
        latest = evolvable(ctx.registry.latest(target.subject))
        level = ctx.registry.compatibility_level(target.subject)
    ice = None
    if ctx.lakehouse is not None and target.iceberg_table:
        ice = ctx.lakehouse.state(target.iceberg_table)
    cfg = state = None
    if ctx.connector is not None and target.connector:
        cfg = tuple(sorted(ctx.connector.config(target.connector).items()))
        state = ctx.connector.status(target.connector).state
    return Snapshot(target, tuple(cols) if cols is not None else None, fp, latest, level, ice, cfg, state)


_USER_TYPES = """
SELECT quote_ident(n.nspname) || '.' || quote_ident(t.typname), t.typtype::text,
       ARRAY(SELECT e.enumlabel::text FROM pg_enum e WHERE e.enumtypid = t.oid ORDER BY e.enumsortorder),
       CASE WHEN t.typtype = 'd' THEN format_type(t.typbasetype, t.typtypmod) END
FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
WHERE (t.typtype IN ('e', 'd') OR (t.typtype = 'b' AND t.typname = ANY(%s)))
  AND n.nspname NOT IN ('pg_catalog', 'information_schema')
ORDER BY 1"""
_KINDS = {"e": "enum", "d": "domain", "b": "extension"}


def user_types(ctx: RunContext) -> tuple[UserType, ...]:
    """The source database's enums (labels in sort order, as Debezium's `allowed`), domains (their base type,
    which is what Debezium emits) and the extension types Debezium knows by name (PostGIS, citext, …: where they
    are installed), for the type map. A source without a catalog (an in-memory layer) has none."""
    connect = getattr(ctx.source, "connect", None)
    if connect is None:
        return ()
    with connect() as conn, conn.transaction():
        conn.execute("SET LOCAL search_path = pg_catalog")  # format_type qualifies user types, as PgType does
        rows = conn.execute(_USER_TYPES, (list(EXTENSION_TYPES),)).fetchall()
    return tuple(UserType(name, _KINDS[kind], tuple(labels or ()), base) for name, kind, labels, base in rows)


def with_user_types(opts: TypeMapOptions, ctx: RunContext) -> TypeMapOptions:
    """`opts` with the catalog's user types; with a catalog, an extension type it lacks is refused by the map."""
    return replace(opts, user_types=user_types(ctx), catalog=getattr(ctx.source, "connect", None) is not None)


def connector_types(policy: Policy, snap: Snapshot, ctx: RunContext | None = None) -> Policy:
    """The policy with the type map the live connector implies (its decimal, time, binary, interval, hstore and
    unknown-type settings) and the catalog's enums and domains: what Debezium will emit is what the registry,
    Iceberg and verify must expect."""
    opts = policy.type_options
    if snap.connector_config is not None:
        opts = TypeMapOptions.from_connector(dict(snap.connector_config), opts, f"connector {snap.target.connector}")
    if ctx is not None:
        opts = with_user_types(opts, ctx)
    return replace(policy, type_options=opts)


def preflight(change: ChangeSet, target: PipelineTarget, ctx: RunContext, policy: Policy) -> PreflightReport:
    if change.qualified != target.table:
        raise InvalidInputError([Problem(file=change.source, key="table",
                                         message=f"{change.qualified} is not the pipeline table {target.table}")])
    target = resolve_target(target, ctx)
    snap = read_snapshot(target, ctx)
    typed = connector_types(policy, snap, ctx)
    first = (Layer.SOURCE_DB, f"fingerprint {snap.source_fingerprint}")
    if enum_values.is_enum_change(change) and snap.columns is not None:  # every table using the type goes along
        related = related_snapshots(change, target, ctx, typed)
        report = _checked(snap, enum_values.plan_enum_values(change, snap, typed, related), ctx, first)
        return replace(report, related=related, checks=report.checks + _related_running(related, target, ctx))
    return _checked(snap, plan_evolution(change, snap, typed), ctx, first)


def related_snapshots(change: ChangeSet, target: PipelineTarget, ctx: RunContext,
                      policy: Policy) -> tuple[Snapshot, ...]:
    """The layers of every other pipeline table whose columns use an enum `change` adds a label to."""
    enums = enum_values.new_labels(change, policy)
    out = []
    for other in policy.pipelines:
        if other.table != target.table and enum_values.uses_enums(ctx.source.columns(other.table), enums):
            out.append(read_snapshot(resolve_target(other, ctx), ctx))
    return tuple(out)


def _related_running(related: tuple[Snapshot, ...], target: PipelineTarget,
                     ctx: RunContext) -> tuple[tuple[str, str], ...]:
    """Every other connector the run restarts is RUNNING (checked like the table's own)."""
    checks = []
    for name in sorted({s.target.connector for s in related if s.target.connector} - {target.connector}):
        if ctx.connector is not None:
            st = ctx.connector.status(name)
            if not st.running:
                raise ConnectorNotRunning(f"connector {name} is {st.state} (tasks {list(st.tasks)}): fix it before "
                                          "evolving")
            checks.append((str(Layer.CONNECTOR), f"{name} RUNNING"))
    return tuple(checks)


def _checked(snap: Snapshot, plan: EvolutionPlan, ctx: RunContext, first: tuple[str, str]) -> PreflightReport:
    """Run every check the plan's steps need, without changing anything: registry compatibility of the
    schema to register, the Iceberg update validated without commit, the connector RUNNING."""
    checks: list[tuple[str, str]] = [first]
    for step in plan.steps:
        a = step.action
        if isinstance(a, RegisterSchema) and ctx.registry is not None:
            res = ctx.registry.check_compatibility(a.subject, a.schema)
            if not res.compatible:
                raise IncompatibleSchemaError(a.subject, res.level, res.messages)
            checks.append((Layer.SCHEMA_REGISTRY, f"derived schema is {res.level}-compatible with {a.subject}"))
        elif isinstance(a, IcebergUpdate) and ctx.lakehouse is not None:
            ctx.lakehouse.validate(a.identifier, a.ops)
            checks.append((Layer.LAKEHOUSE, f"update of {a.identifier} validated without commit"))
    target = snap.target
    if target.connector and ctx.connector is not None:
        st = ctx.connector.status(target.connector)
        if not st.running:
            raise ConnectorNotRunning(
                f"connector {target.connector} is {st.state} (tasks {list(st.tasks)}): fix it before evolving"
            )
        checks.append((Layer.CONNECTOR, f"{target.connector} RUNNING"))
    checks += check_sink(target, plan, ctx)
    return PreflightReport(snap, plan, tuple(checks))


def evolvable(latest: RegistryVersion | None) -> RegistryVersion | None:
    """Only self-contained Avro subjects are evolved (or copied as a template): a JSON Schema or Protobuf
    subject, or an Avro schema with references, is refused here, before anything changes."""
    if latest is None or (latest.schema_type == "AVRO" and not latest.references):
        return latest
    what = (f"a {latest.schema_type} schema" if latest.schema_type != "AVRO" else
            "an Avro schema with references (" + ", ".join(f"{n} from {s} v{v}" for n, s, v in latest.references) + ")")
    raise SafetyRefusal(
        f"subject {latest.subject!r} version {latest.version} holds {what}: only self-contained Avro subjects "
        "can be evolved; nothing was changed"
    )


def sibling_template(target: PipelineTarget, ctx: RunContext) -> tuple[RegistryVersion | None, str | None]:
    """A subject of another table of the same connector (the Envelope shape to copy), and the topic prefix."""
    if ctx.connector is None or ctx.registry is None or not target.connector:
        return None, None
    cfg = ctx.connector.config(target.connector)
    prefix = cfg.get("topic.prefix") or cfg.get("database.server.name")
    if not prefix:
        return None, None
    for name in listed_tables(cfg.get("table.include.list")):
        if name != target.table:
            latest = evolvable(ctx.registry.latest(f"{prefix}.{name}-value"))
            if latest is not None:
                return latest, prefix
    return None, prefix


def preflight_new_table(table: Table, target: PipelineTarget, ctx: RunContext, policy: Policy) -> PreflightReport:
    target = resolve_target(target, ctx)
    snap = read_snapshot(target, ctx)
    template, prefix = sibling_template(target, ctx)
    plan = plan_new_table(table, snap, connector_types(policy, snap, ctx), template, prefix)
    return _checked(snap, plan, ctx, (Layer.SOURCE_DB, f"{table.qualified} absent"))


def joining(target: PipelineTarget, ctx: RunContext) -> bool:
    """An existing table listed in `pipelines` that its connector does not capture yet."""
    if not target.connector or ctx.connector is None or ctx.source.columns(target.table) is None:
        return False
    include = ctx.connector.config(target.connector).get("table.include.list")
    return include is not None and not in_list(include, target.table)


def preflight_join_table(target: PipelineTarget, ctx: RunContext, policy: Policy) -> PreflightReport:
    target = resolve_target(target, ctx)
    snap = read_snapshot(target, ctx)
    template, prefix = sibling_template(target, ctx)
    cfg = dict(snap.connector_config or ())
    signal = cfg.get("signal.data.collection") or f"{target.table.split('.', 1)[0]}.debezium_signal"
    key = getattr(ctx.source, "primary_key", lambda _t: ())(target.table)  # Iceberg identifier fields
    plan = plan_join_table(snap, connector_types(policy, snap, ctx), template, prefix,
                           ctx.source.columns(signal) is not None, tuple(key))
    return _checked(snap, plan, ctx, (Layer.SOURCE_DB, f"{target.table} exists ({len(snap.columns or ())} columns)"))
