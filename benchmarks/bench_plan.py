"""Plan time and memory vs schema size, beside `pg_dump --schema-only` on the same database.

For 100, 500, 2,000 and 10,000 tables × 22 columns × 3 indexes, a CHECK, a FOREIGN KEY to the table before, a column of
one enum, and a view over every tenth table: create them, write matching spec files, then
time `plan` (spec load + catalog read + diff; the expected result is "no changes") in a fresh subprocess,
reporting its wall time and peak RSS, and the Python-heap peak via tracemalloc in a separate run. Beside them, a
floor process (`_FLOOR`) shows how much of a pg_dump-relative budget start-up, imports and reading both sides take
before any validation or comparison.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psycopg
import yaml

from benchmarks.common import bench_cluster, bench_database, write_results
from migrate_assets.schema import ddl
from migrate_assets.schema.spec import parse_spec_text

SIZES = [int(s) for s in os.environ.get("BENCH_PLAN_SIZES", "100,500,2000,10000").split(",")]
REPEATS = int(os.environ.get("BENCH_PLAN_REPEATS", "3"))
TYPES = ["bigint", "int", "text", "varchar(64)", "numeric(12,2)", "timestamptz", "boolean", "jsonb", "uuid", "date"]
DEFAULTS = {"int": "0", "boolean": "false", "timestamptz": "now()", "text": "''::text", "numeric(12,2)": "0"}


def table_spec(i: int) -> dict[str, Any]:
    cols: list[dict[str, Any]] = [{"name": "id", "type": "bigserial", "primary_key": True}]
    for c in range(1, 20):
        t = TYPES[c % len(TYPES)]
        col: dict[str, Any] = {"name": f"c{c}", "type": t, "nullable": c % 3 == 0}
        if t in DEFAULTS and c % 2 == 0:
            col["default"] = DEFAULTS[t]
        if c == 2:
            col["unique"] = True
        cols.append(col)
    cols += [{"name": "state", "type": "public.bench_state", "nullable": True},
             {"name": "parent", "type": "bigint", "nullable": True}]
    doc: dict[str, Any] = {
        "table": f"t{i:05d}",
        "comment": f"table {i}",
        "columns": cols,
        "indexes": [
            {"columns": ["c1"]},
            {"name": f"t{i:05d}_multi", "columns": ["c3", "c4"]},
            {"name": f"t{i:05d}_part", "columns": ["c11"], "where": "(c11 > 0)"},
        ],
        "checks": [{"name": f"t{i:05d}_c1_check", "expression": "(c1 >= 0)"}],
        "foreign_keys": [],
    }
    if i > 0:  # a chain of foreign keys: each table references the one before
        doc["foreign_keys"] = [{"name": f"t{i:05d}_parent_fkey", "columns": ["parent"],
                                "references": {"table": f"t{i - 1:05d}", "columns": ["id"]}}]
    return doc


#: one enum every table uses, and a view over every tenth table (written as pg_get_viewdef prints it)
ENUM_DOC = {"enum": "public.bench_state", "values": ["new", "active", "done"]}
VIEW_EVERY = 10


def view_spec(i: int) -> dict[str, Any]:
    t = f"t{i:05d}"
    definition = f"SELECT {t}.id, {t}.c1, {t}.state FROM public.{t} WHERE {t}.c1 > 0"  # noqa: S608 - a spec text
    return {"view": f"v{i:05d}", "definition": definition}


def spec_documents(n: int) -> list[list[dict[str, Any]]]:
    """The spec files' documents, 100 tables (and their views) per file; the enum in the first."""
    files = []
    for start in range(0, n, 100):
        docs: list[dict[str, Any]] = [ENUM_DOC] if start == 0 else []
        docs += [table_spec(i) for i in range(start, min(n, start + 100))]
        docs += [view_spec(i) for i in range(start, min(n, start + 100)) if i % VIEW_EVERY == 0]
        files.append(docs)
    return files


def create_schema(conn: psycopg.Connection, specs: Any) -> None:
    """The benchmark's database from its own spec set: the enum, the tables (with CHECKs), then the foreign keys
    and the views — committed every 500 statements: one transaction over 10,000 tables runs out of lock slots
    (max_locks_per_transaction)."""
    from migrate_assets.schema.views import create_view_sql, views_of

    stmts = [ddl.create_enum(e.schema, e.name, e.values) for e in specs.enums]
    stmts += [stmt for t in specs for stmt in ddl.create_table(t)]
    stmts += [ddl.add_foreign_key(t.schema, t.name, fk, not_valid=False) for t in specs for fk in t.foreign_keys]
    stmts += [stmt for v in views_of(specs) for stmt in create_view_sql(v, v.definition)]
    for i, stmt in enumerate(stmts, 1):
        conn.execute(stmt.encode())
        if i % 500 == 0:
            conn.commit()


_CHILD = r"""
import json, re, sys, time, tracemalloc
def peak_rss_mib():
    # VmHWM starts again at exec; ru_maxrss would carry over the parent's peak from before the fork
    with open("/proc/self/status") as f:
        return int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1)) / 1024
trace = sys.argv[2] == "1"
t0 = time.perf_counter()
if trace:
    tracemalloc.start()
from migrate_assets.config import load_config
from migrate_assets.resources import database
t_import = time.perf_counter()
cfg = load_config(sys.argv[1])
if sys.argv[3] == "load":  # the spec files alone: parse and validate
    tables = database.specs(cfg)
    changes = refusals = 0
else:  # what `plan` runs: specs validated while the catalog is read, then the diff
    plan = database.schema_plan(cfg)
    changes, refusals = len(plan.changes), len(plan.refusals)
t_end = time.perf_counter()
peak = tracemalloc.get_traced_memory()[1] if trace else 0
print(json.dumps({"changes": changes, "refusals": refusals, "import_s": t_import - t0, "s": t_end - t_import,
                  "maxrss_mib": peak_rss_mib(), "tracemalloc_peak_mib": peak / 2**20}))
"""


def _child_env(root: Path, cache: bool = False) -> dict[str, str]:
    """The children's environment, without PYTHONDONTWRITEBYTECODE: an installed package runs from compiled
    bytecode, so the first (cache-filling) child writes it and the timed ones do not compile from source. Cold
    runs (`cache` False) read every spec file afresh (MIGRATE_ASSETS_NO_CACHE)."""
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONDONTWRITEBYTECODE", "MIGRATE_ASSETS_NO_CACHE")}
    return {**env, "PYTHONPATH": str(root), "MIGRATE_ASSETS_CONFIG": "",
            **({} if cache else {"MIGRATE_ASSETS_NO_CACHE": "1"})}


def _child(cfg: Path, mode: str = "plan", trace: bool = False, cache: bool = False) -> dict[str, Any]:
    """The production plan path (`resources.database.schema_plan`, what `migrate-assets plan` calls) or the spec
    load alone, in a fresh process; imports are timed apart from the work."""
    root = Path(__file__).resolve().parent.parent
    r = subprocess.run([sys.executable, "-c", _CHILD, str(cfg), "1" if trace else "0", mode],
                       capture_output=True, text=True, check=True, cwd=root, env=_child_env(root, cache))
    return json.loads(r.stdout)


#: `migrate-assets ARGS` in this process, its peak RSS (VmHWM: from exec on) written to a file when it exits: the
#: ru_maxrss of wait4 would count the benchmark parent's pages the child had between fork and exec
_CLI = r"""
import atexit, re, runpy, sys
def _peak():
    with open("/proc/self/status") as f:
        kb = int(re.search(r"VmHWM:\s+(\d+) kB", f.read()).group(1))
    with open(out, "w") as f:
        f.write(str(kb))
out = sys.argv[1]
atexit.register(_peak)
sys.argv = ["migrate-assets", *sys.argv[2:]]
runpy.run_module("migrate_assets.cli", run_name="__main__", alter_sys=True)
"""


def _cli(cfg: Path, cache: bool = False) -> dict[str, Any]:
    """`migrate-assets plan --check` as users run it, timed like pg_dump (the whole process, start-up and output
    included), and its peak RSS."""
    root = Path(__file__).resolve().parent.parent
    with tempfile.NamedTemporaryFile(suffix=".rss") as rss:
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-c", _CLI, rss.name, "--config", str(cfg), "plan", "--check"],
                           stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, cwd=root,
                           env=_child_env(root, cache))
        seconds = time.perf_counter() - t0
        if r.returncode != 0:  # --check: 0 = no changes
            raise RuntimeError(f"plan --check exited {r.returncode}: {r.stderr[-2000:]}")
        return {"process_s": seconds, "maxrss_mib": int(Path(rss.name).read_text()) / 1024}


#: The floor under any plan on this stack (Python, psycopg), in a fresh process like `_cli`: start-up, `import psycopg`
#: and rapidyaml (the fastest YAML reader here), the rows of the catalog queries `plan` sends for tables and views
#: fetched whole on one connection (a thread, jit off as `introspect` has it) while the main thread parses every
#: spec file to plain Python data. No validation, no model objects, no comparison, no output, and not the smaller
#: reads (printed CHECK texts, enums, sequences, extensions), so it is if anything low: what is left of a budget
#: after it is what validating and diffing the tables may take.
_FLOOR = r"""
import json, os, sys, threading
import psycopg, ryml
job = json.load(open(sys.argv[1]))
def catalog():
    with psycopg.connect(job["dsn"]) as conn:
        conn.execute("SET search_path = pg_catalog; SET jit = off")
        rels = conn.execute(job["tables"], {"schemas": ["public"], "all": True, "tables": "[]"}).fetchall()
        scope = {"oids": [r[0] for r in rels]}
        for q in job["per_table"]:
            conn.execute(q, scope).fetchall()
        conn.execute(job["views"]).fetchall()
reader = threading.Thread(target=catalog)
reader.start()
for name in sorted(os.listdir(job["specs"])):
    with open(os.path.join(job["specs"], name), "rb") as f:
        tree = ryml.parse_in_arena(f.read())
    json.loads(ryml.emit_json_malloc(tree, tree.root_id()))
reader.join()
"""


def floor_job(conn: psycopg.Connection, dsn: str, specs: Path, path: Path) -> Path:
    """The floor child's input: the catalog queries exactly as `introspect` sends them to this server."""
    from migrate_assets.schema import introspect, views

    per_table = [introspect._COLUMNS, introspect._for_server(conn, introspect._CONSTRAINTS),
                 introspect._for_server(conn, introspect._INDEXES), introspect._OTHERS]
    path.write_text(json.dumps({"dsn": dsn, "specs": str(specs), "tables": introspect._TABLES,
                                "per_table": per_table, "views": views._LIVE_VIEWS}))
    return path


def _floor(job: Path) -> float:
    root = Path(__file__).resolve().parent.parent
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", _FLOOR, str(job)], check=True, cwd=root, env=_child_env(root))
    return time.perf_counter() - t0


def _pg_dump(dsn: str) -> float:
    exe = shutil.which("pg_dump")
    if not exe:
        return float("nan")
    t0 = time.perf_counter()
    subprocess.run([exe, "--schema-only", "-d", dsn], capture_output=True, check=True)
    return time.perf_counter() - t0


def run_size(admin_dsn: str, n: int) -> dict[str, Any]:
    with bench_database(admin_dsn) as dsn, tempfile.TemporaryDirectory() as tmp:
        files = spec_documents(n)
        json_dir, yaml_dir = Path(tmp, "json"), Path(tmp, "yaml")
        json_dir.mkdir()
        yaml_dir.mkdir()
        for k, chunk in enumerate(files):  # 100 tables per file, once as JSON-style YAML, once in block style
            (json_dir / f"s{k:05d}.yaml").write_text(json.dumps(chunk, indent=1))
            (yaml_dir / f"s{k:05d}.yaml").write_text(yaml.safe_dump(chunk, sort_keys=False))
        specs = parse_spec_text(json.dumps([d for chunk in files for d in chunk]), "all.yaml")
        with psycopg.connect(dsn) as conn:
            create_schema(conn, specs)
            conn.commit()
            conn.autocommit = True
            conn.execute("VACUUM ANALYZE")
            job = floor_job(conn, dsn, yaml_dir, Path(tmp, "floor.json"))
        cfg, jcfg = Path(tmp, "migrate.yaml"), Path(tmp, "json.yaml")
        cfg.write_text(json.dumps({"database": {"dsn": dsn}, "schemas": str(yaml_dir)}))
        jcfg.write_text(json.dumps({"database": {"dsn": dsn}, "schemas": str(json_dir)}))
        runs, loads, wruns, jruns, clis, dumps, floors = [], [], [], [], [], [], []
        _child(cfg, cache=True)  # fills the bytecode and the parsed-YAML caches
        for _ in range(REPEATS):  # interleaved, so load changes on a shared machine hit all alike
            clis.append(_cli(cfg))
            runs.append(_child(cfg))
            loads.append(_child(cfg, "load"))
            wruns.append(_child(cfg, cache=True))
            jruns.append(_child(jcfg))
            dumps.append(_pg_dump(dsn))
            floors.append(_floor(job))
        traced = _child(cfg, trace=True)
        best = min(runs, key=lambda r: r["s"])
        assert all(r["changes"] == 0 and r["refusals"] == 0 for r in runs + wruns + jruns)
        dump = min(dumps)
        process = min(c["process_s"] for c in clis)
        spec_load = min(r["s"] for r in loads)
        return {
            "tables": n,
            "columns_per_table": 22,
            "views": n // VIEW_EVERY + (1 if n % VIEW_EVERY else 0),
            "indexes_per_table": 3,
            "plan_s": best["s"],
            "plan_s_runs": [round(r["s"], 4) for r in runs],
            "import_s": best["import_s"],
            "spec_load_s": spec_load,
            "catalog_and_diff_s": best["s"] - spec_load,
            "plan_yaml_cached_s": min(r["s"] for r in wruns),
            "plan_json_style_specs_s": min(r["s"] for r in jruns),
            "changes": best["changes"],
            "peak_rss_mib": max(c["maxrss_mib"] for c in clis),
            "rss_mib_runs": [round(c["maxrss_mib"]) for c in clis],
            "python_heap_peak_mib": traced["tracemalloc_peak_mib"],
            "pg_dump_schema_only_s": dump,
            "ratio_vs_pg_dump": best["s"] / dump,
            "ratio_cached_vs_pg_dump": min(r["s"] for r in wruns) / dump,
            "process_s": process,
            "process_s_runs": [round(c["process_s"], 4) for c in clis],
            "process_ratio_vs_pg_dump": process / dump,
            "floor_process_s": min(floors),
            "floor_process_s_runs": [round(f, 4) for f in floors],
            "floor_ratio_vs_pg_dump": min(floors) / dump,
        }


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


LOAD_BEFORE = _load()


def issue_targets(rows: list[dict[str, Any]]) -> str:
    """The targets as the issues state them: at every size >= 500 the whole process <= 0.5x pg_dump and ms/table
    within +-25 % of their mean (issue 21: linear growth); peak RSS <= 150 MiB at 2,000 tables (issue 15, item 5)
    and growing at most linearly (issue 21: at no size does the MiB per table above the smallest run's peak exceed
    the first such figure by more than 25 %, the tolerance of the ms/table rule)."""
    big = [r for r in rows if r["tables"] >= 500]
    if not big:
        return ""
    ratios = ", ".join(f"{r['tables']}: {r['process_ratio_vs_pg_dump']:.2f}x" for r in big)
    per = [1000 * r["plan_s"] / r["tables"] for r in big]
    mean = sum(per) / len(per)
    spread = max(abs(x - mean) / mean for x in per)
    at_2000 = [r["peak_rss_mib"] for r in rows if r["tables"] == 2000]
    base = min(rows, key=lambda r: r["tables"])
    growth = [(r["peak_rss_mib"] - base["peak_rss_mib"]) / (r["tables"] - base["tables"])
              for r in sorted(big, key=lambda r: r["tables"]) if r["tables"] > base["tables"]]
    linear = not growth or max(growth) <= growth[0] * 1.25  # consecutive steps alone would allow a creep

    def verdict(ok: bool) -> str:
        return "**met**" if ok else "**missed**"

    rss_2000 = (f"peak RSS <= 150 MiB at 2,000 tables ({at_2000[0]:.0f}): {verdict(at_2000[0] <= 150)}; "
                if at_2000 else "")
    floor = [f"{r['tables']}: {r['floor_ratio_vs_pg_dump']:.2f}x" for r in big if "floor_ratio_vs_pg_dump" in r]
    floors = f"; the floor process alone: {', '.join(floor)}" if floor else ""
    fast = all(r["process_ratio_vs_pg_dump"] <= 0.5 for r in big)
    return (f"Issue targets at >= 500 tables: whole process <= 0.5x pg_dump ({ratios}{floors}): {verdict(fast)}; "
            f"{rss_2000}"
            f"peak RSS growing at most linearly (MiB per table above the {base['tables']}-table run: "
            f"{', '.join(f'{g:.4f}' for g in growth)}): {verdict(linear)}; "
            f"ms/table within +-25 % of the mean (largest deviation {100 * spread:.0f} %): {verdict(spread <= 0.25)}.")


def main() -> dict[str, Any]:
    rows = []
    with bench_cluster() as info:
        for n in SIZES:
            row = run_size(info.dsn, n)
            print(json.dumps(row), file=sys.stderr)
            rows.append(row)
    md = [
        "## plan: spec load + catalog read + diff (result: no changes)",
        "",
        "| tables | plan s (cold) | spec load alone s | plan minus spec load s | plan s (YAML cache warm) | "
        "plan s (JSON-style specs) | `plan --check` whole process s | peak RSS MiB | Python heap peak MiB | "
        "pg_dump --schema-only s | plan / pg_dump | whole process / pg_dump | floor process s | floor / pg_dump | "
        "ms/table |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        md.append(
            f"| {r['tables']} | {r['plan_s']:.3f} | {r['spec_load_s']:.3f} | {r['catalog_and_diff_s']:.3f} | "
            f"{r['plan_yaml_cached_s']:.3f} | {r['plan_json_style_specs_s']:.3f} | {r['process_s']:.3f} | "
            f"{r['peak_rss_mib']:.0f} | {r['python_heap_peak_mib']:.1f} | {r['pg_dump_schema_only_s']:.3f} | "
            f"{r['ratio_vs_pg_dump']:.2f} | {r['process_ratio_vs_pg_dump']:.2f} | {r['floor_process_s']:.3f} | "
            f"{r['floor_ratio_vs_pg_dump']:.2f} | {1000 * r['plan_s'] / r['tables']:.2f} |"
        )
    big = max(rows, key=lambda r: r["tables"])
    per_table = ", ".join(f"{r['tables']}: {1000 * r['plan_s'] / r['tables']:.2f}" for r in rows)
    md += [
        "",
        "*plan* is what `migrate-assets plan` runs (`resources.database.schema_plan`: the spec files are read, then "
        "validated while a second thread reads the catalog, then the diff), in a fresh process, imports excluded; "
        "*spec load alone* is the spec files read and validated, nothing else, so *plan minus spec load* is what the "
        "catalog and the diff add beyond the overlap. *Whole process* is `migrate-assets plan --check` as a user runs "
        "it, timed like pg_dump from exec to exit (Python start-up, imports and output included); its peak RSS is the "
        "process's own (VmHWM at exit). Cold = no parsed-YAML cache (`MIGRATE_ASSETS_NO_CACHE=1`, what a fresh CI checkout has). "
        "*Floor* is a process that does only what no plan in Python on psycopg can skip, timed the same way: start-up, "
        "`import psycopg` and rapidyaml, the rows of `plan`'s table and view catalog queries fetched on a thread while "
        "the spec files are parsed to plain data — no validation, no models, no comparison, no output.",
        f"At {big['tables']} tables the whole process takes {big['process_s']:.2f} s = "
        f"{big['process_ratio_vs_pg_dump']:.2f}× `pg_dump --schema-only`; the plan itself {big['plan_s']:.2f} s "
        f"({big['ratio_vs_pg_dump']:.2f}×; SPEC §10's absolute ≤ 1.0 s: **{'met' if big['plan_s'] <= 1.0 else 'missed'}**).",
        f"Milliseconds per table (linear growth keeps this flat): {per_table}.",
        issue_targets(rows),
        f"Load average before / after: {LOAD_BEFORE} / {_load()}. Best of {REPEATS} runs of each, each in a fresh "
        "process, interleaved with pg_dump.",
    ]
    data = {"sizes": rows}
    write_results("bench_plan", data, "\n".join(md))
    return data


if __name__ == "__main__":
    main()
