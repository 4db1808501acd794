# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Empty: optimlab's own default data folder (OPTIMLAB_DATA_DIR, else the XDG data dir).
DATA_DIR ?=
HOST ?= 127.0.0.1
PORT ?= 8000
PIP := $(BIN)/pip install --quiet --constraint constraints.txt

.PHONY: run test lint typecheck pytest bench docs examples clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

$(VENV)/.installed-run: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) --editable .
	touch $@

$(VENV)/.installed-dev: pyproject.toml constraints.txt | $(BIN)/python
	$(PIP) --editable '.[dev]'
	touch $@ $(VENV)/.installed-run

## run: install, then start the API and a worker, embedded (SQLite and a folder broker)
run: $(VENV)/.installed-run
	$(BIN)/optimlab up --host $(HOST) --port $(PORT) $(if $(DATA_DIR),--data-dir $(DATA_DIR))

## test: install, then lint, type-check and run the whole suite (PostgreSQL and Redis needed)
test: lint typecheck pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .

# mypy cannot follow setuptools' editable-install finder, so it reads the code
# through a tree of links that spells the installed names (optimlab.service, ...).
typecheck: $(VENV)/.installed-dev
	rm -rf .mypy_tree && mkdir -p .mypy_tree/optimlab
	for d in service worker migrations client; do ln -s ../../$$d .mypy_tree/optimlab/$$d; done
	MYPYPATH=.mypy_tree $(BIN)/mypy -p optimlab.service -p optimlab.worker -p optimlab.migrations -p optimlab.client
	MYPYPATH=.mypy_tree $(BIN)/mypy tests bench examples

pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest

## docs: regenerate docs/api.md from the OpenAPI document (a test checks it is current)
docs: $(VENV)/.installed-dev
	$(BIN)/python -m optimlab.service.api.reference > docs/api.md

## examples: run every example spec, write examples/results.json, render the README's figures
examples: $(VENV)/.installed-dev
	$(BIN)/python -m examples

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/engine_overhead.py

clean:
	rm -rf $(VENV) .mypy_tree .mypy_cache .pytest_cache .ruff_cache build *.egg-info
