"""Confluent Schema Registry's own REST cases, ported case by case onto the bundled registry.

Each test names the Confluent test it ports (`RestApiTest.testBasic` ...): their behaviour, our code. Every
case runs twice, through raw HTTP and through confluent-kafka's `SchemaRegistryClient` (`api` is either).
Cases that need an empty registry, or change the global level or mode, get a registry of their own
(`fresh`); the others share one and keep to subjects and schemas of their own.
"""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import pytest

from tests.local.registry_api import Api, ApiError, Ref
from tests.local.registry_cases import (
    F_INT,
    F_STRING,
    api,
    fails,
    fresh,
    random_schemas,
    record,
    shared,
    subject,
)
from tests.local.registry_proc import Registry

__all__ = ["api", "fresh", "shared", "subject"]  # fixtures


# == RestApiTest ============================================================================================


def test_basic(fresh: Api) -> None:
    """RestApiTest.testBasic"""
    assert fails(fresh.versions, "testTopic1") == (404, 40401)
    assert fresh.contexts() == ["."]
    assert fresh.subjects() == []
    first, second = random_schemas(10), random_schemas(5)
    for n, schema in enumerate(first, start=1):
        assert fresh.register("testTopic1", schema) == n
        assert fresh.version("testTopic1", n)["schema"] == schema
    for n, schema in enumerate(first, start=1):
        assert fresh.register("testTopic1", schema) == n  # re-registering returns the existing id
    for n, schema in enumerate(second, start=11):
        assert fresh.register("testTopic2", schema) == n
    assert fresh.versions("testTopic1") == list(range(1, 11))
    assert fresh.versions("testTopic2") == list(range(1, 6))
    assert fresh.subjects() == ["testTopic1", "testTopic2"]
    latest = fresh.raw.call("GET", "/schemas", {"latestOnly": "true"})
    assert [(s["subject"], s["version"]) for s in latest] == [("testTopic1", 10), ("testTopic2", 5)]


def test_register_same_schema_on_different_subject(api: Api, subject: str) -> None:
    """RestApiTest.testRegisterSameSchemaOnDifferentSubject"""
    schema = random_schemas(1)[0]
    assert api.register(subject + "1", schema) == api.register(subject + "2", schema)


def test_register_bad_default(api: Api, subject: str) -> None:
    """RestApiTest.testRegisterBadDefault (Confluent run with validate.defaults=true, ours always is)"""
    bad = json.dumps({"type": "record", "name": "myrecord",
                      "fields": [{"type": "string", "default": None, "name": "f"}]})
    assert fails(api.compatible, subject, bad) == (422, 42201)
    assert fails(api.register, subject, bad) == (422, 42201)


def test_register_diff_schema_type(api: Api, subject: str) -> None:
    """RestApiTest.testRegisterDiffSchemaType: under NONE, a subject may change type"""
    api.set_level("NONE", subject)
    avro_id = api.register(subject, random_schemas(1)[0])
    json_schema = json.dumps({"type": "object", "properties": {"f" + uuid.uuid4().hex[:6]: {"type": "string"}}})
    assert api.compatible(subject, json_schema, schema_type="JSON") is True
    json_id = api.register(subject, json_schema, schema_type="JSON")
    proto = f'syntax = "proto3";\nmessage M{uuid.uuid4().hex[:8]} {{ string f1 = 1; }}\n'
    assert api.compatible(subject, proto, schema_type="PROTOBUF") is True
    proto_id = api.register(subject, proto, schema_type="PROTOBUF")
    assert avro_id < json_id < proto_id
    assert api.schema(json_id) == {"schemaType": "JSON", "schema": json_schema}
    assert api.version(subject, 3)["schema"] == proto


def test_import_different_schema_on_same_id(fresh: Api) -> None:
    """RestApiTest.testImportDifferentSchemaOnSameID"""
    one = record("myrecord", ("field1", "string"))
    two = record("myrecord", ("field1", "string"), {"name": "field2", "type": "int", "default": 0})
    fresh.set_mode("IMPORT")
    assert fresh.register("subject1", one, id=1, version=1) == 1
    assert fails(fresh.register, "subject1", two, id=1, version=2) == (422, 42205)
    assert fails(fresh.register, "subject2", two, id=1, version=1) == (422, 42205)


def test_compatible_schema_lookup_by_subject(api: Api, subject: str) -> None:
    """RestApiTest.testCompatibleSchemaLookupBySubject: a compatibility test registers nothing"""
    schemas = random_schemas(10)
    api.set_level("NONE", subject)
    api.register(subject, schemas[0])
    assert api.compatible(subject, schemas[0]) is True
    for schema in schemas:
        api.compatible(subject, schema)
        assert api.versions(subject) == [1]


def test_incompatible_schema_lookup_by_subject(api: Api, subject: str) -> None:
    """RestApiTest.testIncompatibleSchemaLookupBySubject"""
    api.set_level("FULL", subject)
    api.register(subject, F_STRING)
    version = api.lookup(subject, F_STRING)["version"]
    assert api.compatible(subject, F_INT, version) is False


def test_incompatible_schema_by_subject(api: Api, subject: str) -> None:
    """RestApiTest.testIncompatibleSchemaBySubject: FORWARD_TRANSITIVE checks every version"""
    one = record("myrecord", ("f1", "string"), ("f2", "string"))
    two = record("myrecord", ("f1", "string"))
    three = record("myrecord", ("f1", "string"), ("f3", "string"))
    api.register(subject, one)
    api.register(subject, two)
    api.set_level("FORWARD_TRANSITIVE", subject)
    assert api.compatible(subject, three, "latest") is True
    assert api.compatible(subject, three, None) is False
    assert fails(api.register, subject, three) == (409, 409)


def test_schema_registration_under_diff_subjects(fresh: Api) -> None:
    """RestApiTest.testSchemaRegistrationUnderDiffSubjects"""
    one, two = F_STRING, record("myrecord", ("foo", "int"))
    fresh.set_level("NONE", "testSubject1")
    fresh.set_level("NONE", "testSubject2")
    assert fresh.register("testSubject1", one) == 1
    assert fresh.lookup("testSubject1", one)["version"] == 1
    assert fresh.register("testSubject1", two) == 2
    assert fresh.lookup("testSubject1", two)["version"] == 2
    assert fresh.register("testSubject2", two) == 2
    assert fresh.lookup("testSubject2", two)["version"] == 1


def test_config_defaults(fresh: Api) -> None:
    """RestApiTest.testConfigDefaults (our default level is BACKWARD, as Confluent's out of the box)"""
    assert fresh.level() == "BACKWARD"
    fresh.set_level("FORWARD")
    assert fresh.level() == "FORWARD"


def test_non_existent_subject_config_change(api: Api, subject: str) -> None:
    """RestApiTest.testNonExistentSubjectConfigChange"""
    api.set_level("FORWARD", subject)
    assert api.level(subject) == "FORWARD"


def test_subject_config_change(fresh: Api) -> None:
    """RestApiTest.testSubjectConfigChange"""
    fresh.set_level("NONE")
    fresh.set_level("FORWARD", "testSubject")
    assert fresh.level() == "NONE"
    assert fresh.level("testSubject") == "FORWARD"
    assert fresh.delete_level("testSubject") == "FORWARD"
    fallback = fresh.raw.call("GET", "/config/testSubject", {"defaultToGlobal": "true"})
    assert fallback == {"compatibilityLevel": "NONE"}


def test_get_schema_non_existing_id(api: Api) -> None:
    """RestApiTest.testGetSchemaNonExistingId"""
    assert fails(api.schema, 1_000_000) == (404, 40403)


def test_get_schema_with_fetch_max_id(api: Api, subject: str) -> None:
    """RestApiTest.testGetSchemaWithFetchMaxId (the client has no fetchMaxId: raw HTTP)"""
    ids = [api.register(subject, s) for s in random_schemas(3)]
    assert "maxId" not in api.raw.call("GET", f"/schemas/ids/{ids[0]}")
    assert api.raw.call("GET", f"/schemas/ids/{ids[0]}", {"fetchMaxId": "true"})["maxId"] == ids[-1]


def test_get_schema_types(api: Api) -> None:
    """RestApiTest.testGetSchemaTypes"""
    assert set(api.types()) == {"AVRO", "JSON", "PROTOBUF"}


def test_list_versions_non_existing_subject(api: Api, subject: str) -> None:
    """RestApiTest.testListVersionsNonExistingSubject"""
    assert fails(api.versions, subject) == (404, 40401)


def test_get_version_non_existent_subject(api: Api, subject: str) -> None:
    """RestApiTest.testGetVersionNonExistentSubject"""
    assert fails(api.version, subject, 1) == (404, 40401)


def test_get_non_existing_version(api: Api, subject: str) -> None:
    """RestApiTest.testGetNonExistingVersion"""
    api.register(subject, random_schemas(1)[0])
    assert fails(api.version, subject, 200) == (404, 40402)


def test_get_invalid_version(api: Api, subject: str) -> None:
    """RestApiTest.testGetInvalidVersion"""
    api.register(subject, random_schemas(1)[0])
    assert fails(api.version, subject, 0) == (422, 42202)


def test_register_invalid_subject(api: Api, shared: Registry) -> None:
    """RestApiTest.testRegisterInvalidSubject; and the log line stays one line"""
    bad = "\rbad\nsubject\t"
    assert fails(api.register, bad, random_schemas(1)[0]) == (422, 42208)
    assert bad not in api.subjects(deleted=True)
    assert fails(api.set_level, "FORWARD", bad) == (422, 42208)
    log = Path(shared.db).with_name("registry.log").read_text()
    assert all(not line.startswith(("bad", "subject")) for line in log.splitlines())


def test_get_version(api: Api, subject: str) -> None:
    """RestApiTest.testGetVersion"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    assert api.version(subject, 1)["schema"] == one
    assert api.version(subject, 2)["schema"] == two
    assert api.version(subject, "latest")["schema"] == two


def test_get_latest_version_schema_only(api: Api, subject: str) -> None:
    """RestApiTest.testGetLatestVersionSchemaOnly and testGetVersionSchemaOnly (raw schema: raw HTTP)"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    assert api.raw.call("GET", f"/subjects/{subject}/versions/latest/schema") == json.loads(two)
    assert api.raw.call("GET", f"/subjects/{subject}/versions/1/schema") == json.loads(one)


def _with_reference(tag: str) -> tuple[str, str, str]:
    """A record in namespace `otherns` and a record using it by name (Confluent's getAvroSchemaWithReferences)."""
    ns = "otherns" + tag
    sub = record("Subrecord", ("field2", "string"), namespace=ns)
    top = record("MyRecord", ("field1", f"{ns}.Subrecord"), namespace="ns" + tag)
    return ns, sub, top


def test_schema_references(api: Api, subject: str) -> None:
    """RestApiTest.testSchemaReferences"""
    ns, sub, top = _with_reference(uuid.uuid4().hex[:6])
    api.register(subject + "-ref", sub)
    ref = Ref(f"{ns}.Subrecord", subject + "-ref", 1)
    top_id = api.register(subject + "-referrer", top, refs=[ref])
    found = api.schema(top_id)
    assert found["schema"] == top and found["references"] == [ref.to_json()]
    assert api.referenced_by(subject + "-ref", 1) == [top_id]
    assert api.lookup(subject + "-referrer", top, refs=[ref])["id"] == top_id
    assert fails(api.delete_version, subject + "-ref", 1) == (422, 42206)
    assert fails(api.delete_subject, subject + "-ref") == (422, 42206)
    assert api.delete_version(subject + "-referrer", 1) == 1
    assert api.referenced_by(subject + "-ref", 1) == []
    assert api.delete_version(subject + "-ref", 1) == 1


def test_schema_references_multiple_levels(api: Api, subject: str) -> None:
    """RestApiTest.testSchemaReferencesMultipleLevels: a union of two records sharing a referenced enum"""
    ns = "myavro" + uuid.uuid4().hex[:6]
    shared = json.dumps({"type": "enum", "name": "Currency", "namespace": f"{ns}.currencies", "symbols": ["EUR", "USD"]})
    api.register(subject + "-shared", shared)
    currency = Ref(f"{ns}.currencies.Currency", subject + "-shared", 1)
    dec = record("BudgetDecreased", ("buyerId", "long"), ("currency", f"{ns}.currencies.Currency"),
                 ("amount", "double"), namespace=ns)
    upd = record("BudgetUpdated", ("buyerId", "long"), ("currency", f"{ns}.currencies.Currency"),
                 ("updatedValue", "double"), namespace=ns)
    api.register(subject + "-ref1", dec, refs=[currency])
    api.register(subject + "-ref2", upd, refs=[currency])
    root = json.dumps([f"{ns}.BudgetDecreased", f"{ns}.BudgetUpdated"])
    refs = [Ref(f"{ns}.BudgetDecreased", subject + "-ref1", 1), Ref(f"{ns}.BudgetUpdated", subject + "-ref2", 1)]
    root_id = api.register(subject + "-root", root, refs=refs)
    assert api.schema(root_id) == {"references": [r.to_json() for r in refs], "schema": root}


def test_schema_missing_references(api: Api, subject: str) -> None:
    """RestApiTest.testSchemaMissingReferences"""
    _, _, top = _with_reference(uuid.uuid4().hex[:6])
    assert fails(api.register, subject, top, refs=[]) == (422, 42201)


def test_schema_normalization(api: Api, subject: str) -> None:
    """RestApiTest.testSchemaNormalization: normalize=true ignores property order and reference order, and
    finds the version from the fully resolved schema too"""
    ns = "otherns" + uuid.uuid4().hex[:6]
    ref1 = record("Subrecord1", ("field1", "string"), namespace=ns)
    ref2 = record("Subrecord2", ("field2", "string"), namespace=ns)
    api.register(subject + "-ref1", ref1)
    api.register(subject + "-ref2", ref2)
    r1, r2 = Ref(f"{ns}.Subrecord1", subject + "-ref1", 1), Ref(f"{ns}.Subrecord2", subject + "-ref2", 1)
    fields = [("field1", f"{ns}.Subrecord1"), ("field2", f"{ns}.Subrecord2")]
    one = record("myrecord", ("field0", {"type": "int"}), *fields, extraMetadata={"a": 1, "b": 2})
    two = record("myrecord", ("field0", "int"), *fields, extraMetadata={"b": 2, "a": 1})
    schema_id = api.register(subject, one, refs=[r1, r2], normalize=True)
    found = api.lookup(subject, two, refs=[r2, r1], normalize=True)
    assert (found["version"], found["id"]) == (1, schema_id)
    resolved = json.loads(two)
    resolved["fields"][1]["type"] = json.loads(ref1)
    resolved["fields"][2]["type"] = json.loads(ref2)
    assert api.lookup(subject, json.dumps(resolved), normalize=True)["version"] == 1


def test_bad(api: Api, subject: str) -> None:
    """RestApiTest.testBad"""
    assert fails(api.register, subject, "{\"type\":\"record\",\"name\":\"x\"}") == (422, 42201)
    bad_ref = [Ref("bad", "bad" + subject, 100)]
    assert fails(api.register, subject, random_schemas(1)[0], refs=bad_ref) == (422, 42201)
    assert subject not in api.subjects(deleted=True)


def test_look_up_schema_under_non_existent_subject(api: Api, subject: str) -> None:
    """RestApiTest.testLookUpSchemaUnderNonExistentSubject"""
    assert fails(api.lookup, subject, random_schemas(1)[0]) == (404, 40401)


def test_look_up_non_existent_schema_under_subject(api: Api, subject: str) -> None:
    """RestApiTest.testLookUpNonExistentSchemaUnderSubject"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.set_level("NONE", subject)
    assert fails(api.lookup, subject, two) == (404, 40403)


def test_get_subjects_associated_with_schema_id(api: Api, subject: str) -> None:
    """RestApiTest.testGetSubjectsAssociatedWithSchemaId"""
    schema = random_schemas(1)[0]
    schema_id = api.register(subject + "1", schema)
    api.register(subject + "2", schema)
    assert api.id_subjects(schema_id) == [subject + "1", subject + "2"]
    assert api.delete_version(subject + "2", 1) == 1
    assert api.id_subjects(schema_id) == [subject + "1"]
    assert api.id_subjects(schema_id, deleted=True) == [subject + "1", subject + "2"]


def test_get_subjects_associated_with_not_found_schema_id(api: Api) -> None:
    """RestApiTest.testGetSubjectsAssociatedWithNotFoundSchemaId"""
    assert fails(api.id_subjects, 1_000_000) == (404, 40403)


def test_get_versions_associated_with_schema_id(api: Api, subject: str) -> None:
    """RestApiTest.testGetVersionsAssociatedWithSchemaId"""
    schema = random_schemas(1)[0]
    schema_id = api.register(subject + "1", schema)
    api.register(subject + "2", schema)
    assert api.id_versions(schema_id) == [(subject + "1", 1), (subject + "2", 1)]
    api.delete_version(subject + "2", 1)
    assert api.id_versions(schema_id) == [(subject + "1", 1)]
    assert api.id_versions(schema_id, deleted=True) == [(subject + "1", 1), (subject + "2", 1)]


def test_compatibility_non_existent_subject(api: Api, subject: str) -> None:
    """RestApiTest.testCompatibilityNonExistentSubject"""
    schema = random_schemas(1)[0]
    assert api.compatible(subject, schema, "latest") is True
    assert api.compatible(subject, schema, None) is True


def test_compatibility_non_existent_version(api: Api, subject: str) -> None:
    """RestApiTest.testCompatibilityNonExistentVersion"""
    schema = random_schemas(1)[0]
    api.register(subject, schema)
    assert fails(api.compatible, subject, schema, 100) == (404, 40402)


def test_compatibility_invalid_version(api: Api, subject: str) -> None:
    """RestApiTest.testCompatibilityInvalidVersion"""
    schema = random_schemas(1)[0]
    api.register(subject, schema)
    assert fails(api.compatible, subject, schema, "earliest") == (422, 42202)


def test_get_config_non_existent_subject(api: Api, subject: str) -> None:
    """RestApiTest.testGetConfigNonExistentSubject"""
    assert fails(api.level, subject) == (404, 40408)


def test_canonicalization(api: Api, subject: str) -> None:
    """RestApiTest.testCanonicalization: whitespace does not make another schema"""
    name = "S" + uuid.uuid4().hex[:8]
    spaced = '{   "type":   "fixed", "name": "' + name + '",    "size": 4}'
    schema_id = api.register(subject, spaced)
    assert api.register(subject, spaced) == schema_id
    assert api.lookup(subject, spaced)["id"] == schema_id


def test_delete_schema_version_basic(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteSchemaVersionBasic"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    assert api.delete_version(subject, 2) == 2
    assert api.versions(subject) == [1]
    assert fails(api.version, subject, 2) == (404, 40402)
    assert fails(api.lookup, subject, two) == (404, 40403)
    assert api.delete_version(subject, "latest") == 1
    assert fails(api.versions, subject) == (404, 40401)
    for _ in range(2):  # re-registering twice gives the same version
        api.register(subject, one)
        assert api.versions(subject) == [3]


def test_delete_schema_version_permanent(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteSchemaVersionPermanent"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    assert fails(api.delete_version, subject, 2, permanent=True) == (404, 40407)
    assert api.delete_version(subject, 2) == 2
    assert api.versions(subject) == [1]
    assert api.versions(subject, deleted=True) == [1, 2]
    assert fails(api.delete_version, subject, 2) == (404, 40406)
    assert fails(api.version, subject, 2) == (404, 40402)
    assert api.version(subject, 2, deleted=True)["version"] == 2
    assert fails(api.lookup, subject, two) == (404, 40403)
    assert api.delete_version(subject, 2, permanent=True) == 2
    assert fails(api.version, subject, 2, deleted=True) == (404, 40402)
    assert fails(api.delete_version, subject, 2, permanent=True) == (404, 40402)
    assert api.delete_version(subject, "latest") == 1
    assert fails(api.versions, subject) == (404, 40401)
    for _ in range(2):  # version 2 was deleted for good: the next one is 2 again
        api.register(subject, one)
        assert api.versions(subject) == [2]


def test_delete_schema_version_invalid_subject(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteSchemaVersionInvalidSubject"""
    assert fails(api.delete_version, subject, 1) == (404, 40401)


def test_delete_latest_version(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteLatestVersion"""
    one, two, three = random_schemas(3)
    api.register(subject, one)
    api.register(subject, two)
    assert api.delete_version(subject, "latest") == 2
    assert api.version(subject, "latest")["schema"] == one
    assert api.delete_version(subject, "latest") == 1
    assert fails(api.version, subject, "latest") == (404, 40401)
    api.register(subject, three)
    assert api.version(subject, "latest")["schema"] == three


def test_get_latest_version_non_existent_subject(api: Api, subject: str) -> None:
    """RestApiTest.testGetLatestVersionNonExistentSubject"""
    assert fails(api.version, subject, "latest") == (404, 40401)


def test_get_latest_version_delete_older(api: Api, subject: str) -> None:
    """RestApiTest.testGetLatestVersionDeleteOlder"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    assert api.delete_version(subject, 1) == 1
    assert api.version(subject, "latest")["schema"] == two


def test_delete_invalid_version(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteInvalidVersion"""
    api.register(subject, random_schemas(1)[0])
    assert fails(api.delete_version, subject, 2) == (404, 40402)


def test_delete_with_lookup(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteWithLookup; re-registering a soft-deleted content drops the old version"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    assert api.delete_version(subject, 1) == 1
    assert fails(api.lookup, subject, one) == (404, 40403)
    assert api.lookup(subject, one, deleted=True)["version"] == 1
    api.register(subject, one)
    assert api.lookup(subject, one, deleted=True)["version"] == 3
    assert api.lookup(subject, one)["version"] == 3
    assert api.versions(subject, deleted=True) == [2, 3]


def test_incompatible_schema_lookup_by_subject_after_delete(api: Api, subject: str) -> None:
    """RestApiTest.testIncompatibleSchemaLookupBySubjectAfterDelete"""
    one = record("myrecord", ("f", "string"))
    wrong = record("myrecord", ("f", "string"), {"name": "g", "type": "string", "default": "d"})
    right = record("myrecord", ("f", "string"), {"name": "g", "type": "int", "default": 0})
    api.set_level("BACKWARD", subject)
    api.register(subject, one)
    assert api.compatible(subject, wrong) is True
    api.register(subject, wrong)
    assert api.compatible(subject, right) is False
    assert fails(api.register, subject, right) == (409, 409)
    api.delete_version(subject, "latest")
    assert api.compatible(subject, right) is True
    api.register(subject, right)
    assert api.lookup(subject, right)["version"] == 3


def test_subject_compatibility_after_deleting_all_versions(fresh: Api) -> None:
    """RestApiTest.testSubjectCompatibilityAfterDeletingAllVersions; Confluent accepts the level staying
    after soft deletes: ours goes with the last version deleted for good (issue 20)"""
    subject = "testSubject"
    fresh.set_level("FULL")
    fresh.set_level("BACKWARD", subject)
    fresh.register(subject, F_STRING)
    fresh.register(subject, record("myrecord", ("f", "string"), {"name": "g", "type": "string", "default": "d"}))
    fresh.delete_version(subject, 1)
    assert fresh.level(subject) == "BACKWARD"
    assert fresh.level() == "FULL"
    fresh.delete_version(subject, 2)
    assert fresh.level() == "FULL"
    fresh.delete_version(subject, 1, permanent=True)
    assert fresh.level(subject) == "BACKWARD"  # version 2 is still there, soft-deleted
    fresh.delete_version(subject, 2, permanent=True)
    assert fails(fresh.level, subject) == (404, 40408)


def test_list_subjects(api: Api, subject: str) -> None:
    """RestApiTest.testListSubjects (with subjectPrefix, since the registry is shared)"""
    one, two = random_schemas(2)
    api.register(subject + "1", one)
    api.register(subject + "2", two)
    assert api.subjects(prefix=subject) == [subject + "1", subject + "2"]
    assert api.delete_subject(subject + "2") == [1]
    assert api.subjects(prefix=subject) == [subject + "1"]
    assert api.subjects(prefix=subject, deleted=True) == [subject + "1", subject + "2"]
    assert api.delete_subject(subject + "2", permanent=True) == [1]
    assert api.subjects(prefix=subject, deleted=True) == [subject + "1"]


def test_delete_subject_basic(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteSubjectBasic"""
    for schema in random_schemas(2):
        api.register(subject, schema)
    assert api.delete_subject(subject) == [1, 2]
    assert fails(api.version, subject, "latest") == (404, 40401)


def test_delete_subject_exception(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteSubjectException"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    assert api.delete_subject(subject) == [1, 2]
    assert api.lookup(subject, one, deleted=True)["version"] == 1
    assert api.lookup(subject, two, deleted=True)["version"] == 2
    assert fails(api.delete_subject, subject) == (404, 40404)


def test_delete_subject_permanent(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteSubjectPermanent"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    assert fails(api.delete_subject, subject, permanent=True) == (404, 40405)
    assert api.delete_subject(subject) == [1, 2]
    assert api.lookup(subject, one, deleted=True)["version"] == 1
    assert api.delete_subject(subject, permanent=True) == [1, 2]
    for schema in (one, two):
        assert fails(api.lookup, subject, schema) == (404, 40401)
        assert fails(api.lookup, subject, schema, deleted=True) == (404, 40401)


def test_delete_subject_and_register(api: Api, subject: str) -> None:
    """RestApiTest.testDeleteSubjectAndRegister"""
    one, two = random_schemas(2)
    api.register(subject, one)
    api.register(subject, two)
    api.delete_subject(subject)
    api.register(subject, one)
    api.register(subject, two)
    assert api.versions(subject) == [3, 4]
    assert fails(api.version, subject, 1) == (404, 40402)


def test_subject_compatibility_after_deleting_subject(fresh: Api) -> None:
    """RestApiTest.testSubjectCompatibilityAfterDeletingSubject (permanently, for the level to go)"""
    subject = "testSubject"
    fresh.set_level("FULL")
    fresh.set_level("BACKWARD", subject)
    fresh.register(subject, F_STRING)
    fresh.register(subject, record("myrecord", ("f", "string"), {"name": "g", "type": "string", "default": "d"}))
    fresh.delete_subject(subject)
    fresh.delete_subject(subject, permanent=True)
    assert fails(fresh.level, subject) == (404, 40408)
    assert fresh.level() == "FULL"


def test_global_mode(fresh: Api) -> None:
    """RestApiTest.testGlobalMode"""
    assert fresh.mode() == "READWRITE"
    schema = random_schemas(1)[0]
    fresh.register("testSubject", schema)
    assert fails(fresh.mode, "testSubject") == (404, 40409)
    assert fresh.raw.call("GET", "/mode/testSubject", {"defaultToGlobal": "true"}) == {"mode": "READWRITE"}
    fresh.set_mode("READONLY")
    fresh.set_mode("READWRITE", "testSubject")
    assert fresh.mode("testSubject") == "READWRITE"
    assert fresh.delete_mode("testSubject") == "READWRITE"
    assert fresh.raw.call("GET", "/mode/testSubject", {"defaultToGlobal": "true"}) == {"mode": "READONLY"}
    fresh.set_mode("READONLY_OVERRIDE")
    assert fresh.mode("testSubject") == "READONLY_OVERRIDE"
    assert fails(fresh.register, "testSubject2", schema) == (422, 42205)


# == RestApiCompatibilityTest (the cases without metadata, rule sets or compatibility groups) ===============

F1 = record("myrecord", ("f1", "string"))
F1_F2 = record("myrecord", ("f1", "string"), ("f2", "string"))
F1_F2_DEFAULT = record("myrecord", ("f1", "string"), {"name": "f2", "type": "string", "default": "foo"})


def test_compatibility(fresh: Api) -> None:
    """RestApiCompatibilityTest.testCompatibility"""
    assert fresh.register("testSubject", F1) == 1
    with pytest.raises(ApiError) as info:
        fresh.register("testSubject", F1_F2)
    assert info.value.status == 409 and "READER_FIELD_MISSING_DEFAULT_VALUE" in info.value.message
    assert fails(fresh.register, "testSubject", "non-avro schema string") == (422, 42201)
    assert fresh.register("testSubject", F1_F2_DEFAULT) == 2


def test_compatibility_level_change_to_none(fresh: Api) -> None:
    """RestApiCompatibilityTest.testCompatibilityLevelChangeToNone"""
    assert fresh.register("testSubject", F1) == 1
    assert fails(fresh.register, "testSubject", F1_F2)[0] == 409
    fresh.set_level("NONE")
    assert fresh.register("testSubject", F1_F2) == 2


def test_compatibility_level_change_to_backward(fresh: Api) -> None:
    """RestApiCompatibilityTest.testCompatibilityLevelChangeToBackward"""
    assert fresh.register("testSubject", F1) == 1
    assert fresh.level() == "BACKWARD"
    fresh.set_level("FORWARD")
    assert fresh.level() == "FORWARD"
    assert fresh.register("testSubject", F1_F2) == 2
    fresh.set_level("BACKWARD")
    assert fresh.level() == "BACKWARD"
    f3 = record("myrecord", ("f1", "string"), ("f2", "string"), ("f3", "string"))
    assert fails(fresh.register, "testSubject", f3)[0] == 409
    f3_default = record("myrecord", ("f1", "string"), ("f2", "string"),
                        {"name": "f3", "type": "string", "default": "foo"})
    assert fresh.register("testSubject", f3_default) == 3


# == RestApiTransitiveCompatibilityTest (Confluent sets BACKWARD_TRANSITIVE globally, here on the subject) ==


def test_transitive_compatibility(api: Api, subject: str) -> None:
    """RestApiTransitiveCompatibilityTest.testCompatibility: dropping a default added earlier is refused"""
    api.set_level("BACKWARD_TRANSITIVE", subject)
    first = api.register(subject, F1)
    assert api.register(subject, F1_F2_DEFAULT) != first
    assert fails(api.register, subject, F1_F2)[0] == 409


def test_transitive_effect(api: Api, subject: str) -> None:
    """RestApiTransitiveCompatibilityTest.validateTransitiveEffect: dropping the default alone is fine"""
    api.set_level("BACKWARD_TRANSITIVE", subject)
    api.register(subject, F1_F2_DEFAULT)
    api.register(subject, F1_F2)
    assert api.versions(subject) == [1, 2]


def test_get_cluster_id(api: Api) -> None:
    """RestApiTest.testGetClusterId (no client call: raw HTTP)"""
    found = api.raw.call("GET", "/v1/metadata/id")
    assert found["id"] == "" and found["scope"]["path"] == [] and found["scope"]["clusters"] is not None


def test_get_schema_registry_server_version(api: Api) -> None:
    """RestApiTest.testGetSchemaRegistryServerVersion: the version is this package's"""
    from migrate_assets import __version__

    assert api.raw.call("GET", "/v1/metadata/version") == {"version": __version__, "commitId": ""}
