"""`migrate-assets pipeline add|list|remove` on the real stack (issue 18, items 1-2): a table with rows is brought
into a new connector by a saga (a stored run), a second one joins it through the evolution saga, both Iceberg
tables carry the primary key as identifier fields, the project file keeps the user's comments, and a step that
fails compensates everything done before it — also when the registry is down during the compensation, which a
later `evolve --rollback RUN` then finishes."""

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
from tests.cdc import connect_request, delete_connector, poll_until, read_values
from tests.support import run_cli

HEAD = "# my project -- this comment must survive\n"


def write_config(path: Path, stack_info: StackInfo, dsn: str, registry_url: str, extra: str = "") -> Path:
    layers = {"database": {"dsn": dsn}, "lock_timeout": "2s",
              "kafka_connect": {"url": stack_info.connect_url}, "kafka": {"bootstrap_servers": stack_info.bootstrap},
              "schema_registry": {"url": registry_url},
              "iceberg": {"name": "lake", "properties": stack_info.iceberg_properties}}
    path.write_text(HEAD + yaml.safe_dump(layers, sort_keys=False) + "on_breaking_change: block  # ours\n" + extra)
    return path


@pytest.fixture
def project(stack_info: StackInfo, stack_dsn: str, tmp_path: Path) -> dict[str, Any]:
    uid = uuid.uuid4().hex[:6]
    with psycopg.connect(stack_dsn, autocommit=True) as conn:
        conn.execute("CREATE TABLE public.customers (id bigint PRIMARY KEY, name text NOT NULL, score numeric(8,2))")
        conn.execute("INSERT INTO public.customers SELECT g, 'c' || g, g * 1.5 FROM generate_series(1, 30) g")
        conn.execute("CREATE TABLE public.orders (region text, id integer, customer_id bigint, note text, "
                     "PRIMARY KEY (id, region))")
        conn.execute("INSERT INTO public.orders SELECT 'r' || g % 2, g, g % 7, 'o' FROM generate_series(1, 12) g")
    cfg = write_config(tmp_path / "migrate.yaml", stack_info, stack_dsn, stack_info.registry_url)
    connector = f"cdc-{uid}"
    yield {"cfg": cfg, "dsn": stack_dsn, "connector": connector, "ns": f"ns_{uid}", "stack": stack_info}
    left = [n for n in (connector, connector + "-2")
            if connect_request("GET", f"{stack_info.connect_url}/connectors/{n}").status_code == 200]
    for name in left[:-1]:  # the last one's delete waits until every slot of the database is released
        httpx.delete(f"{stack_info.connect_url}/connectors/{name}", timeout=30)
    if left:
        delete_connector(stack_info.connect_url, left[-1], stack_dsn)


def identifier_fields(stack: StackInfo, identifier: str) -> tuple[list[str], list[str]]:
    """(identifier field names in key order, required field names) of the Iceberg table, read with pyiceberg."""
    schema = load_catalog("lake", **stack.iceberg_properties).load_table(identifier).schema()
    return ([schema.find_field(i).name for i in schema.identifier_field_ids],
            [f.name for f in schema.fields if f.required])


def nothing_left(project: dict[str, Any], registry_url: str, subject: str, ice: str) -> None:
    """The connector, its slot and publication, the signal table, the subjects and the Iceberg table are gone."""
    stack = project["stack"]
    assert connect_request("GET", f"{stack.connect_url}/connectors/{project['connector']}").status_code == 404
    slot = onboard.debezium.slug(f"ma_{project['connector']}")
    with psycopg.connect(project["dsn"]) as conn:
        assert conn.execute("SELECT 1 FROM pg_replication_slots WHERE slot_name = %s", (slot,)).fetchone() is None
        assert conn.execute("SELECT 1 FROM pg_publication WHERE pubname = %s", (slot + "_pub",)).fetchone() is None
        assert conn.execute("SELECT to_regclass('public.debezium_signal')").fetchone() == (None,)
    for s in (subject, subject[: -len("-value")] + "-key"):
        assert httpx.get(f"{registry_url}/subjects/{s}/versions/latest", timeout=10).status_code == 404, s
    assert not load_catalog("lake", **stack.iceberg_properties).table_exists(ice)


def test_add_list_join_remove(capsys: pytest.CaptureFixture[str], project: dict[str, Any], tmp_path: Path) -> None:
    cfg, stack = project["cfg"], project["stack"]
    ice = f"{project['ns']}.customers"
    dry = run_cli(capsys, "pipeline", "add", "public.customers", "--connector", project["connector"],
                  "--iceberg-table", ice, "--dry-run", config=cfg, fmt="json")
    assert dry.code == 0 and dry.doc["status"] == "dry_run" and dry.doc["mode"] == "new_connector"
    assert [st["step"].split(":")[0] for st in dry.doc["steps"][1:]] == ["ddl", "connector", "registry",
                                                                         "lakehouse", "verify"]
    assert dry.doc["steps"][0]["step"].startswith("add public.customers to ")
    assert connect_request("GET", f"{stack.connect_url}/connectors/{project['connector']}").status_code == 404

    added = run_cli(capsys, "pipeline", "add", "public.customers", "--connector", project["connector"],
                    "--iceberg-table", ice, config=cfg, fmt="json")
    assert added.code == 0, added.out + added.err
    d = added.doc
    assert d["status"] == "succeeded" and d["mode"] == "new_connector" and d["verify"]["consistent"] is True
    # the connector carries the settings the tool relies on
    live = connect_request("GET", f"{stack.connect_url}/connectors/{project['connector']}/config").json()
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
    assert identifier_fields(stack, ice) == (["id"], ["id"])  # the primary key, required
    # one saga, stored like every evolution run
    assert d["run_id"] and [s["step"] for s in d["steps"]][1:] == ["ddl", "connector", "registry", "lakehouse",
                                                                     "verify"]
    runs = run_cli(capsys, "runs", "list", "--table", "public.customers", config=cfg, fmt="json")
    assert [(r["run_id"], r["status"]) for r in runs.doc["runs"]] == [(d["run_id"], "succeeded")]
    # its rollback, as a dry run: what each undo does, with the hazards of the undo's DDL; nothing changes
    dry_back = run_cli(capsys, "evolve", "--rollback", d["run_id"], "--dry-run", config=cfg, fmt="json")
    assert dry_back.code == 0 and dry_back.doc["status"] == "dry_run", dry_back.out + dry_back.err
    ddl = next(s for s in dry_back.doc["steps"] if s["layer"] == "source_db")
    assert ddl["inverse_sql"] == 'DROP TABLE "public"."debezium_signal";'
    assert ddl["undo_hazards"][:2] == ["access_exclusive_lock", "deletes_data"]
    assert any(a.startswith("connector: undo: stop connector") for a in dry_back.doc["dry_run_actions"])
    text = run_cli(capsys, "evolve", "--rollback", d["run_id"], "--dry-run", config=cfg)
    undo_line = next(ln for ln in text.out.splitlines() if ln.strip().startswith("undo (would undo: DROP TABLE"))
    assert undo_line.endswith("[access_exclusive_lock, deletes_data, breaks_readers, not_reversible]"), text.out
    assert connect_request("GET", f"{stack.connect_url}/connectors/{project['connector']}").status_code == 200
    # a change's dry run tags its undo too: dropping the added column again deletes what was written into it
    change = tmp_path / "add_note.yaml"
    change.write_text("table: public.customers\noperations:\n  - add_column: {name: note, type: text, nullable: true}\n")
    planned = run_cli(capsys, "evolve", str(change), "--dry-run", config=cfg, fmt="json")
    assert planned.code == 0, planned.out + planned.err
    ddl = next(s for s in planned.doc["steps"] if s["layer"] == "source_db")
    assert ddl["hazards"] == ["access_exclusive_lock"]
    assert ddl["undo_hazards"] == ["access_exclusive_lock", "deletes_data", "breaks_readers", "not_reversible"]
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
    include = connect_request("GET", f"{stack.connect_url}/connectors/{project['connector']}/config").json()[
        "table.include.list"]
    dry_join = run_cli(capsys, "pipeline", "add", "public.orders", "--iceberg-table", f"{project['ns']}.orders",
                       "--dry-run", config=cfg, fmt="json")
    assert dry_join.code == 0 and dry_join.doc["mode"] == "join", dry_join.out + dry_join.err
    assert [st["step"].split(":")[0] for st in dry_join.doc["steps"][1:]] == ["registry", "lakehouse", "connector",
                                                                             "verify"]
    assert connect_request("GET", f"{stack.connect_url}/connectors/{project['connector']}/config").json()[
        "table.include.list"] == include
    joined = run_cli(capsys, "pipeline", "add", "public.orders", "--iceberg-table", f"{project['ns']}.orders",
                     config=cfg, fmt="json")
    assert joined.code == 0, joined.out + joined.err
    assert joined.doc["mode"] == "join" and joined.doc["connector"] == project["connector"]
    assert joined.doc["run_id"] and joined.doc["verify"]["consistent"] is True
    assert identifier_fields(stack, f"{project['ns']}.orders") == (["id", "region"], ["region", "id"])
    ver = run_cli(capsys, "verify", config=cfg, fmt="json")
    assert ver.code == 0, ver.out
    assert {t["table"] for t in ver.doc["tables"]} == {"public.customers", "public.orders"}

    # a second connector of the same database takes its own topic prefix (one prefix per connector: Debezium
    # names its metrics by it, and a second task of one prefix stalls before its snapshot)
    with psycopg.connect(project["dsn"], autocommit=True) as conn:
        conn.execute("CREATE TABLE public.notes (id int PRIMARY KEY, body text)")
        conn.execute("INSERT INTO public.notes VALUES (1, 'a'), (2, 'b')")
    second = run_cli(capsys, "pipeline", "add", "public.notes", "--connector", project["connector"] + "-2",
                     "--iceberg-table", f"{project['ns']}.notes", config=cfg, fmt="json")
    assert second.code == 0 and second.doc["mode"] == "new_connector", second.out + second.err
    assert second.doc["subject"] == onboard.debezium.slug(project["connector"] + "-2") + ".public.notes-value"
    assert second.doc["verify"]["consistent"] is True

    removed = run_cli(capsys, "pipeline", "remove", "public.orders", config=cfg, fmt="json")
    assert removed.code == 0 and removed.doc["kept"]["connector"] == project["connector"]
    assert [p.table for p in load_config(str(cfg)).pipelines] == ["public.customers", "public.notes"]
    assert cfg.read_text().startswith(HEAD)


def test_a_failed_step_undoes_the_steps_before_it(capsys: pytest.CaptureFixture[str],
                                                  project: dict[str, Any]) -> None:
    """Someone else takes the Iceberg table's name once the connector runs (a real concurrent writer): creating
    the Iceberg table fails, and the saga compensates: the connector with its slot, publication and the subjects
    its converters registered, the signal table, and the project file go back to what they were; the rival's
    table is not ours and stays."""
    cfg_path, stack = project["cfg"], project["stack"]
    before = cfg_path.read_text()
    ice = f"{project['ns']}.customers"
    catalog = load_catalog("lake", **stack.iceberg_properties)

    def rival(msg: str) -> None:
        if msg == "registry: done":
            from pyiceberg.schema import Schema
            from pyiceberg.types import LongType, NestedField

            catalog.create_namespace_if_not_exists(project["ns"])
            catalog.create_table(ice, schema=Schema(NestedField(1, "x", LongType(), required=False)))

    report = onboard.add(load_config(str(cfg_path)), "public.customers", project["connector"], ice, progress=rival)
    assert report.status == "rolled_back", report
    assert "already exists" in (report.error or "")
    by_step = {s["step"]: s for s in report.steps}
    assert by_step["lakehouse"]["status"] == "failed"
    assert {k: by_step[k]["status"] for k in ("ddl", "connector", "registry", "verify")} == {
        "ddl": "compensated", "connector": "compensated", "registry": "compensated", "verify": "skipped"}
    assert cfg_path.read_text() == before
    assert [f.name for f in catalog.load_table(ice).schema().fields] == ["x"]  # the rival's table stays
    catalog.drop_table(ice)
    nothing_left(project, stack.registry_url, report.subject, ice)
    shown = run_cli(capsys, "runs", "show", report.run_id or "", config=cfg_path, fmt="json")
    assert shown.code == 0 and shown.doc["status"] == "rolled_back" and shown.doc["failed_step"] == "lakehouse"


def test_registry_down_after_the_connector_ran(capsys: pytest.CaptureFixture[str], project: dict[str, Any],
                                               private_registry: Any, tmp_path: Path) -> None:
    """The registry stops (for real) right after the connector was created: waiting for the subject fails, the
    compensation removes the connector, its slot and publication and the signal table but cannot reach the
    registry for the subjects (the run says so, exit 1); once the registry is back, `evolve --rollback RUN`
    finishes it and nothing of the onboarding is left."""
    stack = project["stack"]
    cfg_path = write_config(tmp_path / "down.yaml", stack, project["dsn"], private_registry.url,
                            "retries: {attempts: 2, backoff: 0.2}\n")
    before = cfg_path.read_text()
    ice = f"{project['ns']}.customers"

    def stop_registry(msg: str) -> None:
        if msg == "connector: done":
            poll_until(lambda: httpx.get(f"{private_registry.url}/subjects", timeout=5).json(), 60,
                       "the converter registering the snapshot's subjects")
            private_registry.stop()

    report = onboard.add(load_config(str(cfg_path)), "public.customers", project["connector"], ice,
                         progress=stop_registry)
    assert report.status == "failed", report
    by_step = {s["step"]: s for s in report.steps}
    assert by_step["registry"]["status"] == "failed" and by_step["ddl"]["status"] == "compensated"
    assert by_step["connector"]["status"] == "compensation_failed", by_step["connector"]
    assert "--rollback" in (report.next or "") and cfg_path.read_text() == before
    # what could be undone is undone already: the connector, its slot and publication, the signal table
    assert connect_request("GET", f"{stack.connect_url}/connectors/{project['connector']}").status_code == 404
    shown = run_cli(capsys, "runs", "show", report.run_id or "", config=cfg_path, fmt="json")
    assert shown.doc["status"] == "rollback_failed"

    private_registry.start()
    done = run_cli(capsys, "evolve", "--rollback", report.run_id or "", config=cfg_path, fmt="json")
    assert done.code == 0, done.out + done.err
    assert done.doc["status"] == "rolled_back"
    nothing_left(project, private_registry.url, report.subject, ice)


def test_an_empty_table_gets_its_subject_with_the_first_row(capsys: pytest.CaptureFixture[str],
                                                            project: dict[str, Any]) -> None:
    """No row, no subject yet: the onboarding succeeds with a warning (its verify step lets only that subject be
    missing); the first row written afterwards registers it and `verify` is consistent."""
    cfg, stack = project["cfg"], project["stack"]
    with psycopg.connect(project["dsn"], autocommit=True) as conn:
        conn.execute("CREATE TABLE public.empty_t (id bigint PRIMARY KEY, v text)")
    added = run_cli(capsys, "pipeline", "add", "public.empty_t", "--connector", project["connector"],
                    "--iceberg-table", f"{project['ns']}.empty_t", config=cfg, fmt="json")
    assert added.code == 0 and added.doc["status"] == "succeeded", added.out + added.err
    assert any("is empty" in w for w in added.doc["warnings"])
    assert [s["step"] for s in added.doc["steps"]][1:] == ["ddl", "connector", "lakehouse", "verify"]
    with psycopg.connect(project["dsn"], autocommit=True) as conn:
        conn.execute("INSERT INTO public.empty_t VALUES (1, 'first')")
    subject = added.doc["subject"]
    poll_until(lambda: httpx.get(f"{stack.registry_url}/subjects/{subject}/versions/latest", timeout=10)
               .status_code == 200, 60, f"{subject} registered with the first row")
    ver = run_cli(capsys, "verify", config=cfg, fmt="json")
    assert ver.code == 0, ver.out + ver.err
