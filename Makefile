# The README's two commands: `make up` runs the platform, `make test` runs every test.
# Both install what they need (Debian packages, the Python venv from uv.lock, npm tools).
SHELL := /bin/bash
UV_VERSION := 0.13.9
BOOT := .cache/bootstrap
UV := $(BOOT)/bin/uv
VENV := .venv
PY := $(VENV)/bin/python
# Crash tests start many short Python processes: let them reuse compiled bytecode.
unexport PYTHONDONTWRITEBYTECODE

.PHONY: up down status test pytest lint typecheck deps debs test-debs python node bench fmt

up: debs python
	$(VENV)/bin/aipress up

down: python
	$(VENV)/bin/aipress down

status: python
	$(VENV)/bin/aipress status

# Lint, mypy and pytest run side by side: mypy from a clean clone's cold cache takes over a
# minute, and pytest spends most of its time waiting on servers and subprocesses.
test: deps
	$(MAKE) --no-print-directory -j3 --output-sync=line lint typecheck pytest

# pytest-xdist workers, one test file at a time each, so a module's fixtures stay in one
# process; each worker has its own MariaDB, Chromium and log/secret-record files.
PYTEST_WORKERS ?= 2
pytest: python
	$(PY) -m pytest -q -p no:cacheprovider --durations=25 -n $(PYTEST_WORKERS) --dist loadfile

lint: python
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/lint-imports

typecheck: python
	$(VENV)/bin/mypy

fmt: python
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

bench: deps
	$(PY) benchmarks/api.py

deps: test-debs python node

debs:
	bash scripts/install-debs.sh

test-debs:
	bash scripts/install-debs.sh --with-postgres --with-browser

$(UV):
	python3 -m venv $(BOOT)
	$(BOOT)/bin/pip install -q uv==$(UV_VERSION)

python: $(UV)
	$(UV) sync --frozen --quiet

node: node_modules/.package-lock.json

node_modules/.package-lock.json: package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
