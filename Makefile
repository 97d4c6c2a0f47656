PYTHON ?= python3.11
# A bare `make` lists the commands (the help target below) rather than building anything.
.DEFAULT_GOAL := help
VENV := .venv
BIN := $(VENV)/bin
# The environment (catalog) every command works in: `make demo ENV=sit` or `PLATFORM_ENV=sit make demo`.
# ENV on the command line wins over a PLATFORM_ENV in the environment (`make clean ENV=prod` in a shell
# that exported PLATFORM_ENV=dev means prod).
ifeq ($(origin ENV),command line)
export PLATFORM_ENV := $(ENV)
else
export PLATFORM_ENV ?= dev
endif
# That environment's data folder, as config/$(PLATFORM_ENV).yaml names it (its data_dir), unless
# PLATFORM_DATA_DIR overrides it: the Dagster home and the embedded broker's files live there too, so each
# environment has its own run history.
DATA_DIR ?= $(abspath $(or $(PLATFORM_DATA_DIR),$(shell sed -n 's/^data_dir: *//p' config/$(PLATFORM_ENV).yaml 2>/dev/null),data))
export DAGSTER_HOME ?= $(DATA_DIR)/dagster_home
# where `make dev` serves the UI: `make dev HOST=0.0.0.0 PORT=3001` (or the same as environment variables)
HOST ?= 127.0.0.1
PORT ?= 3000
# The sample data's days end yesterday (UTC). `make demo` and `make dev` start the daily partitions at its
# first day unless PLATFORM_PARTITION_START is set, so the partition bar and the backfill dialog show the
# data rather than empty days. `make dev OFFLINE=1`: the trade feed, its symbol lookup and the countries API
# are local stand-ins on 127.0.0.1, so the whole stream runs from the UI without the internet.
OFFLINE ?=
# Outside prod, with no PLATFORM_SOURCE_URL, the sample source is built first if missing (as `make demo` does).
SAMPLE_IF_MISSING = $(if $(or $(filter prod,$(PLATFORM_ENV)),$(PLATFORM_SOURCE_URL)),,$(BIN)/python -m platform_devkit.sample init --if-missing --customers 650)

# Dagster repeats its Beta notice for every asset with a backfill policy, in every process (webserver, daemon,
# each run worker), and `dagster dev` says it is superseded by `dg dev` (not installed here). The filters name
# those exact notices, so every other warning still shows. PYTHONWARNINGS cannot name Dagster's warning
# classes (they are not importable when Python starts), hence the messages. Filters already set in
# PYTHONWARNINGS are kept, after these (later entries win).
comma := ,
QUIET_DAGSTER := ignore:Parameter `backfill_policy` of function `asset` is currently in beta$(comma)ignore:Function `dev_command` is superseded$(if $(PYTHONWARNINGS),$(comma)$(PYTHONWARNINGS))

.PHONY: help dg install install-dev demo test dev check-config bench lint clean audit-setup browser reset-stream new-epoch bench-stream batch-test history setup

# Every command, one line each: the text after `## ` on its rule line (so the list cannot go stale; a test
# checks every .PHONY target has one).
help: ## this list (what a bare `make` prints)
	@echo "usage: make <command> [ENV=dev|sit|prod]  (README.md, Quick start: make demo, then make dev)"
	@awk 'BEGIN { FS = ":[^#]*## " } /^[a-z][a-z-]*:[^=#]*## / { printf "  %-13s %s\n", $$1, $$2 }' $(firstword $(MAKEFILE_LIST))

# pip shows setuptools' notice for every editable install ("Editable installation. Please be careful with
# folders ... the same name as your package"): the filter names that notice only.
PIP_INSTALL = PYTHONWARNINGS='ignore:Editable installation$(if $(PYTHONWARNINGS),$(comma)$(PYTHONWARNINGS))' $(BIN)/pip install --quiet

$(BIN)/python:
	@echo "creating the virtual environment $(VENV) with $(PYTHON)"
	@$(PYTHON) -m venv $(VENV)
	@$(BIN)/pip install --quiet --upgrade pip

# The project is installed in editable mode, so code changes need no reinstall: only a change of
# pyproject.toml (dependencies, packages) does. The stamps live in .venv, so a new .venv reinstalls.
$(VENV)/.installed: pyproject.toml | $(BIN)/python
	@echo "installing the project and its dependencies into $(VENV) (about 2-5 minutes on a first run)..."
	@$(PIP_INSTALL) -e .
	@touch $@

# the dev extras include the project itself, so they also satisfy `install`
$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	@echo "installing the project with its dev and spark extras into $(VENV) (about 3-8 minutes on a first run)..."
	@$(PIP_INSTALL) -e '.[dev,spark]'
	@touch $@ $(VENV)/.installed

install: $(VENV)/.installed ## the project and its dependencies into .venv (editable: again only when pyproject.toml changes)

install-dev: $(VENV)/.installed-dev ## install, plus the dev extras (pytest, ruff, pyright, dg) and the Spark engine

# The instance configuration is the top-level dagster.yaml: installed into the environment's DAGSTER_HOME
# (again whenever it changed), so each environment keeps its own run history. The instance's storage is
# created once here, before any run or daemon can start: two processes creating a fresh SQLite storage at
# the same moment corrupt it.
$(DAGSTER_HOME)/dagster.yaml: dagster.yaml | $(BIN)/python
	@echo "setting up the Dagster instance in $(DAGSTER_HOME)"
	@mkdir -p $(DAGSTER_HOME)
	@cp dagster.yaml $(DAGSTER_HOME)/dagster.yaml
	@$(BIN)/dagster instance migrate > /dev/null

# The trade stream needs one Kafka broker shared by every process of `dagster dev` (webserver, daemon, run
# workers) and the feed. $(WITH_KAFKA) runs the command after it under platform_devkit/dev.py: unless
# PLATFORM_KAFKA_BOOTSTRAP names a broker, it starts a local one first (librdkafka's in-memory mock cluster,
# see platform_devkit/kafka_broker.py) and exports its address. Broker and command run in process groups
# of their own; SIGTERM (make passes it on, e.g. from a service manager), Ctrl+C or SIGHUP stops the
# command's whole group first and the broker after it, and either one ending stops the other.
# A second `make dev` finds the first one's broker alive and uses it.
KAFKA_DIR = $(DATA_DIR)/kafka
WITH_KAFKA = $(BIN)/python -m platform_devkit.dev --kafka-dir $(KAFKA_DIR) --

demo: export PYTHONWARNINGS := $(QUIET_DAGSTER)
demo: install $(DAGSTER_HOME)/dagster.yaml ## the whole platform once on the sample data, offline, ending in a summary
	@$(BIN)/python -m platform_assets.cli.check_config --offline
	@echo "demo: running the platform once on the sample data (data in $(DATA_DIR))"
	@$(WITH_KAFKA) $(BIN)/python -m platform_devkit.demo

test: install-dev lint ## lint, then the whole test suite on two workers
	$(BIN)/python -m pytest -n 2 --dist worksteal -q

# `dagster dev` warns that a dagster.yaml in its working folder "will not be used" unless DAGSTER_HOME is
# that very folder (Dagster compares the two paths as they are), even when it is the file installed there.
# So Dagster starts in the Dagster home, named by its physical path (the form the working folder has), with
# the data folder and the settings' other paths made absolute: relative ones meant the repository.
# exec: make's child stays the command itself, which make passes SIGTERM to.
IN_DAGSTER_HOME = cd "$(DAGSTER_HOME)" && exec env DAGSTER_HOME="$$(pwd -P)" PLATFORM_DATA_DIR="$(DATA_DIR)" \
	$(foreach v,PLATFORM_CONFIG_DIR PLATFORM_TABLES_FILE,$(if $($(v)),$(v)="$(abspath $($(v)))"))

# Dagster's services (webserver, daemon) log at this level. At info the daemon prints two lines per sensor
# tick ("Checking for new runs for sensor", "Sensor ... skipped: ..."): several a second with the streams'
# sensors ticking every 5 s. At warning what shows is the runs' own logs (each run's start, its steps, its
# success or failure: the run workers print them whatever this says), the sensors' log lines (an audit
# pass, a new epoch) and the services' warnings and errors. `make dev DAGSTER_LOG_LEVEL=info` (or debug)
# brings the ticks back; every tick, skipped or not, is on its sensor's page in the UI either way.
DAGSTER_LOG_LEVEL ?= warning

# Links in audit rows and alerts point at the UI this serves, unless PLATFORM_UI_URL says otherwise.
dev: export PYTHONWARNINGS := $(QUIET_DAGSTER)
dev: export PLATFORM_UI_URL ?= http://$(HOST):$(PORT)
dev: install $(DAGSTER_HOME)/dagster.yaml ## the Dagster UI (http://127.0.0.1:3000; HOST=, PORT=), its daemon and a local broker; OFFLINE=1: no internet
	@$(BIN)/python -m platform_assets.cli.check_config --offline
	@$(SAMPLE_IF_MISSING)
	@echo "dev: the Dagster UI at http://$(HOST):$(PORT)$(if $(filter 1,$(OFFLINE)), with the offline stand-ins) (data in $(DATA_DIR)); Ctrl+C stops it"
	@$(IN_DAGSTER_HOME) $(abspath $(BIN))/python -m platform_devkit.dev --kafka-dir $(KAFKA_DIR) \
		--sample-partitions $(if $(filter 1,$(OFFLINE)),--offline) -- \
		$(abspath $(BIN))/dagster dev -w $(CURDIR)/workspace.yaml -h $(HOST) -p $(PORT) --log-level $(DAGSTER_LOG_LEVEL)

# The seed's batch test against one catalog (default sit): clean up, set up, two batches, every layer checked.
batch-test: export PLATFORM_ENV := $(if $(filter command line,$(origin ENV)),$(ENV),sit)
batch-test: install ## the batch test against one catalog (default sit): set up, two batches, every layer checked
	$(BIN)/python -m platform_devkit.batch_test

# The DDL step: audit, state and serving tables, and every silver/gold Delta table as declared (idempotent)
setup: install ## create the audit, state and serving tables and every declared silver/gold table (idempotent)
	$(SAMPLE_IF_MISSING)
	$(BIN)/python -m platform_assets.cli.setup

# One-time history load of a table: make history TABLE=FactStream FROM=2024-01-01 TO=2025-01-01 [FORCE=1]
history: install ## one-time history load: TABLE=FactStream FROM=2024-01-01 TO=2025-01-01 [FORCE=1] [MEDALLION=crm]
	$(BIN)/python -m platform_assets.cli.history --table "$(TABLE)" --from "$(FROM)" --to "$(TO)" $(if $(filter 1,$(FORCE)),--force) $(if $(MEDALLION),--medallion "$(MEDALLION)")

check-config: install ## check tables.yaml (and each further medallion's list) against its source: one line per table
	$(BIN)/python -m platform_assets.cli.check_config

audit-setup: install ## create or migrate the audit database only (jobs also do it on their first write)
	$(BIN)/python -m platform_assets.cli.audit_setup

# ENGINE=spark or ENGINE=both (polars and Spark side by side on the same source); Spark needs the spark extra
ENGINE ?= polars
bench: $(if $(filter polars,$(ENGINE)),install,install-dev) ## the medallion benchmark (ENGINE=polars|spark|both, URL=a source database)
	$(BIN)/python bench/medallion_bench.py --engine $(ENGINE) --floor $(if $(URL),--url $(URL))

bench-stream: install ## the trade stream benchmark: feed throughput, landing and enrichment, end-to-end latency
	$(BIN)/python bench/stream_bench.py

# ruff (lint rules, then formatting) over the repository, pyright (basic mode, [tool.pyright] in pyproject)
# over platform_assets/; `make test` runs this first. Each tool says in one line what failed and the fix.
lint: install-dev ## ruff, ruff format, pyright and dg check defs (make test runs it first)
	@echo "lint: ruff check ."
	@$(BIN)/ruff check --quiet . || { echo "lint: ruff check failed (above); many fix with: $(BIN)/ruff check --fix ." >&2; exit 1; }
	@echo "lint: ruff format --check ."
	@$(BIN)/ruff format --check --quiet . || { echo "lint: files above need formatting: $(BIN)/ruff format ." >&2; exit 1; }
	@echo "lint: pyright (basic) over platform_assets/"
	@$(BIN)/pyright || { echo "lint: pyright found type errors (above); annotate or narrow, see docs/types.md" >&2; exit 1; }
	@echo "lint: dg check defs"
	@$(DG) check defs > /dev/null || { echo "lint: the code location does not load (above): fix it, then make dg ARGS='check defs'" >&2; exit 1; }

# Dagster's own project tool (the dev extras): `make dg ARGS="list defs"`. Without DAGSTER_HOME, dg works on
# a temporary instance configured by the top-level dagster.yaml (no environment's run history is touched;
# `make dev` is the persistent one). VIRTUAL_ENV names the project's environment, which dg otherwise warns
# is not the active one; the filter quiets dg's notice about a preview scaffolder this project does not use.
DG = env -u DAGSTER_HOME VIRTUAL_ENV=$(abspath $(VENV)) PYTHONWARNINGS='ignore:Class `SparkDeclarativePipelineScaffolder`$(comma)$(QUIET_DAGSTER)' $(BIN)/dg
dg: install-dev ## Dagster's project tool on a temporary instance: make dg ARGS="list defs"
	$(DG) $(ARGS)

# After a real broker's topic was recreated: start a new epoch of the trade stream from the new topic's
# first offset (it reports first; YES=1 accepts). An embedded broker's restart needs nothing: it starts one.
new-epoch: install ## after a real broker's topic was recreated: a new epoch of the trade stream (YES=1 accepts)
	$(BIN)/python -m platform_assets.cli.new_epoch $(if $(filter 1,$(YES)),--yes)

# Forget everything the trade stream landed and start over (dev only; not needed after a broker restart).
reset-stream: export PYTHONWARNINGS := $(QUIET_DAGSTER)
reset-stream: install $(DAGSTER_HOME)/dagster.yaml ## forget everything the trade stream landed and start over (dev only)
	$(BIN)/python -m platform_devkit.trades reset

# Deletes the environment's lake, databases and run history: refused in prod unless FORCE=1.
clean: ## delete the environment's lake, databases and run history (prod: FORCE=1)
	@if [ "$(PLATFORM_ENV)" = prod ] && [ "$(FORCE)" != 1 ]; then \
		echo "error: refusing to delete prod's data in $(DATA_DIR) (make clean ENV=prod FORCE=1)" >&2; exit 2; fi
	rm -rf $(DATA_DIR)/lake $(DATA_DIR)/*.db $(DATA_DIR)/dagster_home

# Debian's headless Chromium, which the dashboard test drives to check the page really draws its charts.
browser: ## install Debian's headless Chromium (for the dashboard and UI tests)
	command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium)
