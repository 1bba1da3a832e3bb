"""What one `evolve_pipeline` launch asks for and how it is planned: the run config, the changes it names, the
pre-flight of every table, the run tags, and the Markdown the ops show. No op here: `jobs/evolve.py` (pre-flight,
graph, report) and `jobs/evolve_steps.py` (one op per saga step) use these.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, Literal

from dagster import Config
from pydantic import Field

from migrate_assets.app import evolve as app
from migrate_assets.config import ProjectConfig
from migrate_assets.dagster_resources import MigrateProjectResource
from migrate_assets.errors import UsageError
from migrate_assets.evolution import run as evo
from migrate_assets.evolution.preflight import PreflightReport
from migrate_assets.evolution.store import RunRecord
from migrate_assets.expand.changefile import parse_change_text
from migrate_assets.expand.ops import ChangeSet
from migrate_assets.jobs.common import md_table
from migrate_assets.jobs.fanout import refuse_duplicate_tables
from migrate_assets.resources import database

#: run tag linking a Dagster run to the evolution runs it persisted, comma-separated (read by the run-failure sensor)
EVOLUTION_RUN_TAG = "migrate_assets/evolution_run"
#: run tag: the pipeline tables a launch changes, comma-separated (filter runs by table in the UI)
TABLES_TAG = "migrate_assets/tables"
#: run tag: what the launch changes (change files, `change_yaml` with its fingerprint, or `from_specs`)
CHANGE_TAG = "migrate_assets/change"
#: run tag: what a failed step leaves (`rollback`: compensated in the failing op; `hold`: layers left for a resume)
ON_FAILURE_TAG = "migrate_assets/on_failure"
#: run tag of a re-execution that retried a rolled-back change: `old run id→new run id`, comma-separated
RETRIED_TAG = "migrate_assets/retried"
#: what a re-execution of a launch keeps from the run it re-executes
LAUNCH_TAGS = (EVOLUTION_RUN_TAG, TABLES_TAG, CHANGE_TAG, ON_FAILURE_TAG, RETRIED_TAG)

OnFailure = Literal["rollback", "hold"]


class EvolveConfig(Config):
    change_file: str = Field(default="", description="change file (expand–contract operations); relative to the "
                             "project file. Used when neither change_files nor change_yaml is set")
    change_files: list[str] = Field(default_factory=list,
                                    description="several change files, one table each: the tables evolve in "
                                                "parallel branches")
    change_yaml: str = Field(default="", description="changes as inline YAML, one table per document (separate "
                             "documents with `---`); with change_files, both are run")
    from_specs: bool = Field(default=False, description="instead of changes: every pipeline table declared in the "
                             "specs but absent from the database is created, and every existing one its connector "
                             "does not capture joins, in every layer")
    dry_run: bool = Field(default=False, description="plan and pre-flight only; change nothing")
    allow_irreversible: bool = Field(default=False, description="run changes that have no lossless inverse")
    on_failure: OnFailure = Field(default="rollback", description="when a step fails: `rollback` undoes the "
                                  "table's completed layers in the failing op (Re-execute from failure then retries "
                                  "the change); `hold` leaves them (Re-execute from failure resumes the evolution "
                                  "where it stopped; rollback_evolution undoes it)")


def yaml_documents(text: str) -> list[str]:
    """The documents of a multi-document YAML text, each padded with blank lines so that error lines stay
    those of the whole text; empty documents (e.g. before a leading `---`) are left out."""
    lines = text.splitlines()
    cuts = [i for i, line in enumerate(lines) if line.rstrip() == "---"]
    docs = []
    for start, end in zip([-1, *cuts], [*cuts, len(lines)], strict=True):
        body = lines[start + 1:end]
        if any(x.strip() and not x.lstrip().startswith("#") for x in body):
            docs.append("\n" * (start + 1) + "\n".join(body) + "\n")
    return docs


def load_changes(config: EvolveConfig, project: MigrateProjectResource, cfg: ProjectConfig) -> list[ChangeSet]:
    changes = [parse_change_text(doc, "<run config change_yaml>", cfg.database.schema_)
               for doc in yaml_documents(config.change_yaml)]
    changes += [database.read_change(cfg, project.resolve(f)) for f in config.change_files]
    if changes:
        return changes
    if not config.change_file:
        raise UsageError("nothing to evolve: set change_files, change_file or change_yaml, or from_specs: true",
                         file="<run config>", key="change_file")
    return [database.read_change(cfg, project.resolve(config.change_file))]


def plan_tables(config: EvolveConfig, project: MigrateProjectResource, log: Callable[[str], None],
                only: str | None = None) -> list[tuple[PreflightReport, RunRecord]]:
    """Pre-flight of every table of the launch (reads and checks only): all pass, or the launch stops here.
    `only`: plan that table alone (a re-execution retrying one table's rolled-back change)."""
    cfg = project.load()
    ctx = project.run_context(log=log)
    policy, retry = project.policy(config.allow_irreversible), project.retry_policy()
    if config.from_specs:
        pending = evo.tables_to_add(project.targets(), database.specs(cfg, missing_ok=True), ctx)
        pending = [(t, s) for t, s in pending if only is None or t.table == only]
        database.check_specs(cfg, [s for _, s in pending if s is not None])  # their SQL, before any DDL
        if not pending:
            what = f"{only} exists and is captured" if only else "every pipeline table exists and is captured"
            raise UsageError(f"nothing to evolve from the specs: {what}", file="<run config>", key="from_specs")
        planned = app.plan_new_tables(pending, ctx, policy, retry, "<run config from_specs>")
    else:
        changes = load_changes(config, project, cfg)
        refuse_duplicate_tables(changes)
        changes = [c for c in changes if only is None or c.qualified == only]
        if not changes:
            raise UsageError(f"the launch's changes no longer name {only}", file="<run config>", key="change_file")
        planned = app.plan_changes(changes, ctx, project.target, policy, retry, "<run config changes>")
    return [(p.report, p.record) for p in planned]  # every check passed, plans disjoint (app.evolve)


def launch_tags(config: EvolveConfig, changes_of: Sequence[RunRecord]) -> dict[str, str]:
    """Tags for the Dagster run: which tables, which change, what a failure leaves."""
    tables = ",".join(rec.table for rec in changes_of)
    if config.from_specs:
        change = "from_specs"
    else:
        named = [*config.change_files, *([config.change_file] if config.change_file and not (
            config.change_files or config.change_yaml) else [])]
        if config.change_yaml:
            named.append("change_yaml")
        change = ",".join(named)
    return {TABLES_TAG: tables, CHANGE_TAG: change, ON_FAILURE_TAG: config.on_failure}


def steps_md(data: dict[str, Any]) -> str:
    rows = [[s["layer"], s["action"], s["status"], s["compensation"], s["reversible"], s["seconds"], s["attempts"]]
            for s in data["steps"]]
    head = f"**evolution `{data['run_id']}`** of `{data['table']}`: **{data['status']}**\n\n"
    tail = f"\n\nfailed at `{data['failed_step']}`: {data['error']}" if data.get("error") else ""
    return head + md_table(["layer", "action", "status", "compensation", "reversible", "seconds", "attempts"],
                           rows) + tail


def outcomes_md(records: list[RunRecord]) -> str:
    rows = []
    for rec in records:
        data = evo.result_dict(rec)
        layers = ", ".join(f"{s['layer']} {s['status']}" for s in data["steps"])
        rows.append([rec.table, rec.run_id, data["status"], rec.failed_step or "", rec.error or "", layers])
    return md_table(["table", "evolution run", "status", "failed step", "error", "steps"], rows)
