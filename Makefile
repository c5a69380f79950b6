# riskcast developer tasks. `make` (or `make help`) lists them.
PY ?= python3

.PHONY: help install test test-fast lint serve bench
help: ## this list
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-10s %s\n", $$1, $$2}'

install: ## install riskcast with test and dev tools into the active environment
	$(PY) -m pip install -e '.[dev]'

test: ## the whole suite (needs PostgreSQL and Redis on 127.0.0.1), as CI runs it
	pytest

test-fast: ## everything but the process-killing fault tests
	pytest -m "not fault"

lint: ## ruff and mypy
	ruff check . && ruff format --check . && mypy broadcaster workers bench && mypy --strict messages

serve: ## run everything in one process on embedded defaults
	riskcast serve

bench: ## the benchmark (needs RISKCAST_DATABASE_URL=postgresql://... and RISKCAST_BROKER_URL=redis://...)
	riskcast bench
