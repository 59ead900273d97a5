# Two commands matter: `make demo` (set up, then run the main job) and `make test`.
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
ARGS ?=

.PHONY: setup demo test test-scale lint bench clean

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# torch==2.13.0 is the CPU build; a bare "torch" would pull a multi-GB CUDA build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -e '.[dev]'
	touch $(STAMP)

setup: $(STAMP)

demo: setup
	$(VENV)/bin/carbonshift demo $(ARGS)

lint: setup
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

test: lint
	$(VENV)/bin/pytest

# The PostgreSQL tier alone (`make test` runs it too): PostgreSQL 15, a Prefect server on it,
# two GPU pools with limits, a worker each. Needs initdb/pg_ctl; fails under CI=true without.
test-scale: setup
	$(VENV)/bin/pytest tests/scale

bench: setup
	$(PY) benchmarks/planner.py
	$(PY) benchmarks/backtest.py
	$(PY) benchmarks/training_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
