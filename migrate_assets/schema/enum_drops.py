"""Enums dropped on request: an enum document with `drop: true` is dropped (`DROP TYPE`, late in the transaction)
when nothing uses it — no column, domain, composite attribute, range, function or other object that Postgres
records as depending on the type or its array type. When something does, the plan refuses, naming each user
(`pg_describe_object`), and drops nothing. Without `drop: true` an enum the specs no longer declare is left alone.

    enum: public.old_mood
    values: [happy, sad]
    drop: true
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from psycopg import sql

from migrate_assets.schema.enums import Enum
from migrate_assets.schema.plan import Change, Hazard

if TYPE_CHECKING:
    import psycopg

_USERS = """
SELECT k->>0, k->>1, (SELECT json_agg(DISTINCT pg_describe_object(d.classid, d.objid, d.objsubid))
        FROM pg_depend d WHERE d.refclassid = 'pg_type'::regclass AND d.refobjid IN (t.oid, t.typarray)
          AND d.deptype = 'n' AND NOT (d.classid = 'pg_type'::regclass AND d.objid = t.typarray))
FROM json_array_elements(%s::json) k
JOIN pg_namespace n ON n.nspname = k->>0 JOIN pg_type t ON t.typnamespace = n.oid AND t.typname = k->>1
WHERE t.typtype = 'e'
"""


def plan(conn: psycopg.Connection[Any], declared: Iterable[Enum],
         live: dict[tuple[str, str], Enum]) -> tuple[list[Change], list[str]]:
    """(DROP TYPE changes, refusals) for the enums declared with `drop: true` that exist."""
    wanted = [e for e in declared if e.drop]
    if not wanted:
        return [], []
    rows = conn.execute(_USERS, [json.dumps([list(e.key) for e in wanted], ensure_ascii=False)]).fetchall()
    changes: list[Change] = []
    refusals: list[str] = []
    by = {e.key: e for e in wanted}
    for nsp, name, users in rows:
        e = by[(str(nsp), str(name))]
        used = sorted(json.loads(users) if isinstance(users, str) else users or [])
        if used:
            refusals.append(f"enum {e.qualified} has drop: true but is still used by {', '.join(used)}; stop using "
                            "it first (a plan that drops those drops the enum in the next plan)")
            continue
        ident = sql.Identifier(e.schema, e.name)
        values = sql.SQL(", ").join(sql.Literal(v) for v in live.get(e.key, e).values)  # the undo: as it was
        from migrate_assets.schema.ddl import q

        changes.append(Change(e.qualified, "drop_enum", f"drop enum {e.qualified} (drop: true; nothing uses it)",
                              (q("DROP TYPE {}", ident),), (q("CREATE TYPE {} AS ENUM ({})", ident, values),),
                              (Hazard.BREAKS_READERS,), True, None))
    return changes, refusals

