# pipeledger: `make demo` and `make test` work on a fresh machine with Python >= 3.10.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin

.PHONY: demo test lint typecheck unit stress bench bench-server bench-search clean help

help:
	@echo "make demo   - install pipeledger in $(VENV), run examples/quickstart.py twice, show the cached run"
	@echo "make test   - install dev extras, run ruff, mypy and the test suite"
	@echo "make stress - the concurrency tests at full size (8 processes x 25 runs x 5 steps per database),"
	@echo "              the server's API fuzzed with 25 examples per operation (schemathesis), the contract"
	@echo "              suite on the SQLAlchemy Core path of every server, 300 generated filters per search test"
	@echo "make bench  - ledger-bench: pipeledger vs a raw SQLite floor vs ML Metadata (BENCH_ARGS=--quick),"
	@echo "              end-to-end overhead, import cost, parallel/dask speed-up (benchmarks/parallel.py)"
	@echo "make bench-server - ledger-bench for pipeledger and a raw-driver floor on MariaDB and PostgreSQL, then through pipeledger server"
	@echo "make bench-search - ledger-bench search phase: R = 1,000 and 100,000 on SQLite and PostgreSQL"

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
	$(BIN)/ruff check src tests examples benchmarks
	$(BIN)/ruff format --check src tests examples benchmarks
	PYTHONPATH=src $(BIN)/lint-imports

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

unit: $(VENV)/.installed-dev
	$(BIN)/pytest --durations=25

test: lint typecheck unit

stress: $(VENV)/.installed-dev
	PIPELEDGER_STRESS=1 $(BIN)/pytest -m stress -v tests/test_concurrency.py
	PIPELEDGER_STRESS=1 $(BIN)/pytest -s -v tests/test_fuzz_api.py
	PIPELEDGER_STRESS=1 $(BIN)/pytest -q tests/test_store_contract.py -k fastpath-off
	PIPELEDGER_STRESS=1 $(BIN)/pytest -q tests/test_search.py

# ledger-bench runs in its own virtualenv: ML Metadata 1.17.1 needs Python 3.11 and is never a
# dependency of pipeledger itself. (pytest: benchmarks/artifacts.py uses pipeledger.testing's helpers.)
BENCH_PYTHON ?= python3.11
BENCH_VENV := benchmarks/.venv
BENCH_ARGS ?=

$(BENCH_VENV)/.installed: pyproject.toml Makefile benchmarks/constraints.txt
	$(BENCH_PYTHON) -m venv $(BENCH_VENV)
	$(BENCH_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(BENCH_VENV)/bin/python -m pip install --quiet -c benchmarks/constraints.txt -e ".[mysql,postgresql,s3,server,dask]" "ml-metadata==1.17.1" "moto[server]>=5.0" "numpy>=1.24" "pytest>=8"
	@touch $@

bench: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks.run $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.e2e
	$(BENCH_VENV)/bin/python -m benchmarks.imports
	$(BENCH_VENV)/bin/python -m benchmarks.parallel
	$(BENCH_VENV)/bin/python -m benchmarks.artifacts

bench-server: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks.run --server $(BENCH_ARGS)
	$(BENCH_VENV)/bin/python -m benchmarks.server

bench-search: $(BENCH_VENV)/.installed
	$(BENCH_VENV)/bin/python -m benchmarks.search $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache
