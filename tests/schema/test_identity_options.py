"""Identity sequence options in specs: created with the column, changed in place (no rewrite, the sequence keeps
its position), exported and planned back as no change; a word-only `identity` leaves the options alone."""

from __future__ import annotations

import psycopg

from migrate_assets.schema.export import dump, table_document
from migrate_assets.schema.introspect import introspect
from migrate_assets.schema.plan import Hazard
from tests.schema.helpers import converge, execute, plan, scalar

SPEC = """table: tickets
columns:
  - name: id
    type: bigint
    identity: {generated: always, start: 1000, increment: 10, cache: 5}
  - {name: note, type: text, nullable: true}
primary_key: [id]
"""


def test_identity_options_converge_change_and_export(fresh_dsn: str) -> None:
    p = converge(fresh_dsn, SPEC)
    assert "IDENTITY (CACHE 5 INCREMENT BY 10 START WITH 1000)" in p.changes[0].sql[0]
    execute(fresh_dsn, "INSERT INTO tickets (note) SELECT 'x' FROM generate_series(1, 3)")
    assert scalar(fresh_dsn, "SELECT max(id) FROM tickets") == 1020
    node = scalar(fresh_dsn, "SELECT pg_relation_filenode('tickets')")
    changed = SPEC.replace("increment: 10, cache: 5", "increment: 100, cycle: true, maxvalue: 1000000")
    p = converge(fresh_dsn, changed)
    (c,) = p.changes
    assert c.kind == "set_identity_options" and c.hazards == (Hazard.ACCESS_EXCLUSIVE_LOCK,) and c.inverse_sql
    assert "SET INCREMENT BY 100" in c.sql[0] and "SET CACHE 1" in c.sql[0] and "SET CYCLE" in c.sql[0]
    execute(fresh_dsn, "INSERT INTO tickets (note) VALUES ('y')")
    assert scalar(fresh_dsn, "SELECT max(id) FROM tickets") == 1140  # after the 5 cached values (to 1040), new step
    assert scalar(fresh_dsn, "SELECT pg_relation_filenode('tickets')") == node
    assert plan(fresh_dsn, SPEC.replace("identity: {generated: always, start: 1000, increment: 10, cache: 5}",
                                        "identity: always")).empty  # options not stated: left alone
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        doc, _ = table_document(introspect(conn, ["public"])[("public", "tickets")])
    assert doc["columns"][0]["identity"] == {"generated": "always", "cycle": True, "increment": 100,
                                             "maxvalue": 1000000, "start": 1000}
    assert plan(fresh_dsn, dump(doc)).empty
