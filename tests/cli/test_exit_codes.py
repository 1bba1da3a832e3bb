"""Exit codes are what docs/cli.md says: the doc's "Exit codes" section is parsed and checked against the error
hierarchy (migrate_assets/errors.py) and the CLI's own mapping; and a layer that cannot be reached is exit 1
(runtime failure), never 4 (drift) — shown for real with a registry URL where nothing listens."""

from __future__ import annotations

import inspect
import json
import re
from pathlib import Path

import pytest

from migrate_assets import errors
from migrate_assets.cli import main
from migrate_assets.cli.evolve_cmd import _verify_exit
from migrate_assets.local.procs import free_port
from tests.pipeline import Pipeline, change_file
from tests.support import run_cli_process

DOC = Path(__file__).resolve().parents[2] / "docs" / "cli.md"


def documented_codes() -> dict[int, str]:
    """{code: its description} from the "## Exit codes" section: each `` `N` `` and the text up to the next."""
    text = DOC.read_text()
    section = text.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    parts = re.split(r"`(\d+)`", section)
    codes = {int(parts[i]): " ".join(parts[i + 1].split()) for i in range(1, len(parts) - 1, 2)}
    assert codes, "docs/cli.md has no exit codes"
    return codes


#: what the doc names under each code → the error class the code raises for it
NAMED: dict[str, type[errors.MigrateAssetsError]] = {
    "a service down": errors.LayerUnreachableError,
    "a migration's SQL failed": errors.MigrationFailedError,
    "an evolution rolled back": errors.EvolutionFailedError,
    "config": errors.ConfigError,
    "spec": errors.SpecError,
    "migration file names": errors.MigrationFileError,
    "change file": errors.ChangeFileError,
    "command line": errors.UsageError,
    "breaking change blocked": errors.BreakingChangeBlocked,
    "incompatible schema": errors.IncompatibleSchemaError,
    "not safe to contract": errors.NotSafeToContractError,
    "stale plan": errors.StalePlanError,
    "checksum mismatch": errors.ChecksumMismatchError,
    "out-of-order": errors.OutOfOrderError,
    "irreversible without the flag": errors.IrreversibleChangeError,
    "would lose data": errors.DataLossRefused,
    "drift found": errors.DriftError,
}


def test_every_documented_cause_raises_an_error_with_the_documented_code() -> None:
    codes = documented_codes()
    for phrase, cls in NAMED.items():
        where = [c for c, desc in codes.items() if phrase in desc]
        assert len(where) == 1, f"docs/cli.md names {phrase!r} under {where or 'no exit code'}"
        assert cls.exit_code == where[0], f"{cls.__name__} exits {cls.exit_code}, docs/cli.md says {where[0]}"


def test_every_error_class_exits_with_a_documented_code_of_its_kind() -> None:
    codes = documented_codes()
    assert set(codes) == {0, 1, 2, 3, 4, 130, 143}, codes
    kinds: dict[type[errors.MigrateAssetsError], int] = {errors.RuntimeFailure: 1, errors.InvalidInputError: 2, errors.SafetyRefusal: 3, errors.DriftError: 4}
    for kind, code in kinds.items():
        assert kind.exit_code == code
    assert "runtime failure" in codes[1] and "invalid input" in codes[2] and "safety rule" in codes[3]
    assert "drift" in codes[4] and "SIGINT" in codes[130] and "SIGTERM" in codes[143]
    classes = [c for _, c in inspect.getmembers(errors, inspect.isclass)
               if issubclass(c, errors.MigrateAssetsError) and c is not errors.MigrateAssetsError]
    assert len(classes) > 20
    for cls in classes:
        kind = next(k for k in kinds if issubclass(cls, k))  # every error is one of the four kinds
        assert cls.exit_code == kinds[kind], f"{cls.__name__} exits {cls.exit_code} but is a {kind.__name__}"


def test_the_cli_maps_results_and_errors_as_documented(capsys: pytest.CaptureFixture[str]) -> None:
    codes = documented_codes()
    # a command-line error: exit 2, one JSON error document
    assert main(["--format", "json", "plan", "--no-such-flag"]) == 2 and 2 in codes
    doc = json.loads(capsys.readouterr().out)
    assert doc["exit_code"] == 2 and doc["error"]["type"] == "UsageError"
    # a config that does not exist: exit 2
    assert main(["--config", "/nonexistent/migrate.yaml", "plan"]) == 2
    capsys.readouterr()

    def table(**layers: str) -> dict:
        return {"table": "public.t", "layers": {k: {"status": v, "differences": []} for k, v in layers.items()}}

    assert _verify_exit([table(source_db="consistent", lakehouse="skipped")]) == 0
    assert _verify_exit([table(source_db="consistent", lakehouse="drift")]) == 4
    # a layer that cannot be read is a service down (1), also when another layer drifted: its state is unknown
    assert _verify_exit([table(source_db="consistent", schema_registry="unreachable")]) == 1
    assert _verify_exit([table(lakehouse="drift"), table(schema_registry="unreachable")]) == 1
    assert "unreachable" in capsys.readouterr().err


def test_verify_with_the_registry_unreachable_exits_1_not_drift(pipeline: Pipeline) -> None:
    dead = f"http://127.0.0.1:{free_port()}"  # nothing listens there: a real unreachable layer
    pipeline.write_config(schema_registry={"url": dead})
    r = run_cli_process("verify", "--progress-bound", "5", config=pipeline.config_path, fmt="json", timeout=180)
    assert r.code == 1, (r.code, r.out, r.err)
    doc = json.loads(r.out)
    table = doc["tables"][0]
    assert not doc["consistent"] and table["unreachable"] == ["schema_registry"]
    assert table["layers"]["schema_registry"]["status"] == "unreachable"
    assert table["layers"]["source_db"]["status"] == "consistent"
    assert "unreachable" in r.err and "drift found" not in r.err

    # text: the same exit code; the verdict says not verified, not DRIFT
    r = run_cli_process("verify", "--progress-bound", "5", config=pipeline.config_path, timeout=180)
    assert r.code == 1 and "schema_registry" in r.out and "unreachable" in r.out, (r.out, r.err)
    assert "NOT VERIFIED" in r.out and "DRIFT" not in r.out

    # evolve: pre-flight cannot read the registry, so nothing is planned: exit 1, never 4 or 3
    cf = change_file(pipeline.tmp, "table: public.customers\noperations:\n"
                                   "  - add_column: {name: note, type: text, nullable: true}\n")
    r = run_cli_process("evolve", str(cf), "--dry-run", config=pipeline.config_path, fmt="json", timeout=180)
    assert r.code == 1, (r.code, r.out, r.err)
    assert json.loads(r.out)["exit_code"] == 1

    pipeline.write_config()  # the registry back: consistent, exit 0
    r = run_cli_process("verify", config=pipeline.config_path, fmt="json", timeout=180)
    assert r.code == 0 and json.loads(r.out)["consistent"], (r.out, r.err)
