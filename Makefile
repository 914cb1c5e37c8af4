# Each target creates .venv and installs the project into it when missing: with the dev extra for
# test, lint, bench and generate; with only the service extra for demo.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# make demo installs only the package and its service extra (a dev install already holds them).
SERVICE_STAMP := $(VENV)/.installed-service
# The oldest OpenTelemetry packages pyproject.toml admits, pinned; test-oldest runs against them.
OLDEST := .venv-oldest
OLDEST_CONSTRAINTS := ci/oldest-constraints.txt
OLDEST_STAMP := $(OLDEST)/.installed
# The tests that exercise the SDK: every unit test plus the integration tests of the readers.
SDK_TESTS := tests/unit tests/integration/test_telemetry.py tests/integration/test_prometheus_integration.py \
	tests/integration/test_runtime.py tests/integration/test_exactness.py

.PHONY: demo test test-oldest lint bench generate clean

$(STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

$(SERVICE_STAMP): pyproject.toml
	test -d $(VENV) || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[service]'
	touch $(SERVICE_STAMP)

$(OLDEST_STAMP): pyproject.toml $(OLDEST_CONSTRAINTS)
	test -d $(OLDEST) || $(PYTHON) -m venv $(OLDEST)
	$(OLDEST)/bin/python -m pip install --quiet --upgrade pip
	$(OLDEST)/bin/python -m pip install --quiet --constraint $(OLDEST_CONSTRAINTS) -e '.[test,service]'
	touch $(OLDEST_STAMP)

demo: $(SERVICE_STAMP)
	$(BIN)/eddie-otel demo

test: $(STAMP)
	$(BIN)/python -m pytest -n 4

test-oldest: $(OLDEST_STAMP)
	$(OLDEST)/bin/python -m pip list --format=freeze | grep -i '^opentelemetry-'
	$(OLDEST)/bin/python -m pytest -n 4 -p no:cacheprovider $(SDK_TESTS)

lint: $(STAMP)
	$(BIN)/ruff check eddie_otel tests benchmarks
	$(BIN)/ruff format --check eddie_otel tests benchmarks
	$(BIN)/mypy

bench: $(STAMP)
	$(BIN)/python -m benchmarks

generate: $(STAMP)
	$(BIN)/python -m eddie_otel.ops.generate

clean:
	rm -rf $(VENV) $(OLDEST) dist build .pytest_cache .mypy_cache .ruff_cache
