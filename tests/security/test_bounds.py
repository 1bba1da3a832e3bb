"""Bounded input (issue 12, item 4): YAML alias bombs, numeric flags and the registry's request limits.

Every alias bomb runs in a child process under a 1 GiB address-space limit, so a regression fails fast (a
MemoryError or a kill) instead of eating the machine.
"""

from __future__ import annotations

import json
import resource
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from confluent_kafka.schema_registry import Schema, SchemaRegistryClient
from confluent_kafka.schema_registry.error import SchemaRegistryError

from tests.local.registry_proc import Registry
from tests.support import cli_argv, run_cli

LIMIT_AS = 1 << 30
MEDIA = "application/vnd.schemaregistry.v1+json"


def bomb(levels: int = 9, block: bool = False) -> str:
    """The classic "billion laughs": 9 levels of 9 aliases each, ~9^9 nodes once expanded."""
    lines = ['a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]']
    prev = "a"
    for name in "bcdefghijk"[: levels - 1]:
        if block:
            lines.append(f"{name}: &{name}\n" + "".join(f"  - *{prev}\n" for _ in range(9)).rstrip("\n"))
        else:
            lines.append(f"{name}: &{name} [" + ",".join([f"*{prev}"] * 9) + "]")
        prev = name
    text = "\n".join(lines) + "\n"
    assert len(text) < 700
    return text


def limited() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (LIMIT_AS, LIMIT_AS))


def run_limited(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cli_argv(*args, fmt="json"), capture_output=True, text=True, cwd=cwd, timeout=60,
                          preexec_fn=limited)


def assert_refused(proc: subprocess.CompletedProcess[str], file: Path) -> None:
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "MemoryError" not in proc.stderr and "Traceback" not in proc.stderr
    doc = json.loads(proc.stdout)
    (problem,) = doc["error"]["problems"]
    assert problem["file"].endswith(file.name) and problem["line"] is not None
    assert "aliases" in problem["message"]
    assert f"{file.name}:{problem['line']}" in proc.stderr


@pytest.mark.parametrize("block", [False, True], ids=["flow", "block"])
def test_alias_bomb_in_migrate_yaml(tmp_path: Path, block: bool) -> None:
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text("database: {dsn: 'postgresql:///nowhere'}\n" + bomb(block=block).replace("a: &a", "x: &a", 1))
    assert_refused(run_limited("--config", str(cfg), "plan", cwd=tmp_path), cfg)


@pytest.mark.parametrize("block", [False, True], ids=["flow", "block"])
def test_alias_bomb_in_a_spec_file(tmp_path: Path, block: bool) -> None:
    (tmp_path / "schemas").mkdir()
    spec = tmp_path / "schemas" / "t.yaml"
    spec.write_text("table: t\ncolumns: []\n" + bomb(block=block))
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text("database: {dsn: 'postgresql://127.0.0.1:1/nowhere?connect_timeout=1'}\nschemas: schemas/\n")
    assert_refused(run_limited("--config", str(cfg), "plan", cwd=tmp_path), spec)


@pytest.mark.parametrize("command", ["expand", "evolve"])
def test_alias_bomb_in_a_change_file(tmp_path: Path, command: str) -> None:
    change = tmp_path / "change.yaml"
    change.write_text("table: t\noperations: []\n" + bomb())
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text("database: {dsn: 'postgresql://127.0.0.1:1/nowhere?connect_timeout=1'}\n")
    assert_refused(run_limited("--config", str(cfg), command, str(change), cwd=tmp_path), change)


def test_recursive_alias_is_refused_naming_the_line(tmp_path: Path) -> None:
    from migrate_assets.errors import InvalidInputError
    from migrate_assets.schema.yamlsrc import parse_yaml

    with pytest.raises(InvalidInputError) as err:
        parse_yaml("ok: 1\nloop: &l\n  - x\n  - *l\n", "loop.yaml")
    (problem,) = err.value.problems
    assert (problem.file, problem.line) == ("loop.yaml", 4) and "recursive" in problem.message


def test_ordinary_aliases_still_read() -> None:
    from migrate_assets.schema.yamlsrc import parse_yaml

    doc = parse_yaml("base: &b {type: text, nullable: true}\ncols:\n  - *b\n  - {<<: *b, name: x}\n", "ok.yaml")
    assert doc.data["cols"] == [{"type": "text", "nullable": True}, {"type": "text", "nullable": True, "name": "x"}]


def test_aliases_are_counted(tmp_path: Path) -> None:
    from migrate_assets.errors import InvalidInputError
    from migrate_assets.schema.yamlsrc import MAX_ALIASES, parse_yaml

    text = "a: &a 1\nl:\n" + "  - *a\n" * (MAX_ALIASES + 1)
    with pytest.raises(InvalidInputError, match=f"more than {MAX_ALIASES} aliases") as err:
        parse_yaml(text, "many.yaml")
    assert err.value.problems[0].line == MAX_ALIASES + 3
    parse_yaml("a: &a 1\nl:\n" + "  - *a\n" * MAX_ALIASES, "enough.yaml")


# -- numeric flags ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("args", "flag"), [
    (("verify", "--progress-bound", "nan"), "--progress-bound"),
    (("verify", "--progress-bound", "inf"), "--progress-bound"),
    (("verify", "--progress-bound", "-1"), "--progress-bound"),
    (("verify", "--progress-bound", "1e999"), "--progress-bound"),
    (("expand", "c.yaml", "--batch-size", "0"), "--batch-size"),
    (("expand", "c.yaml", "--batch-size", "-3"), "--batch-size"),
    (("expand", "c.yaml", "--batch-size", "nan"), "--batch-size"),
    (("expand", "c.yaml", "--batch-delay", "inf"), "--batch-delay"),
    (("expand", "c.yaml", "--batch-delay", "-1s"), "--batch-delay"),
    (("expand", "c.yaml", "--batch-delay", "nan"), "--batch-delay"),
    (("migrations", "down", "--steps", "0"), "--steps"),
    (("migrations", "down", "--steps", "inf"), "--steps"),
    (("migrations", "up", "--to", "-1"), "--to"),
])
def test_numeric_flags_refuse_nan_inf_and_negatives(capsys: pytest.CaptureFixture[str], args: tuple[str, ...],
                                                     flag: str) -> None:
    code, out, err = run_cli(capsys, "--config", "/nonexistent/migrate.yaml", *args, fmt="json")
    assert code == 2
    assert f"argument {flag}:" in json.loads(out)["error"]["message"] and flag in err


def test_numeric_flags_accept_good_values() -> None:
    from migrate_assets.cli import build_parser

    args = build_parser().parse_args(["verify", "--progress-bound", "2.5"])
    assert args.progress_bound == 2.5
    args = build_parser().parse_args(["expand", "c.yaml", "--batch-size", "500", "--batch-delay", "20ms"])
    assert (args.batch_size, args.batch_delay) == (500, 0.02)


def test_verify_table_refuses_a_bound_that_never_ends() -> None:
    from migrate_assets.errors import InvalidInputError
    from migrate_assets.evolution.verify import verify_table

    for bad in (float("nan"), float("inf"), -1.0):
        with pytest.raises(InvalidInputError, match="progress_bound"):
            verify_table(None, None, progress_bound=bad)  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [".nan", ".inf", "-1"])
def test_config_durations_refuse_nan_inf_and_negatives(tmp_path: Path, value: str) -> None:
    from migrate_assets.config import load_config
    from migrate_assets.errors import ConfigError

    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database: {{dsn: 'postgresql:///db'}}\nlock_timeout: {value}\n")
    with pytest.raises(ConfigError) as err:
        load_config(str(cfg))
    assert err.value.problems[0].key == "lock_timeout" and err.value.problems[0].line == 2


# -- the bundled registry's request limits ---------------------------------------------------------------


@pytest.fixture(scope="module")
def small_registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    """A registry process with a 256 KiB body limit and otherwise the default limits."""
    root = tmp_path_factory.mktemp("registry")
    server = Registry(root / "registry.db", root / "registry.log", "--max-body-bytes", str(256 << 10))
    yield server
    assert server.stop() == 0


def wide_record(fields: int, pad: int = 0) -> str:
    return json.dumps({"type": "record", "name": "Wide", "fields": [
        {"name": f"f{i}" + "x" * pad, "type": ["null", "string"], "default": None} for i in range(fields)]})


def test_a_7_mb_schema_is_413_before_it_is_parsed(tmp_path: Path) -> None:
    server = Registry(tmp_path / "r.db", tmp_path / "r.log")  # the defaults: 1 MiB
    try:
        big = wide_record(60_000, pad=60)
        assert len(big) > 7_000_000
        client = SchemaRegistryClient({"url": server.url})
        started = time.monotonic()
        with pytest.raises(SchemaRegistryError) as err:
            client.register_schema("big-value", Schema(big, "AVRO"))
        took = time.monotonic() - started
        assert (err.value.http_status_code, err.value.error_code) == (413, 413)
        assert "1,048,576" in err.value.error_message
        # a guard against the minutes-long parse of before (10 min for this body), not a benchmark: the
        # machine may be loaded, so the bound is generous
        assert took < 15.0, f"{took:.2f}s"
        # the same through the compatibility and lookup routes, and the server is still answering
        with pytest.raises(SchemaRegistryError) as err:
            client.test_compatibility("big-value", Schema(big, "AVRO"))
        assert err.value.http_status_code == 413
        assert client.register_schema("big-value", Schema(wide_record(3), "AVRO")) >= 1
    finally:
        assert server.stop() == 0


def test_body_limit_by_length_and_by_stream(small_registry: Registry) -> None:
    url = small_registry.url + "/subjects/s-value/versions"
    body = json.dumps({"schema": wide_record(2_000, pad=100)}).encode()
    assert len(body) > 256 << 10
    r = httpx.post(url, content=body, headers={"content-type": MEDIA})
    assert r.status_code == 413 and r.json()["error_code"] == 413
    assert f"{len(body):,} bytes" in r.json()["message"] and "262,144" in r.json()["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit holds as the body streams in
        for _ in range(50):
            yield b" " * 10_000  # 500,000 bytes

    r = httpx.post(url, content=chunks(), headers={"content-type": MEDIA})
    assert r.status_code == 413 and r.json()["error_code"] == 413
    # the config route has the same limit; a body under it is served
    r = httpx.put(small_registry.url + "/config", content=b" " * (257 << 10) + b"{}", headers={"content-type": MEDIA})
    assert r.status_code == 413
    ok = httpx.post(url, json={"schema": wide_record(5)}, headers={"content-type": MEDIA})
    assert ok.status_code == 200 and ok.json()["id"] >= 1


def test_pathological_schemas_are_refused_fast(small_registry: Registry) -> None:
    client = SchemaRegistryClient({"url": small_registry.url})
    cases = {
        "too many fields": wide_record(2_001),
        "nested too deep": '{"type": "array", "items": ' * 100 + '"int"' + "}" * 100,
        "nested deeper than JSON parses": "[" * 60_000,
        "too many JSON values": json.dumps({"type": "enum", "name": "E", "symbols": ["A"], "x": [0] * 100_000},
                                           separators=(",", ":")),
    }
    for why, text in cases.items():
        assert len(json.dumps({"schema": text})) < 256 << 10, why
        started = time.monotonic()
        with pytest.raises(SchemaRegistryError) as err:
            client.register_schema("p-value", Schema(text, "AVRO"))
        assert (err.value.http_status_code, err.value.error_code) == (422, 42201), why
        assert time.monotonic() - started < 15.0, why  # refused before parsing, not after minutes of it


def test_schema_limits_in_process() -> None:
    """The same rules without the transport, including a schema too big for the test server's body limit."""
    from migrate_assets.local.registry import compat
    from migrate_assets.local.registry.errors import RegistryError
    from migrate_assets.local.registry.limits import Limits

    limits = Limits(max_schema_depth=8, max_schema_fields=10, max_schema_nodes=200)
    for text, why in [(wide_record(11), "more than 10 record fields"),
                      ('{"type": "array", "items": ' * 9 + '"int"' + "}" * 9, "nested deeper than 8"),
                      (json.dumps({"type": "enum", "name": "E", "symbols": [f"S{i}" for i in range(300)]}),
                       "more than 200 JSON values")]:
        with pytest.raises(RegistryError, match=why) as err:
            compat.parse(text, limits=limits)
        assert err.value.error_code == 42201
    # brackets inside strings are not nesting
    assert compat.parse(json.dumps({"type": "record", "name": "R", "doc": "[[[[[[[[[[{{{{",
                                    "fields": [{"name": "a", "type": "int"}]}), limits=limits)
    assert compat.parse(wide_record(10), limits=limits)
