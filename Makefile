# The two commands a new user runs: `make run` and `make test` (see README.md).
SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml | sha1sum | cut -c1-12)
# The browser tests drive this Chromium (Debian's `chromium` package).
CHROMIUM ?= /usr/bin/chromium

.PHONY: run test venv browser lint clean stack bench

$(BIN)/python:
	$(PYTHON) -m venv $(VENV) || python3 -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q -e '.[dev]'
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

venv: $(STAMP)

## make run: set up, load the demo catalog if the store is empty, serve at http://127.0.0.1:8000
run: venv
	$(BIN)/appstore demo --if-empty
	$(BIN)/appstore serve

## make stack: compose.yaml's processes on this machine (PostgreSQL and Kafka started as for
## make test, throw-away), a status screen, logs in var/stack/logs; Ctrl-C stops everything.
## STACK_ARGS="--workers 2 --scale consumer=2" makes it lighter (appstore stack --help).
stack: venv
	PYTHON=$(BIN)/python scripts/with-services.sh sh -c 'exec "$$0" stack --demo \
		--database-url "$$APPSTORE_TEST_POSTGRES_URL" --kafka "$$APPSTORE_TEST_KAFKA_BOOTSTRAP" "$$@"' \
		$(BIN)/appstore $(STACK_ARGS)

## make browser: install Debian's chromium for the browser tests when it is missing
browser:
	@scripts/ensure-chromium.sh "$(CHROMIUM)"

## make test: lint, type-check, start PostgreSQL and Kafka, run every test, stop them again
# APPSTORE_TEST_REQUIRE_SERVICES: a test needing one of these services that skips fails
# instead (tests/conftest.py), so a lost service or browser never turns into a green run.
test: venv browser
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy
	APPSTORE_TEST_REQUIRE_SERVICES="postgres kafka browser" APPSTORE_TEST_CHROMIUM=$(CHROMIUM) \
		PYTHON=$(BIN)/python scripts/with-services.sh $(BIN)/pytest -p no:cacheprovider $(PYTEST_ARGS)

lint: venv
	$(BIN)/ruff check . && $(BIN)/ruff format --check . && $(BIN)/mypy

## make bench: every bench (stack aside) in one table (figure, raw baseline of the same run, ratio, goal,
## met) against a throw-away PostgreSQL; BENCH_ARGS=--quick for a smoke run
bench: venv
	PYTHON=$(BIN)/python scripts/with-services.sh $(BIN)/python -m bench.all $(BENCH_ARGS)

## make bench-NAME: run bench/NAME.py against a throw-away PostgreSQL (and Kafka); BENCH_ARGS=...
bench-%: venv
	PYTHON=$(BIN)/python scripts/with-services.sh $(BIN)/python -m bench.$* $(BENCH_ARGS)

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache
