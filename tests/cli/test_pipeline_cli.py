"""`migrate-assets pipeline add|list|remove` on the real stack (issue 18, item 1): a table with rows is brought
into a new connector, a second one joins it through the saga, the project file keeps the user's comments, and a
step that fails undoes everything done before it."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
import yaml
from pyiceberg.catalog import load_catalog

from migrate_assets.app import onboard
from migrate_assets.config import load_config
from migrate_assets.local.stack import StackInfo
from tests.cdc import delete_connector, read_values
from tests.support import run_cli

HEAD = "# my project -- this comment must survive\n"


@pytest.fixture
def project(stack_info: StackInfo, stack_dsn: str, tmp_path: Path) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:6]
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL, score numeric(8,2))")
        conn.execute("INSERT INTO public.customers SELECT g, 'c' || g, g * 1.5 FROM generate_series(1, 30) g")
        conn.execute("CREATE TABLE public.orders (id integer PRIMARY KEY, customer_id bigint, note text)")
        conn.execute("INSERT INTO public.orders SELECT g, g % 7, 'o' FROM generate_series(1, 12) g")
    layers = {"database": {"dsn": stack_dsn}, "lock_timeout": "2s",
              "kafka_connect": {"url": stack_info.connect_url}, "kafka": {"bootstrap_servers": stack_info.bootstrap},
              "schema_registry": {"url": stack_info.registry_url},
              "iceberg": {"name": "lake", "properties": stack_info.iceberg_properties}}
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(HEAD + yaml.safe_dump(layers, sort_keys=False) + "on_breaking_change: block  # ours\n")
    connector = f"cdc-{uid}"
    yield {"cfg": cfg, "dsn": stack_dsn, "connector": connector, "ns": f"ns_{uid}", "stack": stack_info}
    if httpx.get(f"{stack_info.connect_url}/connectors/{connector}", timeout=10).status_code == 200:
        delete_connector(stack_info.connect_url, connector, stack_dsn)


def test_add_list_join_remove(capsys: pytest.CaptureFixture[str], project: dict[str, Any]) -> None:
    cfg, stack = project["cfg"], project["stack"]
    ice = f"{project['ns']}.customers"
    dry = run_cli(capsys, "pipeline", "add", "public.customers", "--connector", project["connector"],
                  "--iceberg-table", ice, "--dry-run", config=cfg, fmt="json")
    assert dry.code == 0 and dry.doc["status"] == "dry_run" and dry.doc["mode"] == "new_connector"
    assert httpx.get(f"{stack.connect_url}/connectors/{project['connector']}", timeout=10).status_code == 404

    added = run_cli(capsys, "pipeline", "add", "public.customers", "--connector", project["connector"],
                    "--iceberg-table", ice, config=cfg, fmt="json")
    assert added.code == 0, added.out + added.err
    d = added.doc
    assert d["status"] == "succeeded" and d["mode"] == "new_connector" and d["verify"]["consistent"] is True
    # the connector carries the settings the tool relies on
    live = httpx.get(f"{stack.connect_url}/connectors/{project['connector']}/config", timeout=10).json()
    assert live["plugin.name"] == "pgoutput" and live["publication.autocreate.mode"] == "filtered"
    assert live["signal.data.collection"] == "public.debezium_signal"
    assert live["value.converter"].endswith("AvroConverter") and live["value.converter.schema.registry.url"]
    # the existing rows went through the topic (the initial snapshot), the subject exists
    subject = d["subject"]
    assert httpx.get(f"{stack.registry_url}/subjects/{subject}/versions/latest", timeout=10).status_code == 200
    ids = {v["after"]["id"] for v in read_values(stack.bootstrap, subject[: -len("-value")], stack.registry_url)
           if v.get("after")}
    assert ids == set(range(1, 31))
    # the Iceberg table from the live columns through the type map
    table = load_catalog("lake", **stack.iceberg_properties).load_table(ice)
    assert [(f.name, str(f.field_type)) for f in table.schema().fields] == [
        ("id", "long"), ("name", "string"), ("score", "decimal(8, 2)")]
    # the project file: the entry added, the user's comments kept
    text = cfg.read_text()
    assert text.startswith(HEAD) and "on_breaking_change: block  # ours" in text
    loaded = load_config(str(cfg))
    assert [(p.table, p.connector, p.iceberg_table) for p in loaded.pipelines] == [
        ("public.customers", project["connector"], ice)]

    listed = run_cli(capsys, "pipeline", "list", config=cfg, fmt="json")
    assert listed.code == 0 and [p["table"] for p in listed.doc["pipelines"]] == ["public.customers"]
    again = run_cli(capsys, "pipeline", "add", "public.customers", config=cfg, fmt="json")
    assert again.code == 2 and "already a pipeline" in again.doc["error"]["message"]
    missing = run_cli(capsys, "pipeline", "add", "public.nope", config=cfg, fmt="json")
    assert missing.code == 2 and "does not exist" in missing.doc["error"]["message"]

    # a second table joins the same connector (the default: the one the pipelines share) through the saga
    joined = run_cli(capsys, "pipeline", "add", "public.orders", "--iceberg-table", f"{project['ns']}.orders",
                     config=cfg, fmt="json")
    assert joined.code == 0, joined.out + joined.err
    assert joined.doc["mode"] == "join" and joined.doc["connector"] == project["connector"]
    assert joined.doc["run_id"] and joined.doc["verify"]["consistent"] is True
    ver = run_cli(capsys, "verify", config=cfg, fmt="json")
    assert ver.code == 0, ver.out
    assert {t["table"] for t in ver.doc["tables"]} == {"public.customers", "public.orders"}

    removed = run_cli(capsys, "pipeline", "remove", "public.orders", config=cfg, fmt="json")
    assert removed.code == 0 and removed.doc["kept"]["connector"] == project["connector"]
    assert [p.table for p in load_config(str(cfg)).pipelines] == ["public.customers"]
    assert cfg.read_text().startswith(HEAD)


def test_a_failed_step_undoes_the_steps_before_it(project: dict[str, Any]) -> None:
    """Someone else takes the Iceberg table's name while the connector is being set up (a real concurrent
    writer): creating the Iceberg table fails, and the connector, its slot and publication, the signal table and
    the project file go back to what they were."""
    cfg_path, stack = project["cfg"], project["stack"]
    before = cfg_path.read_text()
    ice = f"{project['ns']}.customers"
    catalog = load_catalog("lake", **stack.iceberg_properties)

    def rival(msg: str) -> None:
        if msg.startswith("wait for subject"):
            from pyiceberg.schema import Schema
            from pyiceberg.types import LongType, NestedField

            catalog.create_namespace_if_not_exists(project["ns"])
            catalog.create_table(ice, schema=Schema(NestedField(1, "x", LongType(), required=False)))

    report = onboard.add(load_config(str(cfg_path)), "public.customers", project["connector"], ice, progress=rival)
    assert report.status == "rolled_back", report
    assert "already exists" in (report.error or "")
    assert [s["step"] for s in report.steps if s["step"].startswith("undo:")] == [
        f"undo: delete connector {project['connector']}", "undo: drop signal table public.debezium_signal"]
    assert httpx.get(f"{stack.connect_url}/connectors/{project['connector']}", timeout=10).status_code == 404
    with psycopg.connect(project["dsn"]) as conn:
        slot = onboard.debezium.slug(f"ma_{project['connector']}")
        assert conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone() is None
        assert conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (slot + "_pub",)).fetchone() is None
        assert conn.execute("SELECT to_regclass('public.debezium_signal')").fetchone() == (None,)
    assert cfg_path.read_text() == before
    assert [f.name for f in catalog.load_table(ice).schema().fields] == ["x"]  # the rival's table is not ours
