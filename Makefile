# Closedloop developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp

.PHONY: demo test test-full lint typecheck unit integration bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[test]'
	@touch $(STAMP)

demo: $(STAMP)
	$(BIN)/closedloop demo

lint: $(STAMP)
	$(BIN)/ruff check sync workers sandboxes tests bench
	$(BIN)/ruff format --check sync workers sandboxes tests bench

typecheck: $(STAMP)
	$(BIN)/mypy sync workers sandboxes

test: lint typecheck
	$(BIN)/pytest -q -p no:cacheprovider

test-full: lint typecheck
	CLOSEDLOOP_TEST_PROFILE=full $(BIN)/pytest -q -p no:cacheprovider

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/sync_calls.py
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache build *.egg-info
