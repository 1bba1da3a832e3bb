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


def timings(trace: str) -> list[str]:
    """`seconds  command` for each migrate-assets command of an xtrace (`PS4='+@$EPOCHREALTIME '`): the time to
    the next traced command."""
    marks = [(float(m.group(1)), m.group(2)) for m in re.finditer(r"^\++@(\d+\.\d+) (.*)$", trace, re.M)]
    rows = [f"{b[0] - a[0]:8.2f}s  {a[1]}" for a, b in zip(marks, marks[1:], strict=False)
            if a[1].startswith(".venv/bin/migrate-assets")]
    if len(marks) > 1:
        rows.append(f"{marks[-1][0] - marks[0][0]:8.2f}s  total")
    return rows


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
    # every command traced with its start time (PS4), so the newcomer's transcript has wall times (`pytest -s`)
    script = "set -euo pipefail\nexport PS4='+@${EPOCHREALTIME} '\nset -x\n" + quickstart_block() + ": end\n"
    try:
        r = subprocess.run(["bash", "-c", script], cwd=work, env=env, capture_output=True, text=True, timeout=900)
        print("\n".join(timings(r.stderr)))
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
