"""`migrate-assets plan` / `apply` end to end: exit codes, formats, the bad-input corpus, stored plans."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support import column_names, run_cli, run_cli_process

GOOD = "table: t\ncolumns:\n  - {name: id, type: serial, primaryKey: true}\n  - {name: email, type: varchar(50), unique: true}\n"


def project(tmp_path: Path, dsn: str, specs: dict[str, str], extra: str = "") -> str:
    (tmp_path / "schemas").mkdir(exist_ok=True)
    for name, text in specs.items():
        (tmp_path / "schemas" / name).write_text(text)
    cfg = tmp_path / "migrate.yaml"
    cfg.write_text(f"database: {{dsn: '{dsn}'}}\nschemas: schemas/\nlock_timeout: 1s\nretries: {{attempts: 2, backoff: 10ms}}\n{extra}")
    return str(cfg)


def test_plan_apply_check_cycle_in_all_formats(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": GOOD})
    code, out, _ = run_cli(capsys, "--config", cfg, "plan", "--check")
    assert code == 4 and "create table public.t" in out
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "json", "plan")
    doc = json.loads(out)
    assert code == 0 and doc["safe"] is True and doc["fingerprint"].startswith("sha256:")
    (change,) = doc["changes"]
    assert set(change) >= {"table", "kind", "sql", "inverse_sql", "hazards", "breaking"}
    assert change["kind"] == "create_table" and change["sql"].startswith('CREATE TABLE "public"."t"')
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "markdown", "plan")
    assert code == 0 and "| table | kind |" in out
    code, out, _ = run_cli(capsys, "--config", cfg, "apply", "--dry-run")
    assert code == 0 and "Would apply 1 change" in out and column_names(fresh_dsn, "t") == []
    code, out, _ = run_cli(capsys, "--config", cfg, "apply", "--auto-approve")
    assert code == 0 and "Applied 1 change" in out and column_names(fresh_dsn, "t") == ["id", "email"]
    code, out, _ = run_cli(capsys, "--config", cfg, "plan", "--check")
    assert code == 0 and "No changes" in out


def test_stored_plan_applies_once_then_is_stale(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": GOOD})
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "json", "plan")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(out)
    code, out, err = run_cli(capsys, "--config", cfg, "apply", "--auto-approve", "--plan", str(plan_file))
    assert code == 0, err
    code, out, err = run_cli(capsys, "--config", cfg, "--format", "json", "apply", "--auto-approve", "--plan", str(plan_file))
    assert code == 3 and "stale plan" in err and json.loads(out)["error"]["type"] == "StalePlanError"
    # a plan whose specs changed since is refused too, before anything runs
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "json", "plan")
    plan_file.write_text(out)
    (tmp_path / "schemas" / "t.yaml").write_text(GOOD + "  - {name: extra, type: int, nullable: true}\n")
    code, _, err = run_cli(capsys, "--config", cfg, "apply", "--auto-approve", "--plan", str(plan_file))
    assert code == 3 and "no longer matches the spec files" in err and column_names(fresh_dsn, "t") == ["id", "email"]


def test_block_policy_exit_3_names_changes(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": GOOD})
    assert run_cli(capsys, "--config", cfg, "apply", "--auto-approve")[0] == 0
    (tmp_path / "schemas" / "t.yaml").write_text(GOOD.replace("varchar(50)", "varchar(10)").replace("id, type: serial", "ident, renamed_from: [id], type: serial"))
    code, _, err = run_cli(capsys, "--config", cfg, "apply", "--auto-approve")
    assert code == 3 and "rename column public.t.id to ident" in err and "change type of public.t.email" in err
    assert column_names(fresh_dsn, "t") == ["id", "email"]
    cfg = project(tmp_path, fresh_dsn, {}, extra="on_breaking_change: warn\n")
    code, out, err = run_cli(capsys, "--config", cfg, "apply", "--auto-approve")
    assert code == 0 and "warning:" in err and column_names(fresh_dsn, "t") == ["ident", "email"]


BAD_SPECS = {
    "invalid_yaml": ("table: t\ncolumns: [\n", 3, ""),
    "unknown_type": ("table: t\ncolumns:\n  - name: a\n    type: integr\n", 4, "columns[0].type"),
    "wrong_type": ("table: t\ncolumns:\n  - name: a\n    type: int\n    nullable: 'yes'\n", 5, "columns[0].nullable"),
    "unknown_key": ("table: t\ncolumns:\n  - name: a\n    type: int\n    colour: red\n", 5, "columns[0].colour"),
    "empty_name": ("table: t\ncolumns:\n  - name: ''\n    type: int\n", 3, "columns[0].name"),
    "long_name": ("table: " + "t" * 64 + "\ncolumns: [{name: a, type: int}]\n", 1, "table"),
    "dup_column": ("table: t\ncolumns:\n  - {name: a, type: int}\n  - {name: a, type: text}\n", 4, "columns[1].name"),
    "index_unknown_column": ("table: t\ncolumns: [{name: a, type: int}]\nindexes:\n  - columns: [b]\n", 4, "indexes[0].columns[0]"),
    "bad_default": ("table: t\ncolumns:\n  - name: a\n    type: int\n    default: 'now('\n", 5, "columns[0].default"),
    "bad_where": ("table: t\ncolumns: [{name: a, type: int}]\nindexes:\n  - columns: [a]\n    where: \"a > 'x\"\n", 5, "indexes[0].where"),
    "not_a_table": ("- just a string\n", 1, "[0]"),
}


@pytest.mark.parametrize("case", sorted(BAD_SPECS))
def test_bad_spec_corpus_exit_2_with_file_line_key(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str], case: str) -> None:
    text, line, key = BAD_SPECS[case]
    cfg = project(tmp_path, fresh_dsn, {f"{case}.yaml": text})
    for command in ("plan", "apply"):
        code, _, err = run_cli(capsys, "--config", cfg, command)
        assert code == 2, err
        assert f"{case}.yaml:{line}" in err and key in err, err
    code, out, _ = run_cli(capsys, "--config", cfg, "--format", "json", "plan")
    problems = json.loads(out)["error"]["problems"]
    assert code == 2 and any(p["line"] == line and p["file"].endswith(f"{case}.yaml") for p in problems)


def test_duplicate_table_across_files_and_camel_case_accepted(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = project(tmp_path, fresh_dsn, {"a.yaml": GOOD, "b.yaml": "# again\n" + GOOD})
    code, _, err = run_cli(capsys, "--config", cfg, "plan")
    assert code == 2 and "b.yaml:2" in err and "duplicate table public.t" in err


def test_default_rejected_by_postgres_is_exit_2_with_location(tmp_path: Path, fresh_dsn: str, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": "table: t\ncolumns:\n  - name: a\n    type: int\n    default: no_such_function()\n"})
    code, _, err = run_cli(capsys, "--config", cfg, "apply", "--auto-approve")
    assert code == 2 and "t.yaml:3" in err and "columns[0].default" in err and "no_such_function" in err
    assert column_names(fresh_dsn, "t") == []


def test_usage_and_config_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert run_cli(capsys, "plan", "--bogus")[0] == 2
    assert run_cli(capsys, "--config", str(tmp_path / "missing.yaml"), "plan")[0] == 2
    cfg = project(tmp_path, "postgresql://u@127.0.0.1:1/x", {"t.yaml": GOOD})
    (tmp_path / "plan.json").write_text("{not json")
    code, _, err = run_cli(capsys, "--config", cfg, "apply", "--auto-approve", "--plan", str(tmp_path / "plan.json"))
    assert code == 2 and "plan.json:1" in err


def test_password_never_printed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    cfg = project(tmp_path, "postgresql://u:supersecret@127.0.0.1:1/x", {"t.yaml": GOOD})
    code, out, err = run_cli(capsys, "--config", cfg, "plan")
    assert code == 1 and "supersecret" not in out + err and "***" in err


def test_a_bad_spec_is_reported_before_an_unreachable_database(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    """`plan` connects while the specs still validate (the catalog read overlaps it); a spec problem must still
    be what the user sees first, exit 2 naming file, line and key, not the connection failure."""
    cfg = project(tmp_path, "postgresql://u@127.0.0.1:1/x", {"t.yaml": "table: t\ncolumns:\n  - {name: id, type: nosuchtype}\n"})
    code, _, err = run_cli(capsys, "--config", cfg, "plan")
    assert code == 2 and "t.yaml:3" in err and "nosuchtype" in err
    cfg = project(tmp_path, "postgresql://u@127.0.0.1:1/x", {"t.yaml": GOOD})
    assert run_cli(capsys, "--config", cfg, "plan")[0] == 1  # good specs: the connection failure
    cfg = project(tmp_path, "host=127.0.0.1 port=", {"t.yaml": "table: t\ncolumns:\n  - {name: id, type: nosuchtype}\n"})
    code, _, err = run_cli(capsys, "--config", cfg, "plan")  # an empty port: the spec problem still comes first
    assert code == 2 and "t.yaml:3" in err and "nosuchtype" in err


def test_real_subprocess(tmp_path: Path, fresh_dsn: str) -> None:
    cfg = project(tmp_path, fresh_dsn, {"t.yaml": GOOD})
    r = run_cli_process("apply", "--auto-approve", config=cfg, fmt="json", entry_point=True, timeout=60)
    assert r.code == 0, r.err
    assert json.loads(r.out)["changes"][0]["kind"] == "create_table"
    r = run_cli_process("plan", "--check", config=cfg, entry_point=True, timeout=60)
    assert r.code == 0 and "No changes" in r.out
    (tmp_path / "schemas" / "t.yaml").write_text(GOOD + "  - {name: x, type: int, nullable: true}\n")
    r = run_cli_process("plan", "--check", config=cfg, entry_point=True, timeout=60)
    assert r.code == 4 and "add column public.t.x" in r.out
