# Quick start: `make demo` and `make test` work on a fresh machine with Python 3.11.
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV := .venv
BIN := $(VENV)/bin
TEST_EXTRAS := test

.PHONY: demo test lint typecheck bench clean browser

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

test: $(VENV)/.test-installed browser
	$(BIN)/python -m pytest -q

lint: $(VENV)/.test-installed
	$(BIN)/python -m pip install --quiet ruff mypy
	$(BIN)/ruff check llm_audit_langchain tests bench
	$(BIN)/mypy

bench: $(VENV)/.test-installed
	$(BIN)/python bench/bench_overhead.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache logs
