"""``make batch-test ENV=sit`` (``python -m platform_devkit.batch_test``): the whole flow as a release test.

The seed's batch test, against one environment's catalog: clean up, set up (``platform_assets.cli.setup``), a
history load of the first day of facts (``platform_assets.cli.history``), batch 1, check every layer, a second
batch of changes, check again, clean up. Each check compares what the pipeline built
incrementally with what the same rules give when applied to the whole source at once:

- bronze: every source row's key reached bronze;
- silver: one row per key, equal (every column) to the latest kept row of the whole source after the
  table's derived columns and expectations; quarantine: the rows those rules drop (first load);
- gold: the current rows equal silver; SCD2 tables hold one version per key plus one per key whose
  tracked columns changed between the batches;
- audit: every run recorded in ``Job_Metadata`` as Completed.

It prints one line per check and a pass/fail table, and exits 1 on any mismatch (2 when it refuses to
run). It refuses prod, and environments whose databases are not the embedded SQLite files of their own
data folder: cleaning up deletes them.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import polars as pl
import sqlalchemy as sa
from dagster import DagsterInstance

from platform_assets.cli.history import load_history
from platform_assets.cli.setup import set_up
from platform_assets.core.audit import SCHEMA_VERSION, AuditStore
from platform_assets.core.lake import delta
from platform_assets.core.medallion.arrow_source import iter_arrow_batches
from platform_assets.core.medallion.config import TableConfig, load_tables
from platform_assets.core.medallion.expectations import apply_expectations
from platform_assets.core.medallion.extract import list_files
from platform_assets.core.medallion.scd import END_AT, START_AT
from platform_assets.core.medallion.silver import latest_per_key, transform
from platform_assets.core.medallion.source_table import reflect
from platform_assets.core.sql.engines import engine_for
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.lib.resources import build_resources
from platform_assets.settings import Settings, SettingsError, load_settings
from platform_devkit import sample
from platform_devkit.medallion import materialize_medallion

SEED = 20
DAYS = 3
FIRST_DAY = date(2025, 1, 1)  # the sample's first day: the history load's window


@dataclass
class Report:
    rows: list[dict] = field(default_factory=list)

    def check(self, step: str, what: str, expected: object, got: object) -> bool:
        ok = expected == got
        self.rows.append({"step": step, "check": what, "expected": str(expected), "got": str(got), "ok": ok})
        print(f"[{'PASS' if ok else 'FAIL'}] {step}: {what}: expected {expected}, got {got}", flush=True)
        return ok

    @property
    def passed(self) -> bool:
        return all(r["ok"] for r in self.rows)


def _embedded_files(settings: Settings) -> list[str]:
    """The SQLite files of the environment's databases; refuses any database it could not clean up."""
    files = []
    for name in ("source_url", "state_url", "audit_url", "serving_url"):
        url = sa.engine.make_url(getattr(settings, name))
        database = Path(url.database).resolve() if url.database else None
        if (
            url.get_backend_name() != "sqlite"
            or database is None
            or settings.data_dir not in database.parents
        ):
            raise SettingsError(
                f"the batch test deletes the environment's databases when it cleans up: {name} must be a SQLite "
                f"file under {settings.data_dir} (it is a {url.get_backend_name()} database elsewhere)"
            )
        files.append(str(database))
    return files


def clean_up(settings: Settings) -> None:
    """Delete the environment's lake folder and embedded databases (never anything outside its data dir)."""
    if settings.lake_root.exists():
        shutil.rmtree(settings.lake_root)
    for path in _embedded_files(settings):
        for suffix in ("", "-wal", "-shm", "-journal"):
            Path(path + suffix).unlink(missing_ok=True)


def _source_rows(settings: Settings, config: TableConfig) -> pl.DataFrame:
    engine = engine_for(settings.source_url)
    source = reflect(engine, config)
    batches = iter_arrow_batches(
        engine, source.select(), source.schema, settings.batch_size, source.converters
    )
    frames = [pl.DataFrame(pl.from_arrow(b)) for b in batches]
    return pl.concat(frames) if frames else pl.DataFrame(schema=pl.Schema(source.schema))


def expected_silver(settings: Settings, config: TableConfig) -> tuple[pl.DataFrame, int]:
    """(silver's rows as the rules give them over the whole source, rows those rules quarantine)."""
    quality = apply_expectations(transform(_source_rows(settings, config), config), config.all_expectations)
    return delta.normalize_timestamps(latest_per_key(quality.kept, config)), quality.quarantined.height


def _table(settings: Settings, layer: str, name: str) -> pl.DataFrame:
    path = str(settings.table_path(layer, name))
    return delta.read(path) if delta.table_exists(path) else pl.DataFrame()


def _sorted(frame: pl.DataFrame, columns: Sequence[str], keys: Sequence[str]) -> pl.DataFrame:
    return frame.select(columns).sort(list(keys))


def _same(a: pl.DataFrame, b: pl.DataFrame) -> bool:
    return a.schema == b.schema and a.equals(b)


def _tracked(config: TableConfig, columns: Sequence[str]) -> list[str]:
    ignored = {*config.keys, config.cdc_col, *config.track_history_except, START_AT, END_AT}
    return [c for c in columns if c not in ignored]


def check_layers(settings: Settings, report: Report, step: str, previous: dict | None) -> dict:
    """Every table's layers against the whole source; returns each table's expected silver."""
    expected_by_table = {}
    for config in load_tables(settings.tables_file):
        name, keys = config.name, list(config.keys)
        expected, quarantined = expected_silver(settings, config)
        expected_by_table[name] = expected
        bronze_files = list_files(settings.table_path("bronze", name))
        bronze = pl.concat([pl.read_parquet(f, columns=keys) for f in bronze_files]) if bronze_files else None
        source_keys = _source_rows(settings, config).select(keys).unique().height
        report.check(step, f"{name}: source keys in bronze", source_keys,
                     0 if bronze is None else bronze.unique().height)  # fmt: skip

        silver = _table(settings, "silver", name)
        columns = expected.columns
        missing = [c for c in columns if c not in silver.columns]
        report.check(step, f"{name}: silver rows", expected.height, silver.height)
        report.check(step, f"{name}: silver equals the rules over the whole source", True,
                     not missing and _same(_sorted(silver.cast(dict(expected.schema)), columns, keys),
                                           _sorted(expected, columns, keys)))  # fmt: skip
        if previous is None:
            quarantine = _table(settings, "silver", f"{name}_quarantine")
            report.check(step, f"{name}: quarantined rows", quarantined, quarantine.height)

        gold = _table(settings, "gold", name)
        current = gold.filter(pl.col(END_AT).is_null()) if END_AT in gold.columns else gold
        shared = [c for c in columns if c in gold.columns]
        report.check(step, f"{name}: gold current rows equal the expected silver rows", True,
                     _same(_sorted(current.cast({c: expected.schema[c] for c in shared}), shared, keys),
                           _sorted(expected, shared, keys)))  # fmt: skip
        if config.scd_type == 2:
            changed = 0
            if previous is not None:
                before, after = previous[name], expected
                tracked = _tracked(config, [c for c in shared if c in before.columns])
                joined = before.join(after, on=keys, suffix="__after")
                changed = joined.filter(
                    pl.any_horizontal(pl.col(c).ne_missing(pl.col(f"{c}__after")) for c in tracked)
                ).height
            report.check(step, f"{name}: gold versions (keys + changed keys)", expected.height + changed,
                         gold.height)  # fmt: skip
    return expected_by_table


def check_audit(settings: Settings, report: Report, step: str, instance: DagsterInstance, runs: int) -> None:
    """The Dagster runs so far (and the history load) are audited as Completed."""
    audit_tick(instance, build_resources(settings)["audit"], None, log=lambda _: None)
    query = 'SELECT "trigger", status FROM "Job_Metadata" ORDER BY job_id'
    with engine_for(settings.audit_url).connect() as connection:
        rows = [tuple(r) for r in connection.execute(sa.text(query))]
    expected = [("history", "Completed")] + [("manual", "Completed")] * runs
    report.check(step, "audit: runs recorded as Completed", expected, rows)


def run(settings: Settings, keep: bool, log: Callable[[str], None] = print) -> Report:
    report = Report()
    instance = DagsterInstance.ephemeral()
    log(f"batch test of the {settings.env} catalog in {settings.data_dir}")
    clean_up(settings)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    end = FIRST_DAY + timedelta(days=DAYS)
    sample.init(settings.source_url, scale=1, seed=SEED, days=DAYS, end=end, schema=settings.source_schema)

    statuses = set_up(settings, log=lambda _: None)
    report.check("set up", "Delta tables created as declared", [(s.name, True, []) for s in statuses],
                 [(s.name, s.created, s.drift) for s in statuses])  # fmt: skip
    report.check("set up", "audit schema version", SCHEMA_VERSION, AuditStore(settings.audit_url).setup())

    facts = next(t for t in load_tables(settings.tables_file) if t.partitioned)
    lower = datetime.combine(FIRST_DAY, datetime.min.time(), UTC)
    history_run = load_history(settings, facts, lower, lower + timedelta(days=1), force=False)
    tasks = {t["asset_key"]: t for t in AuditStore(settings.audit_url).tasks(history_run)}
    bronze_task = tasks[f"bronze/{facts.name}"]
    report.check("history", f"{facts.name}: first day's rows in bronze equal the source's",
                 bronze_task["rows_read"], bronze_task["rows_written"])  # fmt: skip

    report.check("batch 1", "medallion runs succeed", True,
                 materialize_medallion(settings, instance=instance, log_level="ERROR").success)  # fmt: skip
    first = check_layers(settings, report, "batch 1", None)
    check_audit(settings, report, "batch 1", instance, 2)

    sample.advance(settings.source_url, seed=SEED, schema=settings.source_schema)
    report.check("batch 2", "medallion runs succeed", True,
                 materialize_medallion(settings, instance=instance, log_level="ERROR").success)  # fmt: skip
    check_layers(settings, report, "batch 2", first)
    check_audit(settings, report, "batch 2", instance, 4)
    if not keep:
        clean_up(settings)
    return report


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keep", action="store_true", help="keep the environment's data for inspection")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if settings.env == "prod":
            raise SettingsError(
                "the batch test cleans up its environment: it never runs in prod (use ENV=sit)"
            )
        _embedded_files(settings)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    report = run(settings, args.keep)
    table = (
        pl.DataFrame(report.rows)
        .group_by("step", maintain_order=True)
        .agg(pl.col("ok").sum().alias("passed"), (~pl.col("ok")).sum().alias("failed"))
    )
    with pl.Config(tbl_hide_dataframe_shape=True, tbl_hide_column_data_types=True):
        print(table)
    print(f"batch test {'PASSED' if report.passed else 'FAILED'} ({settings.env})")
    return 0 if report.passed else 1


if __name__ == "__main__":
    sys.exit(main())
