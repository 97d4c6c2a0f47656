"""One-time history load of a table: ``python -m platform_assets.cli.history --table FactStream --from 2024-01-01
--to 2025-01-01 [--force] [--medallion NAME]`` (``make history TABLE=... FROM=... TO=...``).

Loads ``[from, to)`` of the source table into bronze, checks the row count against the source, folds the
new files into silver, and records the load in the audit tables (trigger ``history``). The incremental
watermark is never moved, so the next scheduled run carries on where it was. A second load of the same
table needs ``--force``. Exit status: 0 loaded, 1 failed (nothing recorded as loaded), 2 refused.
"""

from __future__ import annotations

import argparse
import sys
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path

from platform_assets.components.medallion import DEFAULT_NAME, DEFS_FOLDER, MedallionInstance, instances_in
from platform_assets.core.audit import AuditStore
from platform_assets.core.errors import ConfigurationError
from platform_assets.core.lake.locations import catalog_name, quarantine_name
from platform_assets.core.medallion.config import ConfigError, TableConfig, parse_from_date
from platform_assets.core.medallion.steps.history import HistoryAlreadyLoaded, HistoryError, run_history
from platform_assets.core.medallion.steps.silver import run_silver
from platform_assets.core.sql.engines import engine_for
from platform_assets.core.state import StateStore
from platform_assets.settings import Settings, SettingsError, load_settings

TRIGGER = "history"


def _instance(settings: Settings, name: str, defs_folder: Path) -> MedallionInstance:
    instances = instances_in(settings, defs_folder)
    for instance in instances:
        if instance.name == name:
            return instance
    raise SettingsError(
        f"--medallion {name!r} is not declared in {defs_folder}: {', '.join(i.name for i in instances)}"
    )


def _table(instance: MedallionInstance, name: str, settings: Settings) -> TableConfig:
    tables = instance.tables
    for config in tables:
        if name.lower() in (config.table.lower(), config.name):
            if config.from_files:
                raise SettingsError(
                    f"--table {name!r} has source: files: its history is loaded by dropping the files "
                    "into its landing folder"
                )
            return config
    where = settings.tables_file.name if instance.is_default else f"medallion {instance.name!r}"
    raise SettingsError(f"--table {name!r} is not in {where}: {', '.join(t.table for t in tables)}")


def _instant(value: str, option: str) -> datetime:
    try:
        instant = parse_from_date(value, option)
    except ConfigError:
        instant = None
    if instant is None:  # not a date, or empty
        raise SettingsError(f"{option} must be an ISO date or timestamp like 2024-01-01, got {value!r}")
    return instant


def load_history(
    settings: Settings,
    config: TableConfig,
    lower: datetime,
    upper: datetime,
    force: bool,
    source_url: str | None = None,
) -> str:
    """Run the load and its audit rows; returns the audit run id. Raises HistoryError on a refused or
    failed load (the audit then records it as Failed). ``source_url``: the table's source database
    (None: the settings')."""
    audit = AuditStore(settings.audit_url)
    run_id = f"history-{uuid.uuid4()}"
    started = datetime.now(UTC)
    job = {"job_name": f"history_{config.name}", "job_type": "Batch", "environment": settings.env,
           "trigger": TRIGGER, "start_time": started}  # fmt: skip
    audit.upsert_job(run_id, status="Running", **job)
    audit.set_parameters(run_id, {"table": config.table, "from": lower.isoformat(), "to": upper.isoformat(),
                                  "force": force})  # fmt: skip
    state = StateStore(settings.state_url, settings.env)
    bronze = settings.table_path("bronze", config.name)
    try:
        result = run_history(engine_for(source_url or settings.source_url), config, bronze, state, lower=lower, upper=upper,
                             batch_size=settings.batch_size, force=force, log=print)  # fmt: skip
        audit.upsert_task(run_id, "history_bronze", f"bronze/{config.name}", status="Completed",
                          rows_read=result.source_rows, rows_written=result.rows, start_time=started,
                          end_time=datetime.now(UTC), table_name=catalog_name(settings.env, "bronze", config.name))  # fmt: skip
        print(f"{config.table}: {result.rows} rows of {result.window.describe()} in bronze "
              f"({len(result.files)} file(s)); the source holds {result.source_rows}")  # fmt: skip
        silver_started = datetime.now(UTC)
        silver = run_silver(
            config, bronze, str(settings.table_path("silver", config.name)),
            str(settings.table_path("silver", quarantine_name(config.name))), state,
            run_id=run_id, days=result.days, log=print,
        )  # fmt: skip
        if silver.blocked_by:
            raise HistoryError(f"{config.table}: silver blocked by failing rule(s) {silver.blocked_by}")
        written = sum(u.rows_written for u in silver.units)
        audit.upsert_task(run_id, "history_silver", f"silver/{config.name}", status="Completed",
                          rows_read=sum(u.rows_read or 0 for u in silver.units), rows_written=written,
                          start_time=silver_started, end_time=datetime.now(UTC),
                          table_name=catalog_name(settings.env, "silver", config.name))  # fmt: skip
    except Exception as exc:
        audit.upsert_job(run_id, status="Failed", end_time=datetime.now(UTC), error_message=str(exc))
        raise
    audit.upsert_job(run_id, status="Completed", end_time=datetime.now(UTC))
    return run_id


def main(argv: Sequence[str] | None = None, defs_folder: Path = DEFS_FOLDER) -> int:
    """``defs_folder``: where the medallion instances are declared (the package's ``defs/``)."""
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.cli.history", description=(__doc__ or "").split("\n\n")[1]
    )
    parser.add_argument("--table", required=True, help="the table, as in tables.yaml (e.g. FactStream)")
    parser.add_argument(
        "--from", dest="lower", required=True, help="start (ISO date or timestamp, UTC), inclusive"
    )
    parser.add_argument(
        "--to", dest="upper", required=True, help="end (ISO date or timestamp, UTC), exclusive"
    )
    parser.add_argument("--force", action="store_true", help="load again although the history was loaded")
    parser.add_argument(
        "--medallion",
        default=DEFAULT_NAME,
        help=f"the medallion instance the table belongs to (default {DEFAULT_NAME}: the settings' table list; "
        "another: a source database declared in defs/, docs/components.md)",
    )
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        instance = _instance(settings, args.medallion, defs_folder)
        config = _table(instance, args.table, settings)
        source_url = instance.source_url(settings)
        lower, upper = _instant(args.lower, "--from"), _instant(args.upper, "--to")
    except (SettingsError, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        run_id = load_history(settings, config, lower, upper, args.force, source_url)
    except HistoryAlreadyLoaded as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except HistoryError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"history of {config.table} loaded (audit run {run_id}, trigger {TRIGGER})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
