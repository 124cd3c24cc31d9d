# Quick start: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
TEST_EXTRAS := test

.PHONY: demo test lint typecheck bench conformance conformance-latest clean browser

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.demo-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]"
	touch $@ $(VENV)/.demo-installed

demo: $(VENV)/.demo-installed
	$(BIN)/python -m llm_audit_langchain.demo

# The browser tests need Debian's chromium; install it when we can (root, apt), never fail on it.
browser:
	@command -v chromium >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null \
	  && (apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1 \
	      || (apt-get update -qq >/dev/null 2>&1 \
	          && apt-get install -y -qq chromium chromium-driver >/dev/null 2>&1)) \
	  || echo "no chromium: the browser tests will be skipped"; } || true

# Our suite, then the host-conformance subset (the frameworks' own tests where our handler once
# changed what they saw, plain and with the handler injected; about two minutes).
test: $(VENV)/.test-installed browser
	$(BIN)/python -m pytest -q
	$(BIN)/python conformance/run.py --quick

# The installed langchain-core's and langgraph's whole unit-test suites, plain and injected.
conformance: $(VENV)/.test-installed
	$(BIN)/python conformance/run.py --workers 2

# The same against the newest langchain-core and langgraph the package index serves (own venv).
conformance-latest: | $(BIN)/python
	$(PYTHON) -m venv .venv-conformance-latest
	.venv-conformance-latest/bin/python -m pip install --quiet -e ".[$(TEST_EXTRAS)]"
	.venv-conformance-latest/bin/python -m pip install --quiet --upgrade langchain-core langgraph
	.venv-conformance-latest/bin/python conformance/run.py --workers 2

lint: $(VENV)/.test-installed
	$(BIN)/python -m pip install --quiet ruff mypy
	$(BIN)/ruff check llm_audit_langchain tests bench conformance
	$(BIN)/mypy

bench: $(VENV)/.test-installed
	$(BIN)/python bench/bench_overhead.py

clean:
	rm -rf $(VENV) .venv-conformance-latest .conformance .pytest_cache .mypy_cache .ruff_cache logs
