"""The type table of docs/evolution.md, generated from the type map so the two cannot drift.

    python -m migrate_assets.evolution.typetable docs/evolution.md          # rewrite the table in place
    python -m migrate_assets.evolution.typetable --check docs/evolution.md  # exit 1 when it differs

One row per type under Debezium's defaults, and one more for each connector setting value that changes it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from migrate_assets.errors import UnsupportedTypeError
from migrate_assets.evolution.typemap import MODES, LayerTypes, TypeMapOptions, UserType, map_type

START, END = "<!-- type-table:start (generated: python -m migrate_assets.evolution.typetable) -->", \
    "<!-- type-table:end -->"
#: the catalog the examples assume: an enum and a domain
EXAMPLE_TYPES = (UserType("public.mood", "enum", ("sad", "ok", "happy")),
                 UserType("public.posint", "domain", base="integer"))
SAMPLES = (
    "boolean", "bit(1)", "bit(3)", "bit varying(8)", "bit varying", "smallint", "integer", "bigint", "oid", "real",
    "double precision", "character(3)", "character varying(10)", "text", "bpchar", '"char"', "public.citext",
    "inet", "cidr", "macaddr", "macaddr8", "int4range", "int8range", "numrange", "tsrange", "tstzrange",
    "daterange", "numeric(10,2)", "numeric", "numeric(50,2)", "numeric(5,-2)", "money",
    "timestamp with time zone", "time with time zone", "timestamp(3)", "timestamp", "time(3)", "time", "date",
    "interval", "bytea", "json", "jsonb", "xml", "uuid", "tsvector", "public.ltree", "public.hstore", "point",
    "public.geometry", "public.geometry(Point,4326)", "public.geography", "public.geography(Point,4326)",
    "public.mood", "public.posint",
    "text[]", "integer[]", "smallint[]", "numeric(10,2)[]", "numeric[]", "timestamp(3)[]", "timestamp[]",
    "time(3)[]", "time[]", "date[]", "timestamptz[]", "timetz[]", '"char"[]', "macaddr8[]", "tstzrange[]",
    "bytea[]", "uuid[]", "jsonb[]", "inet[]", "int4range[]", "public.citext[]", "public.ltree[]", "public.hstore[]",
    "public.mood[]", "tsvector[]", "oid[]", "public.geometry[]", "public.geography[]",
    "tsquery", "pg_lsn", "box", "circle", "line", "lseg", "path", "polygon", "int4multirange",
    "name", "name[]", "integer[][]", "money[]", "interval[]", "xml[]", "point[]", "bit(3)[]", "bit varying[]",
    "public.posint[]", "regclass",
    "public.other_type",
)
#: setting values shown beside the modes (money.fraction.digits is a number, not a choice)
EXTRA_SETTINGS = {"money.fraction.digits": ("3",)}


def _cell(lt: LayerTypes | str) -> tuple[str, str, str]:
    if isinstance(lt, str):
        return ("—", "—", f"refused: {lt}")
    connect = lt.connect + (f" ({lt.semantic})" if lt.semantic else "")
    return (connect, "`" + json.dumps(lt.avro_type, separators=(",", ":")) + "`", f"`{lt.iceberg}`")


def _map(pg: str, opts: TypeMapOptions) -> LayerTypes | str:
    try:
        return map_type(pg, opts)
    except UnsupportedTypeError as exc:
        return "; ".join(p.message for p in exc.problems).split(": ", 1)[-1]


def rows() -> list[tuple[str, str, str, str, str]]:
    """(Postgres type, setting, Connect, Avro, Iceberg) for every sample under the defaults and each change."""
    base = TypeMapOptions(user_types=EXAMPLE_TYPES)
    settings = [(key, value) for key, values in MODES.items() for value in values[1:]]
    settings += [(key, value) for key, values in EXTRA_SETTINGS.items() for value in values]
    out = []
    for pg in SAMPLES:
        default = _map(pg, base)
        out.append((pg, "defaults", *_cell(default)))
        for key, value in settings:
            got = _map(pg, TypeMapOptions.from_connector({key: value}, base))
            if got != default:
                out.append((pg, f"{key}={value}", *_cell(got)))
    return out


def table() -> str:
    lines = [
        START,
        "",
        "Examples assume `public.mood` is an enum ('sad', 'ok', 'happy') and `public.posint` a domain over "
        "integer. Avro is the type inside the optional union `[\"null\", …]` of a nullable column.",
        "",
        "| Postgres | connector setting | Connect (semantic) | Avro, as the AvroConverter registers it | Iceberg |",
        "|---|---|---|---|---|",
    ]
    lines += ["| " + " | ".join(c.replace("|", "\\|") for c in (f"`{r[0]}`", *r[1:])) + " |" for r in rows()]
    return "\n".join([*lines, "", END])


def render(doc: str) -> str:
    """`doc` with the text between the markers replaced by the current table (markers appended when absent)."""
    if START in doc and END in doc:
        head, rest = doc.split(START, 1)
        return head + table() + rest.split(END, 1)[1]
    return doc.rstrip("\n") + "\n\n" + table() + "\n"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    ap.add_argument("doc", type=Path)
    ap.add_argument("--check", action="store_true", help="exit 1 when the document's table is not current")
    args = ap.parse_args(argv)
    doc = args.doc.read_text()
    new = render(doc)
    if args.check:
        if new != doc:
            print(f"{args.doc}: the type table is not current; run python -m migrate_assets.evolution.typetable "
                  f"{args.doc}", file=sys.stderr)
            return 1
        return 0
    args.doc.write_text(new)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
