"""on_breaking_change: expand_contract — `apply` hands rename / type change / drop to the expand engine."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import yaml

from tests.support import column_names, run_cli, table_columns


def _project(tmp_path: Path, dsn: str, policy: str) -> Path:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(yaml.safe_dump({"database": {"dsn": dsn}, "schemas": "schemas/", "on_breaking_change": policy}))
    return cfg


def _spec(tmp_path: Path, columns: str) -> None:
    (tmp_path / "schemas" / "accounts.yaml").write_text(f"table: accounts\ncolumns:\n{columns}")


V1 = ("  - {name: id, type: bigint, primary_key: true}\n  - {name: email, type: text, nullable: true}\n"
      "  - {name: amount, type: integer, nullable: true}\n  - {name: legacy, type: text, nullable: true}\n"
      "  - {name: note, type: text, nullable: true}\n")
V2 = ("  - {name: id, type: bigint, primary_key: true}\n"
      "  - {name: email_address, type: text, nullable: true, renamed_from: [email]}\n"
      "  - {name: amount, type: bigint, nullable: true}\n  - {name: note, type: text, nullable: true}\n"
      "  - {name: added, type: text, nullable: true}\n")


def test_breaking_column_changes_go_through_expand(tmp_path: Path, fresh_dsn: str,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    cfg = _project(tmp_path, fresh_dsn, "expand_contract")
    _spec(tmp_path, V1)
    assert run_cli(capsys, "apply", "--auto-approve", config=cfg).code == 0
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts SELECT g, 'u' || g || '@x', g, 'l', 'n' FROM generate_series(1, 500) g")
    _spec(tmp_path, V2)
    applied = run_cli(capsys, "apply", "--auto-approve", config=cfg, fmt="json")
    res = applied.doc
    assert applied.code == 0, res
    kinds = [c["kind"] for c in res["changes"]]
    assert sorted(kinds) == ["add_column", "alter_type"]  # non-breaking (a widening) ran directly
    (exp,) = res["expanded"]
    change_file = exp["change_file"]
    assert change_file and Path(change_file).is_file()
    ops = yaml.safe_load(Path(change_file).read_text())["operations"]
    assert ops == [{"rename_column": {"from": "email", "to": "email_address"}}, {"drop_column": {"column": "legacy"}}]
    # old shape intact for old clients, new shape present and synced
    assert {"email", "email_address", "amount", "legacy", "added"} <= set(column_names(fresh_dsn, "accounts"))
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts (id, email, amount, legacy) VALUES (1000, 'old@x', 7, 'l')")
        assert conn.execute("SELECT email_address FROM accounts WHERE id = 1000").fetchone() == ("old@x",)
    status = run_cli(capsys, "expand-status", change_file, config=cfg, fmt="json")
    assert status.code == 0
    assert status.doc["safe_to_contract"] is True and status.doc["mismatched_rows"] == 0
    assert run_cli(capsys, "contract", change_file, config=cfg).code == 0
    assert run_cli(capsys, "plan", "--check", config=cfg, fmt="json").code == 0  # converged on the spec
    assert {c.name: c.type for c in table_columns(fresh_dsn, "accounts")}["amount"] == "bigint"
