"""Secrets never leave their source (issue 12, item 3).

A marker password is the DSN's password (a role of its own on the stack's PostgreSQL, so the password is real),
the connector's `database.password` and the userinfo of the Kafka Connect URL. Every command runs (text and
JSON, success and error paths, a Dagster job with a filesystem IO manager and an on-disk instance), and then
every output, every row of every table of the database and every file written under the test's folders is
searched for the marker: there must be none. The rollback of a run that rewrote the connector config must put
the live password back as it was, although the stored plan never held it.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from psycopg import sql

from migrate_assets.local.stack import StackInfo
from migrate_assets.redact import MASK, redact_config, redact_dsn, redact_text, redact_url, restore_masked
from tests.cdc import live_connector_config, poll_until
from tests.pipeline import ADD_NOTE, Pipeline
from tests.support import CliResult, new_database, run_cli_process

MARKER = "S3cr3t-MARKER-7f3a"


# -- the redaction rules, without services ---------------------------------------------------------------


@pytest.mark.parametrize("dsn", [
    f"postgresql://user:{MARKER}@db.example:5432/app",
    f"postgresql://:{MARKER}@db.example/app",  # no user
    f"postgresql://user:{MARKER}%zz@db.example/app",  # malformed percent-encoding
    f"postgresql://user:{MARKER}/x?y@db.example/app",  # unencoded / and ? in the password
    f"postgres://user@db.example/app?sslmode=require&password={MARKER}",
    f"postgresql://u:{MARKER}@db.example:5432,h2:5433/app?target_session_attrs=read-write",
    f"host=db.example password={MARKER} dbname=app",
    f"host=db.example password='{MARKER} with spaces' dbname=app",
    f"host=db.example password='{MARKER} unterminated",  # libpq cannot parse it: nothing after password shown
    f"host=db.example PASSWORD = {MARKER}",
])
def test_redact_dsn_hides_the_password_in_every_form(dsn: str) -> None:
    shown = redact_dsn(dsn)
    assert MARKER not in shown and "db.example" in shown


def test_redact_url_and_text() -> None:
    assert redact_url(f"http://admin:{MARKER}@connect:8083") == f"http://admin:{MASK}@connect:8083"
    assert redact_url("http://connect:8083/x") == "http://connect:8083/x"
    text = f'GET http://a:{MARKER}@h:1/connectors failed; {{"password": "{MARKER}"}}, secret={MARKER}'
    assert MARKER not in redact_text(text)
    # ordinary messages pass unchanged
    for plain in ("invalid percent-encoded token: …", 'column "password" does not exist',
                  "password authentication failed for user \"app\"", "http://connect:8083/connectors/x",
                  "t.yaml:3: columns.password: type: unknown type 'pasword'"):
        assert redact_text(plain) == plain


def test_connector_config_masks_secret_keys_and_restores_them_from_live() -> None:
    cfg = {"database.password": MARKER, "database.user": "u", "table.include.list": "public.t",
           "sasl.jaas.config": f"... password=\"{MARKER}\";", "key.converter": "io.confluent.AvroConverter",
           "value.converter.basic.auth.user.info": f"u:{MARKER}", "ssl.truststore.password": MARKER,
           "aws.secret.access.key": MARKER, "value.converter.schema.registry.url": f"http://u:{MARKER}@r:8081"}
    masked = redact_config(cfg)
    assert MARKER not in json.dumps(masked)
    assert masked["database.user"] == "u" and masked["key.converter"] == "io.confluent.AvroConverter"
    assert masked["table.include.list"] == "public.t"
    changed = {**masked, "table.include.list": "public.t,public.u"}
    restored = restore_masked(changed, cfg)
    assert restored == {**cfg, "table.include.list": "public.t,public.u"}


# -- every command on a real pipeline ---------------------------------------------------------------------


@dataclass
class Marked:
    p: Pipeline
    role: str
    dsn: str
    connect_url: str
    outputs: list[str] = field(default_factory=list)

    def run(self, *args: str, config: Path | None = None, fmt: str | None = None) -> CliResult:
        res = run_cli_process(*args, config=config or self.p.config_path, fmt=fmt, timeout=300)
        self.outputs.append(f"$ {' '.join(args)} [{fmt}] -> {res.code}\n{res.out}\n{res.err}")
        return res

    def both(self, *args: str, config: Path | None = None) -> tuple[CliResult, CliResult]:
        return self.run(*args, config=config), self.run(*args, config=config, fmt="json")


@pytest.fixture
def marked(stack_info: StackInfo, tmp_path: Path) -> Iterator[Marked]:
    """A pipeline whose DSN, connector config and Connect URL all carry MARKER as password."""
    role = "sec_" + uuid.uuid4().hex[:8]
    with psycopg.connect(stack_info.pg_dsn, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE ROLE {} LOGIN SUPERUSER PASSWORD {}").format(sql.Identifier(role),
                                                                                    sql.Literal(MARKER)))
    try:
        with new_database(stack_info.pg_dsn, prefix="sec_") as admin_dsn:
            p = Pipeline(stack_info, admin_dsn, tmp_path)
            p.setup({"database.user": role, "database.password": MARKER})
            try:
                port = stack_info.parts["postgres"]["port"]
                dsn = f"postgresql://{role}:{MARKER}@127.0.0.1:{port}/{admin_dsn.rsplit('/', 1)[1]}"
                connect_url = p.connect_url.replace("http://", f"http://ops:{MARKER}@")
                for d in ("schemas", "migrations"):
                    (tmp_path / d).mkdir()
                p.write_config(database={"dsn": dsn, "schema": "public"}, kafka_connect={"url": connect_url},
                               schemas="schemas/", migrations="migrations/")
                yield Marked(p, role, dsn, connect_url)
            finally:
                p.teardown()
    finally:
        with psycopg.connect(stack_info.pg_dsn, autocommit=True) as conn:
            conn.execute(sql.SQL("DROP ROLE IF EXISTS {}").format(sql.Identifier(role)))


def live_config(p: Pipeline) -> dict[str, str]:
    return live_connector_config(p.connect_url, p.name)


def connector_running(p: Pipeline) -> bool:
    r = httpx.get(f"{p.connect_url}/connectors/{p.name}/status", timeout=10)
    if r.status_code != 200:  # 409 while the group rebalances: not RUNNING yet, ask again
        return False
    body = r.json()
    return body["connector"]["state"] == "RUNNING" and all(t["state"] == "RUNNING" for t in body["tasks"])


def stored_rows(dsn: str) -> str:
    """Every row of every table of every non-system schema of the database, as text."""
    out = []
    with psycopg.connect(dsn) as conn:
        tables = conn.execute(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE' "
            "AND table_schema NOT IN ('pg_catalog', 'information_schema')").fetchall()
        assert any(t == "migrate_assets_evolutions" for _, t in tables)
        for schema, table in tables:
            rows = conn.execute(sql.SQL("SELECT t::text FROM {} t").format(sql.Identifier(schema, table))).fetchall()
            out += [f"{schema}.{table}: {r[0]}" for r in rows]
    return "\n".join(out)


def files_with(root: Path, needle: bytes, skip: set[Path]) -> list[str]:
    return [str(f) for f in root.rglob("*") if f.is_file() and f not in skip and needle in f.read_bytes()]


def run_dagster(m: Marked, home: Path) -> list[str]:
    """The evolve job (dry run, then a real run) and the pipeline assets, in process, with an on-disk
    instance and a filesystem IO manager (pickled outputs): their logs and events stay under `home`."""
    from dagster import DagsterInstance, FilesystemIOManager, materialize

    from migrate_assets.assets import pipeline_assets
    from migrate_assets.config import load_config
    from migrate_assets.dagster_resources import MigrateProjectResource
    from migrate_assets.jobs.evolve import evolve_pipeline

    instance = DagsterInstance.local_temp(tempdir=str(home))
    resources = {"project": MigrateProjectResource(config_path=str(m.p.config_path)),
                 "io_manager": FilesystemIOManager(base_dir=str(home / "storage"))}
    seen = []
    for dry in (True, False):
        res = evolve_pipeline.execute_in_process(
            run_config={"ops": {"preflight": {"config": {"change_yaml": ADD_NOTE.replace("note", "note2"),
                                                         "dry_run": dry}}}},
            resources=resources, instance=instance, raise_on_error=False)
        assert res.success, [e.message for e in res.all_events if e.is_failure]
        seen += [str(e.message) for e in res.all_events] + [repr(e.event_specific_data) for e in res.all_events]
    assets, _ = pipeline_assets(load_config(str(m.p.config_path)))  # (the checks need a spec per table)
    res = materialize(assets, resources=resources, instance=instance)
    assert res.success
    seen += [str(e.message) for e in res.all_events] + [repr(e.event_specific_data) for e in res.all_events]
    return seen


@pytest.mark.timeout(1200)  # ~40 CLI processes and three Dagster runs on a live pipeline
def test_no_command_stores_or_prints_a_secret(marked: Marked, tmp_path: Path) -> None:
    m, p = marked, marked.p
    assert live_config(p)["database.password"] == MARKER  # the source holds it
    (tmp_path / "schemas" / "other.yaml").write_text(
        "table: other\ncolumns:\n  - {name: id, type: int, primary_key: true}\n")
    change = tmp_path / "change.yaml"
    change.write_text(ADD_NOTE)

    # the declarative commands
    for res in m.both("plan"):
        assert res.code == 0, res.err
    assert m.run("apply", "--auto-approve").code == 0
    # a new pipeline table: the connector's config changes (include list) and is written back with the live
    # password, although the plan held only the mask
    (tmp_path / "schemas" / "orders.yaml").write_text(
        "table: orders\ncolumns:\n  - {name: id, type: bigint, primary_key: true}\n")
    p.write_config(database={"dsn": m.dsn, "schema": "public"}, kafka_connect={"url": m.connect_url},
                   schemas="schemas/", migrations="migrations/",
                   pipelines=[p.pipeline_entry("customers"), p.pipeline_entry("orders")])
    for res in m.both("evolve", "--dry-run"):
        assert res.code == 0, res.err
    evolved = m.run("evolve", fmt="json")
    assert evolved.code == 0, evolved.err
    run_id = evolved.doc["run_id"]
    with psycopg.connect(p.dsn) as conn:
        (plan,) = conn.execute("SELECT plan FROM public.migrate_assets_evolutions WHERE run_id = %s",
                               (run_id,)).fetchone()  # type: ignore[misc]
    (step,) = [s for s in plan["steps"] if s["id"] == "connector"]
    assert dict(step["action"]["old_config"])["database.password"] == MASK  # the plan holds the mask only
    assert "orders" in live_config(p)["table.include.list"]
    assert live_config(p)["database.password"] == MARKER
    poll_until(lambda: connector_running(p), 60, "the connector RUNNING after the restart")

    # rollback of that run: the connector's old include list comes back, its password untouched
    for res in m.both("evolve", "--rollback", run_id, "--dry-run"):
        assert res.code == 0, res.err
    undone = m.run("evolve", "--rollback", run_id, "--allow-data-loss", fmt="json")
    assert undone.code == 0, undone.err
    live = live_config(p)
    assert "orders" not in live["table.include.list"] and live["database.password"] == MARKER
    poll_until(lambda: connector_running(p), 60, "the connector RUNNING after the rollback")

    # a column change through every layer, verify, the other read-only commands
    p.write_config(database={"dsn": m.dsn, "schema": "public"}, kafka_connect={"url": m.connect_url},
                   schemas="schemas/", migrations="migrations/")
    (tmp_path / "schemas" / "orders.yaml").unlink()
    for res in m.both("evolve", str(change), "--dry-run"):
        assert res.code == 0, res.err
    assert m.run("evolve", str(change), fmt="json").code == 0
    for res in m.both("verify", "--progress-bound", "30"):
        assert res.code == 0, res.out + res.err
    for res in m.both("migrations", "status"):
        assert res.code == 0, res.err
    m.both("expand-status", str(change))
    m.both("plan")

    # error paths: a malformed DSN, a DSN without user, an unreachable database and Connect worker
    port = p.stack.parts["postgres"]["port"]
    bad: dict[str, dict[str, object]] = {
        "malformed": {"database": {"dsn": f"postgresql://{m.role}:{MARKER}%zz@127.0.0.1:{port}/x"}},
        "no-user": {"database": {"dsn": f"postgresql://:{MARKER}@127.0.0.1:1/x?connect_timeout=2"}},
        "conninfo": {"database": {"dsn": f"host=127.0.0.1 port=1 password='{MARKER} connect_timeout=2"}},
        "connect-down": {"database": {"dsn": m.dsn},
                         "kafka_connect": {"url": f"http://ops:{MARKER}@127.0.0.1:1"},
                         "pipelines": [p.pipeline_entry("customers")]},
    }
    for name, cfg in bad.items():
        path = tmp_path / f"{name}.yaml"
        path.write_text(yaml.safe_dump({**cfg, "schemas": "schemas/", "migrations": "migrations/",
                                        "retries": {"attempts": 1, "backoff": "0.1s"}}))
        commands = [("verify", "--progress-bound", "1")] if name == "connect-down" else [
            ("plan",), ("migrations", "status"), ("evolve", str(change), "--dry-run")]
        for args in commands:
            for res in m.both(*args, config=path):
                assert res.code != 0, (name, args, res.err)
    assert any("cannot be parsed" in o for o in m.outputs)
    assert any("unreachable" in o for o in m.outputs)

    # Dagster, in process, everything on disk under one folder
    dagster_home = tmp_path / "dagster"
    dagster_home.mkdir()
    m.outputs += run_dagster(m, dagster_home)

    # --- the search --------------------------------------------------------------------------------------
    leaks = [o for o in m.outputs if MARKER in o]
    assert not leaks, leaks[0][:3000]
    rows = stored_rows(p.dsn)
    assert "migrate_assets_evolutions" in rows and MARKER not in rows, \
        [r for r in rows.splitlines() if MARKER in r][:3]
    written_by_us = {p.config_path, *(tmp_path / f"{n}.yaml" for n in bad)}  # the sources: they hold it
    assert not files_with(tmp_path, MARKER.encode(), written_by_us)
    assert dagster_home.joinpath("storage").exists() and any(dagster_home.rglob("*.db"))
    from migrate_assets.evolution.store import default_spill_dir

    spill = default_spill_dir()
    if spill.exists():
        assert not files_with(spill, MARKER.encode(), set())
