"""Subjects the evolution engine does not evolve — JSON Schema, Protobuf, Avro with references — as real
registries hold them: the adapter reports their type and references, pre-flight refuses them naming the
subject and what it holds, and nothing changes. A registry of the test's own (the bundled one, a real
process); the source is the in-memory fake of our own layer protocol."""

from __future__ import annotations

import json
import uuid

import httpx
import pytest

from migrate_assets.errors import SafetyRefusal
from migrate_assets.evolution.actions import RunContext
from migrate_assets.evolution.layers import SourceColumn
from migrate_assets.evolution.memory import MemorySource
from migrate_assets.evolution.planner import PipelineTarget, Policy
from migrate_assets.evolution.preflight import preflight
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.resources import SchemaRegistryAdapter
from tests.conftest import Service

ROW = {"type": "record", "name": "Value", "namespace": "p.public.customers",
       "fields": [{"name": "id", "type": "int"}]}
#: a Debezium envelope with its row record inline, and the same envelope naming it (a reference)
INLINE = json.dumps({"type": "record", "name": "Envelope", "namespace": "p.public.customers", "fields": [
    {"name": "before", "type": ["null", ROW], "default": None},
    {"name": "after", "type": ["null", "Value"], "default": None}, {"name": "op", "type": "string"}]})
REFERRING = json.dumps({"type": "record", "name": "Envelope", "namespace": "p.public.customers", "fields": [
    {"name": "before", "type": ["null", "p.public.customers.Value"], "default": None},
    {"name": "after", "type": ["null", "p.public.customers.Value"], "default": None},
    {"name": "op", "type": "string"}]})
CHANGE = "table: public.customers\noperations:\n  - add_column: {name: note, type: text, nullable: true}\n"


def _post(url: str, subject: str, body: dict[str, object]) -> int:
    answer = httpx.post(f"{url}/subjects/{subject}/versions", json=body)
    assert answer.status_code == 200, answer.text
    return int(answer.json()["id"])


def _preflight(registry: SchemaRegistryAdapter, subject: str) -> object:
    source = MemorySource({"public.customers": [SourceColumn("id", "integer", False)]})
    ctx = RunContext(source=source, registry=registry)
    change = parse_change_text(CHANGE, "c.yaml")
    return preflight(change, PipelineTarget("public.customers", None, subject), ctx, Policy())


@pytest.fixture
def subjects(private_registry: Service) -> dict[str, str]:
    """One subject of each kind on a registry of its own."""
    url, tag = private_registry.url, uuid.uuid4().hex[:6]
    names = {k: f"{k}-{tag}-value" for k in ("avro", "json", "protobuf", "row", "referring")}
    _post(url, names["avro"], {"schema": INLINE})
    _post(url, names["json"], {"schemaType": "JSON", "schema": json.dumps(
        {"type": "object", "properties": {"id": {"type": "integer"}}})})
    _post(url, names["protobuf"], {"schemaType": "PROTOBUF",
                                   "schema": 'syntax = "proto3";\nmessage Value { int32 id = 1; }\n'})
    _post(url, names["row"], {"schema": json.dumps(ROW)})
    _post(url, names["referring"], {"schema": REFERRING, "references": [
        {"name": "p.public.customers.Value", "subject": names["row"], "version": 1}]})
    return names


def test_adapter_reports_type_and_references(private_registry: Service, subjects: dict[str, str]) -> None:
    registry = SchemaRegistryAdapter(private_registry.url)
    avro = registry.latest(subjects["avro"])
    assert avro is not None and (avro.schema_type, avro.references) == ("AVRO", ())
    for kind in ("json", "protobuf"):
        found = registry.latest(subjects[kind])
        assert found is not None and found.schema_type == kind.upper() and found.references == ()
    referring = registry.latest(subjects["referring"])
    assert referring is not None and referring.schema_type == "AVRO"
    assert referring.references == (("p.public.customers.Value", subjects["row"], 1),)


@pytest.mark.parametrize(("kind", "words"), [
    ("json", "holds a JSON schema"),
    ("protobuf", "holds a PROTOBUF schema"),
    ("referring", "holds an Avro schema with references (p.public.customers.Value from row-"),
])
def test_preflight_refuses_naming_subject_and_type(
    private_registry: Service, subjects: dict[str, str], kind: str, words: str
) -> None:
    registry = SchemaRegistryAdapter(private_registry.url)
    with pytest.raises(SafetyRefusal) as refused:
        _preflight(registry, subjects[kind])
    message = str(refused.value)
    assert subjects[kind] in message and words in message and "nothing was changed" in message
    assert refused.value.exit_code == 3
    assert registry.versions(subjects[kind]) == [1]  # nothing registered


def test_preflight_still_plans_a_self_contained_avro_subject(
    private_registry: Service, subjects: dict[str, str]
) -> None:
    report = _preflight(SchemaRegistryAdapter(private_registry.url), subjects["avro"])
    checks = dict(report.checks)  # type: ignore[attr-defined]
    assert "BACKWARD-compatible" in checks["schema_registry"]
