"""`stack up` refreshes only its own block of migrate.yaml: what the user wrote (pipelines, comments, overrides)
survives every run (issue 18, item 2)."""

from __future__ import annotations

import shutil
from pathlib import Path

import yaml

from migrate_assets.config import load_config
from migrate_assets.local import stack
from migrate_assets.projectfile import BEGIN, END, LEGACY_HEADER, refresh_generated
from tests.support import run_cli_process as cli

USER_PART = """
# our tables -- keep this comment
pipelines:
  - table: public.customers   # the first one
    connector: app-cdc
"""


def _gen(port: int) -> dict[str, object]:
    return {"database": {"dsn": f"postgresql://u:pw@127.0.0.1:{port}/postgres"},
            "schema_registry": {"url": f"http://127.0.0.1:{port + 1}"}}


def test_refresh_rewrites_only_the_block(tmp_path: Path) -> None:
    path = tmp_path / "migrate.yaml"
    assert refresh_generated(path, _gen(5000), {"schemas": "schemas/"}) == "created"
    assert path.stat().st_mode & 0o777 == 0o600
    path.write_text(path.read_text() + USER_PART)
    assert refresh_generated(path, _gen(6000), {"schemas": "other/"}) == "refreshed"
    text = path.read_text()
    assert "127.0.0.1:6000" in text and "127.0.0.1:5000" not in text
    assert text.endswith(USER_PART) and "schemas: schemas/" in text and "other/" not in text
    assert text.count(BEGIN) == 1 and text.count(END) == 1
    cfg = load_config(str(path))
    assert [p.table for p in cfg.pipelines] == ["public.customers"]
    assert cfg.schema_registry is not None and cfg.schema_registry.url == "http://127.0.0.1:6001"


def test_a_key_set_outside_the_block_wins(tmp_path: Path) -> None:
    path = tmp_path / "migrate.yaml"
    refresh_generated(path, _gen(5000), {})
    path.write_text(path.read_text() + "schema_registry: {url: http://registry.example:8081}  # ours\n")
    refresh_generated(path, _gen(7000), {})
    cfg = load_config(str(path))  # no duplicate key: the block leaves schema_registry out
    assert cfg.schema_registry is not None and cfg.schema_registry.url == "http://registry.example:8081"
    assert "127.0.0.1:7000" in cfg.database.dsn


def test_a_file_of_an_older_stack_up_keeps_its_pipelines(tmp_path: Path) -> None:
    path = tmp_path / "migrate.yaml"
    old = {**_gen(5000), "schemas": "/x/schemas", "pipelines": [{"table": "public.orders"}]}
    path.write_text(LEGACY_HEADER + "\n" + yaml.safe_dump(old, sort_keys=False))
    assert refresh_generated(path, _gen(5100), {"schemas": "/y/schemas"}) == "upgraded"
    cfg = load_config(str(path))
    assert [p.table for p in cfg.pipelines] == ["public.orders"]
    assert cfg.schemas == ["/x/schemas"] and "127.0.0.1:5100" in cfg.database.dsn


def test_a_file_the_user_wrote_gets_the_block_on_top(tmp_path: Path) -> None:
    path = tmp_path / "migrate.yaml"
    path.write_text("# mine\n" + USER_PART)
    assert refresh_generated(path, _gen(5000), {"schemas": "s/"}) == "inserted"
    assert path.read_text().endswith("# mine\n" + USER_PART)
    assert load_config(str(path)).pipelines[0].connector == "app-cdc"


def test_stack_up_twice_keeps_pipelines_and_comments(stack_info: stack.StackInfo, tmp_path: Path) -> None:
    state = stack_info.state_dir
    path = state / "migrate.yaml"
    saved = path.read_text()
    try:
        path.write_text(path.read_text() + USER_PART)
        for _ in range(2):
            up = cli("--format", "json", "stack", "up", "--state-dir", str(state))
            assert up.code == 0, up.err
            assert up.doc["config"] == str(path)
            text = path.read_text()
            assert text.endswith(USER_PART), text
            assert text.count(BEGIN) == 1
            cfg = load_config(str(path))
            assert [p.table for p in cfg.pipelines] == ["public.customers"]
            assert cfg.database.dsn == stack_info.pg_dsn
    finally:
        path.write_text(saved)


def test_verify_with_no_pipelines_says_so(stack_info: stack.StackInfo, tmp_path: Path) -> None:
    cfg = tmp_path / "migrate.yaml"
    shutil.copy(stack_info.state_dir / "migrate.yaml", cfg)
    assert not load_config(str(cfg)).pipelines
    r = cli("verify", config=cfg)
    assert r.code == 2, r.out + r.err
    assert "no pipelines to verify" in r.err and "pipeline add" in r.err
    j = cli("verify", config=cfg, fmt="json")
    assert j.code == 2 and j.doc["error"]["problems"][0]["key"] == "pipelines"


EDITED = """# top
database: {dsn: "postgresql://u@127.0.0.1/db"}
pipelines: []   # none yet
# about the timeout
lock_timeout: 2s
"""


def test_pipeline_entries_are_added_and_removed_as_text(tmp_path: Path) -> None:
    from migrate_assets.projectfile import add_pipeline, remove_pipeline

    path = tmp_path / "migrate.yaml"
    path.write_text(EDITED)
    add_pipeline(path, {"table": "public.a", "connector": "c"})
    add_pipeline(path, {"table": "public.b", "connector": "c"})
    text = path.read_text()
    assert text.startswith("# top\n") and "# none yet" in text and text.endswith("# about the timeout\n"
                                                                                  "lock_timeout: 2s\n")
    assert [p.table for p in load_config(str(path)).pipelines] == ["public.a", "public.b"]
    assert remove_pipeline(path, "a", "public") is True  # unqualified: the default schema
    assert [p.table for p in load_config(str(path)).pipelines] == ["public.b"]
    assert remove_pipeline(path, "public.zzz", "public") is False
    assert remove_pipeline(path, "public.b", "public") is True
    assert load_config(str(path)).pipelines == [] and "pipelines: []" in path.read_text()
    assert path.read_text().replace("pipelines: []    # none yet", "pipelines: []   # none yet") == EDITED
    bare = tmp_path / "bare.yaml"
    bare.write_text('database: {dsn: "postgresql://u@127.0.0.1/db"}')  # no pipelines key, no final newline
    add_pipeline(bare, {"table": "public.c"})
    assert [p.table for p in load_config(str(bare)).pipelines] == ["public.c"]
