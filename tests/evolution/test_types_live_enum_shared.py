"""One new enum label, two pipeline tables, two connectors (issue 22): `evolve` of an add_enum_value change on one
table carries every pipeline table whose columns use the type. In one run both subjects get the next version with
the new labels, the DDL runs once, both connectors restart, both tables verify; a row with the new label in each
table is then published with the version evolve registered for it — the converter adds none of its own."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from tests.cdc import poll_until
from tests.evolution.test_types_live import _schema_ids, _versions
from tests.pipeline import Pipeline, PipelineFactory, change_file
from tests.support import run_cli


def test_a_new_label_reaches_every_table_using_the_enum(make_pipeline: PipelineFactory, stack_dsn: str,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TYPE public.tier AS ENUM ('bronze', 'silver')")
    a = make_pipeline()
    b = make_pipeline(table="orders")
    try:
        a.write_config(pipelines=[a.pipeline_entry("customers"), b.pipeline_entry("orders")])
        adds = [change_file(a.tmp, f"table: public.{t}\noperations:\n  - add_column: {{name: tier, type: public.tier, "
                                   f"nullable: true}}\n  - add_column: {{name: tiers, type: 'public.tier[]', nullable: true}}\n",
                            f"add_{t}.yaml") for t in ("customers", "orders")]
        added = run_cli(capsys, "evolve", *map(str, adds), config=a.config_path, fmt="json")
        assert added.code == 0, added.out + added.err
        before = {p.subject: _versions(p.registry_url, p.subject) for p in (a, b)}

        cf = change_file(a.tmp, "table: public.customers\noperations:\n"
                         "  - add_enum_value: {type: public.tier, value: gold, after: silver}\n")
        ran = run_cli(capsys, "evolve", str(cf), "--allow-irreversible", config=a.config_path, fmt="json")
        assert ran.code == 0, ran.out + ran.err
        steps = ran.doc["steps"]
        assert [s["layer"] for s in steps] == ["schema_registry", "schema_registry", "source_db", "connector",
                                               "connector", "verify", "verify"], steps
        assert all(s["status"] == "done" for s in steps), steps
        assert [s["reversible"] for s in steps] == [True, True, False, True, True, True, True]
        assert [s["result"]["restarted"] for s in steps if s["layer"] == "connector"] == [True, True]
        assert any("public.orders uses the type too" in w for w in ran.doc["warnings"]), ran.doc["warnings"]

        ids = {}
        for p, row in ((a, 901), (b, 902)):
            assert _versions(p.registry_url, p.subject) == [*before[p.subject], before[p.subject][-1] + 1]
            ids[p.subject] = httpx.get(f"{p.registry_url}/subjects/{p.subject}/versions/latest", timeout=10).json()["id"]
            with psycopg.connect(p.dsn, autocommit=True) as conn:
                conn.execute(f"INSERT INTO public.{p.table} (id, name, tier, tiers) "  # noqa: S608 - the test's tables
                             "VALUES (%s, 'g', 'gold', '{gold,bronze}')", (row,))
        for p, row in ((a, 901), (b, 902)):
            after = p.row_events(row)[0]["after"]
            assert (after["tier"], after["tiers"]) == ("gold", ["gold", "bronze"])
            assert _schema_ids(p.stack.bootstrap, p.topic)[-1] == ids[p.subject]  # published with our version
            assert _versions(p.registry_url, p.subject) == [*before[p.subject], before[p.subject][-1] + 1]
        ver = run_cli(capsys, "verify", config=a.config_path, fmt="json")
        assert ver.code == 0 and ver.doc["consistent"] is True, ver.doc
    finally:  # two connectors on one database: the fixture's teardown of the first waits for every slot
        _delete_with_its_slot(b)


def _delete_with_its_slot(p: Pipeline) -> None:
    """Delete the connector and drop its own replication slot (the other connector keeps running)."""
    httpx.delete(f"{p.connect_url}/connectors/{p.name}", timeout=30)
    poll_until(lambda: httpx.get(f"{p.connect_url}/connectors/{p.name}", timeout=5).status_code == 404, 30,
               f"connector {p.name} gone")

    def dropped() -> bool:
        with psycopg.connect(p.dsn, autocommit=True) as conn:
            row = conn.execute("SELECT active FROM pg_replication_slots WHERE slot_name = %s",
                               (p.config["slot.name"],)).fetchone()
            if row and not row[0]:
                conn.execute("SELECT pg_drop_replication_slot(%s)", (p.config["slot.name"],))
            return row is None or not row[0]

    poll_until(dropped, 30, f"slot of {p.name} dropped")
