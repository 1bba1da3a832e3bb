"""`SchemaRegistryAdapter` against the bundled registry as a real process (the shared one, and a private one
for the fault test: the shared registry is never stopped)."""

from __future__ import annotations

import json
import uuid

import pytest

from migrate_assets.errors import IncompatibleSchemaError, LayerObjectNotFoundError, LayerUnreachableError
from migrate_assets.local.stack import StackInfo
from migrate_assets.resources import SchemaRegistryAdapter
from tests.conftest import Service

pytestmark = pytest.mark.stack


def _record(*fields: dict[str, object]) -> str:
    return json.dumps(
        {
            "type": "record",
            "name": "Value",
            "namespace": "t",
            "fields": [{"name": "id", "type": "int"}, *fields],
        }
    )


V1 = _record()
V2 = _record({"name": "note", "type": ["null", "string"], "default": None})
NO_DEFAULT = _record({"name": "note", "type": ["null", "string"]}, {"name": "qty", "type": "int"})


@pytest.fixture
def registry(stack_info: StackInfo) -> SchemaRegistryAdapter:
    return SchemaRegistryAdapter(stack_info.registry_url)


def test_round_trip(registry: SchemaRegistryAdapter) -> None:
    subject = f"rt-{uuid.uuid4().hex[:8]}-value"
    assert registry.latest(subject) is None and registry.versions(subject) == []
    first = registry.check_compatibility(subject, V1)
    assert first.compatible and first.messages == ()  # nothing to be incompatible with

    v1 = registry.register(subject, V1)
    assert (v1.subject, v1.version) == (subject, 1) and json.loads(v1.schema) == json.loads(V1)
    assert registry.register(subject, V1) == v1  # idempotent
    assert registry.latest(subject) == v1

    assert registry.check_compatibility(subject, V2).compatible
    v2 = registry.register(subject, V2)
    assert v2.version == 2 and v2.schema_id != v1.schema_id
    assert registry.versions(subject) == [1, 2]
    assert registry.latest(subject) == v2  # fresh, not the client's cached latest

    bad = registry.check_compatibility(subject, NO_DEFAULT)
    assert not bad.compatible and bad.messages and any("qty" in m for m in bad.messages)
    with pytest.raises(IncompatibleSchemaError) as err:
        registry.register(subject, NO_DEFAULT)
    assert err.value.subject == subject and err.value.messages == bad.messages
    assert registry.versions(subject) == [1, 2]

    registry.soft_delete(subject, 2)
    assert registry.versions(subject) == [1] and registry.latest(subject) == v1
    registry.soft_delete(subject, 2)  # already soft-deleted: done, not an error
    with pytest.raises(LayerObjectNotFoundError):
        registry.soft_delete(subject, 9)
    again = registry.register(subject, V2)  # after the soft delete, registering makes a new version
    assert again.version == 3 and again.schema_id == v2.schema_id


def test_levels_and_transitive_checks(registry: SchemaRegistryAdapter) -> None:
    subject = f"tr-{uuid.uuid4().hex[:8]}-value"
    global_level = registry.client.get_compatibility(None)
    assert registry.compatibility_level(subject) == global_level  # no subject level: the global one
    with_default = _record({"name": "a", "type": "string", "default": "x"})
    without_default = _record({"name": "a", "type": "string"})
    registry.client.set_compatibility(subject, "BACKWARD")
    registry.register(subject, V1)
    registry.register(subject, with_default)
    # readable against the latest version only ...
    plain = registry.check_compatibility(subject, without_default)
    assert plain.compatible and plain.level == "BACKWARD"
    # ... but not against version 1, which TRANSITIVE also checks
    registry.client.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    assert registry.compatibility_level(subject) == "BACKWARD_TRANSITIVE"
    strict = registry.check_compatibility(subject, without_default)
    assert not strict.compatible and strict.level == "BACKWARD_TRANSITIVE"
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m and "version 1" in m for m in strict.messages), (
        strict.messages
    )


def test_stopped_registry_is_unreachable(private_registry: Service) -> None:
    adapter = SchemaRegistryAdapter(private_registry.url, timeout=2, max_retries=1, retry_wait=0.05)
    assert adapter.register("s-value", V1).version == 1
    private_registry.stop()
    calls = {
        "latest": lambda: adapter.latest("s-value"),
        "versions": lambda: adapter.versions("s-value"),
        "level": lambda: adapter.compatibility_level("s-value"),
        "check": lambda: adapter.check_compatibility("s-value", V2),
        "register": lambda: adapter.register("s-value", V2),
        "soft_delete": lambda: adapter.soft_delete("s-value", 1),
    }
    for what, call in calls.items():
        with pytest.raises(LayerUnreachableError) as err:
            call()
        assert err.value.layer == "schema_registry", what
