"""A planned enum label on the real stack (issue 22 item 1, "adding an enum value is planned"): `evolve` with an
add_enum_value change file registers the subject's next version with the new labels, runs ALTER TYPE … ADD VALUE,
restarts the connector the safe way and verifies; a row written with the new label is published with the version
evolve registered — the AvroConverter adds none of its own — and verify is consistent."""

from __future__ import annotations

import httpx
import psycopg
import pytest

from tests.cdc import live_connector_config
from tests.evolution.test_types_live import _schema_ids, _versions
from tests.pipeline import PipelineFactory, change_file
from tests.support import run_cli


def test_evolve_adds_an_enum_label_through_every_layer(make_pipeline: PipelineFactory, stack_dsn: str,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TYPE public.tier AS ENUM ('bronze', 'silver')")
    p = make_pipeline()
    added = run_cli(capsys, "evolve", str(change_file(p.tmp, "table: public.customers\noperations:\n"
                                                      "  - add_column: {name: tier, type: public.tier, nullable: true}\n"
                                                      "  - add_column: {name: tiers, type: 'public.tier[]', "
                                                      "nullable: true}\n")),
                    config=p.config_path, fmt="json")
    assert added.code == 0, added.out + added.err
    before = _versions(p.registry_url, p.subject)
    cf = change_file(p.tmp, "table: public.customers\noperations:\n"
                     "  - add_enum_value: {type: public.tier, value: gold, after: silver}\n")
    refused = run_cli(capsys, "evolve", str(cf), config=p.config_path, fmt="json")
    assert refused.code == 3 and "--allow-irreversible" in refused.err + refused.out, refused
    connector = live_connector_config(p.connect_url, p.name)
    expand = run_cli(capsys, "expand", str(cf), config=p.config_path, fmt="json")
    assert expand.code == 2 and "run it with `migrate-assets evolve`" in expand.err + expand.out, expand
    assert live_connector_config(p.connect_url, p.name) == connector
    assert _versions(p.registry_url, p.subject) == before  # both refused before any layer changed
    ran = run_cli(capsys, "evolve", str(cf), "--allow-irreversible", config=p.config_path, fmt="json")
    assert ran.code == 0, ran.out + ran.err
    steps = ran.doc["steps"]
    assert [s["layer"] for s in steps] == ["schema_registry", "source_db", "connector", "verify"], steps
    assert all(s["status"] == "done" for s in steps), steps
    assert [s["reversible"] for s in steps] == [True, False, True, True]
    assert steps[1]["hazards"] == ["not_reversible"] and steps[1]["inverse_sql"] is None
    assert ran.doc["steps"][2]["result"]["restarted"] is True
    with psycopg.connect(p.dsn, autocommit=True) as conn:
        labels = [r[0] for r in conn.execute("SELECT unnest(enum_range(NULL::public.tier))::text").fetchall()]
        assert labels == ["bronze", "silver", "gold"]
        conn.execute("INSERT INTO public.customers (id, name, tier, tiers) VALUES (901, 'g', 'gold', '{gold,bronze}')")
    ours = _versions(p.registry_url, p.subject)
    assert ours == [*before, before[-1] + 1]  # the one version evolve registered
    after = p.row_events(901)[0]["after"]
    assert (after["tier"], after["tiers"]) == ("gold", ["gold", "bronze"])
    ours_id = httpx.get(f"{p.registry_url}/subjects/{p.subject}/versions/latest", timeout=10).json()["id"]
    assert _schema_ids(p.stack.bootstrap, p.topic)[-1] == ours_id  # published with our version
    assert _versions(p.registry_url, p.subject) == ours  # the converter registered none of its own
    ver = run_cli(capsys, "verify", config=p.config_path, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver.doc
