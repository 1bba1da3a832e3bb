"""Protobuf subjects evolve by Confluent's Protobuf rules on the bundled registry: ported cases of Confluent's
protobuf/RestApiTest, then the rules one by one (fields matched by number, wire-compatible scalar groups,
named types, maps, oneofs, packages, required fields), each through raw HTTP and confluent-kafka's client."""

from __future__ import annotations

import pytest

from tests.local.registry_api import Api, Ref
from tests.local.registry_cases import api, fails, shared, subject

__all__ = ["api", "shared", "subject"]  # fixtures

HEAD = 'syntax = "proto3";\npackage db.public;\n'


def proto(body: str, head: str = HEAD) -> str:
    return head + body + "\n"


def _evolves(api: Api, subject: str, level: str, first: str, second: str) -> bool:
    """Whether `second` may follow `first` under `level`: the compatibility answer, which registering agrees with."""
    api.set_level(level, subject)
    api.register(subject, first, schema_type="PROTOBUF")
    verdict = api.compatible(subject, second, schema_type="PROTOBUF")
    if verdict:
        api.register(subject, second, schema_type="PROTOBUF")
        assert api.versions(subject) == [1, 2]
    else:
        assert fails(api.register, subject, second, schema_type="PROTOBUF") == (409, 409)
        assert api.versions(subject) == [1]
    return verdict


# == protobuf/RestApiTest ===================================================================================


def test_incompatible_schema(api: Api, subject: str) -> None:
    """protobuf RestApiTest.testIncompatibleSchema: under FULL a field's type change string -> int32 is
    refused; the verbose answer gives one message per direction, the old version, schema and level"""
    first = 'syntax = "proto3";\npackage pkg3;\n\nmessage Schema1 {\n  string f1 = 1;\n  string f2 = 2;\n}\n'
    second = 'syntax = "proto3";\npackage pkg3;\n\nmessage Schema1 {\n  string f1 = 1;\n  int32 f2 = 2;\n}\n'
    api.set_level("FULL", subject)
    first_id = api.register(subject, first, schema_type="PROTOBUF")
    assert fails(api.register, subject, second, schema_type="PROTOBUF") == (409, 409)
    body = {"schema": second, "schemaType": "PROTOBUF"}
    verdict = api.raw.call("POST", f"/compatibility/subjects/{subject}/versions/{first_id}", {"verbose": "true"},
                           body)
    messages = verdict["messages"]
    assert verdict["is_compatible"] is False and len(messages) == 5
    assert all("FIELD_SCALAR_KIND_CHANGED" in m for m in messages[:2])
    assert "oldSchemaVersion:" in messages[2] and "oldSchema:" in messages[3] and "compatibility:" in messages[4]


def test_schema_references(api: Api, subject: str) -> None:
    """protobuf RestApiTest.testSchemaReferences / testSchemaMissingReferences: an import must be one of
    the references (a well-known google/protobuf import needs none); referencedby follows"""
    dep = proto("message Meta { string source = 1; }", 'syntax = "proto3";\npackage pkg1;\n')
    root = ('syntax = "proto3";\npackage pkg2;\nimport "pkg1/msg1.proto";\nimport "google/protobuf/timestamp.proto";\n'
            "message Root { pkg1.Meta meta = 1; google.protobuf.Timestamp at = 2; }\n")
    api.register(subject + "-dep", dep, schema_type="PROTOBUF")
    assert fails(api.register, subject, root, schema_type="PROTOBUF") == (422, 42201)
    root_id = api.register(subject, root, schema_type="PROTOBUF", refs=[Ref("pkg1/msg1.proto", subject + "-dep", 1)])
    assert api.referenced_by(subject + "-dep", 1) == [root_id]
    # a field added to the referring message: compatible (types defined elsewhere are compared by name)
    more = root.replace("at = 2; }", "at = 2; string note = 3; }")
    assert api.register(subject, more, schema_type="PROTOBUF",
                        refs=[Ref("pkg1/msg1.proto", subject + "-dep", 1)]) != root_id


def test_bad(api: Api, subject: str) -> None:
    """protobuf RestApiTest.testBad: text that is not a .proto file is 42201, nothing stored"""
    for bad in ("message {", "message M { int32 x = ; }", "message M { int32 x = 0; }", "garbage here",
                "message M { group G = 1 { } }"):
        assert fails(api.register, subject, bad, schema_type="PROTOBUF") == (422, 42201), bad
    assert subject not in api.subjects(deleted=True)


# == the rules ==============================================================================================

ROW = "message Row { int32 id = 1; string note = 2; }"
RULES = [
    # (case, level, first, second, compatible)
    ("field added", "BACKWARD", ROW, "message Row { int32 id = 1; string note = 2; bool ok = 3; }", True),
    ("field removed", "BACKWARD", ROW, "message Row { int32 id = 1; }", True),
    ("field renamed", "FULL", ROW, "message Row { int32 id = 1; string remark = 2; }", True),
    ("int32 widened to int64", "FULL", ROW, "message Row { int64 id = 1; string note = 2; }", True),
    ("string to bytes", "FULL", ROW, "message Row { int32 id = 1; bytes note = 2; }", True),
    ("int32 to string", "BACKWARD", ROW, "message Row { string id = 1; string note = 2; }", False),
    ("int32 to sint32 (another wire encoding)", "BACKWARD", ROW, "message Row { sint32 id = 1; string note = 2; }",
     False),
    ("field numbers swapped", "BACKWARD", ROW, "message Row { string note = 1; int32 id = 2; }", False),
    ("field renumbered (removed and added)", "BACKWARD", ROW, "message Row { int32 id = 1; string note = 3; }", True),
    ("scalar to message", "BACKWARD", ROW + "\nmessage Note { string text = 1; }",
     "message Row { int32 id = 1; Note note = 2; }\nmessage Note { string text = 1; }", False),
    ("enum to int32", "BACKWARD", "message Row { E e = 1; enum E { A = 0; B = 1; } }",
     "message Row { int32 e = 1; enum E { A = 0; B = 1; } }", True),
    ("enum constant added", "FULL", "message Row { E e = 1; enum E { A = 0; } }",
     "message Row { E e = 1; enum E { A = 0; B = 1; } }", True),
    ("message added", "BACKWARD", ROW, ROW + "\nmessage Extra { int32 x = 1; }", True),
    ("message added, full (the old schema lacks it)", "FULL", ROW, ROW + "\nmessage Extra { int32 x = 1; }", False),
    ("message removed", "BACKWARD", ROW + "\nmessage Extra { int32 x = 1; }", ROW, False),
    ("messages reordered", "FULL", ROW + "\nmessage Extra { int32 x = 1; }",
     "message Extra { int32 x = 1; }\n" + ROW, True),
    ("nested field type changed", "BACKWARD",
     "message Env { Row after = 1; }\n" + ROW, "message Env { Row after = 1; }\n" + ROW.replace("int32 id", "string id"),
     False),
    ("map value type changed", "BACKWARD", "message Row { map<string, int64> tags = 1; }",
     "message Row { map<string, string> tags = 1; }", False),
    ("map value widened within its group", "BACKWARD", "message Row { map<string, int32> tags = 1; }",
     "message Row { map<string, int64> tags = 1; }", True),
    ("oneof added", "FULL", ROW, "message Row { int32 id = 1; string note = 2; oneof k { int32 a = 3; } }", True),
    ("one field moved into a new oneof", "FULL", ROW,
     "message Row { int32 id = 1; oneof k { string note = 2; } }", True),
    ("two fields moved into one oneof", "BACKWARD", ROW, "message Row { oneof k { int32 id = 1; string note = 2; } }",
     False),
    ("oneof field removed", "BACKWARD", "message Row { oneof k { int32 a = 1; string b = 2; } }",
     "message Row { oneof k { int32 a = 1; } }", False),
    ("package changed", "BACKWARD", ROW, ROW, False),
]


@pytest.mark.parametrize(("case", "level", "first", "second", "compatible"), RULES, ids=[r[0] for r in RULES])
def test_rule(api: Api, subject: str, case: str, level: str, first: str, second: str, compatible: bool) -> None:
    head2 = 'syntax = "proto3";\npackage db.other;\n' if case == "package changed" else HEAD
    assert _evolves(api, subject, level, proto(first), proto(second, head2)) is compatible, case


def test_required_fields_proto2(api: Api, subject: str) -> None:
    """proto2: adding or removing a `required` field is incompatible, an `optional` one is not"""
    head = 'syntax = "proto2";\npackage db.p2;\n'
    first = proto("message Row { required int32 id = 1; }", head)
    assert _evolves(api, subject, "BACKWARD", first,
                    proto("message Row { required int32 id = 1; required string n = 2; }", head)) is False
    assert _evolves(api, subject + "-b", "BACKWARD", first,
                    proto("message Row { required int32 id = 1; optional string n = 2; }", head)) is True
    assert _evolves(api, subject + "-c", "BACKWARD", first, proto("message Row { optional int64 x = 3; }", head)) is False


def test_recursive_message(api: Api, subject: str) -> None:
    """A message naming itself is compared without looping"""
    tree = "message Node { string value = 1; repeated Node children = 2; }"
    assert _evolves(api, subject, "FULL", proto(tree), proto(tree.replace("= 2; }", "= 2; int32 w = 3; }"))) is True


def test_chain_of_messages_is_compared_once_per_type(api: Api, subject: str) -> None:
    """Twelve messages each naming the next in ten fields: compared per field this is 10^12 comparisons;
    each named pair is compared once, so the answer (a change in the last message, deep down) comes at once"""
    chain = "\n".join(
        f"message M{i} {{ " + " ".join(f"M{i + 1} f{j} = {j + 1};" for j in range(10)) + " }" for i in range(12)
    )
    first = proto(chain + "\nmessage M12 { int32 x = 1; }")
    assert _evolves(api, subject, "BACKWARD", first, proto(chain + "\nmessage M12 { int64 x = 1; }")) is True
    assert _evolves(api, subject + "-b", "BACKWARD", first, proto(chain + "\nmessage M12 { string x = 1; }")) is False
