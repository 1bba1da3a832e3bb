"""add_enum_value in a change file (issue 22: "adding an enum value is planned"): the parser's checks, and the
plan evolve runs — registry version with the new `allowed` list, `ALTER TYPE … ADD VALUE IF NOT EXISTS` (not
reversible, needs --allow-irreversible), a connector restart with the config unchanged, verify. No services; the
same change on the real stack is tests/evolution/test_enum_live.py."""

from __future__ import annotations

import json

import pytest

from migrate_assets.errors import (
    ChangeFileError,
    InvalidInputError,
    IrreversibleChangeError,
    LayerRequestError,
)
from migrate_assets.evolution.actions import Bounds, ConnectorSync, RegisterSchema, RunContext, SourceDdl
from migrate_assets.evolution.derive import avro_row_fields
from migrate_assets.evolution.enum_values import plan_enum_values
from migrate_assets.evolution.layers import Layer, RegistryVersion, SourceColumn
from migrate_assets.evolution.memory import MemoryConnector, MemoryRegistry, MemorySource, MemoryStore
from migrate_assets.evolution.planner import EvolutionPlan, PipelineTarget, Policy, Snapshot, plan_evolution
from migrate_assets.evolution.preflight import read_snapshot
from migrate_assets.evolution.saga import RetryPolicy, Saga
from migrate_assets.evolution.typemap import TypeMapOptions, UserType, map_type
from migrate_assets.expand import parse_change_text

OLD = TypeMapOptions(user_types=(UserType("public.tier", "enum", ("bronze", "silver")),))
COLS = (SourceColumn("id", "integer", False), SourceColumn("tier", "public.tier", True),
        SourceColumn("tiers", "public.tier[]", True))
CONFIG = (("slot.name", "s"), ("table.include.list", "public.t"), ("topic.prefix", "app"))


def _schema() -> str:
    fields = [{"name": c.name, "type": ["null", map_type(c.type, OLD).avro_schema()], "default": None} for c in COLS]
    return json.dumps({"type": "record", "name": "Envelope", "namespace": "app.public.t", "fields": [
        {"name": "before", "type": ["null", {"type": "record", "name": "Value", "fields": fields}], "default": None},
        {"name": "after", "type": ["null", "Value"], "default": None}, {"name": "op", "type": "string"}]})


def _snap(columns: tuple[SourceColumn, ...] = COLS) -> Snapshot:
    return Snapshot(PipelineTarget("public.t", "c", "app.public.t-value", "lake.t"), columns, "fp",
                    RegistryVersion("app.public.t-value", 3, 7, _schema()), "BACKWARD", None, CONFIG, "RUNNING")


def _plan(ops: str, *, allow: bool = True, columns: tuple[SourceColumn, ...] = COLS) -> EvolutionPlan:
    change = parse_change_text(f"table: public.t\noperations:\n{ops}", "c.yaml")
    return plan_evolution(change, _snap(columns), Policy(allow_irreversible=allow, lock_timeout=1.5, type_options=OLD))


def test_the_plan_registers_the_labels_adds_the_value_and_restarts_the_connector() -> None:
    plan = _plan("  - add_enum_value: {type: public.tier, value: gold, after: silver}\n")
    assert [s.layer for s in plan.steps] == [Layer.SCHEMA_REGISTRY, Layer.SOURCE_DB, Layer.CONNECTOR, Layer.VERIFY]
    reg, ddl, conn, _ = (s.action for s in plan.steps)
    assert isinstance(reg, RegisterSchema) and reg.expected_version == 3
    new = TypeMapOptions(user_types=(UserType("public.tier", "enum", ("bronze", "silver", "gold")),))
    fields = avro_row_fields(reg.schema)
    assert fields["tier"] == ["null", map_type("public.tier", new).avro_schema()]
    assert fields["tiers"] == ["null", map_type("public.tier[]", new).avro_schema()]
    assert isinstance(ddl, SourceDdl) and ddl.lock_timeout == 1.5 and ddl.inverse_statements is None
    assert ddl.statements == ("ALTER TYPE \"public\".\"tier\" ADD VALUE IF NOT EXISTS 'gold' AFTER 'silver'",)
    assert not plan.steps[1].reversible and "cannot remove an enum label" in plan.steps[1].compensation
    assert isinstance(conn, ConnectorSync) and conn.restart and conn.new_config is None
    assert "restart safely" in conn.describe()
    assert plan.operations == ({"add_enum_value": {"type": "public.tier", "value": "gold", "after": "silver"}},)
    assert any("cannot remove an enum label" in w for w in plan.warnings)


def test_before_places_the_label_and_a_bare_type_is_in_the_tables_schema() -> None:
    plan = _plan("  - add_enum_value: {type: tier, value: tin, before: bronze}\n")
    reg = plan.steps[0].action
    assert isinstance(reg, RegisterSchema)
    assert "tin,bronze,silver" in reg.schema
    assert plan.steps[1].action.statements[0].endswith("'tin' BEFORE 'bronze'")  # type: ignore[attr-defined]


def test_a_label_already_there_registers_nothing_new_but_still_restarts() -> None:
    plan = _plan("  - add_enum_value: {type: public.tier, value: silver}\n")
    assert [s.layer for s in plan.steps] == [Layer.SOURCE_DB, Layer.CONNECTOR, Layer.VERIFY]
    assert any("already lists the new labels" in w for w in plan.warnings)


def test_refusals_name_the_file_and_key() -> None:
    with pytest.raises(IrreversibleChangeError, match="--allow-irreversible"):
        _plan("  - add_enum_value: {type: public.tier, value: gold}\n", allow=False)
    with pytest.raises(InvalidInputError, match=r"c\.yaml:3.*type.*public\.mood is not an enum"):
        _plan("  - add_enum_value: {type: public.mood, value: gold}\n")
    with pytest.raises(InvalidInputError, match=r"after.*has no label 'platinum'"):
        _plan("  - add_enum_value: {type: public.tier, value: gold, after: platinum}\n")
    with pytest.raises(InvalidInputError, match="no column of public.t uses public.tier"):
        _plan("  - add_enum_value: {type: public.tier, value: gold}\n", columns=COLS[:1])


@pytest.mark.parametrize(("ops", "message"), [
    ("  - add_enum_value: {type: public.tier, value: gold, before: a, after: b}\n", "not both"),
    ("  - add_enum_value: {type: a.b.c, value: gold}\n", "expected an enum type"),
    ("  - add_enum_value: {type: public.tier, value: ''}\n", "1 to 63 bytes"),
    ("  - add_enum_value: {type: public.tier, value: " + "x" * 64 + "}\n", "1 to 63 bytes"),
    ("  - add_enum_value: {type: public.tier, value: gold, after: gold}\n", "next to itself"),
    ("  - add_enum_value: {type: public.tier}\n", "required key is missing"),
    ("  - add_enum_value: {type: public.tier, value: gold}\n  - drop_column: {column: x}\n", "of its own"),
])
def test_the_parser_refuses_bad_operations(ops: str, message: str) -> None:
    with pytest.raises(ChangeFileError, match=message) as exc:
        parse_change_text(f"table: public.t\noperations:\n{ops}", "c.yaml")
    assert "c.yaml:3" in str(exc.value)


def test_other_pipeline_tables_using_the_enum_go_along_in_one_run() -> None:
    """Every pipeline table whose columns use the enum is carried: its subject gets the new labels, each
    connector restarts once, each table is verified; a table without the enum is left alone."""
    change = parse_change_text("table: public.t\noperations:\n  - add_enum_value: {type: public.tier, value: gold}\n",
                               "c.yaml")
    other_cfg = (("slot.name", "s2"), ("table.include.list", "public.u"), ("topic.prefix", "app2"))

    def snap(table: str, connector: str, prefix: str, cfg: tuple[tuple[str, str], ...],
             cols: tuple[SourceColumn, ...]) -> Snapshot:
        subject = f"{prefix}.{table}-value"
        return Snapshot(PipelineTarget(table, connector, subject, None), cols, "fp",
                        RegistryVersion(subject, 1, 9, _schema()), "BACKWARD", None, cfg, "RUNNING")

    related = (snap("public.u", "c2", "app2", other_cfg, COLS), snap("public.v", "c", "app", CONFIG, COLS[:2]),
               snap("public.w", "c2", "app2", other_cfg, COLS[:1]))
    plan = plan_evolution(change, _snap(), Policy(allow_irreversible=True, type_options=OLD))
    alone = [s.id for s in plan.steps]
    plan = plan_enum_values(change, _snap(), Policy(allow_irreversible=True, type_options=OLD), related)
    assert [s.id for s in plan.steps] == [
        "registry:public.u", "registry:public.v", "registry", "ddl", "connector:c2", "connector",
        "verify:public.u", "verify:public.v", "verify"]
    assert alone == ["registry", "ddl", "connector", "verify"]
    subjects = [s.action.subject for s in plan.steps if isinstance(s.action, RegisterSchema)]
    assert subjects == ["app2.public.u-value", "app.public.v-value", "app.public.t-value"]
    restarts = [s.action for s in plan.steps if isinstance(s.action, ConnectorSync)]
    assert [(a.name, a.slot, a.restart, a.new_config) for a in restarts] == [("c2", "s2", True, None),
                                                                              ("c", "s", True, None)]
    assert [s.reversible for s in plan.steps] == [True, True, True, False, True, True, True, True, True]
    assert any("public.u uses the type too (columns tier, tiers)" in w and "connector c2 restarts" in w
               for w in plan.warnings)
    assert not any("public.w" in w for w in plan.warnings)
    assert any("registry versions this run registered are deleted but the label stays" in w for w in plan.warnings)


def test_a_failure_at_the_other_connector_undoes_both_registry_versions_and_leaves_the_label() -> None:
    """The run is one saga with real undo: when the second connector's restart fails, both subjects' new versions
    are deleted again (in-memory layers); the DDL step has nothing to undo (Postgres keeps the label)."""
    src = MemorySource({"public.t": list(COLS), "public.u": list(COLS)})
    reg = MemoryRegistry()
    for subject in ("app.public.t-value", "app2.public.u-value"):
        reg.register(subject, _schema())
    conn = MemoryConnector(src)
    conn.add("c", dict(CONFIG))
    conn.add("c2", {"slot.name": "s2", "table.include.list": "public.u", "topic.prefix": "app2"})
    ctx = RunContext(src, reg, None, conn, bounds=Bounds(slot_catch_up=0.3, running=0.3, progress=0.3))
    main = read_snapshot(PipelineTarget("public.t", "c", "app.public.t-value"), ctx)
    other = read_snapshot(PipelineTarget("public.u", "c2", "app2.public.u-value"), ctx)
    change = parse_change_text("table: public.t\noperations:\n  - add_enum_value: {type: public.tier, value: gold}\n",
                               "c.yaml")
    plan = plan_enum_values(change, main, Policy(allow_irreversible=True, type_options=OLD), (other,))
    conn.fail("restart", LayerRequestError("kafka_connect", "restart refused"))  # the first restart: c2's
    rec = Saga(ctx, MemoryStore(), RetryPolicy(attempts=1)).start(plan)
    assert rec.status == "rolled_back" and rec.failed_step == "connector:c2", rec
    states = {s.id: (s.status, s.compensation) for s in rec.steps}
    assert states["registry"][0] == states["registry:public.u"][0] == "compensated"
    assert states["ddl"] == ("compensated", "nothing to undo")
    assert reg.versions("app.public.t-value") == reg.versions("app2.public.u-value") == [1]
    assert src.ddl == [["ALTER TYPE \"public\".\"tier\" ADD VALUE IF NOT EXISTS 'gold'"]]  # the label stays
