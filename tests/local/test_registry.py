"""The bundled schema registry, as a real process, driven through confluent-kafka's `SchemaRegistryClient`.

Raw httpx is used only where the client has no call (verbose messages, raw schema, bad bodies) or where the
Java AvroConverter's exact request must be reproduced. Subjects are unique per test, so tests share one
server and run in any order; the global level is restored by the test that changes it.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import uuid
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.local.registry_proc import Registry

MEDIA = "application/vnd.schemaregistry.v1+json"


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    root = tmp_path_factory.mktemp("registry")
    # a short lock wait, so that the store-error test need not wait the default 10 s
    server = Registry(root / "registry.db", root / "registry.log", "--busy-timeout", "0.3")
    yield server
    assert server.stop() == 0


@pytest.fixture
def client(registry: Registry) -> SchemaRegistryClient:
    return SchemaRegistryClient({"url": registry.url})


@pytest.fixture
def subject() -> str:
    return f"t{uuid.uuid4().hex[:10]}-value"


# -- schemas ------------------------------------------------------------------------------------------------


def record(*fields: dict[str, object], name: str = "Row") -> str:
    return json.dumps({"type": "record", "name": name, "namespace": "test", "fields": list(fields)})


A_INT = {"name": "a", "type": "int"}
B_INT = {"name": "b", "type": "int"}
B_DEFAULT = {"name": "b", "type": "int", "default": 0}
V1 = Schema(record(A_INT), "AVRO")
V2 = Schema(record(A_INT, B_DEFAULT), "AVRO")  # backward and forward compatible with V1
ADDS_B_NO_DEFAULT = Schema(record(A_INT, B_INT), "AVRO")  # forward only: new reader lacks a default


def fresh_pair() -> tuple[Schema, Schema]:
    """V1 and V2 under a record name of their own, so their global ids belong to the calling test alone."""
    name = "Row" + uuid.uuid4().hex[:8]
    return Schema(record(A_INT, name=name), "AVRO"), Schema(record(A_INT, B_DEFAULT, name=name), "AVRO")


def registered_version(client: SchemaRegistryClient, subject: str, schema: Schema) -> int:
    """Register, then ask for the version: the register answer is `{"id": N}` only, as Confluent 7.0's."""
    client.register_schema(subject, schema)
    return int(client.lookup_schema(subject, schema).version or 0)


def error_of(call, *args, **kwargs) -> SchemaRegistryError:  # type: ignore[no-untyped-def]
    with pytest.raises(SchemaRegistryError) as info:
        call(*args, **kwargs)
    return info.value


def codes(err: SchemaRegistryError) -> tuple[int, int]:
    return err.http_status_code, err.error_code


# -- tests --------------------------------------------------------------------------------------------------


def test_root_types_mode_and_unknown_route(registry: Registry, client: SchemaRegistryClient) -> None:
    root = httpx.get(registry.url + "/")
    assert (root.status_code, root.json()) == (200, {})
    assert root.headers["content-type"].startswith(MEDIA)
    assert client.get_schema_types() == ["AVRO", "JSON", "PROTOBUF"]
    assert client.get_global_mode() == "READWRITE"
    # no mode of its own: 40409, as Confluent answers since 7.x (the effective mode with defaultToGlobal)
    assert codes(error_of(client.get_mode, "any-subject")) == (404, 40409)
    fallback = httpx.get(registry.url + "/mode/any-subject?defaultToGlobal=true")
    assert fallback.json() == {"mode": "READWRITE"}
    missing = httpx.get(registry.url + "/no/such/route")
    assert missing.status_code == 404 and missing.json()["error_code"] == 404


def test_register_lookup_latest_and_by_id(
    registry: Registry, client: SchemaRegistryClient, subject: str
) -> None:
    v1, v2 = fresh_pair()
    first = client.register_schema(subject, v1)
    # the same schema, written differently: same id, no new version
    respaced = Schema(json.dumps(json.loads(v1.schema_str), indent=4), "AVRO")
    assert SchemaRegistryClient({"url": registry.url}).register_schema(subject, respaced) == first
    assert client.get_versions(subject) == [1]

    second = client.register_schema(subject, v2)
    assert second > first
    assert client.get_versions(subject) == [1, 2]
    assert subject in client.get_subjects()

    latest = client.get_latest_version(subject)
    assert (latest.subject, latest.version, latest.schema_id) == (subject, 2, second)
    assert json.loads(latest.schema.schema_str) == json.loads(v2.schema_str)
    assert client.get_version(subject, 1).schema_id == first

    found = client.lookup_schema(subject, v1)
    assert (found.subject, found.version, found.schema_id) == (subject, 1, first)

    by_id = SchemaRegistryClient({"url": registry.url}).get_schema(second)
    assert json.loads(by_id.schema_str) == json.loads(v2.schema_str)
    assert [(v.subject, v.version) for v in client.get_schema_versions(first)] == [(subject, 1)]
    assert client.get_subjects_by_schema_id(second) == [subject]

    assert httpx.get(f"{registry.url}/subjects/{subject}/versions/2/referencedby").json() == []
    raw = httpx.get(f"{registry.url}/subjects/{subject}/versions/1/schema")
    assert raw.status_code == 200 and raw.json() == json.loads(v1.schema_str)
    assert httpx.get(f"{registry.url}/schemas/ids/{first}/schema").json() == json.loads(v1.schema_str)


def test_same_schema_under_another_subject_keeps_global_id(
    client: SchemaRegistryClient, subject: str
) -> None:
    schema = Schema(record(A_INT, name="Shared" + uuid.uuid4().hex[:6]), "AVRO")
    one = client.register_schema(subject, schema)
    other = client.register_schema(subject + "-other", schema)
    assert one == other
    assert client.get_latest_version(subject + "-other").version == 1


def test_java_avro_converter_requests(registry: Registry, subject: str) -> None:
    """The exact calls Kafka Connect's AvroConverter makes, with its content type."""
    headers = {"Content-Type": MEDIA, "Accept": MEDIA}
    body = json.dumps({"schema": V1.schema_str})
    reg = httpx.post(
        f"{registry.url}/subjects/{subject}/versions?normalize=false", content=body, headers=headers
    )
    assert reg.status_code == 200 and set(reg.json()) == {"id"}
    look = httpx.post(
        f"{registry.url}/subjects/{subject}?normalize=false&deleted=false", content=body, headers=headers
    )
    assert look.json() == {"subject": subject, "version": 1, "id": reg.json()["id"], "schema": V1.schema_str}
    latest = httpx.get(f"{registry.url}/subjects/{subject}/versions/latest", headers=headers)
    assert latest.json()["id"] == reg.json()["id"]
    assert latest.headers["content-type"].startswith(MEDIA)


@pytest.mark.parametrize("content_type", [MEDIA, "application/vnd.schemaregistry+json", "application/json"])
def test_accepted_content_types(registry: Registry, subject: str, content_type: str) -> None:
    answer = httpx.post(
        f"{registry.url}/subjects/{subject}/versions",
        content=json.dumps({"schema": V1.schema_str}),
        headers={"Content-Type": content_type},
    )
    assert answer.status_code == 200 and isinstance(answer.json()["id"], int)
    assert answer.headers["content-type"].startswith(MEDIA)


def test_not_found_codes(registry: Registry, client: SchemaRegistryClient, subject: str) -> None:
    assert codes(error_of(client.get_latest_version, subject)) == (404, 40401)
    assert codes(error_of(client.lookup_schema, subject, V1)) == (404, 40401)
    assert codes(error_of(client.get_versions, subject)) == (404, 40401)
    assert codes(error_of(client.get_schema, 10_000_000)) == (404, 40403)
    assert codes(error_of(client.test_compatibility, subject, V1, version=1)) == (404, 40401)
    assert client.test_compatibility(subject, V1) is True  # nothing to be incompatible with yet
    client.register_schema(subject, V1)
    assert codes(error_of(client.lookup_schema, subject, V2)) == (404, 40403)
    assert codes(error_of(client.get_version, subject, 7)) == (404, 40402)
    assert codes(error_of(client.test_compatibility, subject, V2, version=7)) == (404, 40402)
    for bad in ("0", "abc", "-2", str(2**31)):
        answer = httpx.get(f"{registry.url}/subjects/{subject}/versions/{bad}")
        assert (answer.status_code, answer.json()["error_code"]) == (422, 42202), bad


def test_delete_version_soft_then_permanent(client: SchemaRegistryClient, subject: str) -> None:
    v1, v2 = fresh_pair()
    first = client.register_schema(subject, v1)
    second = client.register_schema(subject, v2)
    assert codes(error_of(client.delete_version, subject, 2, permanent=True)) == (404, 40407)
    assert client.delete_version(subject, 2) == 2
    assert codes(error_of(client.delete_version, subject, 2)) == (404, 40406)
    assert client.get_versions(subject) == [1]
    assert client.get_versions(subject, deleted=True) == [1, 2]
    assert codes(error_of(client.get_version, subject, 2)) == (404, 40402)
    assert client.get_version(subject, 2, deleted=True).schema_id == second
    assert client.get_latest_version(subject).version == 1
    assert client.delete_version(subject, 2, permanent=True) == 2
    assert client.get_versions(subject, deleted=True) == [1]
    # ids are stable: the schema comes back with its old id, as the next version
    assert client.register_schema(subject, v2) == second
    assert client.get_versions(subject) == [1, 2]
    assert client.get_version(subject, 1).schema_id == first


def test_delete_subject_soft_then_permanent(
    registry: Registry, client: SchemaRegistryClient, subject: str
) -> None:
    v1, v2 = fresh_pair()
    first = client.register_schema(subject, v1)
    client.register_schema(subject, v2)
    client.set_compatibility(subject, "FULL")
    assert codes(error_of(client.delete_subject, subject, permanent=True)) == (404, 40405)
    assert client.delete_subject(subject) == [1, 2]
    assert codes(error_of(client.delete_subject, subject)) == (404, 40404)
    assert subject not in client.get_subjects()
    assert subject in client.get_subjects(deleted=True)
    assert codes(error_of(client.get_latest_version, subject)) == (404, 40401)
    assert client.lookup_schema(subject, v1, deleted=True).version == 1
    assert SchemaRegistryClient({"url": registry.url}).get_schema(first).schema_str == v1.schema_str
    assert client.delete_subject(subject, permanent=True) == [1, 2]
    assert subject not in client.get_subjects(deleted=True)
    assert codes(error_of(client.delete_subject, subject)) == (404, 40401)
    assert codes(error_of(client.get_compatibility, subject)) == (404, 40408)  # its level went with it
    assert codes(error_of(SchemaRegistryClient({"url": registry.url}).get_schema, first)) == (404, 40403)
    assert client.register_schema(subject, v1) == first
    assert client.get_versions(subject) == [1]


def test_levels_per_subject_and_global(
    registry: Registry, client: SchemaRegistryClient, subject: str
) -> None:
    assert client.get_compatibility() == "BACKWARD"
    assert codes(error_of(client.get_compatibility, subject)) == (404, 40408)
    fallback = httpx.get(f"{registry.url}/config/{subject}?defaultToGlobal=true")
    assert fallback.json() == {"compatibilityLevel": "BACKWARD"}
    for level in (
        "BACKWARD",
        "BACKWARD_TRANSITIVE",
        "FORWARD",
        "FORWARD_TRANSITIVE",
        "FULL",
        "FULL_TRANSITIVE",
    ):
        assert client.set_compatibility(subject, level) == {"compatibility": level}
        assert client.get_compatibility(subject) == level
    client.register_schema(subject, V1)
    # FULL_TRANSITIVE: adding a field without default breaks the backward direction
    assert codes(error_of(client.register_schema, subject, ADDS_B_NO_DEFAULT)) == (409, 409)
    client.set_compatibility(subject, "FORWARD")
    assert registered_version(client, subject, ADDS_B_NO_DEFAULT) == 2
    assert client.delete_config(subject).compatibility_level == "FORWARD"
    assert codes(error_of(client.get_compatibility, subject)) == (404, 40408)
    try:
        client.set_compatibility(level="NONE")
        assert client.get_compatibility() == "NONE"
        assert client.get_config().compatibility_level == "NONE"
        unrelated = Schema(json.dumps({"type": "enum", "name": "E", "symbols": ["x"]}), "AVRO")
        assert registered_version(client, subject, unrelated) == 3
    finally:
        assert client.delete_config().compatibility_level == "NONE"
    assert client.get_compatibility() == "BACKWARD"


def test_invalid_level_is_42203(registry: Registry, client: SchemaRegistryClient, subject: str) -> None:
    assert codes(error_of(client.set_compatibility, subject, "SIDEWAYS")) == (422, 42203)
    answer = httpx.put(f"{registry.url}/config", json={"compatibility": "bogus"})
    assert (answer.status_code, answer.json()["error_code"]) == (422, 42203)
    assert client.get_compatibility() == "BACKWARD"


def test_transitive_differs_from_latest_only(
    registry: Registry, client: SchemaRegistryClient, subject: str
) -> None:
    client.register_schema(subject, Schema(record(A_INT), "AVRO"))
    client.register_schema(subject, Schema(record(B_DEFAULT), "AVRO"))  # drops a: fine for BACKWARD
    # a comes back as a string: readable from v2 (default used) but not from v1 (int is not a string)
    a_string = Schema(record({"name": "a", "type": "string", "default": "x"}), "AVRO")
    assert client.test_compatibility_all_versions(subject, a_string) is True
    assert client.test_compatibility(subject, a_string, version=2) is True
    assert client.test_compatibility(subject, a_string, version=1) is False
    client.set_compatibility(subject, "BACKWARD_TRANSITIVE")
    assert client.test_compatibility_all_versions(subject, a_string) is False
    assert client.test_compatibility(subject, a_string) is True  # one version: latest
    err = error_of(client.register_schema, subject, a_string)
    assert codes(err) == (409, 409) and "TYPE_MISMATCH" in err.error_message
    verbose = httpx.post(
        f"{registry.url}/compatibility/subjects/{subject}/versions?verbose=true",
        json={"schema": a_string.schema_str},
    ).json()
    assert verbose["is_compatible"] is False
    assert any("TYPE_MISMATCH" in m and "version 1" in m and "/fields/0" in m for m in verbose["messages"])
    client.set_compatibility(subject, "BACKWARD")
    assert registered_version(client, subject, a_string) == 3


def test_verbose_messages_name_the_problem(
    registry: Registry, client: SchemaRegistryClient, subject: str
) -> None:
    client.register_schema(subject, V1)
    url = f"{registry.url}/compatibility/subjects/{subject}/versions/latest"
    bad = httpx.post(url + "?verbose=true", json={"schema": ADDS_B_NO_DEFAULT.schema_str}).json()
    assert bad["is_compatible"] is False
    assert any("READER_FIELD_MISSING_DEFAULT_VALUE" in m and "'/fields/1'" in m for m in bad["messages"])
    assert "{compatibility: 'BACKWARD'}" in bad["messages"]
    good = httpx.post(url + "?verbose=true", json={"schema": V2.schema_str}).json()
    assert good == {"is_compatible": True, "messages": []}
    assert httpx.post(url, json={"schema": V2.schema_str}).json() == {"is_compatible": True}
    assert client.test_compatibility(subject, ADDS_B_NO_DEFAULT, verbose=True) is False
    err = error_of(client.register_schema, subject, ADDS_B_NO_DEFAULT)
    assert codes(err) == (409, 409) and "READER_FIELD_MISSING_DEFAULT_VALUE" in err.error_message


def test_full_checks_both_directions(client: SchemaRegistryClient, subject: str) -> None:
    client.set_compatibility(subject, "FULL")
    client.register_schema(subject, V1)
    assert client.test_compatibility(subject, ADDS_B_NO_DEFAULT) is False  # backward fails
    assert client.test_compatibility(subject, Schema(record(B_DEFAULT), "AVRO")) is False  # forward fails
    assert client.test_compatibility(subject, V2) is True


def test_normalize_ignores_property_order(
    registry: Registry, client: SchemaRegistryClient, subject: str
) -> None:
    base = {"type": "record", "name": "N", "fields": [A_INT]}
    one = Schema(json.dumps({**base, "x-a": 1, "x-b": 2}), "AVRO")
    swapped = Schema(json.dumps({"x-b": 2, **base, "x-a": 1}), "AVRO")
    schema_id = client.register_schema(subject, one)
    assert codes(error_of(client.lookup_schema, subject, swapped)) == (404, 40403)
    assert client.lookup_schema(subject, swapped, normalize_schemas=True).schema_id == schema_id
    assert client.register_schema(subject, swapped, normalize_schemas=True) == schema_id
    assert client.get_versions(subject) == [1]


def test_invalid_schemas_are_42201(registry: Registry, client: SchemaRegistryClient, subject: str) -> None:
    cases = {
        "{not json": "not JSON",
        record({"name": "a", "type": "Nope"}): "Nope",
        # only the avro package refuses a duplicate field name ...
        record(A_INT, {"name": "a", "type": "long"}): "already in use",
        # ... and only fastavro a default of the wrong type
        record({"name": "a", "type": "int", "default": "zero"}): "must match schema type",
    }
    for text, words in cases.items():
        err = error_of(client.register_schema, subject, Schema(text, "AVRO"))
        assert codes(err) == (422, 42201) and words in err.error_message, text
    err = error_of(client.register_schema, subject, Schema("{}", "XML"))  # type: ignore[arg-type]
    assert codes(err) == (422, 42201) and "schemaType" in err.error_message
    referencing = {"schema": V1.schema_str, "references": [{"name": "x", "subject": "y", "version": 1}]}
    answer = httpx.post(f"{registry.url}/subjects/{subject}/versions", json=referencing)
    assert (answer.status_code, answer.json()["error_code"]) == (422, 42201)
    assert "reference 'x' to subject 'y' version 1 not found" in answer.json()["message"]
    plain = httpx.post(f"{registry.url}/subjects/{subject}/versions", json={**referencing, "references": []})
    assert plain.status_code == 200  # empty references are fine


def test_bad_bodies_are_422(registry: Registry, subject: str) -> None:
    for method, path, body in [
        ("POST", f"/subjects/{subject}/versions", "{broken"),
        ("POST", f"/subjects/{subject}/versions", json.dumps({"schemaType": "AVRO"})),
        ("POST", f"/subjects/{subject}", "[1, 2"),
        ("POST", f"/compatibility/subjects/{subject}/versions/latest", "nope"),
        ("PUT", "/config", "{"),
    ]:
        answer = httpx.request(method, registry.url + path, content=body, headers={"Content-Type": MEDIA})
        assert (answer.status_code, answer.json()["error_code"]) == (422, 422), (method, path, body)


def test_store_error_is_50001(registry: Registry, client: SchemaRegistryClient, subject: str) -> None:
    """Another process holding the SQLite write lock: writes answer 50001 (HTTP 500), reads go on."""
    client.register_schema(subject, V1)
    holder = sqlite3.connect(registry.db, isolation_level=None)
    try:
        holder.execute("BEGIN IMMEDIATE")
        once = SchemaRegistryClient({"url": registry.url, "max.retries": 0})  # the client retries a 500
        err = error_of(once.register_schema, subject, V2)
        assert codes(err) == (500, 50001) and "locked" in err.error_message
        assert client.get_versions(subject) == [1]
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    assert client.register_schema(subject, V2) > 0


def test_concurrent_registrations(registry: Registry, subject: str) -> None:
    """16 threads: distinct schemas get distinct ids and versions, a shared schema one id."""
    SchemaRegistryClient({"url": registry.url}).set_compatibility(subject, "NONE")
    shared = Schema(record(A_INT, name="Shared" + uuid.uuid4().hex[:6]), "AVRO")
    results: dict[int, tuple[int, int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(16)

    def work(n: int) -> None:
        try:
            client = SchemaRegistryClient({"url": registry.url})
            mine = Schema(record({"name": f"f{n}", "type": "int"}, name=f"Own{n}"), "AVRO")
            barrier.wait(timeout=30)
            own_id = client.register_schema(subject, mine)
            shared_id = client.register_schema(f"{subject}-shared{n % 4}", shared)
            results[n] = (own_id, shared_id)
        except BaseException as exc:  # reported below, in the main thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(16)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    own_ids = [own for own, _ in results.values()]
    assert len(set(own_ids)) == 16
    assert len({shared_id for _, shared_id in results.values()}) == 1
    client = SchemaRegistryClient({"url": registry.url})
    assert client.get_versions(subject) == list(range(1, 17))
    by_version = {client.get_version(subject, v).schema_id for v in range(1, 17)}
    assert by_version == set(own_ids)
    for n in range(4):
        assert client.get_versions(f"{subject}-shared{n}") == [1]


def test_restart_keeps_everything(tmp_path: Path) -> None:
    db = tmp_path / "registry.db"
    first = Registry(db, tmp_path / "first.log")
    try:
        client = SchemaRegistryClient({"url": first.url})
        ids = [client.register_schema("keep-value", V1), client.register_schema("keep-value", V2)]
        client.set_compatibility("keep-value", "FULL_TRANSITIVE")
        client.register_schema("gone-value", V1)
        client.delete_subject("gone-value")
    finally:
        assert first.stop() == 0  # SIGTERM is a clean exit
    second = Registry(db, tmp_path / "second.log")
    try:
        client = SchemaRegistryClient({"url": second.url})
        assert [client.get_version("keep-value", v).schema_id for v in (1, 2)] == ids
        assert client.get_compatibility("keep-value") == "FULL_TRANSITIVE"
        assert client.get_subjects() == ["keep-value"]
        assert client.get_subjects(deleted=True) == ["gone-value", "keep-value"]
        assert client.register_schema("keep-value", V1) == ids[0]
        newer = client.register_schema("other-value", Schema(record(B_INT, name="Other"), "AVRO"))
        assert newer > max(ids)
    finally:
        assert second.stop() == 0
