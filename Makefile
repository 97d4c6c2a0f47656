PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(DATA_DIR)/dagster_home
# where `make dev` serves the UI: `make dev HOST=0.0.0.0 PORT=3001` (or the same as environment variables)
HOST ?= 127.0.0.1
PORT ?= 3000
# The demo's sample data starts on 2025-01-01: daily partitions start there too (unless set), so the
# partition bar and the backfill dialog show the data instead of a year of empty days before it.
SAMPLE_PARTITION_START := 2025-01-01

# Dagster repeats its Beta notice for every asset with a backfill policy, in every process (webserver, daemon,
# each run worker), and `dagster dev` says it is superseded by `dg dev` (not installed here). The filters name
# those exact notices, so every other warning still shows. PYTHONWARNINGS cannot name Dagster's warning
# classes (they are not importable when Python starts), hence the messages. Filters already set in
# PYTHONWARNINGS are kept, after these (later entries win).
comma := ,
QUIET_DAGSTER := ignore:Parameter `backfill_policy` of function `asset` is currently in beta$(comma)ignore:Function `dev_command` is superseded$(if $(PYTHONWARNINGS),$(comma)$(PYTHONWARNINGS))

.PHONY: install install-dev demo test dev check-config bench lint clean audit-setup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

# The project is installed in editable mode, so code changes need no reinstall: only a change of
# pyproject.toml (dependencies, packages) does. The stamps live in .venv, so a new .venv reinstalls.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e .
	touch $@

# the dev extras include the project itself, so they also satisfy `install`
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@ $(VENV)/.installed

install: $(VENV)/.installed

install-dev: $(VENV)/.installed-dev

# The instance's storage is created once here, before any run or daemon can start: two processes creating
# a fresh SQLite storage at the same moment corrupt it.
$(DAGSTER_HOME)/dagster.yaml: deploy/dagster.yaml | $(BIN)/python
	mkdir -p $(DAGSTER_HOME)
	cp deploy/dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster instance migrate > /dev/null

demo: export PYTHONWARNINGS := $(QUIET_DAGSTER)
demo: export PLATFORM_PARTITION_START ?= $(SAMPLE_PARTITION_START)
demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m platform_assets.check_config --offline
	$(BIN)/python -m platform_devkit.demo

test: install-dev
	$(BIN)/python -m pytest -n 2 -q

# Links in audit rows and alerts point at the UI this serves, unless PLATFORM_UI_URL says otherwise.
dev: export PYTHONWARNINGS := $(QUIET_DAGSTER)
dev: export PLATFORM_PARTITION_START ?= $(SAMPLE_PARTITION_START)
dev: export PLATFORM_UI_URL ?= http://$(HOST):$(PORT)
dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m platform_assets.check_config --offline
	$(BIN)/dagster dev -w workspace.yaml -h $(HOST) -p $(PORT)

check-config: install
	$(BIN)/python -m platform_assets.check_config

audit-setup: install
	$(BIN)/python -m platform_assets.audit_setup

bench: install
	$(BIN)/python bench/medallion_bench.py

lint: install-dev
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

clean:
	rm -rf $(DATA_DIR)/lake $(DATA_DIR)/*.db $(DAGSTER_HOME)
