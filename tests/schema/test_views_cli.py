"""Views through the CLI, whose `plan` session is READ ONLY: a bad definition is exit 2 naming file, line and key;
a type change under an undeclared view plans, applies and then `plan --check` exits 0."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.schema.helpers import execute, scalar
from tests.support import run_cli

SPEC = """- table: t
  columns: [{name: id, type: int, primary_key: true}, {name: amount, type: bigint}]
- view: v
  definition: select id from u
"""


def test_plan_apply_check_with_views(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    execute(fresh_dsn, "CREATE TABLE t (id int PRIMARY KEY, amount int NOT NULL)", "INSERT INTO t VALUES (1, 2)",
            "CREATE VIEW u AS SELECT id, amount FROM t")
    (tmp_path / "schemas").mkdir()
    spec = tmp_path / "schemas" / "t.yaml"
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database: {{dsn: '{fresh_dsn}'}}\nschemas: schemas/\nlock_timeout: 1s\n")
    spec.write_text(SPEC + "- view: bad\n  definition: select nope from t\n")  # noqa: S608 - a spec file
    code, _, err = run_cli(capsys, "--config", str(cfg), "plan")
    assert code == 2 and f"{spec}:6: [2].definition: invalid view definition: column \"nope\" does not exist" in err
    spec.write_text(SPEC)
    code, out, _ = run_cli(capsys, "--config", str(cfg), "plan")
    assert code == 0 and "drop view public.u: it reads public.t.amount" in out and "create view public.v" in out
    code, out, err = run_cli(capsys, "--config", str(cfg), "apply", "--auto-approve")
    assert code == 0, out + err
    code, out, _ = run_cli(capsys, "--config", str(cfg), "plan", "--check")
    assert code == 0 and "No changes" in out, out
    assert scalar(fresh_dsn, "SELECT amount FROM u") == 2
