# The README's commands. Everything runs in the project's virtual environment (.venv, created when missing),
# installed from the locks: requirements.lock to run, requirements-dev.lock to test and lint (make lock renews them).
# PYTHON is the interpreter that creates .venv (CPython 3.11, what the locks are for).
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
export PYTHON VENV

.PHONY: help deps run-deps test test-fast run demo bench lint lock up down k8s

help:
	@echo "make test     install what the tests need, then run every test (unit, integration, browser)"
	@echo "make run      the whole product locally without Docker (needs redis-server or REDIS_URL)"
	@echo "make demo     the same on the synthetic feed, for machines without internet"
	@echo "make bench    benchmarks side by side in one run (print figures; BENCH_ARGS=--quick; docs/benchmarks.md)"
	@echo "make lint     ruff, mypy and the import contracts (lint-imports)"
	@echo "make k8s      render every Kubernetes overlay (k8s/) and validate it against the schemas"
	@echo "make lock     re-lock the dependencies after a change to pyproject.toml (needs uv)"
	@echo "make up       docker compose up --build"

# what the tests and lint need: redis-server, chromium, the dev lock
deps:
	@scripts/install-deps.sh dev

# what running needs: redis-server (unless REDIS_URL is set), the runtime lock
run-deps:
	@scripts/install-deps.sh run

test: deps
	$(PY) -m pytest

test-fast: deps
	$(PY) -m pytest tests/unit

run: run-deps
	$(PY) -m qs_common.launcher

demo: run-deps
	SOURCE=synthetic $(PY) -m qs_common.launcher

# the benchmark contract (bench/run_all.py): every figure side by side in one run; BENCH_ARGS=--quick for a short one
bench: deps
	$(PY) -m bench $(BENCH_ARGS)

lint: deps
	$(PY) -m ruff check .
	$(PY) -m mypy qs_common qs_analytics ingest worker dashboard
	@# import contracts of pyproject.toml (lint-imports, through this interpreter)
	$(PY) -c 'from importlinter.cli import lint_imports_command; lint_imports_command()'

# every overlay of k8s/overlays rendered with kustomize, every object validated (k8s/validate.py); no cluster needed
k8s: deps
	$(PY) k8s/validate.py

lock:
	@scripts/lock.sh

up:
	docker compose up --build

down:
	docker compose down
