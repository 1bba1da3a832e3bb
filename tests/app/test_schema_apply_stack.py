"""One way to change a pipeline table, on the real stack with a writer running (issue 16): a spec edit is
planned across every layer and applied through the saga; `evolve` writes its change back into the spec; both
end with verify consistent, `plan --check` 0 and no event lost."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from tests.pipeline import ADD_NOTE, Pipeline, change_file
from tests.support import column_names, run_cli

SPEC = """\
# the shop's customers -- captured by the CDC pipeline
table: public.customers
columns:
  - {name: id, type: integer, primary_key: true}   # the key
  - {name: name, type: text}
  - {name: amount, type: integer, nullable: true}  # cents
"""
LAYERS = ["schema_registry", "lakehouse", "source_db", "connector", "verify"]


def _with_spec(p: Pipeline) -> Path:
    d = p.tmp / "schemas"
    d.mkdir()
    (d / "customers.yaml").write_text(SPEC)
    p.write_config(schemas=[str(d)])
    return d / "customers.yaml"


def test_spec_edit_is_planned_and_applied_through_every_layer(pipeline: Pipeline,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    spec = _with_spec(pipeline)
    cfg = pipeline.config_path
    assert run_cli(capsys, "plan", "--check", config=cfg).code == 0
    spec.write_text(SPEC + "  - {name: note, type: text, nullable: true}   # new\n")
    t0 = time.monotonic()
    ran = run_cli(capsys, "plan", config=cfg, fmt="json")
    plan_s = time.monotonic() - t0
    assert ran.code == 0, ran
    [table] = ran.doc["pipeline"]["tables"]
    assert table["table"] == "public.customers" and table["operations"] == [
        {"add_column": {"name": "note", "type": "text", "nullable": True}}]
    assert [s["layer"] for s in table["steps"]] == LAYERS
    assert table["preflight"] and ran.doc["pipeline"]["refusals"] == []
    text = run_cli(capsys, "plan", config=cfg).out
    assert "Pipeline tables" in text and "schema_registry" in text and "lakehouse" in text
    assert "connector" in run_cli(capsys, "plan", config=cfg, fmt="markdown").out
    before = pipeline.layer_state()
    with pipeline.writer(rate=50) as w:
        t0 = time.monotonic()
        ran = run_cli(capsys, "apply", "--auto-approve", config=cfg, fmt="json")
        apply_s = time.monotonic() - t0
        assert ran.code == 0, ran
    [run] = ran.doc["pipeline"]
    assert run["status"] == "succeeded" and [s["layer"] for s in run["steps"]] == LAYERS
    assert all(s["status"] == "done" for s in run["steps"])
    after = pipeline.layer_state()
    assert after["registry"][0] > before["registry"][0]  # a new registry version, registered by the saga
    assert "note" in [f[1] for f in after["iceberg"][1]]
    assert column_names(pipeline.dsn, "public.customers")[-1] == "note"
    ver = run_cli(capsys, "verify", config=cfg, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver
    assert run_cli(capsys, "plan", "--check", config=cfg).code == 0
    pipeline.assert_no_event_lost(w.ids)
    with capsys.disabled():
        print(f"\nplan with the pipeline section {plan_s:.2f}s, apply through the saga {apply_s:.2f}s, "
              f"{len(w.ids)} rows written meanwhile")


def test_evolve_writes_the_change_back_into_the_spec(pipeline: Pipeline,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    spec = _with_spec(pipeline)
    cfg = pipeline.config_path
    with pipeline.writer(rate=50) as w:
        ran = run_cli(capsys, "evolve", str(change_file(pipeline.tmp, ADD_NOTE)), config=cfg, fmt="json")
        assert ran.code == 0, ran
    assert ran.doc["spec"]["status"] == "written", ran.doc["spec"]
    assert spec.read_text() == SPEC + "  - {name: note, type: text, nullable: true}\n"  # comments kept
    assert run_cli(capsys, "plan", "--check", config=cfg).code == 0
    pipeline.assert_no_event_lost(w.ids)


def test_a_spec_edit_refused_by_preflight_changes_nothing(pipeline: Pipeline,
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    spec = _with_spec(pipeline)
    cfg = pipeline.config_path
    spec.write_text(SPEC.replace("  - {name: amount, type: integer, nullable: true}  # cents\n", ""))
    before = pipeline.layer_state()
    ran = run_cli(capsys, "plan", config=cfg, fmt="json")  # dropping a column: breaking, blocked by default
    [table] = ran.doc["pipeline"]["tables"]
    assert table["status"] == "refused" and table["exit_code"] == 3, table
    ran = run_cli(capsys, "apply", "--auto-approve", config=cfg)
    assert ran.code == 3, ran
    assert pipeline.layer_state() == before


def test_breaking_spec_edit_under_expand_contract_is_cdc_aware(pipeline: Pipeline,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    spec = _with_spec(pipeline)
    pipeline.write_config(schemas=[str(spec.parent)], on_breaking_change="expand_contract")
    cfg = pipeline.config_path
    spec.write_text(SPEC.replace("  - {name: amount, type: integer, nullable: true}  # cents\n", ""))
    plan = run_cli(capsys, "plan", config=cfg, fmt="json")
    assert plan.doc["pipeline"]["expand_contract"] == ["public.customers"], plan.doc["pipeline"]
    with pipeline.writer(rate=50) as w:
        ran = run_cli(capsys, "apply", "--auto-approve", config=cfg, fmt="json")
        assert ran.code == 0, ran
        [handed] = ran.doc["expanded"]
        assert "amount" in column_names(pipeline.dsn, "public.customers")  # expanded, not dropped yet
        done = run_cli(capsys, "contract", handed["change_file"], config=cfg, fmt="json")
        assert done.code == 0, done
    assert done.doc["status"] == "contracted"
    assert [s["layer"] for s in done.doc["pipeline"]["steps"]] == LAYERS
    assert "amount" not in column_names(pipeline.dsn, "public.customers")
    assert "amount" not in {f.name for f in pipeline.iceberg().schema().fields}
    ver = run_cli(capsys, "verify", config=cfg, fmt="json")
    assert ver.code == 0 and ver.doc["consistent"] is True, ver
    assert run_cli(capsys, "plan", "--check", config=cfg).code == 0
    pipeline.assert_no_event_lost(w.ids)


def test_the_approval_prompt_shows_every_layer(pipeline: Pipeline) -> None:
    from tests.support import cli_argv, run_on_terminal

    spec = _with_spec(pipeline)
    spec.write_text(SPEC + "  - {name: note, type: text, nullable: true}\n")
    before = pipeline.layer_state()
    code, shown = run_on_terminal(cli_argv("apply", config=pipeline.config_path), terminal=("stdin", "stderr"),
                                  answer=(b"Type 'yes' to apply", "no"))
    assert code == 3, shown
    assert "Pipeline tables" in shown and "schema_registry" in shown and "lakehouse" in shown, shown
    assert pipeline.layer_state() == before
