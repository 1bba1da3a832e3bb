"""`migrate-assets expand | expand-status | contract | abort`: exit codes, JSON contract, dry runs."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import psycopg
import pytest

from tests.support import run_cli, run_cli_process, table_columns

CHANGE = """\
table: items
operations:
  - change_type: {column: amount, to_type: bigint}
  - add_column: {name: tier, type: text, nullable: true}
"""


@pytest.fixture
def setup(tmp_path: Path, fresh_dsn: str) -> tuple[Path, Path, str]:
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(
        f"database:\n  dsn: {fresh_dsn}\nlock_timeout: 1s\n"
        "pipelines:\n  - table: public.items\n    connector: app-cdc\n"
    )
    with psycopg.connect(fresh_dsn) as conn:
        conn.execute("CREATE TABLE items (id int PRIMARY KEY, amount integer NOT NULL, note text)")
        conn.execute("INSERT INTO items SELECT g, g, 'n' FROM generate_series(1, 3000) g")
    cf = tmp_path / "change.yaml"
    cf.write_text(CHANGE)
    return cfg, cf, fresh_dsn


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, Any, str]:
    """In process, JSON output: exit code, the parsed document (None if nothing printed), stderr."""
    r = run_cli(capsys, *argv, fmt="json")
    return r.code, r.doc, r.err


def test_expand_status_contract_json(
    setup: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]
) -> None:
    cfg, cf, dsn = setup
    code, doc, err = run(capsys, "--config", str(cfg), "expand-status", str(cf))
    assert code == 0 and doc["safe_to_contract"] is False and doc["phase"] == "not_expanded"
    code, doc, err = run(capsys, "--config", str(cfg), "contract", str(cf))
    assert code == 3 and doc["exit_code"] == 3 and "expand first" in doc["error"]["message"]

    code, doc, err = run(capsys, "--config", str(cfg), "expand", str(cf), "--dry-run")
    assert code == 0 and doc["status"] == "dry_run"
    assert any('ADD COLUMN "_ma_new_amount" bigint' in s for s in doc["sql"])
    with psycopg.connect(dsn) as conn:
        assert conn.execute("SELECT to_regclass('migrate_assets_operations')").fetchone() == (None,)

    code, doc, err = run(
        capsys, "--config", str(cfg), "expand", str(cf), "--batch-size", "1000", "--batch-delay", "1ms"
    )
    assert code == 0 and doc["status"] == "expanded"
    assert doc["cdc"] == {"tracked": True, "new_columns_emitted": ["_ma_new_amount", "tier"]}
    assert doc["backfill"]["batches"] == 3 and doc["backfill"]["rows_visited"] == 3000
    assert "backfill: 3000/3000 rows" in err

    code, doc, _ = run(capsys, "--config", str(cfg), "expand-status", str(cf))
    assert code == 0
    assert list(doc)[:5] == ["table", "operations", "rows_to_backfill", "mismatched_rows", "safe_to_contract"]
    assert (doc["table"], doc["rows_to_backfill"], doc["mismatched_rows"], doc["safe_to_contract"]) == (
        "public.items",
        0,
        0,
        True,
    )
    assert [o["kind"] for o in doc["operations"]] == ["change_type", "add_column"]

    code, doc, _ = run(capsys, "--config", str(cfg), "contract", str(cf), "--dry-run")
    assert code == 0 and doc["status"] == "dry_run" and any('DROP COLUMN "amount"' in s for s in doc["sql"])
    code, doc, _ = run(capsys, "--config", str(cfg), "contract", str(cf))
    assert code == 0 and doc["status"] == "contracted"
    assert sorted(table_columns(dsn, "items")) == [
        ("amount", "bigint", True),
        ("id", "integer", True),
        ("note", "text", False),
        ("tier", "text", False),
    ]
    code, doc, _ = run(capsys, "--config", str(cfg), "abort", str(cf))
    assert code == 3 and "already contracted" in doc["error"]["message"]


def test_abort_cli_and_text_output(setup: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, cf, _ = setup
    assert run_cli(capsys, "expand", str(cf), config=cfg).code == 0
    status = run_cli(capsys, "expand-status", str(cf), config=cfg)
    assert status.code == 0
    assert "safe to contract: yes" in status.out
    code, doc, _ = run(capsys, "--config", str(cfg), "abort", str(cf), "--dry-run")
    assert code == 0 and doc["sql"][0].startswith("DROP TRIGGER IF EXISTS")
    code, doc, _ = run(capsys, "--config", str(cfg), "abort", str(cf))
    assert code == 0 and doc["status"] == "aborted" and doc["schema_restored"] is True


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        (
            'table: items\noperations:\n  - change_type: {column: amount, to_type: bigint, up: "amount +"}\n',
            "change.yaml:3: operations[0].change_type.up: invalid expression 'amount +': expression ends with '+'",
        ),
        (
            "table: items\noperations:\n  - drop_colum: {column: note}\n",
            "change.yaml:3: operations[0].drop_colum: unknown operation",
        ),
        (
            "table: nope\noperations:\n  - drop_column: {column: note}\n",
            "change.yaml:1: table: table public.nope",
        ),
        ("table: items\noperations: [\n", "change.yaml:3: invalid YAML"),
    ],
)
def test_bad_change_file_exit_2(
    setup: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str], change: str, needle: str
) -> None:
    cfg, cf, _ = setup
    cf.write_text(change)
    code, doc, err = run(capsys, "--config", str(cfg), "expand", str(cf))
    assert code == 2 and doc["exit_code"] == 2
    assert needle in err, err


def test_bad_flags_exit_2(setup: tuple[Path, Path, str], capsys: pytest.CaptureFixture[str]) -> None:
    cfg, cf, _ = setup
    assert run(capsys, "--config", str(cfg), "expand", str(cf), "--batch-size", "0")[0] == 2
    assert run(capsys, "--config", str(cfg), "expand", str(cf), "--batch-delay", "soon")[0] == 2
    assert run(capsys, "--config", str(cfg), "expand")[0] == 2


def test_cli_subprocess_exit_code(setup: tuple[Path, Path, str], cli_env: dict[str, str]) -> None:
    cfg, cf, _ = setup
    proc = run_cli_process("contract", str(cf), config=cfg, fmt="json", env=cli_env, timeout=60)
    assert proc.code == 3
    assert proc.doc["error"]["type"] == "NotSafeToContractError"
