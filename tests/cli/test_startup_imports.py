"""Start-up stays small (issue 21 item 1): `--help`, `--version` and `plan` do not load the engines and clients
of other commands.

Each command runs as its own process with PYTHONPROFILEIMPORTTIME=1, so stderr lists every module it imported;
the parser is also checked to print the same help whether it is built whole or only for the command given.
"""

from __future__ import annotations

import argparse
import json
from importlib.metadata import version
from pathlib import Path

import pytest

from migrate_assets import __version__
from migrate_assets.cli import MODULES, build_parser
from tests.cli.test_schema_cli import GOOD, project
from tests.support import run_cli_process

#: what no start-up path below may load: Dagster, the lakehouse, Kafka and HTTP clients, Arrow
HEAVY = ("dagster", "pyiceberg", "confluent_kafka", "pyarrow", "httpx")
#: engines of the other commands (evolution runs, onboarding, the local stack)
OTHER_ENGINES = ("migrate_assets.evolution.run", "migrate_assets.evolution.saga", "migrate_assets.app",
                 "migrate_assets.local", "migrate_assets.resources.iceberg", "migrate_assets.resources.registry",
                 "migrate_assets.resources.kafka_connect", "migrate_assets.dagster_resources")
#: what `plan` itself does not run: apply, the expand–contract engine, the migrations runner and its SQL splitter
PLAN_NEEDS_NOT = ("migrate_assets.schema.apply", "migrate_assets.expand", "migrate_assets.versioned.runner",
                  "migrate_assets.versioned.files", "migrate_assets.versioned.sqltext", "migrate_assets.evolution")


def _imported(cli_env: dict[str, str], *args: str, config: str | None = None,
              code: int = 0) -> tuple[set[str], str]:
    """(modules imported, stdout) of one `migrate-assets ARGS` process."""
    r = run_cli_process(*args, config=config, env={**cli_env, "PYTHONPROFILEIMPORTTIME": "1"}, timeout=120)
    assert r.code == code, r.err[-2000:]
    names = {line.rsplit("|", 1)[1].strip() for line in r.err.splitlines() if line.startswith("import time:")}
    assert "migrate_assets.cli" in names, "the import log was not captured"
    return names, r.out


def _loaded(names: set[str], prefixes: tuple[str, ...]) -> list[str]:
    return sorted(n for n in names if any(n == p or n.startswith(p + ".") for p in prefixes))


@pytest.mark.parametrize("flag", ["--help", "--version"])
def test_help_and_version_load_no_engine(cli_env: dict[str, str], flag: str) -> None:
    names, out = _imported(cli_env, flag)
    assert out.strip()
    assert _loaded(names, HEAVY) == []
    # nor the config model, the database driver or any engine: only argparse and the command modules' flags
    assert _loaded(names, ("pydantic", "psycopg", "yaml", "migrate_assets.config", "migrate_assets.schema",
                           "migrate_assets.expand", "migrate_assets.versioned", "migrate_assets.resources",
                           *OTHER_ENGINES)) == []


def test_plan_on_one_table_loads_no_pipeline_client(tmp_path: Path, fresh_dsn: str, cli_env: dict[str, str]) -> None:
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": GOOD})
    names, out = _imported(cli_env, "--format", "json", "plan", config=cfg)
    (change,) = json.loads(out)["changes"]  # it did plan against the real database
    assert change["kind"] == "create_table" and change["table"] == "public.t"
    assert {"psycopg", "migrate_assets.config", "migrate_assets.schema.planner"} <= names
    assert _loaded(names, HEAVY) == []
    assert _loaded(names, OTHER_ENGINES) == []
    # the project file is read without pydantic (it cost ~0.1 s: its import and the models' schemas)
    assert _loaded(names, ("pydantic", "pydantic_core")) == []
    # nor the engines of apply, expand and migrations: resources.database and versioned load them on first use
    assert _loaded(names, PLAN_NEEDS_NOT) == []


def test_plan_of_an_unchanged_schema_loads_no_operation(tmp_path: Path, fresh_dsn: str,
                                                        cli_env: dict[str, str]) -> None:
    # every CI `plan --check` of an unchanged schema: the ~30 operation modules (~80 ms) load only when a
    # change is planned (schema/lazy_ops.py); an enum, a sequence and a view take the paths that used to load them
    specs = {"t.yaml": GOOD, "kinds.yaml": "- enum: public.mood\n  values: [ok, sad]\n"
             "- sequence: public.counter\n- view: public.v\n  definition: SELECT t.id FROM t\n"}
    cfg = project(tmp_path, fresh_dsn, specs)
    r = run_cli_process("apply", "--auto-approve", config=cfg, env=cli_env, timeout=120)
    assert r.code == 0, r.err[-2000:]
    names, out = _imported(cli_env, "plan", "--check", config=cfg)
    assert "No changes" in out
    assert _loaded(names, ("migrate_assets.schema.ops",)) == []
    names, _ = _imported(cli_env, "plan", "--check", config=project(tmp_path, fresh_dsn, {
        **specs, "t.yaml": GOOD + "  - {name: extra, type: text}\n"}), code=4)
    assert "migrate_assets.schema.ops.add_column" in names  # a change loads them


def test_migrations_up_loads_no_planner(tmp_path: Path, fresh_dsn: str, cli_env: dict[str, str]) -> None:
    # 1,000 migrations through the CLI are timed start-up included (issue 21 item 4): the spec loader, the
    # planner and the config's pydantic are not part of running migrations
    (tmp_path / "migrations").mkdir()
    (tmp_path / "migrations" / "001_t.up.sql").write_text("CREATE TABLE t (id integer);\n")
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database: {{dsn: '{fresh_dsn}'}}\nmigrations: migrations/\n")
    names, out = _imported(cli_env, "--format", "json", "migrations", "up", config=str(cfg))
    assert [s["version"] for s in json.loads(out)["steps"]] == [1]
    assert "migrate_assets.versioned.files" in names
    assert _loaded(names, ("migrate_assets.app",)) == ["migrate_assets.app", "migrate_assets.app.migrations"]
    engines = tuple(e for e in OTHER_ENGINES if e != "migrate_assets.app")
    assert _loaded(names, (*HEAVY, *engines, "pydantic", "migrate_assets.schema.planner",
                           "migrate_assets.schema.spec", "migrate_assets.schema.diff", "migrate_assets.schema.sqltext",
                           "migrate_assets.expand")) == []


def test_version_is_the_installed_distributions() -> None:
    # --version prints migrate_assets.__version__ (reading the metadata costs more than the rest of --version)
    assert __version__ == version("migrate-assets")


def test_parser_built_for_one_command_prints_the_same_help() -> None:
    whole = build_parser()
    assert build_parser(["--help"]).format_help() == whole.format_help()
    commands = _commands(whole)
    assert len(commands) == 14 and len(MODULES) == 9
    for name, parser in commands.items():
        one = build_parser([name, "--help"])
        assert _commands(one)[name].format_help() == parser.format_help(), name
        assert one.format_help() == whole.format_help()


def _commands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    (sub,) = (a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)
