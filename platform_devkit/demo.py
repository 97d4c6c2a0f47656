"""``make demo`` (``python -m platform_devkit.demo``): build the sample source, run the whole
medallion, the countries pull, the customer flow, one short trade-stream window and one short window of
loan application events through their jobs, and print a summary.

Runs with the real Dagster instance (``DAGSTER_HOME``), so the runs appear in ``make dev`` afterwards.

The output is the summary: the runs' consoles show warnings and errors only (every run's whole log goes to
``<data_dir>/demo.log``). The two stream windows inject faults on purpose (a dropped
connection, a resent trade, a malformed frame; poison messages): the warnings those provoke are expected,
so the summary counts them as such instead of printing them; an error still prints.
"""

from __future__ import annotations

import logging
import os
import sys
import warnings
from collections.abc import Iterable
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

# The demo's output is a summary; Dagster's beta notices (backfill policies) are for developers.
warnings.filterwarnings("ignore", message=".*currently in beta.*")

import polars as pl
import pyarrow.parquet as pq
import sqlalchemy as sa
from dagster import DagsterInstance
from dagster._core.errors import DagsterHomeNotSetError

from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import TableConfig, load_tables
from platform_assets.core.medallion.extract import list_files
from platform_assets.core.sql.engines import engine_for, redact
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import console_log_level
from platform_assets.settings import Settings, load_settings
from platform_devkit import sample
from platform_devkit.countries import pull_countries_offline
from platform_devkit.customers import run_customer_flow
from platform_devkit.loans import run_window_offline as run_loans_offline
from platform_devkit.medallion import materialize_medallion
from platform_devkit.trades import run_window_offline


def ensure_source(settings: Settings) -> None:
    if sa.inspect(engine_for(settings.source_url)).has_table("FactStream", schema=settings.source_schema):
        print(f"source: using existing sample database {redact(settings.source_url)}")
        return
    # 650 customers: above both thresholds, so the demo shows the customer file and the product run.
    counts = sample.init(settings.source_url, scale=1, seed=42, customers=650, schema=settings.source_schema)
    print(f"source: created sample database {redact(settings.source_url)}: {counts}")


def sample_partitions(settings: Settings) -> Settings:
    """The daily partitions start at the sample's first day unless PLATFORM_PARTITION_START is set (as
    ``make dev`` starts them), so the demo's runs and the UI agree on the partitions."""
    start = sample.sample_partition_start()
    if start is None:
        return settings
    days = sample.stored_days(settings.source_url, settings.source_schema)
    if days is not None:
        first, last = days[0].isoformat(), days[1].isoformat()
        print(f"source: streams of {first} … {last}; the daily partitions start on {first}")
    os.environ["PLATFORM_PARTITION_START"] = start.isoformat()
    return replace(settings, partition_start=start)


def _parquet_rows(path) -> int:
    with path.open("rb") as handle:
        return pq.read_metadata(handle).num_rows


def layer_rows(settings: Settings, config: TableConfig) -> dict[str, int]:
    bronze = sum(_parquet_rows(p) for p in list_files(settings.table_path("bronze", config.name)))
    out = {"bronze (all extracts)": bronze}
    for layer in ("silver", "gold"):
        path = str(settings.table_path(layer, config.name))
        out[layer] = delta.read(path).height if delta.table_exists(path) else 0
    quarantine = str(settings.table_path("silver", f"{config.name}_quarantine"))
    out["quarantined"] = delta.read(quarantine).height if delta.table_exists(quarantine) else 0
    return out


def _rows(path) -> int:
    return delta.read(str(path)).height if delta.table_exists(str(path)) else 0


def _files(settings: Settings, folder: str) -> int:
    path = settings.table_path("raw", folder)
    return len(list(path.glob("*.parquet"))) if path.exists() else 0


DEMO_LOG = "demo.log"
# The consoles of the runs: warnings and errors of the batch runs; errors only in the stream windows, where
# the faults are injected (their warnings are counted in the summary, and are in the log file).
BATCH_LEVEL = "WARNING"
INJECTED_LEVEL = "ERROR"


def log_lines(instance: DagsterInstance, run_ids: Iterable[str]) -> list[str]:
    """The runs' whole logs (Dagster's own events, at DEBUG, included), one line per entry, as Dagster's
    console prints them."""
    lines = []
    for run_id in run_ids:
        for entry in instance.all_logs(run_id):
            when = datetime.fromtimestamp(entry.timestamp, UTC).strftime("%Y-%m-%d %H:%M:%S")
            event = entry.dagster_event.event_type.name if entry.dagster_event else None
            fields = [when, logging.getLevelName(entry.level), entry.job_name, run_id, entry.step_key, event]
            lines.append(" - ".join([*(f for f in fields if f), entry.user_message]))
    return lines


def warning_count(instance: DagsterInstance, run_ids: Iterable[str]) -> int:
    return sum(1 for r in run_ids for e in instance.all_logs(r) if e.level == logging.WARNING)


def stream_runs_text(runs: int, micro_batches: int) -> str:
    """A stream's runs as Job_Metadata counts them: each run of its micro-batch job has a row, the
    micro-batches (one per range of offsets, with a micro_batch_id) and the catch-up runs, which enrich
    what is left once a window has ended (no micro_batch_id). A feed's own run is another job."""
    if runs == micro_batches:
        return f"{runs} micro-batch run(s)"
    return f"{runs} micro-batch job run(s) ({micro_batches} micro-batch(es), {runs - micro_batches} catch-up)"


def write_log(instance: DagsterInstance, run_ids: Iterable[str], path: Path) -> Path:
    path.write_text("".join(f"{line}\n" for line in log_lines(instance, run_ids)))
    return path


def _instance() -> DagsterInstance:
    """The persistent instance of ``DAGSTER_HOME`` (set by ``make demo``), else a throwaway one."""
    try:
        return DagsterInstance.get()
    except DagsterHomeNotSetError:
        print("DAGSTER_HOME is not set: run history will not be kept (use `make demo`)")
        return DagsterInstance.ephemeral()


def main() -> int:
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_source(settings)
    settings = sample_partitions(settings)
    instance = _instance()
    run_ids: list[str] = []  # every run the demo starts, in order (their logs go to demo.log)
    run = materialize_medallion(settings, instance=instance, log_level=BATCH_LEVEL)
    run_ids += [r.run_id for r in run.results]
    for result in run.results:
        print(f"run {result.run_id}: {'success' if result.success else 'FAILED'}")
    tables = load_tables(settings.tables_file)
    summary = pl.DataFrame([{"table": t.name, **layer_rows(settings, t)} for t in tables])
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(summary)
    passed, failed = run.checks()
    print(f"checks: {passed} passed, {failed} failed")
    countries = pull_countries_offline(settings, instance, log_level=BATCH_LEVEL)
    run_ids.append(countries.run_id)
    silver_countries = settings.table_path("silver", "countries")
    print(
        f"countries: run {countries.run_id} {'success' if countries.success else 'FAILED'} (local stand-in API); "
        f"silver/countries rows: {_rows(silver_countries)}"
    )
    flow = run_customer_flow(settings, instance, log_level=BATCH_LEVEL)
    run_ids += [r.run_id for r in (flow.parent, flow.child) if r is not None]
    child = (
        f"product run {flow.child.run_id} {'success' if flow.child.success else 'FAILED'}"
        if flow.child
        else ("no product run")
    )
    print(
        f"customers: {flow.customer_count if flow.parent.success else 'FAILED'} counted; {child}; "
        f"raw/customer_data files: {_files(settings, 'customer_data')}, raw/product_data files: "
        f"{_files(settings, 'product_data')}"
    )
    stream = run_window_offline(settings, instance, run_config=console_log_level(INJECTED_LEVEL))
    stream_runs = [stream.feed.run_id, *(r.run_id for r in stream.runs)]
    run_ids += stream_runs
    metrics = stream.metrics
    print(
        f"trades: {stream.trades_fed} frames fed to topic {settings.trades_topic!r} by the local stand-in with "
        f"injected faults (a dropped connection, a resent trade, a malformed frame: "
        f"{warning_count(instance, stream_runs)} warning(s), expected); "
        f"{stream_runs_text(len(stream.runs), stream.micro_batches)} "
        f"{'success' if stream.success else 'FAILED'}; {stream.enriched_rows} rows in Enriched_Trades"
    )
    if metrics is not None:
        print(
            f"ingestion metrics: window {metrics.window_start:%H:%M:%S}..{metrics.window_end:%H:%M:%S} UTC, "
            f"total {metrics.total_rows}, delta {metrics.delta_rows}, threshold {metrics.threshold}, "
            f"alerted {metrics.alerted}; dashboard: {stream.dashboard}"
        )
    loans = run_loans_offline(settings, instance, run_config=console_log_level(INJECTED_LEVEL))
    loan_runs = [r.run_id for r in loans.runs]
    run_ids += loan_runs
    print(
        f"loan applications: {len(loans.produced.messages)} messages to topic {loans.topic!r} with injected "
        f"faults ({loans.produced.poison} poison: {warning_count(instance, loan_runs)} warning(s), expected; "
        f"some out of order or breaking an expectation); {stream_runs_text(len(loans.runs), loans.micro_batches)} "
        f"{'success' if loans.success else 'FAILED'}; "
        f"bronze {loans.bronze_rows} rows + {loans.dead_letters} dead letters, silver {loans.silver_rows} "
        f"applications + {loans.quarantined} quarantined"
    )
    audit = build_resources(settings)["audit"]
    report, _ = audit_tick(instance, audit, None, log=lambda _: None)
    print(
        f"audit: {report.runs} run(s) recorded in {redact(settings.audit_url)} (Job_Metadata, Task_Metadata, ...)"
    )
    log = write_log(instance, run_ids, settings.data_dir / DEMO_LOG)
    print(f"logs: the {len(run_ids)} runs' logs in {log} (and on each run's page in `make dev`)")
    print(f"lake: {settings.lake_root}  (browse it with `make dev`, http://127.0.0.1:3000)")
    ok = (
        run.success
        and countries.success
        and flow.parent.success
        and (flow.child is None or flow.child.success)
        and stream.success
        and loans.success
        and metrics is not None
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
