# The README's commands. `make test` installs what the tests need, then runs them all.
PYTHON ?= python3
export PYTHON

.PHONY: help deps test test-fast run demo bench lint up down

help:
	@echo "make test     install what the tests need, then run every test (unit, integration, browser)"
	@echo "make run      the whole product locally without Docker (needs redis-server or REDIS_URL)"
	@echo "make demo     the same on the synthetic feed, for machines without internet"
	@echo "make bench    benchmarks (print figures; see docs/benchmarks.md)"
	@echo "make lint     ruff, mypy and the import contracts (lint-imports)"
	@echo "make up       docker compose up --build"

deps:
	@scripts/install-deps.sh

test: deps
	$(PYTHON) -m pytest

test-fast: deps
	$(PYTHON) -m pytest tests/unit

run: deps
	$(PYTHON) -m qs_common.launcher

demo: deps
	SOURCE=synthetic $(PYTHON) -m qs_common.launcher

bench: deps
	$(PYTHON) bench/bench_pipeline.py
	@for b in bench/bench_analytics.py bench/bench_dashboard.py bench/bench_book.py; do [ -f $$b ] && $(PYTHON) $$b || true; done

lint:
	$(PYTHON) -m ruff check .
	$(PYTHON) -m mypy qs_common qs_analytics ingest worker dashboard
	@# import contracts of pyproject.toml (lint-imports, through this interpreter)
	$(PYTHON) -c 'from importlinter.cli import lint_imports_command; lint_imports_command()'

up:
	docker compose up --build

down:
	docker compose down
