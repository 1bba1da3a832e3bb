"""The README's "A first evolution by hand" runs verbatim on a fresh stack, from `stack up` to `stack down`
(issue 18, item 3): the shell block is taken from README.md as written, so README and product cannot drift."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SECTION = "## A first evolution by hand"


def quickstart_block() -> str:
    text = (ROOT / "README.md").read_text()
    section = text[text.index(SECTION):]
    m = re.search(r"```sh\n(.*?)```", section, re.S)
    assert m, "no ```sh block under " + SECTION
    return m.group(1)


def test_the_block_is_the_one_documented() -> None:
    block = quickstart_block()
    lines = [ln for ln in block.splitlines() if ln.startswith(".venv/bin/migrate-assets")]
    assert lines[0].split("#")[0].split() == [".venv/bin/migrate-assets", "stack", "up"]
    assert lines[-1].split() == [".venv/bin/migrate-assets", "stack", "down"]
    assert any("pipeline add" in ln for ln in lines) and any(" verify" in ln for ln in lines)


def test_readme_quickstart_runs_verbatim(tmp_path: Path) -> None:
    """In a fresh folder (its own `.migrate` state dir, `.venv` linked to this one), under `bash -e`: every
    command must succeed, `verify` included; the stack is stopped whatever happens."""
    work = tmp_path / "repo"
    work.mkdir()
    (work / ".venv").symlink_to(Path(sys.executable).parent.parent)
    env = {k: v for k, v in os.environ.items()
           if not k.startswith("MIGRATE_ASSETS_") and k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    script = "set -euo pipefail\n" + quickstart_block()
    try:
        r = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        assert r.returncode == 0, f"exit {r.returncode}\n--- stdout\n{r.stdout[-4000:]}\n--- stderr\n{r.stderr[-6000:]}"
        assert "pipeline add public.customers: succeeded" in r.stdout
        assert "evolution" in r.stdout and "succeeded" in r.stdout
        assert "pipeline consistent" in r.stdout
        assert "HTTP Request" not in r.stderr  # no client request logs without -v
        assert not (work / ".migrate" / "stack.json").exists() or "stopped" in r.stdout
        cfg = (work / ".migrate" / "migrate.yaml").read_text()
        assert "- table: public.customers" in cfg  # `pipeline add` wrote it; `stack up` would keep it
    finally:
        subprocess.run([str(work / ".venv" / "bin" / "migrate-assets"), "stack", "down", "--state-dir",
                        str(work / ".migrate")], cwd=work, env=env, capture_output=True, timeout=300)
