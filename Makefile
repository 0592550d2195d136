# Puhui (浦汇). The two commands: `make run` and `make test`.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: setup run test check unit integration clean

setup: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e ".[dev]"
	touch $@

## make run: setup, then broker + worker + API + simulator in the foreground (Ctrl-C stops all)
run: setup
	bash infra/scripts/prereqs.sh
	$(BIN)/puhui up

## make test: setup, install and start what the tests need, lint, run the whole suite
test: setup
	bash infra/scripts/test.sh

## make check: ruff (lint and format), import-linter, mypy
check: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports
	$(BIN)/mypy

## the fast layer alone
unit: setup
	$(BIN)/pytest -m unit -q

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache .hypothesis
