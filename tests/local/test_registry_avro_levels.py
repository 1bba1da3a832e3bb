"""The seven compatibility levels on Avro subjects, by Confluent's own level cases (AvroCompatibilityTest:
testBasicBackwards..., Forwards..., Full... and their transitive forms), asked of the bundled registry over
REST: the earlier versions are registered in order under NONE, then the level is set and the new schema is
tested against every version the level requires (`/compatibility/subjects/{s}/versions`, no version), each
through raw HTTP and confluent-kafka's client. Registering then agrees with the answer."""

from __future__ import annotations

import pytest

from tests.local.registry_api import Api
from tests.local.registry_cases import api, fails, record, shared, subject

__all__ = ["api", "shared", "subject"]  # fixtures

S1 = record("myrecord", ("f1", "string"))
S2 = record("myrecord", ("f1", "string"), {"name": "f2", "type": "string", "default": "foo"})
S3 = record("myrecord", ("f1", "string"), ("f2", "string"))
S4 = record("myrecord", {"name": "f1_new", "type": "string", "aliases": ["f1"]})
S6 = record("myrecord", {"name": "f1", "type": ["null", "string"], "doc": "doc of f1"})
S7 = record("myrecord", {"name": "f1", "type": ["null", "string", "int"], "doc": "doc of f1"})
S8 = record("myrecord", ("f1", "string"), {"name": "f2", "type": "string", "default": "foo"},
            {"name": "f3", "type": "string", "default": "bar"})

CASES = [
    # (Confluent test, what it says, level, new schema, earlier versions oldest first, compatible)
    ("BackwardsCompatibility", "adding a field with default", "BACKWARD", S2, [S1], True),
    ("BackwardsCompatibility", "adding a field w/o default", "BACKWARD", S3, [S1], False),
    ("BackwardsCompatibility", "changing field name with alias", "BACKWARD", S4, [S1], True),
    ("BackwardsCompatibility", "evolving a field type to a union", "BACKWARD", S6, [S1], True),
    ("BackwardsCompatibility", "removing a type from a union", "BACKWARD", S1, [S6], False),
    ("BackwardsCompatibility", "adding a new type in union", "BACKWARD", S7, [S6], True),
    ("BackwardsCompatibility", "removing a type from a union (2)", "BACKWARD", S6, [S7], False),
    ("BackwardsCompatibility", "only the latest is checked", "BACKWARD", S3, [S1, S2], True),
    ("BackwardsTransitiveCompatibility", "iteratively adding fields with defaults", "BACKWARD_TRANSITIVE", S8,
     [S1, S2], True),
    ("BackwardsTransitiveCompatibility", "adding a field with default", "BACKWARD_TRANSITIVE", S2, [S1], True),
    ("BackwardsTransitiveCompatibility", "removing a default, one version", "BACKWARD_TRANSITIVE", S3, [S2], True),
    ("BackwardsTransitiveCompatibility", "removing a default, transitively", "BACKWARD_TRANSITIVE", S3, [S1, S2],
     False),
    ("ForwardsCompatibility", "adding a field", "FORWARD", S2, [S1], True),
    ("ForwardsCompatibility", "adding a field without default", "FORWARD", S3, [S1], True),
    ("ForwardsCompatibility", "removing a default", "FORWARD", S3, [S2], True),
    ("ForwardsCompatibility", "adding a default", "FORWARD", S2, [S3], True),
    ("ForwardsCompatibility", "only the latest is checked", "FORWARD", S1, [S3, S2], True),
    ("ForwardsTransitiveCompatibility", "iteratively removing fields with defaults", "FORWARD_TRANSITIVE", S1,
     [S8, S2], True),
    ("ForwardsTransitiveCompatibility", "adding default to a field", "FORWARD_TRANSITIVE", S2, [S3], True),
    ("ForwardsTransitiveCompatibility", "removing a field with a default", "FORWARD_TRANSITIVE", S1, [S2], True),
    ("ForwardsTransitiveCompatibility", "removing a default, transitively", "FORWARD_TRANSITIVE", S1, [S3, S2],
     False),
    ("FullCompatibility", "adding a field with default", "FULL", S2, [S1], True),
    ("FullCompatibility", "adding a field without default, only the latest checked", "FULL", S3, [S1, S2], True),
    ("FullCompatibility", "removing a field without default, only the latest checked", "FULL", S1, [S3, S2], True),
    ("FullTransitiveCompatibility", "iteratively adding fields with defaults", "FULL_TRANSITIVE", S8, [S1, S2],
     True),
    ("FullTransitiveCompatibility", "iteratively removing fields with defaults", "FULL_TRANSITIVE", S1, [S8, S2],
     True),
    ("FullTransitiveCompatibility", "adding default to a field", "FULL_TRANSITIVE", S2, [S3], True),
    ("FullTransitiveCompatibility", "removing a field with a default", "FULL_TRANSITIVE", S1, [S2], True),
    ("FullTransitiveCompatibility", "adding a field with default", "FULL_TRANSITIVE", S2, [S1], True),
    ("FullTransitiveCompatibility", "removing a default from a field", "FULL_TRANSITIVE", S3, [S2], True),
    ("FullTransitiveCompatibility", "transitively adding a field without a default", "FULL_TRANSITIVE", S3,
     [S1, S2], False),
    ("FullTransitiveCompatibility", "transitively removing a field without a default", "FULL_TRANSITIVE", S1,
     [S3, S2], False),
    ("FullCompatibility", "adding a field without default, both directions", "FULL", S3, [S1], False),
    ("NONE", "anything goes", "NONE", S3, [S6], True),
]


@pytest.mark.parametrize(("test", "case", "level", "new", "earlier", "compatible"), CASES,
                         ids=[f"{c[0]}: {c[1]}" for c in CASES])
def test_level(api: Api, subject: str, test: str, case: str, level: str, new: str, earlier: list[str],
               compatible: bool) -> None:
    """AvroCompatibilityTest.testBasic<test>"""
    api.set_level("NONE", subject)
    for schema in earlier:
        api.register(subject, schema)
    api.set_level(level, subject)
    assert api.compatible(subject, new, version=None) is compatible, case
    if compatible:
        api.register(subject, new)
        assert api.versions(subject) == list(range(1, len(earlier) + 2))
    else:
        assert fails(api.register, subject, new) == (409, 409)
        assert api.versions(subject) == list(range(1, len(earlier) + 1))
