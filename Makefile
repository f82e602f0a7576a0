# The two commands a newcomer needs: `make demo` and `make test`.
# Each does its own set-up on a fresh Debian 12 machine: the venv, the packages, the services.

SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
SITE ?= var/demo-site
PY_DIRS := config protocols server alarms historian hmi sim bench tests

.PHONY: demo test lint venv services site

$(BIN)/.installed: pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null \
		|| (apt-get update -qq && apt-get install -y -qq python3-venv)
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@touch $@

venv: $(BIN)/.installed

services:
	bash scripts/services.sh

$(SITE)/site.toml: | venv
	$(BIN)/parkgrid gen-site --out $(SITE) --seed 1

site: $(SITE)/site.toml

demo: venv services
	$(BIN)/parkgrid demo --site $(SITE)

lint: venv
	$(BIN)/ruff check $(PY_DIRS)
	$(BIN)/ruff format --check $(PY_DIRS)
	$(BIN)/mypy $(PY_DIRS)

test: venv services lint
	$(BIN)/pytest
