# coexist — run `make help` for the targets.
VENV ?= .venv
PYTHON ?= python3
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.DEFAULT_GOAL := help
.PHONY: help install demo test unit integration chaos lint typecheck format bench clean

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-12s %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e ".[dev]"
	@touch $(STAMP)

install: $(STAMP) ## Create .venv and install coexist with its dev tools

demo: $(STAMP) ## Run a whole onboarding against the built-in Meta sandbox (SQLite, in-process)
	$(BIN)/coexist demo

test: $(STAMP) ## Lint, type-check and run every test (integration needs PostgreSQL and Redis)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	$(BIN)/pytest --cov --cov-report=term:skip-covered

unit: $(STAMP) ## Only the unit tests (no services needed)
	$(BIN)/pytest -m "not integration"

integration: $(STAMP) ## Only the integration tests (real PostgreSQL, Redis, Celery worker)
	$(BIN)/pytest -m integration

chaos: $(STAMP) ## Only the chaos tests (killed workers, outages, faulty Graph API; docs/reliability.md)
	$(BIN)/pytest -m chaos -v

lint: $(STAMP) ## ruff lint and format check
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: $(STAMP) ## mypy --strict on the source
	$(BIN)/mypy

format: $(STAMP) ## Apply ruff's fixes and formatting
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

bench: $(STAMP) ## The benchmarks (JSON on stdout; needs PostgreSQL and Redis)
	$(BIN)/python -m benchmarks.signup_latency --workers 8
	$(BIN)/python -m benchmarks.ingest
	$(BIN)/python -m benchmarks.intake
	$(BIN)/python -m benchmarks.throughput_guard
	$(BIN)/python -m benchmarks.push
	$(BIN)/python -m benchmarks.export
	$(BIN)/python -m benchmarks.console
	$(BIN)/python -m benchmarks.metrics_scrape

clean: ## Remove the virtualenv and caches
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage var
