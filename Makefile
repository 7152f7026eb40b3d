PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: demo test lint format bench numbers docs-check docs-check-all papers clean

$(BIN)/rnnlab: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e .
	touch $@

$(VENV)/.dev: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(BIN)/rnnlab $@

demo: $(BIN)/rnnlab
	$(BIN)/rnnlab train shift

test: $(VENV)/.dev
	$(BIN)/ruff check src tests benchmarks
	$(BIN)/ruff format --check src tests benchmarks
	$(BIN)/python -m pytest

lint: $(VENV)/.dev
	$(BIN)/ruff check --fix src tests benchmarks
	$(BIN)/ruff format src tests benchmarks

bench: $(VENV)/.dev
	$(BIN)/python benchmarks/speed.py --repeats 3 | tee docs/speed_grid.txt

numbers: $(VENV)/.dev
	$(BIN)/python benchmarks/readme_numbers.py runs/numbers

docs-check: $(VENV)/.dev
	$(BIN)/python benchmarks/docs_check.py

docs-check-all: $(VENV)/.dev
	$(BIN)/python benchmarks/docs_check.py --all

papers: $(VENV)/.dev
	$(BIN)/python benchmarks/papers.py runs/numbers

clean:
	rm -rf $(VENV) runs .pytest_cache
	find src benchmarks -name __pycache__ -type d -prune -exec rm -rf {} +
