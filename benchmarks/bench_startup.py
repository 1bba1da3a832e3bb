"""CLI start-up (issue 21 item 1): whole-process time of `migrate-assets --help`, `--version` and `plan` on a
one-table project, each beside its floor in the same run.

- `--help` and `--version` against `python -c "import argparse, json"` (target ≤ 4×);
- `plan` (spec file read, catalog read, diff: a real database on a private cluster) against
  `python -c "import psycopg, yaml"` (target ≤ 2×).

Every contender runs in each round, in a rotating order, so background load on this shared machine hits them
alike; the target is read on the median of per-round ratios (each command against its floor run in the same
round): on a loaded machine the best of `ROUNDS` of each side can come from different moments (one lucky 70 ms
floor against a 0.4 s `--help` read 6× in a round whose per-round median was 2.2×). Best against best and the
medians are reported beside it. One more run
of each command with `python -X importtime` counts the modules it loads and lists the heavy ones among them.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import bench_cluster, bench_database, write_results

ROUNDS = int(os.environ.get("BENCH_ROUNDS", "15"))
#: the modules no start-up path below may load (tests/cli/test_startup_imports.py asserts the same)
HEAVY = ("dagster", "pyiceberg", "confluent_kafka", "pyarrow", "httpx")
SPEC = "table: t\ncolumns:\n  - {name: id, type: bigint, primaryKey: true}\n  - {name: email, type: text}\n"
#: contender -> (floor contender or None, target ratio)
TARGETS = {"--help": ("import argparse, json", 4.0), "--version": ("import argparse, json", 4.0),
           "plan": ("import psycopg, yaml", 2.0)}


def _cli() -> list[str]:
    script = Path(sys.executable).parent / "migrate-assets"
    return [str(script)] if script.exists() else [sys.executable, "-m", "migrate_assets.cli"]


def _project(root: Path, dsn: str) -> Path:
    (root / "schemas").mkdir(parents=True)
    (root / "schemas" / "t.yaml").write_text(SPEC)
    cfg = root / "migrate.yaml"
    cfg.write_text(f"database: {{dsn: '{dsn}'}}\nschemas: schemas/\n")
    return cfg


def _once(argv: list[str], env: dict[str, str]) -> float:
    t0 = time.perf_counter()
    r = subprocess.run(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=env)
    took = time.perf_counter() - t0
    if r.returncode not in (0, 4):  # plan --check is not used; 0 expected, 4 tolerated for a drifted project
        raise RuntimeError(f"{argv} exited {r.returncode}: {r.stderr.decode(errors='replace')[-500:]}")
    return took


def _imports(argv: list[str], env: dict[str, str]) -> dict[str, Any]:
    """Modules loaded by one run (from `-X importtime` on stderr)."""
    r = subprocess.run([sys.executable, "-X", "importtime", *argv], stdout=subprocess.DEVNULL,
                       stderr=subprocess.PIPE, env=env, text=True)
    names = {line.rsplit("|", 1)[1].strip() for line in r.stderr.splitlines() if line.startswith("import time:")}
    names.discard("package")  # the header line
    tops = {n.split(".")[0] for n in names}
    return {"modules": len(names), "heavy": sorted(h for h in HEAVY if h in tops),
            "pydantic": "pydantic" in tops, "psycopg": "psycopg" in tops}


def main() -> dict[str, Any]:
    load_before = os.getloadavg()
    # PYTHONDONTWRITEBYTECODE (set in this sandbox) would make every run compile the package's modules from source
    # (~0.14 s for plan), which no installed copy pays (pip writes the bytecode at install, as it did for psycopg
    # and yaml, the floor): the warm-up run below writes the caches instead
    env = {k: v for k, v in os.environ.items() if k not in ("MIGRATE_ASSETS_CONFIG", "PYTHONDONTWRITEBYTECODE")}
    env["NO_COLOR"] = "1"
    cli = _cli()
    with bench_cluster() as info, bench_database(info.dsn) as dsn:
        root = Path(tempfile.mkdtemp(prefix="migrate-assets-bench-startup-"))
        try:
            cfg = _project(root, dsn)
            contenders: dict[str, list[str]] = {
                "import argparse, json": [sys.executable, "-c", "import argparse, json"],
                "import psycopg, yaml": [sys.executable, "-c", "import psycopg, yaml"],
                "--help": [*cli, "--help"],
                "--version": [*cli, "--version"],
                "plan": [*cli, "--config", str(cfg), "plan"],
            }
            for argv in contenders.values():  # warm the page cache, the bytecode and the spec cache of `plan`
                _once(argv, env)
            times: dict[str, list[float]] = {name: [] for name in contenders}
            names = list(contenders)
            for i in range(ROUNDS):
                for name in names[i % len(names):] + names[:i % len(names)]:
                    times[name].append(_once(contenders[name], env))
            module_args = {"--help": ["-m", "migrate_assets.cli", "--help"],
                           "--version": ["-m", "migrate_assets.cli", "--version"],
                           "plan": ["-m", "migrate_assets.cli", "--config", str(cfg), "plan"]}
            imports = {name: _imports(a, env) for name, a in module_args.items()}
        finally:
            shutil.rmtree(root, ignore_errors=True)
    rows = []
    for name, (floor, target) in TARGETS.items():
        best, floor_best = min(times[name]), min(times[floor])
        per_round = statistics.median(a / b for a, b in zip(times[name], times[floor], strict=True))
        rows.append({"command": f"migrate-assets {name}", "floor": f'python -c "{floor}"', "best_s": best,
                     "median_s": statistics.median(times[name]), "floor_best_s": floor_best,
                     "floor_median_s": statistics.median(times[floor]), "ratio_best": best / floor_best,
                     "ratio_per_round_median": per_round, "target": target, "met": per_round <= target,
                     **imports[name]})
    load_after = os.getloadavg()
    load = [round(x, 2) for x in (*load_before, *load_after)]
    data = {"rounds": ROUNDS, "rows": rows, "times_s": times, "load_average_before_after": load}
    md = ["## CLI start-up: `--help`, `--version` and `plan` on a 1-table project", "",
          "| command | best s | median s | floor | floor best s | × floor (best) | × floor (per-round median) "
          "| target (per-round median) | met | modules | heavy loaded |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| `{r['command']}` | {r['best_s']:.3f} | {r['median_s']:.3f} | `{r['floor']}` | "
                  f"{r['floor_best_s']:.3f} | {r['ratio_best']:.2f} | {r['ratio_per_round_median']:.2f} | "
                  f"≤ {r['target']:g}× | {'yes' if r['met'] else 'NO'} | {r['modules']} | "
                  f"{', '.join(r['heavy']) or 'none'} |")
    md += ["", f"Whole processes, {ROUNDS} interleaved rounds (rotating order); *met* is read on the median of "
           "per-round ratios (command and floor in the same round), best against best beside it. `plan` reads one "
           "spec file "
           "and a real database on a private cluster (spec cache warm, as on a second run; bytecode cached, as pip "
           "leaves an installed package). Modules: counted from "
           "one `python -X importtime` run; heavy = dagster, pyiceberg, confluent_kafka, pyarrow, httpx.",
           "Load average (1/5/15 min) before and after the run: "
           + ", ".join(f"{x:.2f}" for x in load)
           + " on this shared 2-core machine; read the ratios, not the absolute seconds."]
    write_results("bench_startup", data, "\n".join(md))
    return data


if __name__ == "__main__":
    out = main()
    for row in out["rows"]:
        print(f"{row['command']}: {row['best_s']:.3f}s = {row['ratio_best']:.2f}x best, "
              f"{row['ratio_per_round_median']:.2f}x per round, {row['floor']} "
              f"(target {row['target']:g}x: {'met' if row['met'] else 'NOT met'})")
