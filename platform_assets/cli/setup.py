"""The DDL step: ``python -m platform_assets.cli.setup`` (``make setup``) creates what an environment needs before
its first run, and reports what differs where it exists already.

- the audit tables (migrated to the current version), the state tables and the serving tables;
- every table's silver and gold Delta tables, empty, with the schema, partitioning and change data feed
  the pipeline writes (``platform_assets.core.medallion.table_setup``); the source table is read for its columns.

Idempotent: a second run creates nothing. An existing table is never changed; a difference from its
declaration is printed as drift and the command exits 1, so a release pipeline stops there. That holds
for the SQL tables too: a declared column missing or of another type is one line per table.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

import polars as pl

from platform_assets.core.audit import AuditStore
from platform_assets.core.medallion.config import load_tables
from platform_assets.core.medallion.source_table import reflect
from platform_assets.core.medallion.table_setup import TableStatus, setup_table
from platform_assets.core.sql.drift import table_drift
from platform_assets.core.sql.engines import engine_for, redact
from platform_assets.core.state import StateStore
from platform_assets.core.trades import serving
from platform_assets.core.trades.serving import ServingStore
from platform_assets.settings import Settings, SettingsError, load_settings


def set_up(settings: Settings, log=print) -> list[TableStatus]:
    """Create what is missing; the status of every Delta table (created, or drift found), and of every
    SQL table that differs from its declaration."""
    statuses = []

    def sql_drift(what: str, url: str, drift: dict[str, list[str]]) -> None:
        for name, problems in drift.items():
            statuses.append(TableStatus(name, redact(url), drift=problems))
            log(f"{what} table {name}: DRIFT: {'; '.join(problems)}")

    audit = AuditStore(settings.audit_url)
    log(f"audit schema version {audit.setup()} at {redact(settings.audit_url)}")
    sql_drift("audit", settings.audit_url, audit.drift())
    state = StateStore(settings.state_url, settings.env)
    log(f"state tables at {redact(settings.state_url)}")
    sql_drift("state", settings.state_url, state.drift())
    store = ServingStore(settings.serving_url)
    store.setup()
    log(f"serving tables at {redact(settings.serving_url)}")
    sql_drift("serving", settings.serving_url, table_drift(store.engine, serving.metadata.sorted_tables))
    engine = engine_for(settings.source_url)
    for config in load_tables(settings.tables_file):
        if config.from_files:  # landing files: bronze holds the declared columns
            bronze = config.polars_schema
        else:
            bronze = pl.DataFrame(pl.from_arrow(reflect(engine, config).schema.empty_table())).schema
        paths = {
            layer: (settings.table_name(layer, config.name), str(settings.table_path(layer, config.name)))
            for layer in ("silver", "gold")
        }
        for status in setup_table(bronze, config, paths):
            statuses.append(status)
            what = "created" if status.created else ("DRIFT" if status.drift else "exists, as declared")
            log(f"{status.name}: {what}" + "".join(f"\n    {d}" for d in status.drift))
    return statuses


def main(argv: Sequence[str] | None = None) -> int:
    argparse.ArgumentParser(
        prog="python -m platform_assets.cli.setup", description=(__doc__ or "").split("\n\n")[0]
    ).parse_args(argv)
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"setting up the {settings.env} catalog ({settings.lake_root})")
    statuses = set_up(settings)
    drifted = [s.name for s in statuses if s.drift]
    if drifted:
        print(
            f"error: {len(drifted)} table(s) differ from their declaration: {', '.join(drifted)}",
            file=sys.stderr,
        )
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
