# Clarion. `make run` and `make test` are all the set-up there is (Python 3.11+ and make).
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: run test lint bench bench-scaleout bench-faults lock clean

$(STAMP): requirements.lock pyproject.toml sdk/pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Clarion needs Python 3.11 or newer: run make PYTHON=python3.11 ...")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements.lock
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps --no-build-isolation -e . -e sdk
	@touch $@

## Start the whole system: SQLite under ./var, embedded worker, demo data.
run: $(STAMP)
	$(BIN)/clarion serve

## Lint, type-check, then the whole suite on SQLite and on PostgreSQL.
test: $(STAMP) lint
	$(BIN)/python -m pytest
	$(BIN)/python scripts/pg_suite.py

lint: $(STAMP)
	$(BIN)/ruff check src tests bench scripts sdk examples
	$(BIN)/ruff format --check src tests bench scripts sdk examples
	$(BIN)/mypy

## Benchmarks: print figures and ratios (not part of make test).
bench: $(STAMP)
	$(BIN)/python bench/trigger.py
	$(BIN)/python bench/render.py
	$(BIN)/python bench/dispatch.py
	$(BIN)/python bench/audience.py
	$(BIN)/python bench/broadcast.py --fcm

## Scale-out on this machine (needs PostgreSQL): 1-3 worker processes, 1-2 API processes.
bench-scaleout: $(STAMP)
	$(BIN)/python bench/scaleout.py

## The fault test at full size (100,000 recipients; kills, a PostgreSQL restart): prints counts.
bench-faults: $(STAMP)
	$(BIN)/python bench/faults.py

## Re-pin every dependency (run after changing pyproject.toml).
lock:
	rm -rf /tmp/clarion-lock && $(PYTHON) -m venv /tmp/clarion-lock
	/tmp/clarion-lock/bin/pip install --quiet --upgrade -e '.[dev]' -e 'sdk[redis,sql]' setuptools
	/tmp/clarion-lock/bin/pip freeze --all --exclude-editable | grep -v '^pip==' > requirements.lock
	rm -rf /tmp/clarion-lock

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
