"""Schema contexts on the bundled registry: Confluent's RestApiContextTest ported case by case, then what the
rest of the surface does with qualified subjects (levels, modes, references, ids by context, an old file).

Each case runs through raw HTTP and through confluent-kafka's client (`api`/`fresh` are either); the URL form
of a context (`http://registry/contexts/.ctx`) is exercised by giving the drivers such a base URL.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from tests.local.registry_api import Api, Client, Http, Ref
from tests.local.registry_cases import api, fails, fresh, random_schemas, record, shared, subject
from tests.local.registry_proc import Registry

__all__ = ["api", "fresh", "shared", "subject"]  # fixtures

Factory = Callable[[str], Api]


@pytest.fixture(params=["http", "client"])
def at(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Factory]:
    """Drivers of one kind on an empty registry of their own, each on a base URL path of its choosing."""
    server = Registry(tmp_path / "registry.db", tmp_path / "registry.log")
    made: list[Api] = []

    def make(path: str) -> Api:
        url = server.url + path
        driver: Api = Http(url) if request.param == "http" else Client(url)
        made.append(driver)
        return driver

    try:
        yield make
    finally:
        for driver in made:
            driver.close()
        assert server.stop() == 0


def _register_and_verify(api: Api, schema: str, expected_id: int, subject: str) -> None:
    """RestApiContextTest.registerAndVerifySchema: the id, and the schema read back by id for the subject."""
    assert api.register(subject, schema) == expected_id
    assert api.schema(expected_id, subject)["schema"] == schema


# == RestApiContextTest =====================================================================================


def test_qualified_subjects(fresh: Api) -> None:
    """RestApiContextTest.testQualifiedSubjects: ids count from 1 in each context; listings by context"""
    s1, s2, s3, s4 = ":.ctx1:testTopic1", ":.ctx2:testTopic2", ":.ctx3:testTopic1", "testTopic1"
    counts = {s1: 10, s2: 5, s3: 2, s4: 1}
    schemas = {s: random_schemas(n) for s, n in counts.items()}
    assert fails(fresh.versions, s1) == (404, 40401)
    assert fresh.contexts() == ["."]
    assert fresh.subjects() == []
    for name, texts in schemas.items():
        for n, schema in enumerate(texts, start=1):
            _register_and_verify(fresh, schema, n, name)
    for n, schema in enumerate(schemas[s1], start=1):
        assert fresh.register(s1, schema) == n  # re-registering returns the existing id
    assert fresh.versions(s1) == list(range(1, 11))
    assert fresh.versions(s2) == list(range(1, 6))
    assert fresh.contexts() == [".", ".ctx1", ".ctx2", ".ctx3"]
    assert fresh.subjects(prefix=":.ctx1:") == [s1]
    assert fresh.subjects(prefix=":.ctx2:") == [s2]
    assert fresh.subjects(prefix="") == [s4]
    assert fresh.subjects(prefix=":*:") == [s1, s2, s3, s4]
    assert fresh.subjects() == [s1, s2, s3, s4]  # no prefix: every context, as Confluent's default ":*:"
    assert len(fresh.raw.schemas(":*:")) == 18
    assert len(fresh.raw.schemas(":*:testTopic1")) == 13
    assert len(fresh.raw.schemas(":*:testTopic2")) == 5
    # an unqualified subject found only in another context, by version and by schema
    found = fresh.version("testTopic2", 1)
    assert (found["subject"], found["version"]) == (s2, 1)
    assert fresh.lookup("testTopic2", found["schema"])["version"] == 1


def test_context_paths(at: Factory) -> None:
    """RestApiContextTest.testContextPaths: a client whose URL ends in /contexts/{ctx} works in that context"""
    client1, client2, client3, plain = at("/contexts/.ctx1"), at("/contexts/.ctx2"), at("/contexts/:.:"), at("")
    first, second, third = random_schemas(10), random_schemas(5), random_schemas(2)
    assert fails(client1.versions, "testTopic1") == (404, 40401)
    for n, schema in enumerate(first, start=1):
        _register_and_verify(client1, schema, n, "testTopic1")
    for n, schema in enumerate(first, start=1):
        assert client1.register("testTopic1", schema) == n
    for n, schema in enumerate(second, start=1):  # one schema under three subjects of a context: one id
        for name in ("testTopic2A", "testTopic2B", "testTopic2C"):
            _register_and_verify(client2, schema, n, name)
    assert fails(client3.schema, 1) == (404, 40403)  # nothing in the default context yet
    for n, schema in enumerate(third, start=1):
        _register_and_verify(client3, schema, n, "testTopic3")
    assert client1.versions("testTopic1") == list(range(1, 11))
    assert client2.versions("testTopic2A") == list(range(1, 6))
    assert client3.versions("testTopic3") == [1, 2]
    assert plain.versions("testTopic3") == [1, 2]
    assert plain.versions(":.:testTopic3") == [1, 2]
    assert client1.contexts() == [".", ".ctx1", ".ctx2"]
    assert client1.subjects() == [":.ctx1:testTopic1"]
    assert client2.subjects() == [":.ctx2:testTopic2A", ":.ctx2:testTopic2B", ":.ctx2:testTopic2C"]
    assert client3.subjects() == ["testTopic3"]
    assert plain.subjects(prefix="") == ["testTopic3"]
    # id 1 asked for with a subject: the subject's context, else the context where that name uses the id
    assert plain.schema(1, "testTopic3")["schema"] == third[0]
    assert plain.schema(1, "testTopic2A")["schema"] == second[0]


# == the rest of the surface with contexts ==================================================================


def test_same_schema_in_two_contexts(fresh: Api) -> None:
    """Ids are per context: one schema has id 1 in each, and each context's maxId is its own"""
    schema, other = random_schemas(2)
    assert fresh.register(":.a:s", other) == 1
    assert fresh.register(":.a:s", schema) == 2
    assert fresh.register(":.b:s", schema) == 1
    assert fresh.register("s", schema) == 1
    assert fresh.schema(2, ":.a:")["schema"] == schema
    assert fresh.schema(2, ":.a:s")["schema"] == schema
    assert fails(fresh.schema, 2) == (404, 40403)  # not in the default context
    assert fails(fresh.schema, 2, ":.b:") == (404, 40403)
    assert fresh.raw.call("GET", "/schemas/ids/1", {"fetchMaxId": "true", "subject": ":.a:"})["maxId"] == 2
    assert fresh.raw.call("GET", "/schemas/ids/1", {"fetchMaxId": "true"})["maxId"] == 1
    assert fresh.id_subjects(1) == ["s"]
    assert fresh.raw.call("GET", "/schemas/ids/1/subjects", {"subject": ":.b:"}) == [":.b:s"]
    assert fresh.raw.call("GET", "/schemas/ids/1/versions", {"subject": ":.a:s"}) == [
        {"subject": ":.a:s", "version": 1}]
    assert fresh.raw.call("GET", "/schemas/ids/1/schema", {"subject": ":.b:"}) == json.loads(schema)
    assert fresh.contexts() == [".", ".a", ".b"]


def test_subject_spellings_are_one_subject(api: Api, subject: str) -> None:
    """`:.:x` is `x`; `:.ctx` and `:.ctx:` name the context; a subject needs a name part, a context none"""
    schema = random_schemas(1)[0]
    schema_id = api.register(":.:" + subject, schema)
    assert api.versions(subject) == [1]
    assert api.register(subject, schema) == schema_id
    assert subject in api.subjects(prefix=subject)
    assert fails(api.register, ":.only" + subject[:4] + ":", schema) == (422, 42208)
    assert fails(api.register, ":*:" + subject, schema) == (422, 42208)
    for reserved in ("__GLOBAL", "__EMPTY", ":.ctx:__GLOBAL", ":.__GLOBAL:" + subject):
        assert fails(api.register, reserved, schema) == (422, 42208), reserved


def test_context_level_and_mode(fresh: Api) -> None:
    """A context's own level (`/config/:.ctx:`) applies to its subjects without one, before the global
    level; the same for modes. Another context and the default one keep the global level."""
    one, two = random_schemas(1)[0], record("myrecord", ("f", "int"))
    fresh.set_level("NONE", ":.loose:")
    assert fresh.level(":.loose:") == "NONE"
    assert fresh.level(":.loose") == "NONE"  # the same context, spelled without the closing colon
    fresh.register(":.loose:s", one)
    assert fresh.register(":.loose:s", two) > 0  # incompatible, allowed by the context's NONE
    fresh.register(":.strict:s", one)
    assert fails(fresh.register, ":.strict:s", two) == (409, 409)
    fresh.register("s", one)
    assert fails(fresh.register, "s", two) == (409, 409)
    assert fresh.raw.call("GET", "/config/:.loose:s", {"defaultToGlobal": "true"}) == {"compatibilityLevel": "NONE"}
    assert fails(fresh.level, ":.loose:s") == (404, 40408)
    fresh.set_level("BACKWARD", ":.loose:s")
    assert fails(fresh.register, ":.loose:s", record("myrecord", ("f", "boolean"))) == (409, 409)
    fresh.set_mode("READONLY", ":.frozen:")
    assert fails(fresh.register, ":.frozen:s", one) == (422, 42205)
    assert fresh.raw.call("GET", "/mode/:.frozen:s", {"defaultToGlobal": "true"}) == {"mode": "READONLY"}
    fresh.register(":.open:s", one)
    # the URL form reaches the context's own level: /contexts/.loose/config is /config/:.loose:
    assert fresh.raw.call("GET", "/contexts/.loose/config") == {"compatibilityLevel": "NONE"}


def test_references_resolve_in_the_referring_context(fresh: Api) -> None:
    """A reference without a context names a subject of the referring schema's context (Confluent's
    qualifySubjectWithParent); referencedby and the delete rule follow it"""
    row = record("Value", ("id", "int"), namespace="db.t")
    envelope = record("Envelope", {"name": "after", "type": ["null", "db.t.Value"], "default": None},
                      namespace="db.t")
    assert fresh.register(":.c:row", row) == 1
    env_id = fresh.register(":.c:env", envelope, refs=[Ref("db.t.Value", "row", 1)])
    assert env_id == 2
    assert fresh.referenced_by(":.c:row", 1) == [env_id]
    assert fresh.version(":.c:env", 1)["references"] == [{"name": "db.t.Value", "subject": "row", "version": 1}]
    assert fails(fresh.delete_version, ":.c:row", 1) == (422, 42206)
    # in the default context the same reference names a subject that does not exist
    assert fails(fresh.register, "env", envelope, refs=[Ref("db.t.Value", "row", 1)]) == (422, 42201)
    # qualified, it reaches across
    assert fresh.register("env", envelope, refs=[Ref("db.t.Value", ":.c:row", 1)]) == 1
    assert fresh.referenced_by(":.c:row", 1) == [1, env_id]


def test_bad_context_in_url_is_400(shared: Registry) -> None:
    answer = httpx.get(f"{shared.url}/contexts/.a:b/subjects")
    assert answer.status_code == 400 and answer.json()["error_code"] == 400


def test_file_from_before_contexts_is_upgraded(tmp_path: Path) -> None:
    """A registry file of the previous release (ids global, no context columns) opens with every schema in
    the default context under its old id, and the next id follows the highest"""
    db = tmp_path / "registry.db"
    old = random_schemas(1)[0]
    conn = sqlite3.connect(db)
    conn.executescript("""
        CREATE TABLE schemas (id INTEGER PRIMARY KEY AUTOINCREMENT, key TEXT NOT NULL, normalized TEXT NOT NULL,
            text TEXT NOT NULL, schema_type TEXT NOT NULL DEFAULT 'AVRO', refs TEXT NOT NULL DEFAULT '[]');
        CREATE INDEX schemas_normalized ON schemas(normalized);
        CREATE INDEX schemas_key ON schemas(key);
        CREATE TABLE versions (subject TEXT NOT NULL, version INTEGER NOT NULL,
            schema_id INTEGER NOT NULL REFERENCES schemas(id), deleted INTEGER NOT NULL DEFAULT 0,
            PRIMARY KEY (subject, version));
        CREATE TABLE config (subject TEXT PRIMARY KEY, level TEXT NOT NULL);
        CREATE TABLE modes (subject TEXT PRIMARY KEY, mode TEXT NOT NULL);
    """)
    conn.execute("INSERT INTO schemas (id, key, normalized, text) VALUES (7, 'k', 'n', ?)", (old,))
    conn.execute("INSERT INTO versions VALUES ('old-value', 1, 7, 0)")
    conn.commit()
    conn.close()
    server = Registry(db, tmp_path / "registry.log")
    try:
        api = Http(server.url)
        assert api.schema(7) == {"schema": old}
        assert api.version("old-value", 1)["id"] == 7
        assert api.register("new-value", random_schemas(1)[0]) == 8
        assert api.register(":.ctx:new-value", old) == 1
        assert api.contexts() == [".", ".ctx"]
        api.close()
    finally:
        assert server.stop() == 0


def test_adapter_on_a_context(tmp_path: Path) -> None:
    """The evolution engine's registry adapter with subjects of a schema context, both spellings: a qualified
    subject on the plain URL, and the bare subject on a `/contexts/.team` URL; the context's own level is
    the one it reports"""
    from migrate_assets.resources import SchemaRegistryAdapter

    def value(*fields: dict[str, object]) -> str:
        return record("Value", ("id", "int"), *fields, namespace="t")

    v1, v2 = value(), value({"name": "note", "type": ["null", "string"], "default": None})
    no_default = value({"name": "qty", "type": "int"})
    server = Registry(tmp_path / "registry.db", tmp_path / "registry.log")
    raw = Http(server.url)
    try:
        plain, scoped = SchemaRegistryAdapter(server.url), SchemaRegistryAdapter(server.url + "/contexts/.team")
        raw.set_level("FULL", ":.team:")
        assert plain.compatibility_level(":.team:orders-value") == "FULL"
        assert scoped.compatibility_level("orders-value") == "FULL"
        assert plain.compatibility_level("orders-value") == "BACKWARD"  # the default context: global
        first = plain.register(":.team:orders-value", v1)
        assert (first.version, first.schema_id) == (1, 1)
        assert plain.register("orders-value", v2).schema_id == 1  # the default context counts its own ids
        latest = scoped.latest("orders-value")
        assert latest is not None and (latest.version, latest.schema_id) == (1, 1)
        assert json.loads(latest.schema) == json.loads(v1)
        assert scoped.check_compatibility("orders-value", v2).compatible
        bad = scoped.check_compatibility("orders-value", no_default)
        assert not bad.compatible and bad.level == "FULL" and bad.messages
        second = scoped.register("orders-value", v2)
        assert (second.version, second.schema_id) == (2, 2)
        assert plain.versions(":.team:orders-value") == [1, 2]
        scoped.soft_delete("orders-value", 2)
        assert plain.versions(":.team:orders-value") == [1]
        assert raw.subjects() == [":.team:orders-value", "orders-value"]
    finally:
        raw.close()
        assert server.stop() == 0
