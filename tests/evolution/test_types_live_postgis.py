"""PostGIS `geometry` and `geography` through a live pipeline (issue 22): the stack installs PostGIS the way it
installs PostgreSQL (`local/postgres.ensure_postgis`), so these rows of the type table are proven against the
converter like the others in test_types_live.py.

Before the database has the extension, a PostGIS column is refused at plan time (exit 2, nothing changed) naming
the extension. With it, one `evolve` adds `geometry`, `geometry(Point,4326)`, `geography`, `geography(Point,4326)`
and arrays of both (Debezium carries them as lists of its Geometry / Geography struct); a row with a value in each
decodes to the EWKB bytes and SRID Postgres itself holds, the converter adds no version of its own, the Iceberg
columns have the mapped types and verify is consistent.
"""

from __future__ import annotations

import httpx
import psycopg
import pytest

from migrate_assets.evolution.typemap import TypeMapOptions, map_type
from migrate_assets.resources.iceberg import type_text
from tests.evolution.test_types_live import _add_columns, _schema_ids, _versions, user_types_of
from tests.pipeline import PipelineFactory, change_file
from tests.support import run_cli

# (column, type, SQL value, the value as Postgres' EWKB bytes and SRID (0 = none): SQL over the column)
CASES = [
    ("g_any", "public.geometry", "ST_GeomFromText('LINESTRING(0 0, 1 1)')"),
    ("g_pt", "public.geometry(Point,4326)", "ST_SetSRID(ST_MakePoint(1, 2), 4326)"),
    ("g_geog", "public.geography", "'SRID=4326;POINT(3 4)'::public.geography"),
    ("g_geogpt", "public.geography(Point,4326)", "'POINT(5 6)'::public.geography"),
    ("g_arr", "public.geometry[]", "ARRAY[ST_MakePoint(7, 8), ST_SetSRID(ST_MakePoint(9, 10), 3857)]"),
    ("g_geogarr", "public.geography[]", "ARRAY['POINT(11 12)'::public.geography]"),
]


def _ewkb(expr: str, geography: bool) -> str:
    g = f"{expr}::public.geometry" if geography else expr
    return f"json_build_object('wkb', encode(ST_AsEWKB({g}), 'hex'), 'srid', NULLIF(ST_SRID({g}), 0))"


def _postgis_values(dsn: str, row_id: int) -> dict[str, object]:
    """What Postgres holds for the row: {wkb: EWKB, srid: SRID or None} per column (lists for arrays)."""
    out: dict[str, object] = {}
    with psycopg.connect(dsn) as conn:
        for name, typ, _ in CASES:
            geo, array = "geography" in typ, typ.endswith("[]")
            what = (f"array_agg({_ewkb('e', geo)} ORDER BY n) FROM customers, unnest({name}) WITH ORDINALITY u(e, n)"
                    if array else f"{_ewkb(name, geo)} FROM customers")
            row = conn.execute(f"SELECT {what} WHERE id = %s", (row_id,)).fetchone()  # noqa: S608 - our own names
            assert row is not None
            items = row[0] if array else [row[0]]
            decoded = [{"wkb": bytes.fromhex(v["wkb"]), "srid": v["srid"]} for v in items]
            out[name] = decoded if array else decoded[0]
    return out


def test_postgis_types_are_carried_as_the_converter_writes_them(
        make_pipeline: PipelineFactory, stack_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    p = make_pipeline()
    # no PostGIS in this database yet: refused at plan time, naming the extension; nothing changed
    before = p.layer_state()
    refused = change_file(p.tmp, _add_columns([("g_any", "public.geometry", "", None)]), "refused.yaml")
    ran = run_cli(capsys, "evolve", str(refused), config=p.config_path, fmt="json")
    assert ran.code == 2, (ran.out, ran.err)
    assert "CREATE EXTENSION postgis" in ran.out + ran.err and "refused.yaml" in ran.out + ran.err, ran
    assert p.layer_state() == before

    with psycopg.connect(p.dsn, autocommit=True) as conn:
        available = conn.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'postgis'").fetchone()
        assert available, ("PostGIS is not installed on the stack's server: the stack installs "
                           "postgresql-15-postgis-3 when it runs as root; otherwise install it with apt-get")
        conn.execute("CREATE EXTENSION postgis")
    cases = [(n, t, v, None) for n, t, v in CASES]
    ran = run_cli(capsys, "evolve", str(change_file(p.tmp, _add_columns(cases))), config=p.config_path, fmt="json")
    assert ran.code == 0 and ran.doc["status"] == "succeeded", (ran.out, ran.err)
    versions = _versions(p.registry_url, p.subject)
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        conn.execute(f"INSERT INTO public.customers (id, name, {', '.join(n for n, _, _ in CASES)}) "  # noqa: S608
                     f"VALUES (777, 'geo', {', '.join(v for _, _, v in CASES)})")
    after = p.row_events(777)[0]["after"]
    want = _postgis_values(p.dsn, 777)
    assert {n: after[n] for n, _, _ in CASES} == want
    assert [after[n]["srid"] for n in ("g_any", "g_pt", "g_geog", "g_geogpt")] == [None, 4326, 4326, 4326]
    assert [g["srid"] for g in after["g_arr"]] == [None, 3857]
    # the converter used the version evolve registered: none was added for the row
    assert _versions(p.registry_url, p.subject) == versions
    latest = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert latest.code == 0 and latest.doc["consistent"] is True, latest.doc
    ours = httpx.get(f"{p.registry_url}/subjects/{p.subject}/versions/latest", timeout=10).json()["id"]
    assert _schema_ids(p.stack.bootstrap, p.topic)[-1] == ours  # the row was published with our version
    opts = TypeMapOptions.from_connector(p.config, TypeMapOptions(user_types=user_types_of(p.dsn)))
    ice = {f.name: type_text(f.field_type) for f in p.iceberg().schema().fields}
    assert {n: ice.get(n) for n, _, _ in CASES} == {n: map_type(t, opts).iceberg for n, t, _ in CASES}
    assert ice["g_pt"] == "struct<wkb: binary, srid: int>" and ice["g_arr"] == "list<struct<wkb: binary, srid: int>>"
