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
DEMO_STAMP := $(VENV)/.demo-installed
CHROMIUM ?= $(shell command -v chromium || command -v chromium-browser)
# Notebook workspaces (docs/workspaces.md): the hub's own venv (JupyterHub, JupyterLab, the builder),
# configurable-http-proxy from npm into notebooks_ext/hub, and the JupyterLab extension built from npm.
# Each is a file target, so a second `make up` reinstalls and rebuilds nothing that did not change.
HUB_VENV := .venv-hub
HUB_STAMP := $(HUB_VENV)/.installed
CHP_STAMP := notebooks_ext/hub/node_modules/.installed
LABEXT := notebooks_ext/labextension
LABEXT_NODE_STAMP := $(LABEXT)/node_modules/.installed
LABEXT_BUILT := notebooks_ext/jupyter-data/labextensions/cellar-notebooks/package.json
LABEXT_SOURCES := $(wildcard $(LABEXT)/src/*.ts $(LABEXT)/schema/*.json $(LABEXT)/style/*) $(LABEXT)/tsconfig.json

.PHONY: up install hub-install demo test test-fast lint format bench clean

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

$(HUB_STAMP): notebooks_ext/requirements-hub.txt requirements-demo.txt sdk/pyproject.toml
	$(PYTHON) -m venv $(HUB_VENV)
	$(HUB_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(HUB_VENV)/bin/python -m pip install --quiet -r notebooks_ext/requirements-hub.txt -r requirements-demo.txt
	$(HUB_VENV)/bin/python -m pip install --quiet --no-deps -e sdk
	touch $@

$(CHP_STAMP): notebooks_ext/hub/package.json notebooks_ext/hub/package-lock.json
	cd notebooks_ext/hub && npm ci --no-audit --no-fund --loglevel=error
	touch $@

$(LABEXT_NODE_STAMP): $(LABEXT)/package.json $(LABEXT)/package-lock.json
	cd $(LABEXT) && npm ci --no-audit --no-fund --loglevel=error
	touch $@

# tsc, then the current JupyterLab builder (jupyter-builder + @jupyter/builder, Rspack) into
# notebooks_ext/jupyter-data, which the hub's spawner puts on the servers' JUPYTER_PATH.
$(LABEXT_BUILT): $(HUB_STAMP) $(LABEXT_NODE_STAMP) $(LABEXT_SOURCES)
	cd $(LABEXT) && PATH="$(abspath $(HUB_VENV)/bin):$$PATH" npm run --silent build
	touch $@

## hub-install: what the `hub` process needs (run by `make up` and `make test`).
hub-install: $(HUB_STAMP) $(CHP_STAMP) $(LABEXT_BUILT)

install: $(RUNTIME_STAMP)

## up: install, migrate, create the first admin and demo team, run every process (Ctrl-C stops all).
up: $(RUNTIME_STAMP) hub-install
	$(PY) manage.py migrate --noinput
	$(PY) manage.py cellar_init
	export PATH="$(abspath $(BIN)):$$PATH" REDIS_URL="$$($(PY) manage.py cellar_env --get REDIS_URL)" \
	  ARTIFACT_STORE_URL="$$($(PY) manage.py cellar_env --get ARTIFACT_STORE_URL)" \
	  CELLAR_API_URL="$${CELLAR_API_URL:-http://127.0.0.1:$${CELLAR_PORT:-8000}}" \
	  CELLAR_WORKER_TOKEN="$$($(PY) manage.py cellar_worker_token)" \
	  CELLAR_SERVE_TOKEN="$$($(PY) manage.py cellar_serve_token)" \
	  CELLAR_ENGINE_POOL_WORKERS="$${CELLAR_ENGINE_POOL_WORKERS:-$$($(PY) manage.py cellar_pool_capacity)}"; \
	  exec $(BIN)/honcho start -f Procfile

$(DEMO_STAMP): $(RUNTIME_STAMP) requirements-demo.txt
	$(PY) -m pip install --quiet -r requirements-demo.txt
	touch $@

## demo: with `make up` running (another terminal, same CELLAR_HOME/CELLAR_PORT): the whole journey from
## a notebook to an A/B-tested, promoted model (examples/demo/). Safe to run again.
demo: $(DEMO_STAMP)
	@home="$$($(PY) manage.py cellar_env --get CELLAR_HOME)"; mkdir -p "$$home/demo"; \
	  test -s "$$home/demo/password" || (umask 077; $(PY) -c 'import secrets; print(secrets.token_urlsafe(12))' > "$$home/demo/password"); \
	  $(PY) manage.py cellar_bootstrap --team demo --user demo --password "$$(cat "$$home/demo/password")" \
	    --token-out "$$home/demo/token" >/dev/null && \
	  $(PY) examples/demo/run_demo.py --home "$$home" --token-file "$$home/demo/token" --password-file "$$home/demo/password"

## test: lint, then the whole suite (unit, API, processes, browser) on $DATABASE_URL, then the
## database-sensitive tests again on SQLite.
test: $(DEV_STAMP) $(MLFLOW_STAMP) $(DEMO_STAMP) hub-install
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
	rm -rf $(VENV) $(MLFLOW_VENV) $(HUB_VENV) var .pytest_cache .ruff_cache notebooks_ext/jupyter-data \
	  notebooks_ext/hub/node_modules $(LABEXT)/node_modules $(LABEXT)/lib
