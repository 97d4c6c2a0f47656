"""Medallion soak: a year of daily incremental runs on a small source, to show the platform's costs stay flat.

    python bench/medallion_soak.py                       # 365 days, table maintenance every 7 days
    python bench/medallion_soak.py --maintain-every 0    # 365 days, no maintenance
    python bench/medallion_soak.py --quick               # 10 days
    python bench/medallion_soak.py --days 60 --json soak.json --keep

Setup (not measured): the sample source (``platform_devkit.sample.init``, SQLite in the work dir,
``--scale`` 1 = 1,000 streams a day) with ``--start-days`` days, and a full load of the medallion.

Then, for each simulated day:

  advance   ``platform_devkit.sample.advance``: the next day in the source (new streams, a few late ones for
            the day before, ~5 % of users and tracks changed, new users, artists and tracks)
  run       what the daily schedule runs: ``spotify_medallion`` for the dimensions and the day that just
            ended plus ``late_days`` (1) before it, through ``platform_devkit.medallion.materialize_medallion``
            (Dagster's ``execute_in_process`` of the job, the repo's resources, a persistent SQLite Dagster
            instance in the work dir: the unpartitioned tables in one run, the day range in a second)
  audit     one pass of the audit trail sensor (``audit_tick``) writing the day's runs to the audit database
  maintain  every ``--maintain-every`` days, what the maintenance schedule runs: ``table_maintenance_job``
            in process (``platform_assets.core.lake.maintenance.maintain`` on every Delta table, each under its
            policy from tables.yaml). ``--age-files`` moves every lake file's modification time a day back
            after each day, so log clean-up and a full vacuum of unreferenced files see simulated time
  measure   sizes (not timed): the state database, every lake table (data files; ``_delta_log`` files and
            bytes), the audit database, the Dagster instance's storage, this process's RSS

The report shows the days 5, 30, 100, 200 and 365 (those within ``--days``, and the last day). Times are
the median over the day and its neighbours (``--smooth`` days each side) because a shared machine makes
single runs noisy; CPU seconds (this process, all threads) are shown next to wall seconds for the same
reason. The goal: the incremental run of day 365 takes at most 1.2 x the run of day 5. ``--profile-days``
runs cProfile over those days' runs and lists the functions whose cumulative time grew most between them.
"""

from __future__ import annotations

import argparse
import cProfile
import json
import os
import pstats
import shutil
import statistics
import sys
import tempfile
import time
import warnings
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from lake_files import (  # bench/lake_files.py
    age_files,
    as_dict,
    folder_size,
    lake_tables,
    lake_totals,
    sqlite_size,
)
from measure import peak_mb, rss_mb  # bench/measure.py: this script's folder is on sys.path

START = date(2025, 1, 1)
REPORT_DAYS = (5, 30, 100, 200, 365)
GOAL_RATIO = 1.2  # day 365's incremental run against day 5's
QUICK_DAYS = 10
DEFAULT_MAINTAIN_EVERY = 7


def _quiet() -> None:
    warnings.filterwarnings("ignore")
    # Dagster's beta notices (backfill policies) and its per-run log lines are not measured output.
    os.environ.setdefault("DAGSTER_DISABLE_TELEMETRY", "1")


# ----------------------------------------------------------------------------------------------------
# Maintenance (platform_assets.core.lake.maintenance, when it exists)


def maintenance_available() -> bool:
    try:
        from platform_assets.defs.maintenance.definitions import MAINTENANCE_JOB  # noqa: F401
    except ImportError:
        return False
    return True


def run_maintenance(settings, instance) -> dict[str, Any]:
    """What the maintenance schedule runs: ``table_maintenance_job`` in process (one step per Delta table,
    ``core.maintenance.maintain`` under the table's policy; tables that do not exist are skipped). Per
    table: seconds and the figures its step reports."""
    from platform_assets.definitions import build_definitions
    from platform_assets.defs.maintenance.definitions import MAINTENANCE_JOB

    job = build_definitions(settings).resolve_job_def(MAINTENANCE_JOB)
    result = job.execute_in_process(instance=instance, raise_on_error=False, run_config=_quiet_run())
    if not result.success:
        raise RuntimeError(f"{MAINTENANCE_JOB} failed (run {result.run_id})")
    seconds = {
        s.step_key: s.end_time - s.start_time
        for s in instance.get_run_step_stats(result.run_id)
        if s.start_time is not None and s.end_time is not None
    }
    out: dict[str, Any] = {}
    for event in result.all_events:
        if event.event_type_value != "STEP_OUTPUT" or event.step_key is None:
            continue
        metadata = {k: v.value for k, v in event.step_output_data.metadata.items()}
        if metadata.get("skipped"):
            continue
        out[str(metadata.get("table", event.step_key))] = {
            "seconds": round(seconds.get(event.step_key, 0.0), 3),
            **{k: v for k, v in metadata.items() if isinstance(v, int | float) and not isinstance(v, bool)},
        }
    return out


def _quiet_run() -> dict:
    from platform_assets.lib.tags import console_log_level

    return console_log_level("WARNING")


# ----------------------------------------------------------------------------------------------------
# Measuring


def _state_figures(settings) -> dict[str, Any]:
    import sqlalchemy as sa

    from platform_assets.core.state import processed_table, state_table

    engine = sa.create_engine(settings.state_url)
    try:
        with engine.connect() as conn:
            entries = conn.execute(sa.select(sa.func.count()).select_from(state_table)).scalar()
            value_bytes = conn.execute(sa.select(sa.func.sum(sa.func.length(state_table.c.value)))).scalar()
            processed = conn.execute(sa.select(sa.func.count()).select_from(processed_table)).scalar()
    finally:
        engine.dispose()
    return {
        "bytes": sqlite_size(settings.state_url),
        "entries": entries,
        "value_bytes": value_bytes or 0,
        "processed_files": processed,
    }


def _audit_figures(settings) -> dict[str, Any]:
    import sqlalchemy as sa

    engine = sa.create_engine(settings.audit_url)
    try:
        rows = {}
        with engine.connect() as conn:
            for table in sa.inspect(conn).get_table_names():
                quoted = conn.dialect.identifier_preparer.quote(table)
                rows[table] = conn.execute(sa.text(f"SELECT COUNT(*) FROM {quoted}")).scalar()
    finally:
        engine.dispose()
    return {"bytes": sqlite_size(settings.audit_url), "rows": sum(rows.values()), "tables": rows}


def measure(settings, dagster_home: Path) -> dict[str, Any]:
    tables = lake_tables(Path(str(settings.lake_root)), snapshot=True)
    dagster_files, dagster_bytes = folder_size(dagster_home)
    return {
        "state": _state_figures(settings),
        "lake": lake_totals(tables),
        "tables": as_dict(tables),
        "audit": _audit_figures(settings),
        "dagster": {
            "files": dagster_files,
            "bytes": dagster_bytes,
            "runs_db_bytes": sqlite_size(dagster_home / "history" / "runs.db"),
        },
        "rss_mb": round(rss_mb(), 1),
    }


def _step_seconds(instance, run) -> dict[str, float]:
    """Seconds per Dagster step of the medallion runs (checks included, as Dagster times them)."""
    steps: dict[str, float] = {}
    for result in run.results:
        for stat in instance.get_run_step_stats(result.run_id):
            if stat.start_time is not None and stat.end_time is not None:
                steps[stat.step_key] = round(
                    steps.get(stat.step_key, 0.0) + stat.end_time - stat.start_time, 4
                )
    return steps


def _rows_written(run) -> dict[str, int]:
    """Rows written per layer, from the runs' materialization metadata (``rows_written``)."""
    rows: dict[str, int] = {}
    for result in run.results:
        for event in result.get_asset_materialization_events():
            materialization = event.materialization
            value = materialization.metadata.get("rows_written")
            if value is not None and isinstance(value.value, int):
                layer = materialization.asset_key.path[0]
                rows[layer] = rows.get(layer, 0) + value.value
    return rows


def _as_date(key: int) -> date:
    return date(key // 10_000, key // 100 % 100, key % 100)


# ----------------------------------------------------------------------------------------------------
# The soak


def setup(args: argparse.Namespace, data_dir: Path):
    """The sample source and the full load (not measured); the settings and the Dagster instance."""
    from dagster import DagsterInstance

    from platform_assets.settings import Settings
    from platform_devkit import sample
    from platform_devkit.medallion import materialize_medallion

    settings = Settings(data_dir=data_dir, partition_start=START)
    dagster_home = data_dir / "dagster_home"
    dagster_home.mkdir(parents=True, exist_ok=True)
    instance = DagsterInstance.local_temp(
        tempdir=str(dagster_home), overrides={"telemetry": {"enabled": False}}
    )
    counts = sample.init(
        settings.source_url,
        scale=args.scale,
        seed=args.seed,
        end=START + timedelta(days=args.start_days),
        days=args.start_days,
    )
    t0 = time.perf_counter()
    run = materialize_medallion(settings, instance=instance, log_level="WARNING")
    if not run.success:
        raise RuntimeError("the full load failed")
    print(
        f"source: {', '.join(f'{k} {v:,}' for k, v in counts.items())}; full load {time.perf_counter() - t0:.1f} s",
        flush=True,
    )
    return settings, instance, dagster_home


def one_day(args, settings, instance, dagster_home: Path, audit, cursor, day_number: int, profile: bool):
    from platform_assets.defs.monitoring.audit import audit_tick
    from platform_devkit import sample
    from platform_devkit.medallion import materialize_medallion

    record: dict[str, Any] = {"day": day_number}
    t0 = time.perf_counter()
    changed = sample.advance(settings.source_url, seed=args.seed)
    record["advance_seconds"] = round(time.perf_counter() - t0, 3)
    day = _as_date(changed.pop("day"))
    record["date"] = day.isoformat()
    record["source_changes"] = {k: v for k, v in changed.items() if k != "late_day"}

    first = max(day - timedelta(days=settings.late_days), settings.partition_start)
    profiler = cProfile.Profile(time.process_time) if profile else None  # CPU: the machine is shared
    cpu0, t0 = time.process_time(), time.perf_counter()
    if profiler:
        profiler.enable()
    run = materialize_medallion(settings, instance=instance, days=(first, day), log_level="WARNING")
    if profiler:
        profiler.disable()
    record["run_seconds"] = round(time.perf_counter() - t0, 3)
    record["run_cpu_seconds"] = round(time.process_time() - cpu0, 3)
    if not run.success:
        raise RuntimeError(f"day {day_number} ({day}): the medallion run failed")
    passed, failed = run.checks()
    record["checks"] = {"passed": passed, "failed": failed}
    record["steps"] = _step_seconds(instance, run)
    record["rows_written"] = _rows_written(run)

    t0 = time.perf_counter()
    report, cursor = audit_tick(instance, audit, cursor, log=lambda _: None)
    record["audit_seconds"] = round(time.perf_counter() - t0, 3)
    record["audited_runs"] = report.runs

    if args.age_files:  # the storage's clock follows the simulated one (see lake_files.age_files)
        age_files(Path(str(settings.lake_root)), 24 * 3600)
    if args.maintain_every and day_number % args.maintain_every == 0:
        t0 = time.perf_counter()
        record["maintenance"] = run_maintenance(settings, instance)
        record["maintain_seconds"] = round(time.perf_counter() - t0, 3)
    record.update(measure(settings, dagster_home))
    if profiler:
        record["profile"] = profiler
    return record, cursor


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    from platform_assets.lib.resources import build_resources

    settings, instance, dagster_home = setup(args, workdir / "data")
    audit = build_resources(settings)["audit"]
    cursor = None
    days: list[dict[str, Any]] = []
    profiles: dict[int, pstats.Stats] = {}
    started = time.perf_counter()
    for n in range(1, args.days + 1):
        try:
            record, cursor = one_day(
                args, settings, instance, dagster_home, audit, cursor, n, profile=n in args.profile_days
            )
        except (RuntimeError, KeyboardInterrupt) as exc:  # report the days measured so far
            print(f"\nstopped at day {n}: {exc!r}", file=sys.stderr)
            return {"days": days, "profiles": profiles, "peak_mb": round(peak_mb(), 1), "stopped": n}
        profiler = record.pop("profile", None)
        if profiler is not None:
            profiles[n] = pstats.Stats(profiler)
            record["profiled"] = True
        days.append(record)
        if args.json and (n % args.progress_every == 0):  # a long soak keeps its figures as it goes
            _write_json(args, {"days": days}, None)
        if n == 1 or n % args.progress_every == 0 or n == args.days:
            lake = record["lake"]
            print(
                f"[{time.strftime('%H:%M:%S')}] day {n} ({record['date']}): run {record['run_seconds']:.2f} s "
                f"({record['run_cpu_seconds']:.2f} CPU s), audit {record['audit_seconds']:.2f} s"
                + (f", maintain {record['maintain_seconds']:.2f} s" if "maintain_seconds" in record else "")
                + f"; lake {lake['data_files']} data files, {lake['log_files']} log files "
                f"({lake['log_bytes'] / 2**20:.1f} MB); state {record['state']['bytes'] / 1024:.0f} KB; "
                f"RSS {record['rss_mb']:.0f} MB; {time.perf_counter() - started:.0f} s so far",
                flush=True,
            )
    return {"days": days, "profiles": profiles, "peak_mb": round(peak_mb(), 1)}


# ----------------------------------------------------------------------------------------------------
# Report


def _around(days: list[dict[str, Any]], n: int, key: str, smooth: int) -> float | None:
    """Median of ``key`` over days ``n - smooth .. n + smooth`` (only the days run; profiled days left out)."""
    values = [d[key] for d in days if abs(d["day"] - n) <= smooth and key in d and not d.get("profiled")]
    return statistics.median(values) if values else None


def report_days(total: int) -> list[int]:
    shown = [d for d in REPORT_DAYS if d <= total]
    return shown + ([total] if total not in shown else [])


def _fmt(value: float | None, digits: int = 2) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def report(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    days = result["days"]
    if not days:
        print("no day was measured")
        return {"lines": [], "goal": None, "step_growth": []}
    by_day = {d["day"]: d for d in days}
    shown = report_days(len(days))
    s = args.smooth
    print()
    print(
        f"Medallion soak: {len(days)} daily incremental runs, scale {args.scale} "
        f"({1000 * args.scale:,} streams a day), late_days 1, "
        + (f"maintenance every {args.maintain_every} days" if args.maintain_every else "no maintenance")
        + ("; lake files aged a day after each day" if getattr(args, "age_files", False) else "")
    )
    print(f"times: median of the day and {s} day(s) each side; sizes: at the end of the day")
    header = (
        f"{'day':>5} {'run s':>7} {'CPU s':>7} {'audit s':>8} {'rows':>6} {'live files':>10} "
        f"{'disk files':>10} {'log files':>9} {'log MB':>7} {'replay max':>10} {'bronze files':>12} "
        f"{'state KB':>8} {'state rows':>10} {'audit MB':>8} {'dagster MB':>10} {'RSS MB':>7}"
    )
    print(header)
    print("-" * len(header))
    lines = []
    for n in shown:
        d = by_day[n]
        lake = d["lake"]
        line = {
            "day": n,
            "run_seconds": _around(days, n, "run_seconds", s),
            "run_cpu_seconds": _around(days, n, "run_cpu_seconds", s),
            "audit_seconds": _around(days, n, "audit_seconds", s),
            "rows_written": sum(d["rows_written"].values()),
            "live_files": lake.get("live_files"),
            "data_files": lake["data_files"],
            "log_files": lake["log_files"],
            "log_mb": lake["log_bytes"] / 2**20,
            "max_replayed_commits": lake.get("max_replayed_commits"),
            "bronze_files": lake["plain_files"],
            "state_kb": d["state"]["bytes"] / 1024,
            "state_rows": d["state"]["entries"] + d["state"]["processed_files"],
            "audit_mb": d["audit"]["bytes"] / 2**20,
            "dagster_mb": d["dagster"]["bytes"] / 2**20,
            "rss_mb": d["rss_mb"],
        }
        lines.append(line)
        print(
            f"{n:>5} {_fmt(line['run_seconds']):>7} {_fmt(line['run_cpu_seconds']):>7} "
            f"{_fmt(line['audit_seconds']):>8} {line['rows_written']:>6,} {line['live_files'] or 0:>10,} "
            f"{line['data_files']:>10,} {line['log_files']:>9,} {line['log_mb']:>7.2f} "
            f"{line['max_replayed_commits'] or 0:>10,} {line['bronze_files']:>12,} {line['state_kb']:>8.0f} "
            f"{line['state_rows']:>10,} {line['audit_mb']:>8.2f} {line['dagster_mb']:>10.1f} {line['rss_mb']:>7.0f}"
        )
    print(
        "live files: data files of the Delta tables' current versions (what a reader opens); disk files: all "
        "data files on disk (replaced ones until vacuum deletes them); replay max: the most commits a reader "
        "of one table replays after its newest checkpoint"
    )
    maint = [d for d in days if "maintain_seconds" in d]
    if maint:
        seconds = [d["maintain_seconds"] for d in maint]
        last = maint[-1]["maintenance"]
        print(
            f"maintenance: {len(maint)} passes, median {statistics.median(seconds):.2f} s, last "
            f"{seconds[-1]:.2f} s, max {max(seconds):.2f} s; last pass: live files "
            f"{sum(t.get('files_before', 0) for t in last.values())} -> "
            f"{sum(t.get('files_after', 0) for t in last.values())}, "
            f"{sum(t.get('vacuumed_files', 0) for t in last.values())} vacuumed, log files "
            f"{sum(t.get('log_files_before', 0) for t in last.values())} -> "
            f"{sum(t.get('log_files', 0) for t in last.values())}"
        )
    goal = _goal(days, s)
    if goal:
        print(
            f"goal: run of day {goal['last_day']} <= {GOAL_RATIO} x day {goal['first_day']}: "
            f"wall {_fmt(goal['wall_last'])} / {_fmt(goal['wall_first'])} s = x {goal['wall_ratio']:.2f}, "
            f"CPU {_fmt(goal['cpu_last'])} / {_fmt(goal['cpu_first'])} s = x {goal['cpu_ratio']:.2f}: "
            f"{'met' if goal['met'] else 'MISSED'} (judged on CPU seconds: the machine is shared)"
        )
    growth = _step_growth(days, s)
    if growth:
        print("steps whose time grew most (median seconds, early days -> last days):")
        for g in growth[:8]:
            print(f"  {g['step']:<40} {g['early']:.3f} -> {g['late']:.3f}  ({g['late'] - g['early']:+.3f})")
    _print_tables(days[-1])
    if result["profiles"]:
        _print_profile_growth(result["profiles"])
    print(f"peak RSS {result['peak_mb']:.0f} MB (the RSS column: at the end of each day)")
    return {"lines": lines, "goal": goal, "step_growth": growth}


def _goal(days: list[dict[str, Any]], s: int) -> dict[str, Any] | None:
    if len(days) < 2:
        return None
    first = min(5, len(days))
    last = len(days)
    wall_first, wall_last = _around(days, first, "run_seconds", s), _around(days, last, "run_seconds", s)
    cpu_first, cpu_last = (
        _around(days, first, "run_cpu_seconds", s),
        _around(days, last, "run_cpu_seconds", s),
    )
    if not (wall_first and wall_last and cpu_first and cpu_last):
        return None
    return {
        "first_day": first,
        "last_day": last,
        "wall_first": wall_first,
        "wall_last": wall_last,
        "wall_ratio": wall_last / wall_first,
        "cpu_first": cpu_first,
        "cpu_last": cpu_last,
        "cpu_ratio": cpu_last / cpu_first,
        "met": cpu_last / cpu_first <= GOAL_RATIO,
    }


def _step_growth(days: list[dict[str, Any]], s: int) -> list[dict[str, Any]]:
    """Per Dagster step: the median over the first and over the last ``2s+1`` days, largest growth first."""
    width = 2 * s + 1
    if len(days) < 2 * width:
        return []
    early, late = days[:width], days[-width:]
    steps = set().union(*(d["steps"] for d in days))
    growth = []
    for step in steps:
        a = [d["steps"][step] for d in early if step in d["steps"]]
        b = [d["steps"][step] for d in late if step in d["steps"]]
        if a and b:
            growth.append({"step": step, "early": statistics.median(a), "late": statistics.median(b)})
    return sorted(growth, key=lambda g: g["late"] - g["early"], reverse=True)


def _print_tables(last: dict[str, Any]) -> None:
    print(f"lake tables at day {last['day']}:")
    for name, t in sorted(last["tables"].items()):
        if t["delta"]:
            print(
                f"  {name:<36} {t.get('live_files') or 0:>5,} live / {t['data_files']:>5,} disk data files  "
                f"{t['log_files']:>5,} log files ({t['log_checkpoints']} checkpoints, "
                f"{t.get('replayed_commits') or 0} replayed)  {t['log_bytes'] / 1024:>7.0f} KB"
            )
        else:
            print(f"  {name:<36} {t['data_files']:>6,} files (not Delta)  {t['data_bytes'] / 1024:>8.0f} KB")


def _print_profile_growth(profiles: dict[int, pstats.Stats], top: int = 15) -> None:
    """Functions whose cumulative time grew most between the first and the last profiled day."""
    first, last = min(profiles), max(profiles)
    if first == last:
        return

    def cumulative(stats: pstats.Stats) -> dict[str, float]:
        out = {}
        for (filename, line, name), (_, _, _, cum, _) in stats.stats.items():  # type: ignore[attr-defined]
            out[f"{Path(filename).name}:{line}({name})"] = cum
        return out

    a, b = cumulative(profiles[first]), cumulative(profiles[last])
    grown = sorted(((b[k] - a.get(k, 0.0), k) for k in b), reverse=True)[:top]
    print(f"cProfile (CPU seconds), cumulative time that grew most from day {first} to day {last}:")
    for delta, name in grown:
        print(f"  {name:<70} {a.get(name, 0.0):7.3f} -> {b[name]:7.3f} ({delta:+.3f})")


# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--days", type=int, default=365, help="simulated days (default 365)")
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_DAYS} days (overrides --days)")
    parser.add_argument(
        "--maintain-every",
        type=int,
        default=None,
        help=f"days between runs of table_maintenance_job (default {DEFAULT_MAINTAIN_EVERY}; the shipped "
        "schedule runs it daily); 0: never",
    )
    parser.add_argument(
        "--age-files",
        action="store_true",
        help="after each day, move every lake file's modification time a day back, so the retention rules "
        "that read the storage's clock (log clean-up, a full vacuum of unreferenced files) see simulated time",
    )
    parser.add_argument("--scale", type=int, default=1, help="sample scale: 1,000 streams a day each (1)")
    parser.add_argument("--start-days", type=int, default=3, help="days in the source before the full load")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--smooth", type=int, default=2, help="days each side in the reported medians (2)")
    parser.add_argument(
        "--profile-days", default="", help="comma-separated days whose run runs under cProfile, e.g. 5,365"
    )
    parser.add_argument("--progress-every", type=int, default=10, help="print a line every N days (10)")
    parser.add_argument("--workdir", default=None, help="work dir (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (source, lake, databases)")
    parser.add_argument("--json", default=None, help="write every day's figures to this JSON file")
    parser.add_argument(
        "--report-from", default=None, help="print the report of a --json file written earlier (runs nothing)"
    )
    args = parser.parse_args(argv)
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        for name in ("scale", "maintain_every", "smooth", "age_files"):
            setattr(args, name, saved["params"].get(name))
        report(
            args, {"days": saved["days"], "profiles": {}, "peak_mb": max(d["rss_mb"] for d in saved["days"])}
        )
        return 0
    if args.quick:
        args.days = QUICK_DAYS
    if args.days < 1 or args.scale < 1 or args.start_days < 1 or args.smooth < 0:
        parser.error("--days, --scale and --start-days must be positive, --smooth not negative")
    args.profile_days = {int(d) for d in args.profile_days.split(",") if d.strip()}
    _quiet()
    available = maintenance_available()
    if args.maintain_every is None:
        args.maintain_every = DEFAULT_MAINTAIN_EVERY if available else 0
    if args.maintain_every < 0:
        parser.error("--maintain-every must be 0 (never) or more")
    if args.maintain_every and not available:
        parser.error(
            "--maintain-every needs platform_assets.defs.maintenance (table_maintenance_job), which this checkout lacks"
        )
    workdir = (
        Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="medallion_soak_"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"workdir {workdir}; {args.days} days; "
        + (f"maintenance every {args.maintain_every} days" if args.maintain_every else "no maintenance"),
        flush=True,
    )
    try:
        result = soak(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = report(args, result)
    if args.json:
        _write_json(args, result, summary)
        print(f"figures written to {args.json}")
    if args.keep:
        print(f"work dir kept: {workdir}")
    return 1 if "stopped" in result else 0


def _write_json(args: argparse.Namespace, result: dict[str, Any], summary: dict[str, Any] | None) -> None:
    shown = {k: (sorted(v) if isinstance(v, set) else v) for k, v in vars(args).items()}
    figures = {"params": shown, "summary": summary, "stopped": result.get("stopped"), "days": result["days"]}
    Path(args.json).write_text(json.dumps(figures, indent=1, default=str))


if __name__ == "__main__":
    sys.exit(main())
