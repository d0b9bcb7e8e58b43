# Closedloop developer entry points. `make demo` and `make test` work on a fresh machine.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
# Test files run on this many processes (each with its own Redis database and PostgreSQL ones);
# most suites wait on sockets and subprocesses, so two processes fit two cores.
TEST_WORKERS ?= 2
PYTEST := $(BIN)/pytest -q -p no:cacheprovider -n $(TEST_WORKERS) --dist loadfile
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
	$(PYTEST)

test-full: lint typecheck
	CLOSEDLOOP_TEST_PROFILE=full $(PYTEST)

bench: $(STAMP)
	$(BIN)/python bench/engine.py
	$(BIN)/python bench/sync_calls.py
	$(BIN)/python bench/latency.py

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache build *.egg-info
