"""``make demo``: build the sample source, run the whole Spotify medallion, print a summary.

Runs with the real Dagster instance (``DAGSTER_HOME``), so the runs appear in ``make dev`` afterwards.
"""

from __future__ import annotations

import sys
import warnings

import polars as pl
import pyarrow.parquet as pq
import sqlalchemy as sa
from dagster import BetaWarning, DagsterInstance
from dagster._core.errors import DagsterHomeNotSetError

from platform_assets import sample
from platform_assets.core import delta
from platform_assets.core.config import TableConfig, load_tables
from platform_assets.core.db import engine_for, redact
from platform_assets.core.extract import list_files
from platform_assets.monitoring.audit import audit_tick
from platform_assets.resources import build_resources
from platform_assets.settings import Settings, load_settings
from platform_assets.spotify.run import materialize_medallion


def ensure_source(settings: Settings) -> None:
    if sa.inspect(engine_for(settings.source_url)).has_table("FactStream"):
        print(f"source: using existing sample database {redact(settings.source_url)}")
        return
    counts = sample.init(settings.source_url, scale=1, seed=42)
    print(f"source: created sample database {redact(settings.source_url)}: {counts}")


def layer_rows(settings: Settings, config: TableConfig) -> dict[str, int]:
    bronze = sum(pq.read_metadata(p).num_rows for p in list_files(settings.table_path("bronze", config.name)))
    out = {"bronze (all extracts)": bronze}
    for layer in ("silver", "gold"):
        path = str(settings.table_path(layer, config.name))
        out[layer] = delta.read(path).height if delta.table_exists(path) else 0
    quarantine = str(settings.table_path("silver", f"{config.name}_quarantine"))
    out["quarantined"] = delta.read(quarantine).height if delta.table_exists(quarantine) else 0
    return out


def _instance() -> DagsterInstance:
    """The persistent instance of ``DAGSTER_HOME`` (set by ``make demo``), else a throwaway one."""
    try:
        return DagsterInstance.get()
    except DagsterHomeNotSetError:
        print("DAGSTER_HOME is not set: run history will not be kept (use `make demo`)")
        return DagsterInstance.ephemeral()


def main() -> int:
    warnings.filterwarnings("ignore", category=BetaWarning)
    settings = load_settings()
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    ensure_source(settings)
    instance = _instance()
    run = materialize_medallion(settings, instance=instance, log_level="INFO")
    for result in run.results:
        print(f"run {result.run_id}: {'success' if result.success else 'FAILED'}")
    tables = load_tables(settings.tables_file)
    summary = pl.DataFrame([{"table": t.name, **layer_rows(settings, t)} for t in tables])
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(summary)
    passed, failed = run.checks()
    print(f"checks: {passed} passed, {failed} failed")
    audit = build_resources(settings)["audit"]
    report, _ = audit_tick(instance, audit, None, log=lambda _: None)
    print(f"audit: {report.runs} run(s) recorded in {redact(settings.audit_url)} (Job_Metadata, Task_Metadata, ...)")
    print(f"lake: {settings.lake_root}  (browse it with `make dev`, http://127.0.0.1:3000)")
    return 0 if run.success else 1


if __name__ == "__main__":
    sys.exit(main())
