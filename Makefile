# The two set-up commands of the README: `make run` and `make test`.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
# Empty: optimlab's own default data folder (OPTIMLAB_DATA_DIR, else the XDG data dir).
DATA_DIR ?=
HOST ?= 127.0.0.1
PORT ?= 8000
PIP := $(BIN)/pip install --quiet --constraint constraints.txt
NPM ?= npm
CHROMIUM ?= /usr/bin/chromium
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: run test lint typecheck webcheck chromium pytest bench docs web examples clean

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

## test: install, then lint, type-check, the dashboard's checks and the whole suite
## (PostgreSQL and Redis needed; Chromium is installed with apt when it is missing)
test: lint typecheck webcheck chromium pytest

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check .
	$(BIN)/lint-imports --no-cache

# mypy (and editors) read the code through optimlab/, committed links that spell the
# installed names (optimlab.service -> service/, ...): no set-up needed.
typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy -p optimlab.service -p optimlab.worker -p optimlab.migrations -p optimlab.client
	$(BIN)/mypy tests bench examples

# The suite runs in two processes (pytest-xdist, each test taken as a process frees up;
# TEST_WORKERS=0 runs it in this one): 12.5 min against ~20 on a 2-core machine, which it
# keeps busy (a third process is slower). The slowest tests are listed at the end.
TEST_WORKERS ?= 2
pytest: $(VENV)/.installed-dev
	$(BIN)/python -m pytest -n $(TEST_WORKERS) --dist worksteal --durations=25

# The dashboard (web/): its packages, installed again whenever the lock file is newer.
web/node_modules/.installed: web/package.json web/package-lock.json
	cd web && $(NPM) ci --no-audit --no-fund
	touch $@

## web: build the dashboard into service/api/static (committed: `make run` needs no Node)
web: web/node_modules/.installed
	cd web && $(NPM) run build

webcheck: web/node_modules/.installed
	cd web && $(NPM) run --silent check && $(NPM) test --silent

# The browser tests drive Debian's Chromium; they fail, never skip, without it.
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
		echo "$(CHROMIUM) is missing: installing Debian's chromium"; \
		$(SUDO) apt-get update && $(SUDO) apt-get install -y chromium \
			|| { echo "error: could not install chromium with apt-get; the browser tests need it" >&2; exit 1; }; \
	fi
	@test -x $(CHROMIUM) || { echo "error: $(CHROMIUM) is still missing after apt-get install chromium" >&2; exit 1; }

## docs: regenerate docs/api.md from the OpenAPI document (a test checks it is current)
docs: $(VENV)/.installed-dev
	$(BIN)/python -m optimlab.service.api.reference > docs/api.md

## examples: run every example spec, write examples/results.json, render the README's figures
examples: $(VENV)/.installed-dev
	$(BIN)/python -m examples

bench: $(VENV)/.installed-dev
	$(BIN)/python bench/engine_overhead.py

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache build *.egg-info web/node_modules
