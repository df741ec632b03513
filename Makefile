# Cellar: `make up` runs the platform on the embedded defaults; `make test` runs every test.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PY := $(BIN)/python
RUNTIME_STAMP := $(VENV)/.runtime-installed
DEV_STAMP := $(VENV)/.dev-installed
# The unmodified MLflow client/server, for compatibility tests and benchmarks: its own venv,
# since MLflow pins versions (gunicorn, flask, numpy…) that Cellar does not share.
MLFLOW_VENV := .venv-mlflow
MLFLOW_STAMP := $(MLFLOW_VENV)/.installed
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser)

.PHONY: up install test test-fast lint format bench clean

$(PY):
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip

$(RUNTIME_STAMP): $(PY) requirements.txt pyproject.toml sdk/pyproject.toml workers/pyproject.toml
	$(PY) -m pip install --quiet -r requirements.txt
	$(PY) -m pip install --quiet --no-deps -e sdk -e workers -e .
	touch $@

$(DEV_STAMP): $(RUNTIME_STAMP) requirements-dev.txt
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

$(MLFLOW_STAMP): requirements-mlflow.txt
	$(PYTHON) -m venv $(MLFLOW_VENV)
	$(MLFLOW_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(MLFLOW_VENV)/bin/python -m pip install --quiet -r requirements-mlflow.txt
	touch $@

install: $(RUNTIME_STAMP)

## up: install, migrate, create the first admin and demo team, run every process (Ctrl-C stops all).
up: $(RUNTIME_STAMP)
	$(PY) manage.py migrate --noinput
	$(PY) manage.py cellar_init
	export PATH="$(abspath $(BIN)):$$PATH" REDIS_URL="$$($(PY) manage.py cellar_env --get REDIS_URL)" \
	  ARTIFACT_STORE_URL="$$($(PY) manage.py cellar_env --get ARTIFACT_STORE_URL)" \
	  CELLAR_API_URL="$${CELLAR_API_URL:-http://127.0.0.1:$${CELLAR_PORT:-8000}}"; \
	  exec $(BIN)/honcho start -f Procfile

## test: lint, then the whole suite (unit, API, processes, browser) on $DATABASE_URL, then the
## database-sensitive tests again on SQLite.
test: $(DEV_STAMP) $(MLFLOW_STAMP)
	@test -n "$(CHROMIUM)" || { echo "Chromium is missing: the browser tests need it. Install it with: apt-get install -y chromium" >&2; exit 1; }
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(PY) -m pytest
	@if [ -n "$$DATABASE_URL" ]; then echo "--- database-sensitive tests on SQLite ---"; \
	  env -u DATABASE_URL $(PY) -m pytest -m both_databases -p no:cacheprovider; fi

## test-fast: the quick inner loop (no browser, no process tests).
test-fast: $(DEV_STAMP) $(MLFLOW_STAMP)
	$(PY) -m pytest -m "not e2e and not processes" -x -q

lint: $(DEV_STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(DEV_STAMP)
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

## bench: the side-by-side benchmarks in benchmarks/.
bench: $(DEV_STAMP) $(MLFLOW_STAMP)
	$(PY) benchmarks/run.py

clean:
	rm -rf $(VENV) $(MLFLOW_VENV) var .pytest_cache .ruff_cache
