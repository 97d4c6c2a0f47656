PYTHON ?= python3.11
VENV := .venv
BIN := $(VENV)/bin
DATA_DIR ?= $(CURDIR)/data
export DAGSTER_HOME ?= $(DATA_DIR)/dagster_home

.PHONY: install install-dev demo test dev bench lint clean audit-setup

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip

install: $(BIN)/python
	$(BIN)/pip install --quiet -e .

install-dev: $(BIN)/python
	$(BIN)/pip install --quiet -e '.[dev]'

# The instance's storage is created once here, before any run or daemon can start: two processes creating
# a fresh SQLite storage at the same moment corrupt it.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml | $(BIN)/python
	mkdir -p $(DAGSTER_HOME)
	cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster instance migrate > /dev/null

demo: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/python -m platform_assets.demo

test: install-dev
	$(BIN)/python -m pytest -n 2 -q

dev: install $(DAGSTER_HOME)/dagster.yaml
	$(BIN)/dagster dev -w workspace.yaml -h 127.0.0.1 -p 3000

audit-setup: install
	$(BIN)/python -m platform_assets.audit_setup

bench: install
	$(BIN)/python bench/medallion_bench.py

lint: install-dev
	$(BIN)/ruff check .

clean:
	rm -rf $(DATA_DIR)/lake $(DATA_DIR)/*.db $(DAGSTER_HOME)
