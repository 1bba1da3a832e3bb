#!/usr/bin/env bash
# make test: lint, type-check, then pytest against one local stack that is always stopped afterwards.
set -uo pipefail
STATE="${1:-.migrate/test}"
BIN=.venv/bin
export MIGRATE_ASSETS_TEST_STATE_DIR="$PWD/$STATE"

rc=1
cleanup() {
  if [ "$rc" -ne 0 ]; then  # keep what the services said: the state directory is purged below
    for log in "$STATE"/connect/connect.log "$STATE"/registry.log "$STATE"/kafka/broker.log "$STATE"/pg/postgres.log; do
      [ -f "$log" ] && { echo "== last lines of $log"; grep -v "^\s*at " "$log" | tail -n 40; }
    done
  fi
  "$BIN/migrate-assets" stack down --state-dir "$STATE" --purge >/dev/null 2>&1 || true
}
trap cleanup EXIT INT TERM

# the UI test drives Debian's headless Chromium: install it like the stack installs Java (root, apt-get)
if ! command -v chromium >/dev/null 2>&1 && [ "$(id -u)" = 0 ] && [ "${MIGRATE_ASSETS_NO_INSTALL:-}" != 1 ] \
   && command -v apt-get >/dev/null 2>&1; then
  echo "== installing chromium (UI test)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get install -y -q chromium >/dev/null 2>&1 || { apt-get update -q >/dev/null 2>&1; \
    apt-get install -y -q chromium >/dev/null 2>&1; } || echo "chromium could not be installed: the UI test will skip"
fi

set -e
echo "== ruff"; "$BIN/ruff" check .
echo "== mypy"; "$BIN/mypy"
echo "== local stack"; "$BIN/migrate-assets" stack up --state-dir "$STATE"
set +e
echo "== pytest"
"$BIN/pytest" -q -p no:cacheprovider -n "${PYTEST_WORKERS:-3}" --dist loadfile ${PYTEST_ARGS:-} --durations=15 tests
rc=$?
if [ "$rc" -eq 5 ]; then echo "pytest collected no tests: failing"; rc=1; fi
exit "$rc"
