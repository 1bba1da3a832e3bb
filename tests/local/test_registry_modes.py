"""Confluent's RestApiModeTest cases (those outside schema contexts), ported onto the bundled registry.

Each case runs through raw HTTP and through confluent-kafka's client, on a registry of its own (the global
mode is registry-wide). Registering with an explicit id/version has no client call: it goes raw in both.
"""

from __future__ import annotations

from tests.local.registry_api import Api
from tests.local.registry_cases import fails, fresh, record

__all__ = ["fresh"]  # fixture

SCHEMA = record("myrecord", ("f1", "string"))
SCHEMA2 = record("myrecord", ("f1", "int"))
_DECIMAL_FIELD = {"type": "bytes", "scale": 4, "precision": 17, "logicalType": "decimal"}
DECIMAL = record("MyRecord", {"name": "field1", "type": ["null", _DECIMAL_FIELD], "default": None})
# the same schema, its attributes in another order
DECIMAL2 = record("MyRecord", {"name": "field1", "default": None,
                               "type": ["null", dict(reversed(list(_DECIMAL_FIELD.items())))]})
SUBJECT = "testSubject"


def test_read_only_mode(fresh: Api) -> None:
    """RestApiModeTest.testReadOnlyMode"""
    assert fresh.set_mode("READONLY") == "READONLY"
    assert fails(fresh.register, SUBJECT, SCHEMA) == (422, 42205)
    assert fresh.subjects(deleted=True) == []


def test_read_only_refuses_deletes(fresh: Api) -> None:
    """(not in Confluent's suite) READONLY also refuses deletes; a subject's own READWRITE lifts it"""
    fresh.register(SUBJECT, SCHEMA)
    fresh.set_mode("READONLY", SUBJECT)
    assert fails(fresh.delete_version, SUBJECT, 1) == (422, 42205)
    assert fails(fresh.delete_subject, SUBJECT) == (422, 42205)
    assert fresh.versions(SUBJECT) == [1]
    fresh.set_mode("READWRITE", SUBJECT)
    assert fresh.delete_subject(SUBJECT) == [1]


def test_read_write_mode(fresh: Api) -> None:
    """RestApiModeTest.testReadWriteMode: an id may only be given in IMPORT mode"""
    assert fresh.set_mode("READWRITE") == "READWRITE"
    assert fails(fresh.register, SUBJECT, SCHEMA, id=1, version=1) == (422, 42205)
    assert fresh.register(SUBJECT, SCHEMA) == 1


def test_import_mode(fresh: Api) -> None:
    """RestApiModeTest.testImportMode"""
    assert fresh.set_mode("IMPORT") == "IMPORT"
    assert fresh.register(SUBJECT, SCHEMA, id=1, version=1) == 1


def test_import_mode_without_id(fresh: Api) -> None:
    """RestApiModeTest.testImportModeWithoutId"""
    fresh.set_mode("IMPORT")
    assert fails(fresh.register, SUBJECT, SCHEMA) == (422, 42205)


def test_clear_mode(fresh: Api) -> None:
    """RestApiModeTest.testClearMode: a null mode removes the one set"""
    fresh.set_mode("READONLY")
    assert fresh.raw.call("PUT", "/mode", None, {"mode": None}) == {"mode": None}
    assert fresh.mode() == "READWRITE"


def test_invalid_import_mode(fresh: Api) -> None:
    """RestApiModeTest.testInvalidImportMode: IMPORT over existing subjects needs force"""
    assert fresh.register(SUBJECT, SCHEMA) == 1
    assert fails(fresh.set_mode, "IMPORT") == (422, 42205)
    assert fails(fresh.set_mode, "IMPORT", SUBJECT) == (422, 42205)
    assert fresh.set_mode("IMPORT", SUBJECT, force=True) == "IMPORT"
    assert fresh.set_mode("IMPORT", None, force=True) == "IMPORT"


def test_register_schema_with_no_id_after_import(fresh: Api) -> None:
    """RestApiModeTest.testRegisterSchemaWithNoIdAfterImport: a schema already there needs no id"""
    fresh.set_mode("READWRITE")
    fresh.set_mode("IMPORT")
    assert fresh.register(SUBJECT, SCHEMA, id=1, version=1) == 1
    assert fresh.register(SUBJECT, SCHEMA) == 1


def test_register_schema_with_different_id_after_import(fresh: Api) -> None:
    """RestApiModeTest.testRegisterSchemaWithDifferentIdAfterImport"""
    assert fresh.register(SUBJECT, SCHEMA) == 1
    fresh.delete_subject(SUBJECT)
    fresh.set_mode("IMPORT")
    assert fresh.register(SUBJECT, SCHEMA, id=2, version=1) == 2
    assert fresh.version(SUBJECT, 1)["id"] == 2


def test_register_schema_with_same_id_after_import(fresh: Api) -> None:
    """RestApiModeTest.testRegisterSchemaWithSameIdAfterImport"""
    assert fresh.register(SUBJECT, SCHEMA) == 1
    fresh.delete_subject(SUBJECT)
    fresh.set_mode("IMPORT")
    assert fresh.register(SUBJECT, SCHEMA, id=1, version=1) == 1
    fresh.delete_subject(SUBJECT)
    assert fresh.register(SUBJECT, SCHEMA, id=1, version=1) == 1
    assert fresh.version(SUBJECT, 1)["schema"] == SCHEMA


def test_import_mode_with_equivalent_schema_different_id(fresh: Api) -> None:
    """RestApiModeTest.testImportModeWithEquivalentSchemaDifferentId"""
    fresh.set_mode("IMPORT")
    assert fresh.register(SUBJECT, DECIMAL, id=100, version=1) == 100
    assert fresh.version(SUBJECT, 1)["schema"] == DECIMAL
    assert fresh.register(SUBJECT, DECIMAL2, id=200, version=2) == 200
    assert fresh.version(SUBJECT, 2)["schema"] == DECIMAL2
    # auto-assigned ids go on above the imported ones
    fresh.set_mode("READWRITE")
    other = record("Other", ("x", "long"))
    assert fresh.register(SUBJECT + "2", other) == 201


def test_import_mode_with_same_schema_different_id(fresh: Api) -> None:
    """RestApiModeTest.testImportModeWithSameSchemaDifferentId"""
    fresh.set_mode("IMPORT")
    assert fresh.register(SUBJECT, DECIMAL, id=100, version=1) == 100
    assert fresh.register(SUBJECT, DECIMAL, id=200, version=2) == 200
    assert fresh.version(SUBJECT, 2)["schema"] == DECIMAL


def test_import_mode_with_same_schema_different_id_and_subject(fresh: Api) -> None:
    """RestApiModeTest.testImportModeWithSameSchemaDifferentIdAndSubject"""
    fresh.set_mode("IMPORT")
    assert fresh.register(SUBJECT, DECIMAL, id=100, version=1) == 100
    assert fresh.lookup(SUBJECT, DECIMAL)["version"] == 1
    assert fresh.register(SUBJECT + "2", DECIMAL, id=200, version=1) == 200
    assert fresh.version(SUBJECT + "2", 1)["schema"] == DECIMAL
    assert fresh.lookup(SUBJECT, DECIMAL)["version"] == 1
    assert fresh.lookup(SUBJECT + "2", DECIMAL)["version"] == 1


def test_register_incompatible_schema_during_import(fresh: Api) -> None:
    """RestApiModeTest.testRegisterIncompatibleSchemaDuringImport: IMPORT skips the compatibility check"""
    assert fresh.register(SUBJECT, SCHEMA) == 1
    fresh.delete_subject(SUBJECT)
    fresh.set_mode("IMPORT")
    assert fresh.register(SUBJECT, SCHEMA, id=1, version=1) == 1
    assert fresh.register(SUBJECT, SCHEMA2, id=2, version=2) == 2
    assert fresh.version(SUBJECT, 2)["schema"] == SCHEMA2


def test_delete_global_mode(fresh: Api) -> None:
    """RestApiModeTest.testDeleteGlobalMode (the client deletes subject modes only: raw HTTP)"""
    fresh.set_mode("READONLY")
    assert fresh.mode() == "READONLY"
    assert fresh.raw.call("DELETE", "/mode") == {"mode": "READONLY"}
    assert fresh.mode() == "READWRITE"


def test_delete_subject_mode_after_global_mode(fresh: Api) -> None:
    """RestApiModeTest.testDeleteSubjectModeAfterGlobalMode"""
    fresh.set_mode("READONLY")
    assert fresh.set_mode("READWRITE", SUBJECT) == "READWRITE"
    assert fresh.mode(SUBJECT) == "READWRITE"
    assert fresh.delete_mode(SUBJECT) == "READWRITE"
    assert fresh.raw.call("GET", f"/mode/{SUBJECT}", {"defaultToGlobal": "true"}) == {"mode": "READONLY"}


def test_set_forward_mode(fresh: Api) -> None:
    """RestApiModeTest.testSetForwardMode: FORWARD (cluster linking) is not supported here at any level"""
    assert fails(fresh.set_mode, "FORWARD", SUBJECT) == (422, 42204)
    assert fails(fresh.set_mode, "FORWARD") == (422, 42204)
    assert fails(fresh.set_mode, "SIDEWAYS") == (422, 42204)
    assert fresh.mode() == "READWRITE"


def test_recursive_delete_global_mode(fresh: Api) -> None:
    """RestApiModeTest.testRecursiveDeleteGlobalMode"""
    fresh.set_mode("READONLY")
    for n in (1, 2, 3):
        fresh.set_mode("READONLY", f"subject{n}")
    assert fresh.raw.call("DELETE", "/mode", {"recursive": "true"}) == {"mode": "READONLY"}
    assert fresh.mode() == "READWRITE"
    for n in (1, 2, 3):
        assert fails(fresh.mode, f"subject{n}") == (404, 40409)


def test_mode_goes_with_the_subject(fresh: Api) -> None:
    """(issue 20) a subject's mode, like its level, goes when its last version is deleted for good"""
    fresh.register(SUBJECT, SCHEMA)
    fresh.set_mode("READWRITE", SUBJECT)
    fresh.delete_subject(SUBJECT)
    assert fresh.mode(SUBJECT) == "READWRITE"
    fresh.delete_subject(SUBJECT, permanent=True)
    assert fails(fresh.mode, SUBJECT) == (404, 40409)
