"""JSON Schema subjects evolve by Confluent's JSON Schema rules on the bundled registry: ported cases of
Confluent's json/RestApiTest, then the rules one by one (open and closed content models, required properties,
type widening, enums, unions, recursive `$ref`) under BACKWARD, FORWARD and FULL, each through raw HTTP and
confluent-kafka's client."""

from __future__ import annotations

import json

import pytest

from tests.local.registry_api import Api, Ref
from tests.local.registry_cases import api, fails, shared, subject

__all__ = ["api", "shared", "subject"]  # fixtures


def js(**schema: object) -> str:
    return json.dumps(schema, separators=(",", ":"))


def obj(closed: bool = False, required: tuple[str, ...] = (), **props: object) -> str:
    body: dict[str, object] = {"type": "object", "properties": props}
    if required:
        body["required"] = list(required)
    if closed:
        body["additionalProperties"] = False
    return json.dumps(body, separators=(",", ":"))


STR, INT, NUM = {"type": "string"}, {"type": "integer"}, {"type": "number"}


def _evolves(api: Api, subject: str, level: str, first: str, second: str) -> bool:
    """Whether `second` may follow `first` under `level`: the compatibility answer, which registering agrees with."""
    api.set_level(level, subject)
    api.register(subject, first, schema_type="JSON")
    verdict = api.compatible(subject, second, schema_type="JSON")
    if verdict:
        api.register(subject, second, schema_type="JSON")
        assert api.versions(subject) == [1, 2]
    else:
        assert fails(api.register, subject, second, schema_type="JSON") == (409, 409)
        assert api.versions(subject) == [1]
    return verdict


# == json/RestApiTest =======================================================================================


def test_incompatible_schema(api: Api, subject: str) -> None:
    """json RestApiTest.testIncompatibleSchema: under FULL a property's type change is refused, the verbose
    answer gives one message per direction, then the old version, the old schema and the level"""
    meta = {"$schema": "http://json-schema.org/draft-07/schema#", "$id": "https://acme.com/referrer.json"}
    first = js(**meta, type="object", properties={"myField1": STR, "myField2": NUM}, additionalProperties=False)
    second = js(**meta, type="object", properties={"myField1": STR, "myField2": STR}, additionalProperties=False)
    api.set_level("FULL", subject)
    first_id = api.register(subject, first, schema_type="JSON", normalize=True)
    status, code = fails(api.register, subject, second, schema_type="JSON", normalize=True)
    assert (status, code) == (409, 409)
    body = {"schema": second, "schemaType": "JSON"}
    verdict = api.raw.call("POST", f"/compatibility/subjects/{subject}/versions/{first_id}", {"verbose": "true"},
                           body)
    messages = verdict["messages"]
    assert verdict["is_compatible"] is False and len(messages) == 5
    assert "TYPE_CHANGED" in messages[0] and "TYPE_CHANGED" in messages[1]
    assert "oldSchemaVersion:" in messages[2] and "oldSchema:" in messages[3] and "compatibility:" in messages[4]


def test_schema_references_are_stored_and_delete_rules_hold(api: Api, subject: str) -> None:
    """json RestApiTest.testSchemaReferences: a JSON schema referring to another subject's registers;
    the referenced version cannot go while referenced"""
    ref = js(type="object", additionalProperties=False,
             definitions={"ExternalType": {"type": "object", "properties": {"name": STR}, "additionalProperties": False}})
    main = js(type="object", properties={"Ref": {"$ref": "ref.json#/definitions/ExternalType"}},
              additionalProperties=False)
    api.register(subject + "-ref", ref, schema_type="JSON")
    main_id = api.register(subject, main, schema_type="JSON", refs=[Ref("ref.json", subject + "-ref", 1)])
    assert api.referenced_by(subject + "-ref", 1) == [main_id]
    assert fails(api.delete_version, subject + "-ref", 1) == (422, 42206)
    # a second version needs compatibility through the reference: not implemented, refused clearly
    api.set_level("BACKWARD", subject)
    err = fails(api.register, subject, js(type="object", properties={}, additionalProperties=False),
                schema_type="JSON", refs=[Ref("ref.json", subject + "-ref", 1)])
    assert err == (422, 42201)
    assert api.delete_version(subject, 1) == 1
    assert api.referenced_by(subject + "-ref", 1) == []
    assert api.delete_version(subject + "-ref", 1) == 1


def test_bad(api: Api, subject: str) -> None:
    """json RestApiTest.testBad: a malformed schema and a missing reference are 42201, nothing stored"""
    for bad in ('{"type": "object", "properties": []}', '{"type": "strung"}', '{"required": "a"}', "[1]"):
        assert fails(api.register, subject, bad, schema_type="JSON") == (422, 42201), bad
    assert fails(api.register, subject, obj(a=STR), schema_type="JSON", refs=[Ref("bad", "bad", 100)]) == (422, 42201)
    assert subject not in api.subjects(deleted=True)


# == the rules ==============================================================================================

RULES = [
    # (case, level, first, second, compatible)
    ("optional property added to a closed object", "BACKWARD", obj(True, a=STR), obj(True, a=STR, b=INT), True),
    ("required property added to a closed object", "BACKWARD", obj(True, a=STR),
     obj(True, ("b",), a=STR, b=INT), False),
    ("required property with a default added to a closed object", "BACKWARD", obj(True, a=STR),
     obj(True, ("b",), a=STR, b={"type": "integer", "default": 0}), True),
    ("property added to an open object", "BACKWARD", obj(a=STR), obj(a=STR, b=INT), False),
    ("property with an empty schema added to an open object", "BACKWARD", obj(a=STR), obj(a=STR, b={}), True),
    ("property removed from an open object", "BACKWARD", obj(a=STR, b=INT), obj(a=STR), True),
    ("property removed from a closed object", "BACKWARD", obj(True, a=STR, b=INT), obj(True, a=STR), False),
    ("property added to an open object, forward", "FORWARD", obj(a=STR), obj(a=STR, b=INT), True),
    ("property removed from an open object, forward", "FORWARD", obj(a=STR, b=INT), obj(a=STR), False),
    ("property added to a closed object, full", "FULL", obj(True, a=STR), obj(True, a=STR, b=INT), False),
    ("property added to an open object, full", "FULL", obj(a=STR), obj(a=STR, b=INT), False),
    ("type made nullable", "BACKWARD", obj(a=STR), obj(a={"type": ["string", "null"]}), True),
    ("nullable made non-null", "BACKWARD", obj(a={"type": ["string", "null"]}), obj(a=STR), False),
    ("integer widened to number", "BACKWARD", obj(a=INT), obj(a=NUM), True),
    ("number narrowed to integer", "BACKWARD", obj(a=NUM), obj(a=INT), False),
    ("integer widened to number, forward", "FORWARD", obj(a=INT), obj(a=NUM), False),
    ("string changed to integer", "BACKWARD", obj(a=STR), obj(a=INT), False),
    ("enum extended", "BACKWARD", obj(a={"enum": ["x", "y"]}), obj(a={"enum": ["x", "y", "z"]}), True),
    ("enum narrowed", "BACKWARD", obj(a={"enum": ["x", "y"]}), obj(a={"enum": ["x"]}), False),
    ("maxLength removed", "BACKWARD", obj(a={"type": "string", "maxLength": 5}), obj(a=STR), True),
    ("maxLength added", "BACKWARD", obj(a=STR), obj(a={"type": "string", "maxLength": 5}), False),
    ("required attribute removed", "BACKWARD", obj(False, ("a",), a=STR), obj(a=STR), True),
    ("required attribute added", "BACKWARD", obj(a=STR), obj(False, ("a",), a=STR), False),
    ("oneOf extended", "BACKWARD", obj(a={"oneOf": [STR, INT]}), obj(a={"oneOf": [STR, INT, {"type": "null"}]}),
     True),
    ("oneOf narrowed", "BACKWARD", obj(a={"oneOf": [STR, INT]}), obj(a={"oneOf": [STR]}), False),
    ("closed object opened", "BACKWARD", obj(True, a=STR), obj(a=STR), True),
    ("open object closed", "BACKWARD", obj(a=STR), obj(True, a=STR), False),
    ("array items widened", "BACKWARD", obj(a={"type": "array", "items": INT}),
     obj(a={"type": "array", "items": NUM}), True),
    ("array items changed", "BACKWARD", obj(a={"type": "array", "items": INT}),
     obj(a={"type": "array", "items": STR}), False),
]


@pytest.mark.parametrize(("case", "level", "first", "second", "compatible"), RULES, ids=[r[0] for r in RULES])
def test_rule(api: Api, subject: str, case: str, level: str, first: str, second: str, compatible: bool) -> None:
    assert _evolves(api, subject, level, first, second) is compatible, case


def test_recursive_schema_through_local_refs(api: Api, subject: str) -> None:
    """A tree node whose children are nodes (a `$ref` to itself): compared without looping; a property
    added deep inside the closed node is optional, so compatible"""
    def tree(*extra: str) -> str:
        props: dict[str, object] = {"value": STR, "children": {"type": "array", "items": {"$ref": "#/definitions/node"}}}
        props.update({name: INT for name in extra})
        node = {"type": "object", "properties": props, "additionalProperties": False}
        return js(definitions={"node": node}, **{"$ref": "#/definitions/node"})
    assert _evolves(api, subject, "FULL_TRANSITIVE", tree(), tree("weight")) is False  # FULL: removal breaks
    assert _evolves(api, subject + "-b", "BACKWARD_TRANSITIVE", tree(), tree("weight")) is True


def test_transitive_checks_every_version(api: Api, subject: str) -> None:
    """BACKWARD_TRANSITIVE: a version the newest accepts but an older one does not is refused; BACKWARD
    (newest only) takes it"""
    api.set_level("NONE", subject)
    api.register(subject, obj(a=STR), schema_type="JSON")
    api.register(subject, obj(a=INT), schema_type="JSON")
    third = obj(a=NUM)  # widens version 2's integer, but version 1 held strings
    api.set_level("BACKWARD_TRANSITIVE", subject)
    assert api.compatible(subject, third, schema_type="JSON", version=None) is False
    assert fails(api.register, subject, third, schema_type="JSON") == (409, 409)
    api.set_level("BACKWARD", subject)
    assert api.compatible(subject, third, schema_type="JSON", version=None) is True
    assert api.register(subject, third, schema_type="JSON") > 0
    assert api.versions(subject) == [1, 2, 3]


def test_union_bomb_is_refused(api: Api, subject: str) -> None:
    """Unions of unions are compared pairwise: an 8 KB schema nesting them would take exponential work, so
    the comparison has a step budget and answers 42201 (too complex) instead of keeping a core busy"""
    def nest(depth: int, leaf: str) -> dict[str, object]:
        node: dict[str, object] = {"type": "string"}
        for _ in range(depth):
            node = {"anyOf": [node, {"anyOf": [node, {"type": leaf}]}]}
        return node
    first, second = json.dumps(nest(8, "integer")), json.dumps(nest(8, "number"))
    api.register(subject, first, schema_type="JSON")
    assert fails(api.compatible, subject, second, schema_type="JSON") == (422, 42201)
    assert fails(api.register, subject, second, schema_type="JSON") == (422, 42201)
    assert api.versions(subject) == [1]
