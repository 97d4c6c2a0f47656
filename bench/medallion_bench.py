"""Medallion benchmark: raw extraction, full load and incremental load of a FactStream of N rows.

    python bench/medallion_bench.py                       # 5,000,000 rows on SQLite
    python bench/medallion_bench.py --rows 200000         # quick run
    python bench/medallion_bench.py --rows 1000000 \\
        --url postgresql+psycopg://postgres@127.0.0.1:5432/test --json out.json
    python bench/medallion_bench.py --engine both --rows 2000000 --skip-extract   # polars vs Spark

Phases (each in its own child process, so the peak RSS reported belongs to that phase only):

  setup        build the source with platform_devkit.sample.init (not measured against any goal)
  extract      core ``extract`` of the whole FactStream table (Window() = everything) into Parquet
  full         ``materialize_medallion`` on a fresh data dir (all tables, every FactStream day)
  change       update ``--changed`` of DimUser and DimTrack, insert ``--changed`` x N FactStream rows
               on one new day after the last one (not measured)
  incremental  ``materialize_medallion`` again: dimensions + only the new day's partition

``--floor`` adds, after the full load(s) and before the change, the same full load done with bare tools
(``bench/floor.py``: a driver, pyarrow, polars, write_deltalake) in its own data dir, then checks that it
built the same silver and gold tables as the platform, and reports the platform's times against it.

``--engine spark`` runs silver and gold on Spark (``Settings(engine="spark", spark_master="local[*]")``);
``--engine both`` runs full, change (once, on the shared source) and then incremental for polars and for
Spark, each engine with its own data dir (lake, state), and prints them side by side. The parent samples
each child's process tree (the JVM and the Python workers are descendants of the Python driver) every
50 ms: the tree's peak RSS and its CPU time split between driver, JVM and Python workers.

On PostgreSQL/MySQL the source lives in a fresh schema (``bench_<hex>``) that is dropped at the end;
the pipeline reads it through a copy of tables.yaml with ``schema:`` set.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

from measure import Sampler, peak_mb, rss_mb  # bench/measure.py: this script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
SHIPPED_TABLES = REPO / "platform_assets" / "tables.yaml"
PHASES = (
    "setup",
    "extract",
    "full",
    "floor",
    "compare",
    "floor_spark",
    "compare_spark",
    "change",
    "incremental",
)
ENGINE_PHASES = ("full", "incremental")  # run once per engine; the others once per benchmark
ENGINES = ("polars", "spark")
FLOOR = "floor"  # the bare-tools full load (bench/floor.py); also the name of its data dir, data_floor/
# silver + gold by a hand-written PySpark job (bench/spark_floor.py); its data dir is data_floor_spark/
SPARK_FLOOR = "floor_spark"
FLOOR_BACKENDS = ("sqlite", "postgresql")
START = date(2025, 1, 1)
STREAMS_PER_SCALE_PER_DAY = 1000  # platform_devkit.sample.STREAMS_PER_SCALE_PER_DAY (not imported here)

GOAL_EXTRACT_ROWS_PER_S = 600_000  # from PostgreSQL
GOAL_PEAK_MB = 1024  # on a 10M-row table
GOAL_PEAK_ROWS = 10_000_000
GOAL_INCREMENTAL_PCT = 5.0
# against the floor (--floor), measured in the same invocation
GOAL_FLOOR_FULL_RATIO = 1.3  # full load: platform seconds / floor seconds
GOAL_FLOOR_SILVER_GOLD_RATIO = 1.5  # silver + gold steps / the floor's silver + gold stages
GOAL_EXTRACT_VS_BARE_FETCH = 0.8  # platform extraction rows/s / bare fetch rows/s, same table, same source
GOAL_SPARK_FLOOR_RATIO = 2.0  # Spark engine silver + gold (+ session) / the hand-written PySpark job's


# ----------------------------------------------------------------------------------------------------
# Measuring (child side)


class RssSampler(Sampler):
    """Samples this process's RSS in a thread, so a peak can be attributed to a Dagster step."""

    def __init__(self, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.samples: list[tuple[float, float]] = []

    def sample(self) -> None:
        self.samples.append((time.time(), rss_mb()))

    def peak_between(self, start: float | None, end: float | None) -> float | None:
        if start is None or end is None:
            return None
        inside = [rss for t, rss in self.samples if start <= t <= end]
        return round(max(inside), 1) if inside else None


class Timers:
    """Wall time spent in some platform functions during a run, by wrapping them in the child (the platform
    code is not changed). Nested wraps count in each: a Delta commit inside a fold counts in both."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.calls: dict[str, int] = {}
        self.first_end: dict[str, float] = {}  # time.time() when the first call returned
        self.first_seconds: dict[str, float] = {}
        self._undo: list[tuple[Any, str, Any]] = []

    def wrap(self, module_name: str, attribute: str, label: str) -> None:
        module = importlib.import_module(module_name)
        original = getattr(module, attribute)

        @functools.wraps(original)
        def timed(*args: Any, **kwargs: Any) -> Any:
            t0 = time.perf_counter()
            try:
                return original(*args, **kwargs)
            finally:
                spent = time.perf_counter() - t0
                self.seconds[label] = self.seconds.get(label, 0.0) + spent
                self.calls[label] = self.calls.get(label, 0) + 1
                if label not in self.first_end:
                    self.first_end[label] = time.time()
                    self.first_seconds[label] = spent

        setattr(module, attribute, timed)
        self._undo.append((module, attribute, original))

    def __enter__(self) -> Timers:
        return self

    def __exit__(self, *exc: object) -> None:
        for module, attribute, original in reversed(self._undo):
            setattr(module, attribute, original)

    def summary(self, started: float) -> dict[str, Any]:
        return {
            label: {
                "seconds": round(seconds, 3),
                "calls": self.calls[label],
                "first_seconds": round(self.first_seconds[label], 3),
                "first_done_after": round(self.first_end[label] - started, 3),
            }
            for label, seconds in self.seconds.items()
        }


# label -> the platform functions timed under it (module, attribute), per engine
SESSION = "Spark session start"
CLEAN = "clean (read bronze, rules)"
FOLD = "apply_changes (fold + commit)"
COMMIT = "Delta commit (delta-rs, driver)"
TIMED = {
    "polars": {
        CLEAN: [("platform_assets.core.medallion.steps.silver", "_clean")],
        FOLD: [
            ("platform_assets.core.medallion.steps.silver", "apply_changes"),
            ("platform_assets.core.medallion.steps.gold", "apply_changes"),
        ],
        COMMIT: [("platform_assets.core.medallion.scd", "_write_diff")],
    },
    "spark": {
        SESSION: [("platform_assets.lib.spark", "build_session")],
        CLEAN: [("platform_assets.core.spark.silver", "clean_batch_spark")],
        FOLD: [("platform_assets.core.spark.scd", "apply_changes_spark")],
        COMMIT: [("platform_assets.core.spark.scd", "_write_diff")],
    },
}


def _quiet() -> None:
    warnings.filterwarnings("ignore")


def _params(workdir: Path) -> dict[str, Any]:
    return json.loads((workdir / "params.json").read_text())


def _write_result(workdir: Path, phase: str, result: dict[str, Any]) -> None:
    (workdir / "results").mkdir(exist_ok=True)
    (workdir / "results" / f"{phase}.json").write_text(json.dumps(result, indent=2, default=str))


def _data_dir(workdir: Path, engine: str) -> Path:
    """Each engine (and the floor) has its own lake, state and audit databases; the source is shared."""
    return workdir / f"data_{engine}"


def _settings(p: dict[str, Any], workdir: Path):
    from platform_assets.settings import Settings

    return Settings(
        data_dir=_data_dir(workdir, p["engine"]),
        source_url=p["url"],
        tables_file=Path(p["tables_file"]),
        batch_size=p["batch_size"],
        engine=p["engine"],
        spark_master=p["spark_master"],
        spark_conf={k: str(v) for k, v in p.get("spark_conf", {}).items()},
    )


def _fact_config(p: dict[str, Any]):
    from platform_assets.core.medallion.config import load_tables

    return next(t for t in load_tables(Path(p["tables_file"])) if t.table == "FactStream")


# ----------------------------------------------------------------------------------------------------
# Phases (child side)


def phase_setup(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    from platform_devkit import sample

    t0 = time.perf_counter()
    counts = sample.init(
        p["url"],
        scale=p["scale"],
        seed=p["seed"],
        schema=p["schema"],
        end=START + timedelta(days=p["days"]),
        days=p["days"],
    )
    return {"rows": counts["FactStream"], "seconds": time.perf_counter() - t0, "tables": counts}


def phase_extract(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    from platform_assets.core.medallion.extract import Window, extract
    from platform_assets.core.sql.engines import engine_for

    config = _fact_config(p)
    engine = engine_for(p["url"])
    out_dir = workdir / "extract_out"
    shutil.rmtree(out_dir, ignore_errors=True)
    base = rss_mb()
    t0 = time.perf_counter()
    result = extract(engine, config, Window(), out_dir, batch_size=p["batch_size"])
    seconds = time.perf_counter() - t0
    size = result.path.stat().st_size if result.path else 0
    shutil.rmtree(out_dir, ignore_errors=True)
    return {
        "rows": result.rows,
        "seconds": seconds,
        "batches": result.batches,
        "parquet_mb": round(size / 2**20, 1),
        "base_mb": round(base, 1),
    }


def _materialize(p: dict[str, Any], workdir: Path, days: tuple[date, date] | None) -> dict[str, Any]:
    from dagster import DagsterInstance

    from platform_devkit.medallion import materialize_medallion

    settings = _settings(p, workdir)
    instance = DagsterInstance.ephemeral()
    with Timers() as timers:
        for label, targets in TIMED[p["engine"]].items():
            for module_name, attribute in targets:
                timers.wrap(module_name, attribute, label)
        base = rss_mb()
        with RssSampler() as sampler:
            started = time.time()
            t0 = time.perf_counter()
            run = materialize_medallion(settings, instance=instance, days=days, log_level="WARNING")
            seconds = time.perf_counter() - t0
    steps = []
    for result in run.results:
        for stat in instance.get_run_step_stats(result.run_id):
            duration = (
                stat.end_time - stat.start_time if stat.start_time is not None and stat.end_time else None
            )
            steps.append(
                {
                    "step": stat.step_key,
                    "status": stat.status.value if stat.status else None,
                    "seconds": None if duration is None else round(duration, 3),
                    "peak_mb": sampler.peak_between(stat.start_time, stat.end_time),
                    "start": stat.start_time,
                }
            )
    steps.sort(key=lambda s: s["start"] or 0)
    failed = [s["step"] for s in steps if s["status"] != "SUCCESS"]
    if not run.success or failed:
        raise RuntimeError(f"medallion run failed; steps not successful: {failed}")
    passed, failed_checks = run.checks()
    in_steps = sum(s["seconds"] or 0 for s in steps)
    return {
        "seconds": seconds,
        "base_mb": round(base, 1),
        "runs": len(run.results),
        "checks_passed": passed,
        "checks_failed": failed_checks,
        "steps": steps,
        "outside_steps_seconds": round(seconds - in_steps, 3),
        "timed": timers.summary(started),
        "started": started,
    }


def phase_full(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    shutil.rmtree(_data_dir(workdir, p["engine"]), ignore_errors=True)
    result = _materialize(p, workdir, None)
    result["rows"] = p["fact_rows"]
    return result


def phase_floor(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The full load with bare tools (bench/floor.py), into its own data dir."""
    import floor

    from platform_assets.core.medallion.config import load_tables

    configs = load_tables(Path(p["tables_file"]))  # names, keys, rules: the data path is floor's own
    out_dir = _data_dir(workdir, FLOOR)
    shutil.rmtree(out_dir, ignore_errors=True)
    base = rss_mb()
    result = floor.run_floor(p["url"], configs, out_dir, _fact_config(p).table)
    return {**result, "rows": p["fact_rows"], "base_mb": round(base, 1)}


def phase_compare(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The floor's silver and gold tables against the engine's, row for row (not measured)."""
    return _compare_with(FLOOR, p, workdir)


def _compare_with(floor_name: str, p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The silver and gold tables of the floor in ``floor_name``'s data dir against the engine's."""
    import floor

    from platform_assets.core.medallion.config import load_tables

    settings = _settings(p, workdir)
    t0 = time.perf_counter()
    tables = floor.compare(
        load_tables(Path(p["tables_file"])), _data_dir(workdir, floor_name), settings.table_path
    )
    return {
        "engine": p["engine"],
        "floor": floor_name,
        "tables": tables,
        "match": not any(t["problems"] for t in tables.values()),
        "rows": sum(t["rows"] for t in tables.values()),
        "seconds": time.perf_counter() - t0,
    }


def phase_floor_spark(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Silver and gold by a hand-written PySpark job (bench/spark_floor.py) from the Spark engine's bronze
    files, into its own data dir."""
    import spark_floor

    from platform_assets.core.medallion.config import load_tables

    settings = _settings(p, workdir)
    configs = load_tables(Path(p["tables_file"]))  # names, keys, rules: the data path is the floor's own
    conf = {k: str(v) for k, v in p.get("spark_conf", {}).items()}
    base = rss_mb()
    result = spark_floor.run_spark_floor(
        lambda table: Path(str(settings.table_path("bronze", table))),
        configs,
        _data_dir(workdir, SPARK_FLOOR),
        p["spark_master"],
        conf,
    )
    return {**result, "rows": p["fact_rows"], "base_mb": round(base, 1)}


def phase_compare_spark(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """The Spark floor's silver and gold tables against the Spark engine's, row for row (not measured)."""
    return _compare_with(SPARK_FLOOR, p, workdir)


def phase_change(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    """Update ``changed`` of DimUser/DimTrack and insert ``changed`` x N streams on a new day."""
    import sqlalchemy as sa

    from platform_devkit import sample

    tables = {t.name: t for t in sample.sample_tables(p["schema"]).tables.values()}
    users, tracks, facts = tables["DimUser"], tables["DimTrack"], tables["FactStream"]
    new_day = START + timedelta(days=p["days"])
    midnight = datetime(new_day.year, new_day.month, new_day.day)
    rng = random.Random(f"medallion_bench/{p['seed']}/change")
    engine = sa.create_engine(p["url"])
    t0 = time.perf_counter()
    out: dict[str, Any] = {"new_day": new_day.isoformat()}
    try:
        with engine.begin() as conn:

            def change_times(table: sa.Table, n: int) -> list[datetime]:
                """``n`` increasing times in the new day, later than any stored ``updated_at``."""
                latest = conn.execute(sa.select(sa.func.max(table.c.updated_at))).scalar()
                floor = midnight if latest is None else max(midnight, latest.replace(microsecond=0))
                return [floor + timedelta(seconds=1 + i * 40_000 // max(n, 1)) for i in range(n)]

            # DimUser: a different subscription_type
            rows = conn.execute(sa.select(users.c.user_id, users.c.subscription_type)).all()
            picked = sorted(rng.sample(rows, max(1, round(len(rows) * p["changed"]))))
            subs = sample.SUBSCRIPTIONS
            changed = [
                {
                    "user_id": uid,
                    "subscription_type": subs[(subs.index(sub) + 1) % len(subs)] if sub in subs else subs[0],
                    "updated_at": ts,
                }
                for (uid, sub), ts in zip(picked, change_times(users, len(picked)), strict=True)
            ]
            out["dim_user_updated"] = sample.bulk_update(conn, users, "user_id", changed)
            user_ids = [r[0] for r in rows]

            # DimTrack: a new track_name
            rows = conn.execute(sa.select(tracks.c.track_id, tracks.c.track_name)).all()
            picked = sorted(rng.sample(rows, max(1, round(len(rows) * p["changed"]))))
            changed = [
                {"track_id": tid, "track_name": f"{name.split(' - ')[0]} - Bench Edit", "updated_at": ts}
                for (tid, name), ts in zip(picked, change_times(tracks, len(picked)), strict=True)
            ]
            out["dim_track_updated"] = sample.bulk_update(conn, tracks, "track_id", changed)
            track_ids = [r[0] for r in rows]

            # FactStream: changed x N new streams on the new day
            n_new = max(1, round(p["fact_rows"] * p["changed"]))
            next_id = int(conn.execute(sa.select(sa.func.max(facts.c.stream_id))).scalar() or 0) + 1
            seconds = sorted(rng.randrange(86_400) for _ in range(n_new))
            date_key = new_day.year * 10_000 + new_day.month * 100 + new_day.day
            devices = sample.DEVICES
            chunk = 10_000
            for first in range(0, n_new, chunk):
                conn.execute(
                    facts.insert(),
                    [
                        {
                            "stream_id": next_id + i,
                            "user_id": rng.choice(user_ids),
                            "track_id": rng.choice(track_ids),
                            "date_key": date_key,
                            "listen_duration": rng.randint(1, 300),
                            "device_type": rng.choice(devices),
                            "stream_timestamp": midnight + timedelta(seconds=seconds[i]),
                        }
                        for i in range(first, min(first + chunk, n_new))
                    ],
                )
            out["fact_stream_inserted"] = n_new
    finally:
        engine.dispose()
    out["rows"] = out["dim_user_updated"] + out["dim_track_updated"] + out["fact_stream_inserted"]
    out["seconds"] = time.perf_counter() - t0
    return out


def phase_incremental(p: dict[str, Any], workdir: Path) -> dict[str, Any]:
    change = json.loads((workdir / "results" / "change.json").read_text())
    new_day = date.fromisoformat(change["new_day"])
    result = _materialize(p, workdir, (new_day, new_day))
    result["rows"] = change["rows"]
    result["new_day"] = change["new_day"]
    return result


PHASE_FUNCTIONS = {
    "setup": phase_setup,
    "extract": phase_extract,
    "full": phase_full,
    "floor": phase_floor,
    "compare": phase_compare,
    SPARK_FLOOR: phase_floor_spark,
    "compare_spark": phase_compare_spark,
    "change": phase_change,
    "incremental": phase_incremental,
}


def _result_name(phase: str, engine: str) -> str:
    return f"{phase}-{engine}" if phase in ENGINE_PHASES else phase


def run_phase(phase: str, workdir: Path, engine: str) -> int:
    _quiet()
    p = {**_params(workdir), "engine": engine}
    result = PHASE_FUNCTIONS[phase](p, workdir)
    result["peak_mb"] = round(peak_mb(), 1)
    result["seconds"] = round(result["seconds"], 3)
    result["rows_per_s"] = round(result["rows"] / result["seconds"]) if result["seconds"] > 0 else None
    result["us_per_row"] = round(1e6 * result["seconds"] / result["rows"], 2) if result["rows"] else None
    _write_result(workdir, _result_name(phase, engine), result)
    return 0


# ----------------------------------------------------------------------------------------------------
# Orchestration (parent side)


def _backend(url: str) -> str:
    import sqlalchemy as sa

    return sa.make_url(url).get_backend_name()


def _write_tables_file(workdir: Path, schema: str | None) -> Path:
    import yaml

    document = yaml.safe_load(SHIPPED_TABLES.read_text())
    for entry in document["tables"]:
        entry["schema"] = schema
    path = workdir / "tables.yaml"
    path.write_text(yaml.safe_dump(document, sort_keys=False))
    return path


def _drop_schema(url: str, schema: str) -> None:
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            if sa.inspect(conn).has_schema(schema):
                cascade = engine.dialect.name == "postgresql"
                conn.execute(sa.schema.DropSchema(schema, cascade=cascade))
    finally:
        engine.dispose()


def _children(pid: int) -> list[int]:
    """Direct children of ``pid`` (Linux /proc; none elsewhere or once it has exited)."""
    found: list[int] = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as handle:
                found += [int(child) for child in handle.read().split()]
    except (OSError, ValueError):
        pass
    return found


def _process_tree(root: int) -> list[int]:
    tree, todo = [], [root]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += _children(pid)
    return tree


def _rss_and_cpu(pid: int) -> tuple[float, float] | None:
    """(VmRSS in MB, user + system CPU seconds) of ``pid``, None once it is gone."""
    try:
        with open(f"/proc/{pid}/status") as handle:
            rss_kb = next((int(line.split()[1]) for line in handle if line.startswith("VmRSS:")), 0)
        with open(f"/proc/{pid}/stat") as handle:
            fields = handle.read().rsplit(")", 1)[1].split()
        return rss_kb / 1024, (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        return None


def _machine_cpu_seconds() -> float:
    """CPU seconds all processes of the machine have used (Linux /proc/stat; 0 elsewhere)."""
    try:
        with open("/proc/stat") as handle:
            fields = [int(v) for v in handle.readline().split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = fields[3] + (fields[4] if len(fields) > 4 else 0)  # idle, iowait
    return (sum(fields[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def _kind(pid: int, root: int) -> str:
    """driver (the phase's Python process), jvm, or workers (Spark's Python daemon and workers)."""
    if pid == root:
        return "driver"
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            program = handle.read().split(b"\0", 1)[0].decode(errors="replace")
    except OSError:
        return "workers"
    return "jvm" if os.path.basename(program) == "java" else "workers"


class TreeSampler(Sampler):
    """Samples the RSS and CPU time of a child's whole process tree every ``interval`` seconds (the JVM of
    a local Spark session and its Python workers are descendants of the phase's Python process).

    The RSS is the sum of the processes' VmRSS, so pages shared between processes (forked Python workers)
    count once per process: an upper bound. CPU seconds are the last value seen per process."""

    def __init__(self, root: int, interval: float = 0.05) -> None:
        super().__init__(interval)
        self.root = root
        self.peak_mb = 0.0
        self.max_processes = 0
        self.cpu: dict[int, float] = {}
        self.kinds: dict[int, str] = {}

    def sample(self) -> None:
        total, alive = 0.0, 0
        for pid in _process_tree(self.root):
            reading = _rss_and_cpu(pid)
            if reading is None:
                continue
            if self.kinds.get(pid) != "jvm":  # the JVM starts as the spark-submit script: look again
                self.kinds[pid] = _kind(pid, self.root)
            total += reading[0]
            alive += 1
            self.cpu[pid] = reading[1]
        self.peak_mb = max(self.peak_mb, total)
        self.max_processes = max(self.max_processes, alive)

    def cpu_by_kind(self) -> dict[str, float]:
        out = dict.fromkeys(("driver", "jvm", "workers"), 0.0)
        for pid, seconds in self.cpu.items():
            out[self.kinds[pid]] += seconds
        return {k: round(v, 1) for k, v in out.items()}


def _group_alive(process: subprocess.Popen) -> bool:
    process.poll()  # reap the child itself, or the group never empties
    try:
        os.killpg(process.pid, 0)
    except ProcessLookupError:
        return False
    return True


def _stop_group(process: subprocess.Popen, grace: float) -> bool:
    """End whatever is left of the child's process group (its own session) after ``grace`` seconds:
    SIGTERM, then SIGKILL after 5 s. The JVM and Spark's Python workers are in that group (a JVM exits on
    its own shortly after its driver: hence the grace). True if anything had to be ended."""
    deadline = time.monotonic() + grace
    while _group_alive(process) and time.monotonic() < deadline:
        time.sleep(0.1)
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return False
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not _group_alive(process):
            return True
        time.sleep(0.1)
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    process.wait()
    return True


def _spawn(phase: str, engine: str, workdir: Path, verbose: bool, timeout: float | None) -> dict[str, Any]:
    name = _result_name(phase, engine)
    log = workdir / "logs" / f"{name}.log"
    log.parent.mkdir(exist_ok=True)
    command = [
        *(sys.executable, str(Path(__file__).resolve()), "--phase", phase),
        *("--engine", engine, "--workdir", str(workdir)),
    ]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
        # a local Spark driver binds to the host's first non-loopback address otherwise
        "SPARK_LOCAL_IP": os.environ.get("SPARK_LOCAL_IP", "127.0.0.1"),
    }
    t0, machine = time.perf_counter(), _machine_cpu_seconds()
    with open(log, "w") as handle:
        # A session of its own: the child, its JVM and the JVM's Python workers can be ended together
        # (Ctrl-C reaches only this process; it ends the group in the finally below).
        process = subprocess.Popen(
            command,
            stdout=None if verbose else handle,
            stderr=subprocess.STDOUT if not verbose else None,
            env=env,
            cwd=workdir,  # Spark's stray files (spark-warehouse, derby.log) land in the work dir
            start_new_session=True,
        )
        returncode = None
        try:
            with TreeSampler(process.pid) as tree:
                try:
                    returncode = process.wait(timeout)
                except subprocess.TimeoutExpired:  # e.g. a Spark job whose scheduler thread died
                    raise RuntimeError(
                        f"phase {name} still running after {timeout:g} s: ended; log {log}"
                    ) from None
        finally:
            leftover = _stop_group(process, grace=10 if returncode is not None else 0)
    wall, machine = time.perf_counter() - t0, _machine_cpu_seconds() - machine
    if returncode != 0:
        tail = "" if verbose else "".join(log.read_text().splitlines(keepends=True)[-40:])
        raise RuntimeError(f"phase {name} failed (exit {returncode}); log {log}:\n{tail}")
    result = json.loads((workdir / "results" / f"{name}.json").read_text())
    result["process_seconds"] = round(wall, 3)
    result["tree_peak_mb"] = round(tree.peak_mb, 1)
    result["tree_processes"] = tree.max_processes
    result["cpu_seconds"] = tree.cpu_by_kind()
    # CPU the rest of the machine used meanwhile: other work competing for the same cores
    result["cpu_seconds"]["others"] = round(max(0.0, machine - sum(result["cpu_seconds"].values())), 1)
    result["leftover_processes"] = leftover
    return result


def _fmt_int(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fmt_float(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _peak(result: dict[str, Any]) -> float:
    """The phase's peak: the child's own ``ru_maxrss`` or its process tree's (JVM included), the larger."""
    return max(result["peak_mb"], result.get("tree_peak_mb") or 0.0)


def _engine_results(results: dict[str, dict], engine: str) -> dict[str, dict]:
    """One engine's view: ``extract``, ``full`` and ``incremental`` (the extraction and the floor are
    shared)."""
    shared = {phase: phase for phase in ("extract", FLOOR, "compare")}
    if engine == "spark":  # the Spark floor is the Spark engine's reference only
        shared.update({SPARK_FLOOR: SPARK_FLOOR, "compare_spark": "compare_spark"})
    named = {**shared, **{phase: _result_name(phase, engine) for phase in ENGINE_PHASES}}
    return {phase: results[name] for phase, name in named.items() if name in results}


def _goals(backend: str, results: dict[str, dict]) -> dict[str, dict[str, Any]]:
    goals: dict[str, dict[str, Any]] = {}
    extract = results.get("extract")
    if extract:
        ok = extract["rows_per_s"] >= GOAL_EXTRACT_ROWS_PER_S
        goals["extract"] = {
            "goal": f">= {GOAL_EXTRACT_ROWS_PER_S:,} rows/s (PostgreSQL)",
            "value": extract["rows_per_s"],
            "met": ok if backend == "postgresql" else None,
            "note": "" if backend == "postgresql" else f"measured on {backend}; the goal is for PostgreSQL",
        }
    full = results.get("full")
    if full:
        peaks = {k: _peak(r) for k, r in results.items() if k in ("extract", "full", "incremental")}
        worst = max(peaks.values())
        rows = full["rows"]
        goals["peak"] = {
            "goal": f"peak <= {GOAL_PEAK_MB:,} MB on a {GOAL_PEAK_ROWS:,}-row table",
            "value": worst,
            "met": worst <= GOAL_PEAK_MB if rows >= GOAL_PEAK_ROWS or worst > GOAL_PEAK_MB else None,
            "note": ""
            if rows >= GOAL_PEAK_ROWS
            else f"measured with {rows:,} rows; peak grows with rows where a phase holds whole tables",
        }
        incremental = results.get("incremental")
        if incremental:
            pct = 100 * incremental["seconds"] / full["seconds"]
            goals["incremental"] = {
                "goal": f"incremental <= {GOAL_INCREMENTAL_PCT:g} % of full",
                "value": round(pct, 2),
                "met": pct <= GOAL_INCREMENTAL_PCT,
                "note": "",
            }
    return goals


def _step_seconds(result: dict[str, Any], layers: tuple[str, ...]) -> float:
    """Seconds of a run's Dagster steps of these layers (step keys are ``<layer>__<table>``)."""
    steps = result.get("steps", [])
    return round(sum(s["seconds"] or 0 for s in steps if s["step"].split("__")[0] in layers), 3)


def _versus(
    project: float | None, floor: float | None, goal: float | None = None, at_least: bool = False
) -> dict[str, Any]:
    """``project / floor``, and whether the ratio meets ``goal`` (at most it, or ``at_least`` it)."""
    ratio = project / floor if project and floor else None
    met = None if goal is None or ratio is None else (ratio >= goal if at_least else ratio <= goal)
    return {
        "project": project,
        "floor": floor,
        "ratio": None if ratio is None else round(ratio, 3),
        "goal": None if goal is None else f"{'>=' if at_least else '<='} x{goal:g}",
        "met": met,
    }


def _session_outside_steps(full: dict[str, Any]) -> float:
    """Seconds the run spent starting Spark sessions before its first silver or gold step (the engine's
    resource starts it once per run); a session started inside a step is already in the step's time."""
    timed = (full.get("timed") or {}).get(SESSION)
    starts = [s["start"] for s in full.get("steps", []) if s["step"].split("__")[0] in ("silver", "gold")]
    if not timed or not starts or full.get("started") is None:
        return 0.0
    ready = full["started"] + timed["first_done_after"]
    return round(timed["first_seconds"], 3) if ready <= min(s for s in starts if s is not None) else 0.0


def _own_cpu(result: dict[str, Any]) -> float | None:
    cpu = result.get("cpu_seconds")
    return round(sum(v for k, v in cpu.items() if k != "others"), 1) if cpu else None


def _spark_silver_gold(full: dict[str, Any]) -> float:
    """The Spark engine's silver + gold: its steps plus the session start when it happened outside them
    (the Spark floor's time includes its session start too)."""
    return round(_step_seconds(full, ("silver", "gold")) + _session_outside_steps(full), 3)


def _floor_figures(results: dict[str, dict], goals: dict[str, dict]) -> dict[str, dict]:
    """The engine's full load against the floor's, all measured in this invocation (docs/performance.md)."""
    floor, full = results.get(FLOOR), results.get("full")
    if not floor or not full:
        return {}
    stages, extract = floor["stages"], results.get("extract")
    figures = {
        "full": _versus(full["seconds"], floor["seconds"], GOAL_FLOOR_FULL_RATIO),
        "silver_gold": _versus(
            _step_seconds(full, ("silver", "gold")),
            stages["silver"] + stages["gold"],
            GOAL_FLOOR_SILVER_GOLD_RATIO,
        ),
        "bronze": _versus(_step_seconds(full, ("bronze",)), stages["bronze"]),
        "extraction": _versus(
            extract and extract["rows_per_s"],
            floor["bare_fetch"]["rows_per_s"],
            GOAL_EXTRACT_VS_BARE_FETCH,
            at_least=True,
        ),
        "peak": {
            **_versus(_peak(full), _peak(floor)),
            "goal": f"<= {GOAL_PEAK_MB:,} MB at {GOAL_PEAK_ROWS:,} rows",
            "met": goals["peak"]["met"],
            "base": {"project": full.get("base_mb"), "floor": floor.get("base_mb")},
        },
    }
    spark_floor = results.get(SPARK_FLOOR)
    if spark_floor:
        figures["spark_silver_gold"] = _versus(
            _spark_silver_gold(full), spark_floor["seconds"], GOAL_SPARK_FLOOR_RATIO
        )
        figures["spark_silver_gold"]["session"] = {
            "project": _session_outside_steps(full),
            "floor": spark_floor["stages"]["session"],
        }
        # CPU seconds of each phase's own processes: on a shared machine the steadier figure (the
        # platform's phase also holds bronze and Dagster's work)
        figures["spark_cpu"] = _versus(_own_cpu(full), _own_cpu(spark_floor))
    incremental = results.get("incremental")
    if incremental:
        figures["incremental_share"] = {
            "incremental": incremental["seconds"],
            "full": full["seconds"],
            "pct": goals["incremental"]["value"],
            "goal": f"<= {GOAL_INCREMENTAL_PCT:g} %",
            "met": goals["incremental"]["met"],
        }
    return figures


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "n/a"}[met]


def _print_steps(name: str, result: dict[str, Any], top: int) -> None:
    steps = sorted(result.get("steps", []), key=lambda s: -(s["seconds"] or 0))[:top]
    if not steps:
        return
    print(f"\n{name}: slowest steps (seconds, peak RSS sampled while the step ran)")
    for s in steps:
        print(f"  {s['step']:<28} {_fmt_float(s['seconds'], 2):>9} s  {_fmt_float(s['peak_mb']):>9} MB")
    print(f"  {'(outside steps: run setup)':<28} {_fmt_float(result['outside_steps_seconds'], 2):>9} s")


def _print_timed(name: str, result: dict[str, Any]) -> None:
    """Where a run's time goes: the wrapped platform functions, the rest, and CPU by process kind."""
    timed = result.get("timed") or {}
    if not timed:
        return
    print(f"\n{name}: where the time goes (wall seconds, summed over calls)")
    for label in (SESSION, CLEAN, FOLD, COMMIT):
        t = timed.get(label)
        if t is None:
            continue
        shown = f"  of which {label}" if label == COMMIT else label
        note = f"{t['calls']} calls"
        if label == SESSION:
            note += f"; the first took {t['first_seconds']:.2f} s, ready {t['first_done_after']:.2f} s into the run"
        print(f"  {shown:<34} {_fmt_float(t['seconds'], 2):>9} s  ({note})")
    outside = result["seconds"] - sum(timed[k]["seconds"] for k in (SESSION, CLEAN, FOLD) if k in timed)
    print(f"  {'the rest (bronze, Dagster, checks)':<34} {_fmt_float(outside, 2):>9} s")
    cpu = result.get("cpu_seconds")
    if cpu:
        print(
            f"  CPU seconds of the phase's processes: driver {cpu['driver']:.1f}, JVM {cpu['jvm']:.1f}, "
            f"Python workers {cpu['workers']:.1f}; other processes {cpu.get('others', 0):.1f} "
            f"(wall {result['process_seconds']:.1f} s x {os.cpu_count()} cores)"
        )


def _print_floor(results: dict[str, dict], figures: dict[str, dict]) -> None:
    """The ``project / floor`` lines, each with its goal (if it has one) and verdict."""
    floor = results[FLOOR]
    print(
        f"against the floor (bare tools: {floor['reader']}, polars, write_deltalake; partitioned silver "
        f"and gold: {floor['partitioned_writes']})"
    )

    def line(label: str, text: str, figure: dict[str, Any]) -> None:
        goal = f"goal {figure['goal']}" if figure.get("goal") else ""
        print(f"  {label:<18} {text:<66} {goal:<14} {_verdict(figure['met']) if goal else ''}")

    def ratio(f: dict[str, Any]) -> str:
        return "-" if f["ratio"] is None else f"x{f['ratio']:.2f}"

    for key, label in (("full", "full load"), ("silver_gold", "silver + gold"), ("bronze", "bronze")):
        f = figures[key]
        line(label, f"project {f['project']:.2f} s / floor {f['floor']:.2f} s = {ratio(f)}", f)
    f = figures.get("spark_silver_gold")
    if f:
        s = f["session"]
        line(
            "Spark floor",
            f"project {f['project']:.2f} s / PySpark job {f['floor']:.2f} s = {ratio(f)}",
            f,
        )
        print(
            f"  {'':<18} silver + gold steps and session start (project {s['project']:.2f} s outside steps, "
            f"PySpark job {s['floor']:.2f} s); the job's stages: "
            + ", ".join(f"{k} {v:.2f} s" for k, v in results[SPARK_FLOOR]["stages"].items())
        )
        c = figures.get("spark_cpu") or {}
        if c.get("ratio"):
            print(
                f"  {'':<18} CPU seconds of the phases' processes: project {c['project']:.1f} (whole full "
                f"load) / PySpark job {c['floor']:.1f} = x{c['ratio']:.2f}"
            )
    f = figures["extraction"]
    project = "n/a (no extract phase)" if f["project"] is None else f"{f['project']:,.0f} rows/s"
    line("extraction", f"project {project} / bare fetch {f['floor']:,.0f} rows/s = {ratio(f)}", f)
    f = figures.get("incremental_share")
    if f:
        line(
            "incremental share",
            f"incremental {f['incremental']:.2f} s / full {f['full']:.2f} s = {f['pct']:.2f} %",
            f,
        )
    f = figures["peak"]
    base = f["base"]
    line(
        "peak memory",
        f"project {f['project']:,.0f} MB (base {_fmt_float(base['project'], 0)}), "
        f"floor {f['floor']:,.0f} MB (base {_fmt_float(base['floor'], 0)})",
        {**f, "goal": f"project {f['goal']}"},
    )


def _print_check(compare: dict[str, Any]) -> None:
    """Whether the floor built the platform's tables: without that, it is no reference."""
    tables = compare["tables"]
    which = "Spark floor" if compare.get("floor") == SPARK_FLOOR else "floor"
    if compare["match"]:
        extra = sorted({c for t in tables.values() for c in t["project_only_columns"]})
        print(
            f"\n{which} check: the {which}'s {len(tables)} silver and gold tables hold the same rows as the "
            f"platform's ({compare['engine']}), {compare['rows']:,} rows, column order ignored; "
            + (f"columns only the platform has (not compared): {extra}" if extra else "same columns")
        )
        return
    print("\n" + "!" * 100)
    print(f"FLOOR CHECK FAILED: the {which}'s tables differ from the platform's ({compare['engine']}):")
    for name, t in tables.items():
        for problem in t["problems"]:
            print(f"  {name}: {problem}")
    print("The floor is no valid reference until it builds the same tables: its ratios mean nothing.")
    print("!" * 100)


def _print_engine(
    engine: str,
    p: dict[str, Any],
    results: dict[str, dict],
    goals: dict,
    floor_figures: dict[str, dict],
    top: int,
) -> None:
    header = (
        f"{'phase':<12} {'rows':>12} {'seconds':>10} {'rows/s':>12} {'us/row':>10} {'peak MB':>9} "
        f"{'tree MB':>9} {'base MB':>8}  note"
    )
    print(f"\nengine {engine}" + (f" (spark.master {p['spark_master']})" if engine == "spark" else ""))
    print(header)
    print("-" * len(header))
    notes = {
        "extract": "core extract, whole FactStream -> Parquet (same for both engines)",
        "full": "materialize_medallion, all tables, all days",
        FLOOR: "",
        SPARK_FLOOR: "",
        "incremental": "",
    }
    if FLOOR in results:
        stages = results[FLOOR]["stages"]
        notes[FLOOR] = "bare tools, all tables: " + ", ".join(f"{k} {v:.2f} s" for k, v in stages.items())
    if "incremental" in results and "full" in results:
        inc = results["incremental"]
        notes["incremental"] = (
            f"{goals['incremental']['value']:.2f} % of full; {inc['rows']:,} changed rows, day {inc['new_day']}"
        )
    if not results:
        print("(no phase completed)")
    if SPARK_FLOOR in results:
        stages = results[SPARK_FLOOR]["stages"]
        notes[SPARK_FLOOR] = "PySpark job, silver + gold: " + ", ".join(
            f"{k} {v:.2f} s" for k, v in stages.items()
        )
    for phase in ("extract", "full", FLOOR, SPARK_FLOOR, "incremental"):
        r = results.get(phase)
        if not r:
            continue
        print(
            f"{phase:<12} {_fmt_int(r['rows']):>12} {_fmt_float(r['seconds'], 2):>10} "
            f"{_fmt_int(r['rows_per_s']):>12} {_fmt_float(r.get('us_per_row'), 2):>10} "
            f"{_fmt_float(r['peak_mb']):>9} {_fmt_float(r.get('tree_peak_mb')):>9} "
            f"{_fmt_float(r.get('base_mb')):>8}  {notes[phase]}"
        )
        if r.get("leftover_processes"):
            print(f"{'':<12} (processes of this phase were still running 10 s after it exited; ended)")
    if goals:
        print("goals")
    for key, g in goals.items():
        value = g["value"]
        shown = (
            f"{value:,.0f} rows/s"
            if key == "extract"
            else f"{value:,.1f} MB"
            if key == "peak"
            else f"{value:.2f} %"
        )
        note = f"  ({g['note']})" if g["note"] else ""
        print(f"  {g['goal']:<46} {shown:>16}  {_verdict(g['met'])}{note}")
    if floor_figures:
        _print_floor(results, floor_figures)
    for phase in ("full", "incremental"):
        if phase in results:
            _print_steps(f"{phase} ({engine})", results[phase], top)
            _print_timed(f"{phase} ({engine})", results[phase])


def _ratio(a: Any, b: Any) -> str:
    return "-" if not a or not b else f"x{a / b:,.2f}"


def _print_side_by_side(results: dict[str, dict]) -> None:
    header = (
        f"{'phase':<12} {'engine':<13} {'seconds':>9} {'rows/s':>11} {'us/row':>10} {'peak MB':>9} "
        f"{'tree MB':>9}  CPU s driver / JVM / workers (other processes)"
    )
    print("\nEngines side by side (peak MB: the Python process; tree MB: with the JVM and Python workers)")
    print(header)
    print("-" * len(header))
    for phase in ENGINE_PHASES:
        rows = {e: results.get(_result_name(phase, e)) for e in ENGINES}
        for engine, r in rows.items():
            if r is None:
                continue
            cpu = r.get("cpu_seconds") or {}
            print(
                f"{phase:<12} {engine:<13} {_fmt_float(r['seconds'], 2):>9} {_fmt_int(r['rows_per_s']):>11} "
                f"{_fmt_float(r.get('us_per_row'), 2):>10} {_fmt_float(r['peak_mb']):>9} "
                f"{_fmt_float(r.get('tree_peak_mb')):>9}  "
                f"{cpu.get('driver', 0):.1f} / {cpu.get('jvm', 0):.1f} / {cpu.get('workers', 0):.1f} "
                f"({cpu.get('others', 0):.1f})"
            )
        polars, spark = rows["polars"], rows["spark"]
        if polars and spark:
            print(
                f"{phase:<12} {'spark/polars':<13} {_ratio(spark['seconds'], polars['seconds']):>9} "
                f"{_ratio(spark['rows_per_s'], polars['rows_per_s']):>11} "
                f"{_ratio(spark.get('us_per_row'), polars.get('us_per_row')):>10} "
                f"{_ratio(spark['peak_mb'], polars['peak_mb']):>9} "
                f"{_ratio(_peak(spark), _peak(polars)):>9}"
            )


def report(
    p: dict[str, Any],
    results: dict[str, dict],
    goals: dict[str, dict],
    floor_figures: dict[str, dict],
    top: int,
) -> None:
    print()
    print(
        f"Medallion benchmark: {p['backend']}, FactStream {p['fact_rows']:,} rows over {p['days']} days "
        f"(scale {p['scale']}), batch size {p['batch_size']:,}, changed {p['changed']:.2%}, "
        f"engine {' and '.join(p['engines'])}"
    )
    if "setup" in results:
        tables = ", ".join(f"{k} {v:,}" for k, v in results["setup"]["tables"].items())
        print(f"source: {tables}  (built in {results['setup']['seconds']:.1f} s, not measured)")
    for engine in p["engines"]:
        _print_engine(engine, p, _engine_results(results, engine), goals[engine], floor_figures[engine], top)
    if len(p["engines"]) > 1:
        _print_side_by_side(results)
    for check in ("compare", "compare_spark"):
        if check in results:
            _print_check(results[check])


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(f"signal {signum}")


def orchestrate(args: argparse.Namespace) -> int:
    workdir = (
        Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="medallion_bench_"))
    )
    workdir.mkdir(parents=True, exist_ok=True)
    url = args.url or f"sqlite:///{workdir / 'source.db'}"
    backend = _backend(url)
    schema = None if backend == "sqlite" else f"bench_{uuid.uuid4().hex[:10]}"
    scale = max(1, round(args.rows / (STREAMS_PER_SCALE_PER_DAY * args.days)))
    engines = list(ENGINES) if args.engine == "both" else [args.engine]
    params = {
        "url": url,
        "backend": backend,
        "schema": schema,
        "rows_requested": args.rows,
        "days": args.days,
        "scale": scale,
        "fact_rows": STREAMS_PER_SCALE_PER_DAY * scale * args.days,
        "batch_size": args.batch_size,
        "changed": args.changed,
        "seed": args.seed,
        "engines": engines,
        "spark_master": args.spark_master,
        "spark_conf": json.loads(args.spark_conf) if args.spark_conf else {},
        "tables_file": str(_write_tables_file(workdir, schema)),
    }
    (workdir / "params.json").write_text(json.dumps(params, indent=2))
    print(f"workdir {workdir}; source {backend}" + (f" schema {schema}" if schema else ""), flush=True)
    # Every engine loads the same source; the change is applied once, after every full load and before
    # every incremental run, so each engine's incremental run sees the same new rows. The floor loads the
    # same source too, and is checked while the engine's tables still hold the full load only.
    compared = "polars" if "polars" in engines else engines[0]
    plan = [
        *(("setup", engines[0]), ("extract", engines[0])),
        *(("full", e) for e in engines),
        *(((FLOOR, engines[0]), ("compare", compared)) if args.floor else ()),
        *(((SPARK_FLOOR, "spark"), ("compare_spark", "spark")) if args.floor and "spark" in engines else ()),
        ("change", engines[0]),
        *(("incremental", e) for e in engines),
    ]
    results: dict[str, dict] = {}
    status = 0
    previous = signal.signal(signal.SIGTERM, _interrupt)  # as Ctrl-C: the children are ended, then a report
    try:
        for phase, engine in plan:
            if phase == "extract" and args.skip_extract:
                continue
            name = _result_name(phase, engine)
            print(f"[{time.strftime('%H:%M:%S')}] phase {name} ...", end=" ", flush=True)
            results[name] = r = _spawn(phase, engine, workdir, args.verbose, args.phase_timeout)
            tree = f", tree {r['tree_peak_mb']:.0f} MB" if r["tree_processes"] > 1 else ""
            print(f"{r['seconds']:.1f} s, peak {r['peak_mb']:.0f} MB{tree}", flush=True)
            if phase in ("compare", "compare_spark") and not r["match"]:  # measure the rest; the run fails
                print("the floor's tables differ from the platform's (see the report)", file=sys.stderr)
                status = 1
    except (RuntimeError, KeyboardInterrupt) as exc:
        print(f"\n{exc}", file=sys.stderr)
        status = 1
    finally:
        signal.signal(signal.SIGTERM, previous)
        if schema is not None:
            try:
                _drop_schema(url, schema)
            except Exception as exc:  # report, but still print what was measured
                print(f"could not drop schema {schema}: {exc}", file=sys.stderr)
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    goals = {engine: _goals(backend, _engine_results(results, engine)) for engine in engines}
    floor_figures = {e: _floor_figures(_engine_results(results, e), goals[e]) for e in engines}
    report(params, results, goals, floor_figures, args.top_steps)
    if args.json:
        import sqlalchemy as sa

        shown = {k: v for k, v in params.items() if k != "tables_file"}
        shown["url"] = sa.make_url(url).render_as_string(hide_password=True)
        Path(args.json).write_text(
            json.dumps(
                {"params": shown, "phases": results, "goals": goals, "floor": floor_figures},
                indent=2,
                default=str,
            )
        )
        print(f"\nfigures written to {args.json}")
    if args.keep:
        print(f"work dir kept: {workdir}")
    for check in ("compare", "compare_spark"):
        if check in results and not results[check]["match"]:
            print("\nFLOOR CHECK FAILED: the floor's tables differ from the platform's", file=sys.stderr)
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rows", type=int, default=5_000_000, help="FactStream rows (default 5,000,000)")
    parser.add_argument("--days", type=int, default=5, help="days the FactStream rows are spread over")
    parser.add_argument("--url", default=None, help="source SQLAlchemy URL (default: SQLite in the work dir)")
    parser.add_argument("--batch-size", type=int, default=100_000, help="extraction batch size")
    parser.add_argument("--changed", type=float, default=0.01, help="fraction of rows changed (default 0.01)")
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--workdir", default=None, help="work dir (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (source, lake, logs)")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument("--skip-extract", action="store_true", help="skip the raw extraction phase")
    parser.add_argument(
        "--floor",
        action="store_true",
        help="also run the full load with bare tools (bench/floor.py), check it builds the same tables, "
        "and report the platform against it (SQLite and PostgreSQL)",
    )
    parser.add_argument("--top-steps", type=int, default=8, help="slowest Dagster steps to list per run")
    parser.add_argument(
        "--engine",
        choices=(*ENGINES, "both"),
        default="polars",
        help="engine of silver and gold; both: each engine in turn on the same source (default polars)",
    )
    parser.add_argument("--spark-master", default="local[*]", help="spark.master of the Spark engine")
    parser.add_argument(
        "--spark-conf", default=None, help='Spark settings as JSON, e.g. \'{"spark.driver.memory": "4g"}\''
    )
    parser.add_argument(
        "--phase-timeout", type=float, default=None, help="end a phase (and its JVM) after this many seconds"
    )
    parser.add_argument(
        "--verbose", action="store_true", help="show the phases' output instead of logging it"
    )
    parser.add_argument("--phase", choices=PHASES, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rows < 1 or args.days < 1 or args.batch_size < 1 or not 0 < args.changed < 1:
        parser.error("--rows, --days and --batch-size must be positive and 0 < --changed < 1")
    if args.floor and args.url and _backend(args.url) not in FLOOR_BACKENDS:
        parser.error(f"--floor reads {' or '.join(FLOOR_BACKENDS)} sources only")
    if args.phase:
        if not args.workdir:
            parser.error("--phase needs --workdir")
        if args.engine not in ENGINES:
            parser.error("--phase needs one engine")
        return run_phase(args.phase, Path(args.workdir), args.engine)
    return orchestrate(args)


if __name__ == "__main__":
    raise SystemExit(main())
