# Two entry points: `make demo` and `make test`. Each bootstraps .venv on first use.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint bench clean

$(STAMP): pyproject.toml
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/crev demo

lint: $(STAMP)
	$(BIN)/ruff check src tests bench
	$(BIN)/mypy

test: lint
	$(BIN)/pytest

bench: $(STAMP)
	$(BIN)/python bench/bench_readings.py
	$(BIN)/python bench/bench_verify.py
	$(BIN)/python bench/bench_sim.py
	$(BIN)/python bench/bench_market.py

clean:
	rm -rf $(VENV) crev-data build *.egg-info
