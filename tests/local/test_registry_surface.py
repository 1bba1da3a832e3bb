"""What issue 20 found missing or different from Confluent on the bundled registry's REST surface, and what
it must refuse: each case through raw HTTP and, where the client has the call, confluent-kafka's client."""

from __future__ import annotations

import json
import sqlite3
import uuid
from pathlib import Path

import httpx

from tests.local.registry_api import MEDIA, Api, Ref
from tests.local.registry_cases import api, fails, random_schemas, record, shared, subject
from tests.local.registry_proc import Registry

__all__ = ["api", "shared", "subject"]  # fixtures


def test_delete_config_without_own_level_is_40408(api: Api, subject: str) -> None:
    assert fails(api.delete_level, subject) == (404, 40408)
    api.register(subject, random_schemas(1)[0])
    assert fails(api.delete_level, subject) == (404, 40408)
    api.set_level("FULL", subject)
    assert api.delete_level(subject) == "FULL"


def test_config_update_fields(api: Api, subject: str) -> None:
    """PUT /config: without `compatibility` nothing changes (Confluent's ConfigUpdateRequest echoes `{}`);
    a field this registry does not apply is refused naming it, never stored and ignored"""
    assert api.raw.call("PUT", f"/config/{subject}", None, {"normalize": False}) == {}
    assert api.raw.call("PUT", f"/config/{subject}", None, {"compatibilityLevel": "FULL"}) == {}  # not the key
    assert fails(api.level, subject) == (404, 40408)
    for field, value in (("normalize", True), ("compatibilityGroup", "app.version"), ("alias", "other")):
        status, code = fails(api.raw.call, "PUT", f"/config/{subject}", None, {"compatibility": "FULL", field: value})
        assert (status, code) == (422, 422), field
    assert fails(api.level, subject) == (404, 40408)
    api.set_level("FULL", subject)
    assert api.level(subject) == "FULL"


def test_verbose_compatibility_of_an_invalid_schema_is_an_answer(api: Api, subject: str) -> None:
    api.register(subject, random_schemas(1)[0])
    for version in ("latest", None):
        path = f"/compatibility/subjects/{subject}/versions" + (f"/{version}" if version else "")
        answer = api.raw.call("POST", path, {"verbose": "true"}, {"schema": '{"type": "nope"}'})
        assert answer["is_compatible"] is False and "nope" in answer["messages"][0]
        assert fails(api.raw.call, "POST", path, None, {"schema": '{"type": "nope"}'}) == (422, 42201)
    assert api.versions(subject) == [1]


def test_trailing_slash_is_the_same_route(shared: Registry, subject: str) -> None:
    """The Java client asks `.../versions/` for "against all versions": answered, not redirected"""
    body = json.dumps({"schema": random_schemas(1)[0]})
    headers = {"Content-Type": MEDIA}
    answer = httpx.post(f"{shared.url}/compatibility/subjects/{subject}/versions/", content=body,
                        headers=headers, follow_redirects=False)
    assert (answer.status_code, answer.json()) == (200, {"is_compatible": True})
    assert httpx.post(f"{shared.url}/subjects/{subject}/versions/", content=body, headers=headers,
                      follow_redirects=False).status_code == 200
    assert subject in httpx.get(f"{shared.url}/subjects/", follow_redirects=False).json()


def test_deleted_only(api: Api, subject: str) -> None:
    """`deletedOnly` (Confluent's spelling, raw HTTP) and `deleted_only` (the Python client's)"""
    one, two = random_schemas(2)
    api.register(subject + "a", one)
    api.register(subject + "a", two)
    api.register(subject + "b", one)
    api.delete_version(subject + "a", 1)
    api.delete_subject(subject + "b")
    assert api.versions(subject + "a", deleted_only=True) == [1]
    assert api.subjects(prefix=subject, deleted_only=True) == [subject + "b"]
    assert api.subjects(prefix=subject) == [subject + "a"]


def test_pagination(api: Api, subject: str) -> None:
    schema = random_schemas(1)[0]
    schema_id = 0
    for n in range(5):
        schema_id = api.register(f"{subject}{n}", schema)
    assert api.subjects(prefix=subject, offset=1, limit=2) == [subject + "1", subject + "2"]
    assert api.subjects(prefix=subject, offset=3) == [subject + "3", subject + "4"]
    assert api.subjects(prefix=subject, offset=9) == []
    page = api.raw.call("GET", f"/schemas/ids/{schema_id}/subjects", {"offset": 1, "limit": 2})
    assert page == [subject + "1", subject + "2"]
    versions = api.raw.call("GET", f"/schemas/ids/{schema_id}/versions", {"offset": 4, "limit": 10})
    assert versions == [{"subject": subject + "4", "version": 1}]
    # `subject` selects the context the id is looked up in, it does not filter (Confluent's listSubjectsForId)
    same = api.raw.call("GET", f"/schemas/ids/{schema_id}/subjects", {"subject": subject + "3"})
    assert same == [f"{subject}{n}" for n in range(5)]
    assert fails(api.raw.call, "GET", "/subjects", {"limit": "many"}) == (422, 422)


def test_get_schemas(api: Api, subject: str) -> None:
    one, two = random_schemas(2)
    id1 = api.register(subject, one)
    id2 = api.register(subject, two)
    api.register(subject + "-other", one)
    every = api.raw.call("GET", "/schemas", {"subjectPrefix": subject})
    assert [(s["subject"], s["version"], s["id"]) for s in every] == [
        (subject, 1, id1), (subject, 2, id2), (subject + "-other", 1, id1)]
    assert every[0]["schema"] == one
    latest = api.raw.call("GET", "/schemas", {"subjectPrefix": subject, "latestOnly": "true"})
    assert [(s["subject"], s["version"]) for s in latest] == [(subject, 2), (subject + "-other", 1)]
    api.delete_version(subject, 2)
    assert len(api.raw.call("GET", "/schemas", {"subjectPrefix": subject})) == 2
    assert len(api.raw.call("GET", "/schemas", {"subjectPrefix": subject, "deleted": "true"})) == 3
    assert len(api.raw.call("GET", "/schemas", {"subjectPrefix": subject, "offset": 1, "limit": 1})) == 1


def test_contexts(api: Api) -> None:
    assert api.contexts() == ["."]


def test_bad_input_is_refused_and_nothing_stored(api: Api, subject: str, shared: Registry) -> None:
    schema = random_schemas(1)[0]
    bad_refs: list[object] = [
        "x", [{"name": "x"}], [{"name": "x", "subject": "y", "version": 0}],
        [{"name": "", "subject": "y", "version": 1}], {"name": "x"},
    ]
    for refs in bad_refs:
        body = {"schema": schema, "references": refs}
        assert fails(api.raw.call, "POST", f"/subjects/{subject}/versions", None, body) == (422, 42201), refs
    for body_extra in ({"id": "one"}, {"version": -7}, {"id": 1.5}):
        body = {"schema": schema, **body_extra}
        assert fails(api.raw.call, "POST", f"/subjects/{subject}/versions", None, body) == (422, 422)
    assert fails(api.register, subject, schema, schema_type="XML") == (422, 42201)
    assert fails(api.register, subject, "[1, 2", schema_type="JSON") == (422, 42201)
    assert fails(api.register, subject, '"a string"', schema_type="JSON") == (422, 42201)
    for bad in ("tab\there", "bell\x07", "del\x7f", "nl\n", "ctl\x01subject"):
        assert fails(api.register, bad, schema) == (422, 42208), repr(bad)
    assert subject not in api.subjects(deleted=True)
    # unknown top-level keys are ignored, as Confluent's request classes do (clients send metadata, ruleSet)
    ok = api.raw.call("POST", f"/subjects/{subject}/versions", None, {"schema": schema, "metadata": None,
                                                                       "ruleSet": None, "x-extra": 1})
    assert isinstance(ok["id"], int)
    lines = Path(shared.db).with_name("registry.log").read_text().splitlines()
    assert not [line for line in lines if not line[:4].isdigit()]  # no message split a line
    assert not [line for line in lines if any(ord(ch) < 32 for ch in line)]


def test_json_and_protobuf_subjects(api: Api, subject: str) -> None:
    """Stored and served; a second version is checked by the type's rules (a property added to an open JSON
    object is incompatible, see test_registry_json_compat); a change of type is incompatible (409) like
    Confluent's"""
    first = json.dumps({"type": "object", "properties": {"a": {"type": "string"}}})
    second = json.dumps({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "integer"}}})
    json_id = api.register(subject, first, schema_type="JSON")
    assert api.version(subject, 1)["schema"] == first
    assert api.raw.call("GET", f"/subjects/{subject}/versions/1")["schemaType"] == "JSON"
    assert api.register(subject, json.dumps(json.loads(first), indent=2), schema_type="JSON") == json_id
    assert fails(api.register, subject, second, schema_type="JSON") == (409, 409)
    assert fails(api.register, subject, random_schemas(1)[0]) == (409, 409)
    api.set_level("NONE", subject)
    api.register(subject, second, schema_type="JSON")
    proto = 'syntax = "proto3";\nmessage Row { int32 id = 1; }\n'
    proto_id = api.register(subject + "-proto", proto, schema_type="PROTOBUF")
    assert api.schema(proto_id) == {"schemaType": "PROTOBUF", "schema": proto}


def test_references_in_compatibility_and_lookup(api: Api, subject: str) -> None:
    """A Debezium-style envelope whose row record is a reference: evolving the row (a new field with a
    default) is compatible, dropping a field without default under FORWARD is not"""
    ns = "db" + uuid.uuid4().hex[:6]
    row1 = record("Value", ("id", "int"), namespace=ns)
    row2 = record("Value", ("id", "int"), {"name": "note", "type": ["null", "string"], "default": None}, namespace=ns)
    envelope = record("Envelope", {"name": "before", "type": ["null", f"{ns}.Value"], "default": None},
                      {"name": "after", "type": ["null", f"{ns}.Value"], "default": None},
                      ("op", "string"), namespace=ns)
    api.register(subject + "-row", row1)
    api.register(subject + "-row", row2)
    env1 = api.register(subject, envelope, refs=[Ref(f"{ns}.Value", subject + "-row", 1)])
    assert api.referenced_by(subject + "-row", 1) == [env1]
    assert api.referenced_by(subject + "-row", 2) == []
    env2 = api.register(subject, envelope, refs=[Ref(f"{ns}.Value", subject + "-row", 2)])
    assert env2 != env1 and api.versions(subject) == [1, 2]
    assert api.lookup(subject, envelope, refs=[Ref(f"{ns}.Value", subject + "-row", 1)])["version"] == 1
    # compatibility goes through the references: a row without `id` breaks FORWARD readers of version 2
    # (the Avro checker reports it as the union branch they cannot read)
    api.set_level("FORWARD", subject)
    api.set_level("NONE", subject + "-row")
    api.register(subject + "-row", record("Value", ("other", "long"), namespace=ns))
    body = {"schema": envelope, "references": [Ref(f"{ns}.Value", subject + "-row", 3).to_json()]}
    verdict = api.raw.call("POST", f"/compatibility/subjects/{subject}/versions/latest", {"verbose": "true"}, body)
    assert verdict["is_compatible"] is False and any("MISSING_UNION_BRANCH" in m
                                                     for m in verdict["messages"])
    assert fails(api.register, subject, envelope, refs=[Ref(f"{ns}.Value", subject + "-row", 3)]) == (409, 409)
    # a referenced version stays, also permanently, while a live version references it
    assert fails(api.delete_version, subject + "-row", 2) == (422, 42206)
    api.delete_version(subject + "-row", 3)
    assert api.delete_version(subject + "-row", 3, permanent=True) == 3


def test_old_registry_file_is_upgraded(tmp_path: Path) -> None:
    """A file of the first release (unique schema key, no type or reference columns) opens and keeps its ids"""
    db = tmp_path / "old.db"
    old = sqlite3.connect(db)
    old.executescript("""
        CREATE TABLE schemas (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL UNIQUE,
                              normalized TEXT NOT NULL, text TEXT NOT NULL);
        CREATE TABLE versions (subject TEXT NOT NULL, version INTEGER NOT NULL,
                               schema_id INTEGER NOT NULL REFERENCES schemas(id),
                               deleted INTEGER NOT NULL DEFAULT 0, PRIMARY KEY (subject, version));
        CREATE TABLE config (subject TEXT PRIMARY KEY, level TEXT NOT NULL);
        INSERT INTO schemas VALUES (7, '"string"', '"string"', '"string"');
        INSERT INTO versions VALUES ('old-value', 1, 7, 0);
        INSERT INTO config VALUES ('old-value', 'FULL');
    """)
    old.commit()
    old.close()
    server = Registry(db, tmp_path / "registry.log")
    try:
        answer = httpx.get(f"{server.url}/subjects/old-value/versions/1").json()
        assert answer == {"subject": "old-value", "version": 1, "id": 7, "schema": '"string"'}
        assert httpx.get(f"{server.url}/config/old-value").json() == {"compatibilityLevel": "FULL"}
        again = httpx.post(f"{server.url}/subjects/new-value/versions", json={"schema": '"string"'}).json()
        assert again == {"id": 7}
        fresh_id = httpx.post(f"{server.url}/subjects/new-value/versions", json={"schema": '"long"'},
                              ).status_code
        assert fresh_id == 409  # BACKWARD: a string cannot be read as a long
    finally:
        assert server.stop() == 0
