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

.PHONY: up down status test lint typecheck deps debs test-debs python node bench fmt

up: debs python
	$(VENV)/bin/aipress up

down: python
	$(VENV)/bin/aipress down

status: python
	$(VENV)/bin/aipress status

test: deps lint typecheck
	$(PY) -m pytest -q -p no:cacheprovider --durations=25

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
