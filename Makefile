# mecmig: the two commands a user needs are `make demo` and `make test`.
# Both run scripts/bootstrap first (idempotent: installs only what is missing).
VENV    ?= .venv
PY      := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)
SCENARIO ?= scenarios/edge.yaml
# every package but the tests: mypy --strict covers all of them (no hand-kept list)
PACKAGES := $(filter-out tests,$(patsubst %/__init__.py,%,$(wildcard */__init__.py)))
PYTEST_ARGS ?=

.PHONY: help bootstrap bench-deps demo test lint typecheck unit integration format clean

help:
	@echo "make demo        install what is missing, then run $(SCENARIO) for real, with live migration"
	@echo "make test        install what is missing, then lint, type-check and run every test"
	@echo "make unit        unit tests only (pure logic, no root needed)"
	@echo "make integration integration tests only (root, real OVS/Mininet/CRIU/runc)"
	@echo "make format      apply ruff's formatter"
	@echo "make bench-deps  also install Podman, the peer that mecmig bench migration measures beside mecmig"

bootstrap:
	@scripts/bootstrap

bench-deps:
	@scripts/bootstrap --podman

demo: bootstrap
	$(PY) -m mecmig.cli demo --scenario $(SCENARIO)

test: bootstrap lint typecheck
	$(PY) -m pytest $(PYTEST_ARGS)

lint: bootstrap
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

typecheck: bootstrap
	$(VENV)/bin/mypy $(PACKAGES)

unit: bootstrap
	$(PY) -m pytest tests/unit $(PYTEST_ARGS)

integration: bootstrap
	$(PY) -m pytest tests/integration $(PYTEST_ARGS)

format: bootstrap
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

clean:
	rm -rf $(VENV) .deps .pytest_cache .mypy_cache .ruff_cache *.egg-info
