# pipeledger: `make demo` and `make test` work on a fresh machine with Python >= 3.10.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit clean help

help:
	@echo "make demo   - install pipeledger in $(VENV), run examples/quickstart.py twice, show the cached run"
	@echo "make test   - install dev extras, run ruff, mypy and the test suite"

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 10) else "pipeledger needs Python >= 3.10; set PYTHON=python3.x")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[examples,pandas]"
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	@touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	@echo "== first run: every step computes"
	$(BIN)/python examples/quickstart.py
	@echo "== second run: same code, parameters and data, so every step is cached"
	$(BIN)/python examples/quickstart.py
	$(BIN)/pipeledger run show --cache

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests examples
	$(BIN)/ruff format --check src tests examples

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/pytest

test: lint typecheck unit

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
