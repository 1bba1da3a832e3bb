"""The canonical type model, without a database (the catalog round trip is in test_aliases_db.py)."""

from __future__ import annotations

import pytest

from migrate_assets.schema.types import PgType, UnknownTypeError, from_catalog, parse_type, type_change


@pytest.mark.parametrize(
    ("spelling", "canonical"),
    [
        ("int", "integer"), ("int4", "integer"), ("INTEGER", "integer"), ("int2", "smallint"),
        ("int8", "bigint"), ("varchar(20)", "character varying(20)"), ("character varying (20)", "character varying(20)"),
        ("char", "character(1)"), ("bpchar", "bpchar"), ("bpchar(3)", "character(3)"),
        ("timestamptz", "timestamp with time zone"), ("timestamptz(3)", "timestamp(3) with time zone"),
        ("timestamp(3) with time zone", "timestamp(3) with time zone"), ("timestamp", "timestamp without time zone"),
        ("timetz", "time with time zone"), ("float", "double precision"), ("float(24)", "real"), ("float(25)", "double precision"),
        ("decimal(10, 2)", "numeric(10,2)"), ("numeric(7)", "numeric(7,0)"), ("bool", "boolean"),
        ("text[]", "text[]"), ("int[][]", "integer[][]"), ("integer[3]", "integer[]"), ("text ARRAY", "text[]"),
        ("pg_catalog.int8", "bigint"), ("public.mood", "public.mood"), ('"My Schema"."Odd Type"', '"My Schema"."Odd Type"'),
        ("varbit(4)", "bit varying(4)"), ("bit", "bit(1)"),
    ],
)  # fmt: skip
def test_aliases_fold_to_the_format_type_spelling(spelling: str, canonical: str) -> None:
    assert parse_type(spelling).render() == canonical
    assert from_catalog(canonical, parse_type(spelling).array_dims) == parse_type(spelling).plain


def test_serial_is_a_marker_on_the_storage_type() -> None:
    t = parse_type("bigserial")
    assert t.serial and t.plain == PgType("bigint") and t.render_declared() == "bigserial"
    assert parse_type("serial").plain == parse_type("int4")


def test_modifier_accessors() -> None:
    n = parse_type("numeric(12,3)")
    assert (n.precision, n.scale, n.length) == (12, 3, None)
    assert parse_type("varchar(9)").length == 9
    assert parse_type("timestamp(2)").precision == 2
    assert parse_type("int[][]").element == PgType("integer") and parse_type("int[]").is_array
    assert parse_type("public.mood").is_user_defined and not parse_type("uuid").is_user_defined


@pytest.mark.parametrize(
    "bad",
    ["", "  ", "integr", "varchar(0)", "numeric(0)", "int(4)", "text not null", "int; drop table x", "timestamp(9)",
     "serial[]", "mood", "float(54)", "varchar(1,2)"],
)  # fmt: skip
def test_unknown_or_invalid_types_name_the_type(bad: str) -> None:
    with pytest.raises(UnknownTypeError) as exc:
        parse_type(bad)
    assert repr(bad.strip()) in exc.value.message or bad.strip() == ""


@pytest.mark.parametrize(
    ("old", "new", "rewrite", "widening"),
    [
        ("varchar(10)", "varchar(20)", False, True), ("varchar(10)", "text", False, True), ("varchar(10)", "varchar", False, True),
        ("varchar(20)", "varchar(10)", True, False), ("text", "varchar(5)", True, False), ("numeric(10,2)", "numeric(12,2)", False, True),
        ("numeric(10,2)", "numeric(12,3)", True, False), ("numeric(10,2)", "numeric", False, True), ("int", "bigint", True, True),
        ("bigint", "int", True, False), ("int", "text", True, False), ("timestamp(3)", "timestamp(6)", False, True),
        ("timestamp", "timestamptz", True, False),
    ],
)  # fmt: skip
def test_type_change_rules(old: str, new: str, rewrite: bool, widening: bool) -> None:
    tc = type_change(parse_type(old), parse_type(new))
    assert (tc.rewrite, tc.widening) == (rewrite, widening)
