# Every target builds the environment from the lock files first, so each one works on a fresh
# machine that has only Python 3.11+ and make. CI runs `make test` (see .ci/run).
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

export DAGSTER_HOME ?= $(CURDIR)/.dagster_home

.PHONY: setup demo test lint format dev bench sandbox clean

setup: $(STAMP)

# --compile-bytecode writes the .pyc files at install time. uv leaves them out by default, and
# where PYTHONDONTWRITEBYTECODE is set Python never caches them either: every process then
# compiles Dagster, SQLAlchemy and matplotlib from source on import (about 2 s for `import
# dagster` alone on a 2-core machine, and again inside a run for what Dagster imports late).
$(STAMP): requirements.lock requirements-bootstrap.lock pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --require-hashes -r requirements-bootstrap.lock
	$(BIN)/uv pip sync --quiet --compile-bytecode --python $(BIN)/python --require-hashes requirements.lock
	$(BIN)/uv pip install --quiet --python $(BIN)/python --no-deps -e .
	touch $@

demo: $(STAMP)
	$(BIN)/hellotracks demo

test: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/python -m pytest -n 2 --dist loadgroup

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

dev: $(STAMP)
	$(BIN)/hellotracks dev

sandbox: $(STAMP)
	$(BIN)/hellotracks sandbox

bench: $(STAMP)
	$(BIN)/hellotracks bench

clean:
	rm -rf $(VENV) warehouse .dagster_home
