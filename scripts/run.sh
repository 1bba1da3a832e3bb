#!/usr/bin/env bash
# make run: start the local stack, set up the shop example, run evolve_pipeline (add a column across every layer)
# and print the report. Safe to run again: the stack and the example are kept, the change adds a fresh column.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="${MIGRATE_ASSETS_RUN_STATE:-.migrate/run}"
BIN=.venv/bin
echo "== local stack ($STATE)"
"$BIN/migrate-assets" stack up --state-dir "$STATE"
eval "$("$BIN/python" examples/stack_env.py "$STATE")"
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.migrate/dagster}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
echo "== shop example + evolve_pipeline"
exec "$BIN/python" examples/run_demo.py
