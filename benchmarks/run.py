"""`make bench`: run every benchmarks/bench_*.py (each in its own process) and join their Markdown.

Results: benchmarks/results/<name>.json and <name>.md per benchmark, and SUMMARY.md. Pass names to run a
subset: `python -m benchmarks.run evolve plan`.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent
RESULTS = HERE / "results"


def main(argv: list[str]) -> int:
    names = sorted(p.stem for p in HERE.glob("bench_*.py"))
    if argv:
        names = [n for n in names if n.removeprefix("bench_") in argv or n in argv]
    failed = []
    for name in names:
        t0 = time.monotonic()
        print(f"== {name}", flush=True)
        r = subprocess.run([sys.executable, "-m", f"benchmarks.{name}"], cwd=HERE.parent)
        print(f"== {name}: {'ok' if r.returncode == 0 else 'FAILED'} in {time.monotonic() - t0:.0f}s", flush=True)
        if r.returncode != 0:
            failed.append(name)
    parts = ["# Benchmark results\n", f"Run on {time.strftime('%Y-%m-%d %H:%M')} (2 cores, fsync off).\n"]
    for name in names:
        md = RESULTS / f"{name}.md"
        if md.exists():
            parts.append(md.read_text())
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "SUMMARY.md").write_text("\n".join(parts))
    print(f"summary: {RESULTS / 'SUMMARY.md'}")
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
