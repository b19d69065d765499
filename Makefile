# chatkeep: two commands for a fresh machine
#   make demo   runs the main example (Redis at $REDIS_URL or localhost:6379 if it answers,
#               else the in-memory fallback)
#   make test   installs everything into .venv and runs lint, types, the docs build and the
#               whole test suite (every code block of README.md and docs/ included), then
#               the core suites again on the lowest redis-py the package accepts
#   make docs   builds the documentation site (mkdocs.yml) into site/, warnings as errors
#   make chaos  a minute of the chaos drill (SIGKILL, proxy cuts, maxmemory under load):
#               prints acked / stored / lost / duplicated / time degraded (CHAOS_SECONDS=...)

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
EXTRAS := dev,fast,langchain,llama-index,langgraph,cli,otel,bench,docs,crypto,zstd

.PHONY: demo test install lint typecheck pytest wheel docs floor clean bench chaos

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

# The lowest redis-py pyproject.toml accepts ("redis>=X"): the core suites run on it too.
REDIS_FLOOR := $(shell sed -n 's/^ *"redis>=\([0-9.]*\)",$$/\1/p' pyproject.toml)
FLOOR_VENV  := .venv-floor
FLOOR_TESTS := tests/contract/test_store_contract.py tests/contract/test_memory_contract.py \
               tests/contract/test_cache_contract.py tests/contract/test_coordination_contract.py \
               tests/redis tests/faults/test_outage.py tests/unit

$(FLOOR_VENV)/.installed-$(REDIS_FLOOR): pyproject.toml Makefile
	$(PYTHON) -m venv $(FLOOR_VENV)
	$(FLOOR_VENV)/bin/python -m pip install --quiet --upgrade pip
	$(FLOOR_VENV)/bin/python -m pip install --quiet -e ".[fast,crypto,zstd]" "redis==$(REDIS_FLOOR)" \
		pytest pytest-asyncio pytest-timeout hypothesis "fakeredis[lua]"
	touch $@

floor: $(FLOOR_VENV)/.installed-$(REDIS_FLOOR)
	$(FLOOR_VENV)/bin/python -c "import redis; assert redis.__version__ == '$(REDIS_FLOOR)', redis.__version__"
	$(FLOOR_VENV)/bin/python -m pytest -q -p no:cacheprovider $(FLOOR_TESTS)

# The documentation site; --strict: a broken link or a docstring mkdocstrings cannot
# render fails the build.
docs: install
	NO_MKDOCS_2_WARNING=1 $(BIN)/mkdocs build --strict --quiet

test: lint typecheck wheel docs pytest floor

clean:
	rm -rf $(VENV) $(FLOOR_VENV) dist build site .pytest_cache .mypy_cache .ruff_cache

bench: install
	$(BIN)/python bench/run.py

CHAOS_SECONDS ?= 60
CHAOS_SEED    ?= 14

chaos: install
	$(BIN)/python -W ignore::UserWarning -m tests.faults.chaos --seconds $(CHAOS_SECONDS) --seed $(CHAOS_SEED)
