#!/usr/bin/env bash
# make dev: the Dagster UI (http://127.0.0.1:3000) on the local stack with the shop example's config.
set -euo pipefail
cd "$(dirname "$0")/.."
STATE="${MIGRATE_ASSETS_RUN_STATE:-.migrate/run}"
BIN=.venv/bin
"$BIN/migrate-assets" stack up --state-dir "$STATE"
eval "$("$BIN/python" examples/stack_env.py "$STATE")"
"$BIN/python" examples/setup_shop.py
export DAGSTER_HOME="${DAGSTER_HOME:-$PWD/.migrate/dagster}"
mkdir -p "$DAGSTER_HOME"
[ -f "$DAGSTER_HOME/dagster.yaml" ] || printf 'telemetry:\n  enabled: false\n' > "$DAGSTER_HOME/dagster.yaml"
# one schema change at a time: a limit for the DDL pool (migrate_assets_ddl) and any other pool (docs/dagster.md)
grep -q '^concurrency:' "$DAGSTER_HOME/dagster.yaml" ||
  printf 'concurrency:\n  pools:\n    default_limit: 1\n' >> "$DAGSTER_HOME/dagster.yaml"
echo "Dagster UI: http://127.0.0.1:${DAGSTER_PORT:-3000}  (config: $MIGRATE_ASSETS_CONFIG)"
exec "$BIN/dagster" dev -w workspace.yaml -h 127.0.0.1 -p "${DAGSTER_PORT:-3000}"
