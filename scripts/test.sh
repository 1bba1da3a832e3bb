#!/usr/bin/env bash
# make test: lint, type-check, then pytest against one local stack that is always stopped afterwards.
set -uo pipefail
STATE="${1:-.migrate/test}"
BIN=.venv/bin
export MIGRATE_ASSETS_TEST_STATE_DIR="$PWD/$STATE"

cleanup() {
  "$BIN/migrate-assets" stack down --state-dir "$STATE" --purge >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

set -e
echo "== ruff"; "$BIN/ruff" check .
echo "== mypy"; "$BIN/mypy"
echo "== local stack"; "$BIN/migrate-assets" stack up --state-dir "$STATE" --connect-mode standalone
set +e
echo "== pytest"
"$BIN/pytest" -q -p no:cacheprovider -n "${PYTEST_WORKERS:-3}" --dist loadfile ${PYTEST_ARGS:-} --durations=15 tests
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing"; rc=1; fi
exit "$rc"
