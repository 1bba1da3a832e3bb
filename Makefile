# migrate-assets — everything runs from .venv; services come from the local stack (migrate_assets/local).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
TEST_STATE := .migrate/test
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: install lint typecheck test test-fast run dev bench stack-up stack-down clean

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[dev]'
	@# test-only: dagster-iceberg declares pyiceberg<0.12 (we need 0.12); installed without its pins (pyproject.toml)
	$(PY) -m pip install -q --no-deps 'dagster-iceberg==0.3.14'
	@touch $(STAMP)

install: $(STAMP)

lint: install
	$(VENV)/bin/ruff check .

typecheck: install
	$(VENV)/bin/mypy

# Starts the whole local stack once, runs ruff, mypy and pytest against it, and stops the stack again,
# also when a step fails (scripts/test.sh traps EXIT).
test: install
	bash scripts/test.sh $(TEST_STATE)

test-fast: install
	$(VENV)/bin/pytest -q -x --ignore=tests/local

run: install
	bash scripts/run.sh

dev: install
	bash scripts/dev.sh

bench: install
	$(PY) -m benchmarks.run

stack-up: install
	$(VENV)/bin/migrate-assets stack up

stack-down: install
	$(VENV)/bin/migrate-assets stack down

clean:
	-$(VENV)/bin/migrate-assets stack down --state-dir $(TEST_STATE) --purge 2>/dev/null
	rm -rf .pytest_cache .mypy_cache .ruff_cache
