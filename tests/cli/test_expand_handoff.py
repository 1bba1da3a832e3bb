"""on_breaking_change: expand_contract — `apply` hands rename / type change / drop to the expand engine."""

from __future__ import annotations

import json
from pathlib import Path

import psycopg
import pytest
import yaml

from migrate_assets.cli import main


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
    assert main(["--config", str(cfg), "apply"]) == 0
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        conn.execute("INSERT INTO accounts SELECT g, 'u' || g || '@x', g, 'l', 'n' FROM generate_series(1, 500) g")
    capsys.readouterr()
    _spec(tmp_path, V2)
    code = main(["--format", "json", "--config", str(cfg), "apply"])
    res = json.loads(capsys.readouterr().out)
    assert code == 0, res
    kinds = [c["kind"] for c in res["changes"]]
    assert sorted(kinds) == ["add_column", "alter_type"]  # non-breaking (a widening) ran directly
    (exp,) = res["expanded"]
    change_file = exp["change_file"]
    assert change_file and Path(change_file).is_file()
    ops = yaml.safe_load(Path(change_file).read_text())["operations"]
    assert ops == [{"rename_column": {"from": "email", "to": "email_address"}}, {"drop_column": {"column": "legacy"}}]
    with psycopg.connect(fresh_dsn, autocommit=True) as conn:
        cols = {r[0] for r in conn.execute("SELECT attname FROM pg_attribute WHERE attrelid = 'accounts'::regclass "
                                           "AND attnum > 0 AND NOT attisdropped")}
        # old shape intact for old clients, new shape present and synced
        assert {"email", "email_address", "amount", "legacy", "added"} <= cols
        conn.execute("INSERT INTO accounts (id, email, amount, legacy) VALUES (1000, 'old@x', 7, 'l')")
        assert conn.execute("SELECT email_address FROM accounts WHERE id = 1000").fetchone() == ("old@x",)
    assert main(["--format", "json", "--config", str(cfg), "expand-status", change_file]) == 0
    status = json.loads(capsys.readouterr().out)
    assert status["safe_to_contract"] is True and status["mismatched_rows"] == 0
    assert main(["--config", str(cfg), "contract", change_file]) == 0
    capsys.readouterr()
    assert main(["--format", "json", "--config", str(cfg), "plan", "--check"]) == 0  # converged on the spec
    with psycopg.connect(fresh_dsn) as conn:
        t = conn.execute("SELECT format_type(atttypid, atttypmod) FROM pg_attribute WHERE attrelid = "
                         "'accounts'::regclass AND attname = 'amount'").fetchone()
        assert t == ("bigint",)
