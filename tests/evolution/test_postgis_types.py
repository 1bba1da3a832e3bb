"""PostGIS types in the type map without a stack: their modifiers parse (words and numbers only, never SQL), arrays
map as lists of Debezium's structs, and with the source catalog read, a type whose extension the database lacks is
refused naming the extension (the live proof is test_types_live_postgis.py)."""

from __future__ import annotations

import pytest

from migrate_assets.errors import UnsupportedTypeError
from migrate_assets.evolution.typemap import TypeMapOptions, UserType, map_type
from migrate_assets.schema.types import UnknownTypeError, parse_type


@pytest.mark.parametrize(("written", "canonical"), [
    ("public.geometry(Point,4326)", "public.geometry(Point,4326)"),
    ("public.geometry( Point , 4326 )[]", "public.geometry(Point,4326)[]"),
    ("public.geography(MultiPolygonZ,4326)", "public.geography(MultiPolygonZ,4326)"),
    ("public.geometry", "public.geometry"),
])
def test_postgis_modifiers_parse_and_render(written: str, canonical: str) -> None:
    t = parse_type(written)
    assert t.render() == canonical and t.name in ("public.geometry", "public.geography")


@pytest.mark.parametrize("bad", ["public.geometry(Point;4326)", "public.geometry(Point,4326) x",
                                 "public.geometry('Point')", "public.geometry(Point,4326)); DROP TABLE t; --(",
                                 "pg_catalog.geometry(Point,4326)"])
def test_postgis_modifiers_that_are_not_words_or_numbers_are_refused(bad: str) -> None:
    with pytest.raises(UnknownTypeError):
        parse_type(bad)


def test_postgis_arrays_map_as_lists_of_debeziums_structs() -> None:
    for pg, record in (("public.geometry[]", "Geometry"), ("public.geography(Point,4326)[]", "Geography")):
        lt = map_type(pg)
        assert lt.iceberg == "list<struct<wkb: binary, srid: int>>"
        assert lt.avro_type["items"][0] == "null" and lt.avro_type["items"][1]["name"] == record


def test_a_type_whose_extension_the_database_lacks_is_refused_naming_it() -> None:
    assert map_type("public.geometry", TypeMapOptions()).iceberg == "struct<wkb: binary, srid: int>"  # no catalog
    with pytest.raises(UnsupportedTypeError, match=r"no type public.geometry: the postgis extension is not "
                                                   r"installed in it \(CREATE EXTENSION postgis\)"):
        map_type("public.geometry(Point,4326)[]", TypeMapOptions(catalog=True))
    elsewhere = TypeMapOptions(catalog=True, user_types=(UserType("gis.geometry", "extension"),))
    with pytest.raises(UnsupportedTypeError, match="this database has it as gis.geometry"):
        map_type("public.geometry", elsewhere)
    assert map_type("gis.geometry", elsewhere).semantic == "io.debezium.data.geometry.Geometry"
