# chatkeep: two commands for a fresh machine
#   make demo   runs the main example (Redis at $REDIS_URL or localhost:6379 if it answers,
#               else the in-memory fallback)
#   make test   installs everything into .venv and runs lint, types and the whole test suite
#   make chaos  a minute of the chaos drill (SIGKILL, proxy cuts, maxmemory under load):
#               prints acked / stored / lost / duplicated / time degraded (CHAOS_SECONDS=...)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS := dev,fast,langchain,llama-index,langgraph,cli,otel,bench

.PHONY: demo test install lint typecheck pytest wheel clean bench chaos

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-core: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

$(VENV)/.installed-all: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e ".[$(EXTRAS)]"
	touch $@ $(VENV)/.installed-core

demo: $(VENV)/.installed-core
	$(BIN)/python examples/quickstart.py

install: $(VENV)/.installed-all

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/lint-imports

typecheck: install
	$(BIN)/mypy --strict

pytest: install
	$(BIN)/python -m pytest

wheel: install
	rm -rf dist
	$(BIN)/python -m build --wheel --no-isolation --outdir dist . > /dev/null
	$(BIN)/python tests/support/check_wheel.py dist

test: lint typecheck wheel pytest

clean:
	rm -rf $(VENV) dist build .pytest_cache .mypy_cache .ruff_cache

bench: install
	$(BIN)/python bench/run.py

CHAOS_SECONDS ?= 60
CHAOS_SEED    ?= 14

chaos: install
	$(BIN)/python -W ignore::UserWarning -m tests.faults.chaos --seconds $(CHAOS_SECONDS) --seed $(CHAOS_SEED)
