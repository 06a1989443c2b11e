# Set-up and checks. Every target creates ./.venv (with the `mammosearch` console script) first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test lint typecheck unit system format bench clean

# apt-get needs root: sudo when there is one and we are not root
SUDO := $(shell [ "$$(id -u)" = 0 ] || command -v sudo)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e ".[dev]"
	touch $(STAMP)

## The main job on the embedded default: the search UI over the bundled synthetic demo corpus
## (index built once and cached; BiomedCLIP when its weights load, the weight-free baseline
## otherwise). DEMO_ARGS=--check runs one image and one text query through it and exits.
demo: $(STAMP)
	$(BIN)/mammosearch demo $(DEMO_ARGS)

## Everything CI runs: format check, lint, type check, tests with the coverage gate.
test: lint typecheck unit

lint: $(STAMP)
	$(BIN)/ruff format --check .
	$(BIN)/ruff check .

typecheck: $(STAMP)
	$(BIN)/mypy

## The browser tests drive Debian's Chromium (never a browser downloaded by `playwright
## install`); the case-store tests start a PostgreSQL server from Debian's package. Both are
## installed from the distribution where missing.
system:
	@[ -x /usr/bin/chromium ] && ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 || { \
		echo "installing Debian's chromium and postgresql for the browser and case-store tests"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq chromium postgresql; }

unit: $(STAMP) system
	$(BIN)/pytest --cov=mammosearch --cov-report=term --cov-fail-under=85

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

## Benchmarks print their figures. The medspaCy peer is installed for the benchmark only: its
## pinned dependencies conflict with spaCy 3.8, so it goes in without them (see STACK-NOTES).
bench: $(STAMP)
	$(BIN)/python -m pip install --quiet --no-deps medspacy==1.3.1 PyRuSH==1.0.13 PyFastNER \
		quicksectx loguru pysbd==0.3.4 jsonschema medspacy-quickumls six unidecode nltk pysimstring
	$(BIN)/python bench/normalize.py
	$(BIN)/python bench/imaging.py
	$(BIN)/python bench/embed.py
	$(BIN)/python bench/classify.py
	$(BIN)/python bench/ui.py
	$(BIN)/python bench/phi.py

clean:
	rm -rf $(VENV) .pytest_cache .mypy_cache .ruff_cache .coverage normalized-sample.jsonl \
		test-artifacts
