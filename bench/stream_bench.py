"""Trade stream benchmark: feed throughput, landing and enrichment per micro-batch, end-to-end latency.

    python bench/stream_bench.py                          # 200,000 trades; caps 100k and 200k; 2,000/s for 60 s
    python bench/stream_bench.py --trades 50000 --batch-cap 50000 --seconds 20   # quick run
    python bench/stream_bench.py --skip-e2e --json out.json
    python bench/stream_bench.py --landing-only --batch-cap 200000 --repeat 3   # landing goal only
    python bench/stream_bench.py --landing-only --batch-cap 200000 --profile    # where landing's time goes

Phases (feed, land and enrich each in its own child process, so the peak RSS reported is that phase's):

  feed         ``run_feed``: the websocket stand-in (in the parent process, no interval between frames)
               -> librdkafka's mock cluster (also in the parent; ``platform_devkit.kafka_broker``), ``--trades``
               trades over a topic of one partition (and one symbol) per 20,000 trades, at least 4
  land-<cap>   ``land_batch`` of one micro-batch of the first <cap> messages of that topic (planned by
               ``plan_batch``) into a fresh bronze Delta table; ``--repeat N`` lands it N times (each in a
               new process, into a new table), ``--profile`` runs ``land_batch`` under cProfile
  enrich-<cap> ``enrich_pending`` over that landed batch: silver Delta table + Enriched_Trades (SQLite)
  e2e          the whole Dagster path under a real ``dagster-daemon`` (shipped dagster.yaml, the sensor's
               default interval): ``trades_feed_job`` launched from the CLI reads the stand-in (its 3 symbols)
               paced at ``--rate`` trades/s for ``--seconds`` into a topic the broker creates on first use
               (4 partitions, as under ``make dev``); the sensor starts micro-batch runs of at most the
               smallest ``--batch-cap``; this process polls Enriched_Trades and takes each trade's latency as
               first seen there minus sent

The broker and the stand-ins live in this (parent) process: the children and the daemon's runs reach them
over TCP on 127.0.0.1, as they would reach a real broker and feed.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import cProfile
import io
import json
import logging
import os
import pstats
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import warnings
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import FrameType
from typing import Any

from measure import Sampler, peak_mb, rss_mb  # bench/measure.py: this script's folder is on sys.path

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
SHIPPED_DAGSTER_YAML = REPO / "dagster.yaml"
CHILD_PHASES = ("feed", "land", "enrich")
APP_ID = "trades:bench"
MICRO_BATCH_JOB = "trades_micro_batch_job"  # platform_assets.defs.trades.sensors.MICRO_BATCH_JOB
STANDIN_SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")  # platform_devkit.trades_standin.SYMBOLS
# librdkafka's mock cluster keeps at most 5 MiB (or 100,000 messages) per partition and silently drops the
# oldest message sets beyond that (rdkafka_mock.c, max_size/max_cnt); a trade message is ~190 bytes. The
# feed/landing topic gets a partition per this many trades, so all --trades stay on it.
TRADES_PER_PARTITION = 20_000

# Dagster repeats its beta notice for every asset with a backfill policy in every process (see Makefile).
QUIET_DAGSTER = "ignore:Parameter `backfill_policy` of function `asset` is currently in beta"

GOAL_LANDING_ROWS_PER_S = 200_000
GOAL_P95_LATENCY_S = 30.0
# "Memory bounded by the batch cap": the landing/enrichment peak above the process's base may grow at most
# linearly with the cap (this much slack), so it is the cap, not the topic or backlog, that sizes a run.
GOAL_MEMORY_SLACK = 1.25


def lookup_body(symbols: list[str] | tuple[str, ...]) -> dict[str, Any]:
    """An exchange-info answer listing every symbol as TRADING: every trade is enriched and can be timed."""
    return {
        "symbols": [
            {"symbol": s, "status": "TRADING", "baseAsset": s[:-4], "quoteAsset": "USDT", "filters": []}
            for s in symbols
        ]
    }


def spread_symbols(partitions: int) -> list[str]:
    """One symbol per partition of a ``partitions``-partition topic.

    Trades are keyed by symbol and librdkafka's default partitioner (consistent_random) puts a key on
    partition CRC-32(key) mod n, so the stand-in's 3 symbols would fill at most 3 partitions. The feed
    phase checks afterwards that nothing was dropped, so a wrong guess here cannot go unnoticed.
    """
    chosen: dict[int, str] = {}
    i = 0
    while len(chosen) < partitions:
        symbol = f"S{i:04d}USDT"
        chosen.setdefault(zlib.crc32(symbol.encode()) % partitions, symbol)
        i += 1
    return [chosen[p] for p in range(partitions)]


# ----------------------------------------------------------------------------------------------------
# Measuring (child side)


class Timings:
    """Wall and CPU time spent inside named functions, by wrapping them where the measured code looks them
    up. CPU time is the whole process's (every thread's, librdkafka's and polars' included): on a busy
    machine it says how much work there was, apart from the wait for a core.

    Only this child process's module attributes are replaced; the platform code itself is untouched. It
    splits a phase into read / parse / write (or enrich / merge / serve) so the report can say where the
    time goes.
    """

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self.cpu_seconds: dict[str, float] = {}

    def wrap(self, owner: Any, name: str, label: str) -> None:
        original: Callable[..., Any] = getattr(owner, name)

        def timed(*args: Any, **kwargs: Any) -> Any:
            t0, cpu0 = time.perf_counter(), time.process_time()
            try:
                return original(*args, **kwargs)
            finally:
                self.seconds[label] = self.seconds.get(label, 0.0) + time.perf_counter() - t0
                self.cpu_seconds[label] = self.cpu_seconds.get(label, 0.0) + time.process_time() - cpu0

        setattr(owner, name, timed)

    def rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.seconds.items()}

    def cpu_rounded(self) -> dict[str, float]:
        return {k: round(v, 3) for k, v in self.cpu_seconds.items()}


def _params(workdir: Path) -> dict[str, Any]:
    return json.loads((workdir / "params.json").read_text())


def _quiet_log() -> logging.Logger:
    """A logger for the platform functions' ``log`` argument: per-batch info lines are not measured."""
    logging.basicConfig(level=logging.WARNING, format="%(levelname)s %(name)s: %(message)s")
    return logging.getLogger("stream_bench")


def _bronze_uri(workdir: Path, cap: int) -> str:
    return str(workdir / "lake" / f"bronze_{cap}")


# ----------------------------------------------------------------------------------------------------
# Phases (child side)


def phase_feed(p: dict[str, Any], workdir: Path, cap: int | None) -> dict[str, Any]:
    """Websocket -> Kafka at full speed. The stand-in sends with no interval, so the feed (parse, produce,
    delivery callbacks) is the bottleneck; the time includes the final flush, i.e. every trade acknowledged
    by the broker."""
    from platform_assets.core.streaming.kafka import producer_config
    from platform_assets.core.trades.feed import run_feed

    log = _quiet_log()
    conf = producer_config(p["bootstrap"], None)
    base = rss_mb()
    t0 = time.perf_counter()
    report = run_feed(
        p["feed_url"], conf, p["topic"], seconds=3600, max_trades=p["trades"], log=log, progress_every=3600
    )
    seconds = time.perf_counter() - t0
    if report.lost or report.trades_produced != p["trades"]:
        raise RuntimeError(f"the feed did not deliver every trade: {report.summary()}")
    _check_retained(conf, p["topic"], p["trades"])
    return {
        "rows": report.trades_produced,
        "seconds": seconds,
        "base_mb": round(base, 1),
        "connections": report.connections,
        "non_trade_frames": report.non_trade_frames,
    }


def _check_retained(conf: dict[str, Any], topic: str, trades: int) -> None:
    """Fail when the mock broker dropped messages (its 5 MiB per partition), instead of landing fewer."""
    from confluent_kafka import Consumer, TopicPartition

    from platform_assets.core.streaming import high_watermarks

    consumer = Consumer({"bootstrap.servers": conf["bootstrap.servers"], "group.id": "stream_bench.check"})
    try:
        ends = high_watermarks(conf, topic)
        lows = {p: consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[0] for p in ends}
    finally:
        consumer.close()
    kept = sum(ends.values()) - sum(lows.values())
    if kept != trades:
        raise RuntimeError(
            f"topic {topic!r} keeps {kept:,} of {trades:,} trades (low watermarks {lows}, ends {ends}): the mock "
            "broker dropped the oldest messages of a partition over 5 MiB"
        )


def phase_land(p: dict[str, Any], workdir: Path, cap: int | None) -> dict[str, Any]:
    """One micro-batch of ``cap`` messages, exactly as a micro-batch run lands it: plan (watermarks only),
    then ``land_batch`` (read the ranges, parse, one Delta commit with the app transaction). The topic holds
    more than ``cap`` messages, so the cap, not the topic, sizes the run."""
    from confluent_kafka import Consumer

    from platform_assets.core.streaming import landing as generic_landing
    from platform_assets.core.streaming import plan_batch, reading
    from platform_assets.core.streaming.kafka import client_config
    from platform_assets.core.trades import landing

    assert cap is not None
    log = _quiet_log()
    conf = client_config(p["bootstrap"], None)
    table = _bronze_uri(workdir, cap)
    shutil.rmtree(table, ignore_errors=True)
    timings = Timings()
    timings.wrap(reading, "_read_ranges", "read from Kafka")
    timings.wrap(generic_landing, "decode_batch", "parse to polars")
    timings.wrap(generic_landing, "write_deltalake", "Delta commit")
    profiler = cProfile.Profile() if p.get("profile") else None
    consumer = Consumer({**conf, "group.id": "stream_bench.planner", "enable.auto.commit": False})
    try:
        t0 = time.perf_counter()
        ranges = plan_batch(consumer, p["topic"], {}, cap)
        plan_seconds = time.perf_counter() - t0
    finally:
        consumer.close()
    base = rss_mb()
    t0, cpu0 = time.perf_counter(), time.process_time()
    if profiler is not None:
        profiler.enable()
    result = landing.land_batch(conf, p["topic"], ranges, table, app_id=APP_ID, batch_id=0, log=log)
    if profiler is not None:
        profiler.disable()
    seconds, cpu_seconds = time.perf_counter() - t0, time.process_time() - cpu0
    if profiler is not None:
        _write_profile(profiler, workdir / "results" / _label("land", cap))
    if result.rows != sum(len(r) for r in ranges.values()):
        raise RuntimeError(f"landed {result.rows} rows of a {cap}-message batch")
    return {
        "rows": result.rows,
        "seconds": seconds,
        "plan_seconds": round(plan_seconds, 3),
        # CPU time of this process (all its threads): on a busy machine, the work done apart from the wait
        # for a core. The broker's share is in the parent process, not here.
        "cpu_seconds": round(cpu_seconds, 3),
        "base_mb": round(base, 1),
        "partitions": len(ranges),
        "breakdown": timings.rounded(),
        "cpu_breakdown": timings.cpu_rounded(),
    }


def _write_profile(profiler: cProfile.Profile, stem: Path) -> None:
    """``<stem>.prof`` (for pstats/snakeviz) and ``<stem>.profile.txt``: the functions with the most own
    time, then the most cumulative time. Profiling slows Python-heavy code down, so a profiled run's rows/s
    is not the landing figure."""
    stem.parent.mkdir(exist_ok=True)
    profiler.dump_stats(stem.with_suffix(".prof"))
    text = io.StringIO()
    stats = pstats.Stats(profiler, stream=text).strip_dirs()
    stats.sort_stats("tottime").print_stats(25)
    stats.sort_stats("cumulative").print_stats(25)
    stem.with_suffix(".profile.txt").write_text(text.getvalue())


def phase_enrich(p: dict[str, Any], workdir: Path, cap: int | None) -> dict[str, Any]:
    """``enrich_pending`` over the batch landed by ``land-<cap>``: read it from bronze, join the lookup,
    merge into a fresh silver table, upsert into a fresh SQLite Enriched_Trades, move the checkpoint."""
    import polars as pl

    from platform_assets.core.state import StateStore
    from platform_assets.core.trades import stream
    from platform_assets.core.trades.lookup import flatten
    from platform_assets.core.trades.serving import ServingStore

    assert cap is not None
    log = _quiet_log()
    silver = str(workdir / "lake" / f"silver_{cap}")
    shutil.rmtree(silver, ignore_errors=True)
    for name in (f"serving_{cap}.db", f"state_{cap}.db"):
        (workdir / name).unlink(missing_ok=True)
    lookup = flatten(lookup_body(p["symbols"])["symbols"])
    serving = ServingStore(f"sqlite:///{workdir / f'serving_{cap}.db'}")
    serving.setup()  # once per store, not per batch
    state = StateStore(f"sqlite:///{workdir / f'state_{cap}.db'}", "dev")
    timings = Timings()
    timings.wrap(stream, "_batches", "read bronze")
    timings.wrap(stream, "enrich", "enrich (join, dedupe)")
    timings.wrap(stream, "merge_silver", "silver merge")
    timings.wrap(serving, "upsert_trades", "serve (SQLite upsert)")
    base = rss_mb()
    t0 = time.perf_counter()
    run = stream.enrich_pending(
        _bronze_uri(workdir, cap), silver, lookup, serving, state, app_id=APP_ID, log=log
    )
    seconds = time.perf_counter() - t0
    silver_rows = pl.scan_delta(silver).select(pl.len()).collect().item()
    if run.served != run.bronze_rows or silver_rows != run.bronze_rows:
        raise RuntimeError(f"enriched {run.served} and {silver_rows} in silver of {run.bronze_rows} landed")
    return {
        "rows": run.bronze_rows,
        "seconds": seconds,
        "base_mb": round(base, 1),
        "served": run.served,
        "breakdown": timings.rounded(),
        "cpu_breakdown": timings.cpu_rounded(),
    }


PHASE_FUNCTIONS = {"feed": phase_feed, "land": phase_land, "enrich": phase_enrich}


def run_phase(phase: str, workdir: Path, cap: int | None) -> int:
    warnings.filterwarnings("ignore")
    result = PHASE_FUNCTIONS[phase](_params(workdir), workdir, cap)
    result["peak_mb"] = round(peak_mb(), 1)
    result["seconds"] = round(result["seconds"], 3)
    result["rows_per_s"] = round(result["rows"] / result["seconds"]) if result["seconds"] > 0 else None
    (workdir / "results").mkdir(exist_ok=True)
    (workdir / "results" / f"{_label(phase, cap)}.json").write_text(json.dumps(result, indent=2))
    return 0


def _label(phase: str, cap: int | None) -> str:
    return phase if cap is None else f"{phase}-{cap}"


# ----------------------------------------------------------------------------------------------------
# Stand-ins (parent side)


def paced_standin_class():
    """A TradesStandin that sends trade i at ``t0 + i / rate`` (t0: the first trade) and records when each
    trade frame was written, without changing platform_devkit: only ``_send_trade`` is overridden.

    The schedule is absolute, so a late wake-up (asyncio sleeps have ~1 ms granularity) is caught up by the
    next frames instead of slowing the whole stream down; ``lag`` tells whether it kept up.
    """
    from platform_devkit.trades_standin import TradesStandin

    class PacedStandin(TradesStandin):
        def __init__(self, trades: list[dict[str, Any]], rate: float, **kwargs: Any) -> None:
            super().__init__(trades, **kwargs)
            self.rate = rate
            self.position = {(t["s"], t["t"]): i for i, t in enumerate(self.trades)}
            self.sent_at: list[float | None] = [None] * len(self.trades)
            self.t0: float | None = None

        async def _send_trade(self, ws: Any, trade: dict[str, Any]) -> None:
            i = self.position[trade["s"], trade["t"]]
            if self.t0 is None:
                self.t0 = time.time()
            delay = self.t0 + i / self.rate - time.time()
            if delay > 0:
                await asyncio.sleep(delay)
            await super()._send_trade(ws, trade)
            if self.sent_at[i] is None:  # a resend after a reconnect keeps the first send time
                self.sent_at[i] = time.time()

        def lag(self) -> list[float]:
            """Seconds each sent trade went out after its scheduled time."""
            t0 = self.t0 or 0.0
            return [at - (t0 + i / self.rate) for i, at in enumerate(self.sent_at) if at is not None]

    return PacedStandin


class LookupServer:
    """The exchange-info REST API on 127.0.0.1, for the feed job's ``raw/trade_symbols`` step."""

    def __init__(self, body: dict[str, Any]) -> None:
        payload = json.dumps(body).encode()

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/api/v3/exchangeInfo"

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


# ----------------------------------------------------------------------------------------------------
# Processes (parent side)


def _children() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    return children


def descendants(pid: int) -> list[int]:
    children, found, todo = _children(), [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


class TreeSampler(Sampler):
    """Peak RSS (VmHWM) of every process under the daemon, read every ``interval`` s in a thread.

    A run worker's peak is its kernel high-water mark, so the sample only has to come before the worker
    exits, not at the moment of the peak; a worker that exits within ``interval`` of its last sample may
    miss its final growth.
    """

    def __init__(self, root: int, interval: float = 0.2) -> None:
        super().__init__(interval)
        self.root = root
        self.peaks: dict[int, float] = {}

    def sample(self) -> None:
        for pid in descendants(self.root):
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue
            for line in status.splitlines():
                if line.startswith("VmHWM:"):
                    mb = int(line.split()[1]) / 1024
                    self.peaks[pid] = max(self.peaks.get(pid, 0.0), mb)


def stop_group(process: subprocess.Popen[Any] | None, timeout: float = 20.0) -> None:
    """SIGTERM to the process group we started (daemon, code server, run workers), then SIGKILL to
    whatever of the group is left. Only that group: it was created by start_new_session."""
    if process is None:
        return
    try:
        os.killpg(process.pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # run workers outliving the daemon
    except ProcessLookupError:
        pass
    process.wait()


def _spawn(phase: str, cap: int | None, workdir: Path, verbose: bool) -> dict[str, Any]:
    label = _label(phase, cap)
    log = workdir / "logs" / f"{label}.log"
    log.parent.mkdir(exist_ok=True)
    command = [sys.executable, str(Path(__file__).resolve()), "--phase", phase, "--workdir", str(workdir)]
    if cap is not None:
        command += ["--cap", str(cap)]
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
    }
    t0 = time.perf_counter()
    with open(log, "w") as handle:
        done = subprocess.run(
            command,
            stdout=None if verbose else handle,
            stderr=None if verbose else subprocess.STDOUT,
            env=env,
            check=False,
        )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        tail = "" if verbose else "".join(log.read_text().splitlines(keepends=True)[-40:])
        raise RuntimeError(f"phase {label} failed (exit {done.returncode}); log {log}:\n{tail}")
    result = json.loads((workdir / "results" / f"{label}.json").read_text())
    result["process_seconds"] = round(wall, 3)
    return result


# ----------------------------------------------------------------------------------------------------
# The end-to-end run (parent side)


def _platform_env(home: Path, data_dir: Path, **settings: str) -> dict[str, str]:
    """The environment of the daemon and the CLI: inherited PLATFORM_* settings are dropped so the run
    cannot reach another database, broker or webhook; every URL the platform could call is local."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("PLATFORM_")}
    quiet = ",".join(filter(None, [QUIET_DAGSTER, os.environ.get("PYTHONWARNINGS")]))
    env.update(
        {
            "DAGSTER_HOME": str(home),
            "PLATFORM_DATA_DIR": str(data_dir),
            "PLATFORM_COUNTRY_API_URL": "http://127.0.0.1:9",  # never called here; never the internet
            "PYTHONWARNINGS": quiet,
            "PYTHONPATH": os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])),
            **settings,
        }
    )
    return env


class ServedPoller:
    """First-seen times of trades in Enriched_Trades (SQLite), read every ``--poll`` seconds.

    Rows are read by rowid: SQLite gives a new row the next rowid and an upsert of a present key keeps
    its row, so ``rowid > last`` is exactly the rows inserted since the previous poll.
    """

    def __init__(self, db: Path, position: dict[tuple[str, int], int]) -> None:
        self.db = db
        self.position = position
        self.seen_at: list[float | None] = [None] * len(position)
        self.count = 0
        self._last_rowid = 0

    def poll(self) -> int:
        if not self.db.exists():
            return self.count
        try:
            with contextlib.closing(sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=5)) as conn:
                rows = conn.execute(
                    "SELECT rowid, symbol, trade_id FROM Enriched_Trades WHERE rowid > ? ORDER BY rowid",
                    (self._last_rowid,),
                ).fetchall()
        except sqlite3.OperationalError:  # no table yet, or locked past the timeout: next poll
            return self.count
        now = time.time()
        for rowid, symbol, trade_id in rows:
            i = self.position.get((symbol, trade_id))
            if i is not None and self.seen_at[i] is None:
                self.seen_at[i] = now
                self.count += 1
            self._last_rowid = max(self._last_rowid, rowid)
        return self.count


def _launch_feed(env: dict[str, str], workdir: Path, seconds: float, max_trades: int) -> str:
    config = {"ops": {"kafka__trades": {"config": {"seconds": seconds, "max_trades": max_trades}}}}
    done = subprocess.run(
        [BIN / "dagster", "job", "launch", "-m", "platform_assets.definitions", "-j", "trades_feed_job"]
        + ["--config-json", json.dumps(config)],
        env=env,
        cwd=workdir,
        capture_output=True,
        text=True,
        check=False,
    )
    if done.returncode != 0:
        raise RuntimeError(f"dagster job launch failed:\n{done.stderr[-3000:]}")
    return done.stdout.strip()


def _run_timeline(instance: Any, run_id: str) -> dict[str, Any]:
    """When a run was queued, launched, started, ran each step and ended (event timestamps)."""
    from dagster import DagsterEventType

    wanted = {
        DagsterEventType.RUN_ENQUEUED,
        DagsterEventType.RUN_STARTING,
        DagsterEventType.RUN_START,
        DagsterEventType.STEP_START,
        DagsterEventType.STEP_SUCCESS,
        DagsterEventType.STEP_FAILURE,
        DagsterEventType.RUN_SUCCESS,
        DagsterEventType.RUN_FAILURE,
    }
    out: dict[str, Any] = {"steps": {}}
    for record in instance.get_records_for_run(run_id, of_type=wanted).records:
        entry = record.event_log_entry
        event = entry.dagster_event
        kind = event.event_type
        if kind in (
            DagsterEventType.STEP_START,
            DagsterEventType.STEP_SUCCESS,
            DagsterEventType.STEP_FAILURE,
        ):
            step = out["steps"].setdefault(event.step_key, {})
            step["start" if kind == DagsterEventType.STEP_START else "end"] = entry.timestamp
            if kind == DagsterEventType.STEP_FAILURE:
                error = getattr(event.event_specific_data, "error", None)
                out["error"] = (
                    f"{event.step_key}: {(error.message if error else event.message or '').strip()}"
                )
        elif kind == DagsterEventType.RUN_START:
            out["start"], out["pid"] = entry.timestamp, event.pid
        else:
            key = {
                DagsterEventType.RUN_ENQUEUED: "queued",
                DagsterEventType.RUN_STARTING: "launched",
                DagsterEventType.RUN_SUCCESS: "end",
                DagsterEventType.RUN_FAILURE: "end",
            }[kind]
            out[key] = entry.timestamp
            if key == "end":
                out["outcome"] = "success" if kind == DagsterEventType.RUN_SUCCESS else "failure"
                if kind == DagsterEventType.RUN_FAILURE:
                    out.setdefault("error", (event.message or entry.user_message or "").strip())
    out.setdefault("outcome", "in progress")
    return out


def _micro_batch_runs(instance: Any, peaks: dict[int, float]) -> list[dict[str, Any]]:
    """The micro-batch job's runs, oldest first, with their timeline, batch size and worker peak RSS."""
    from dagster import RunsFilter

    runs = []
    for record in reversed(instance.get_run_records(RunsFilter(job_name=MICRO_BATCH_JOB))):
        run = record.dagster_run
        config = (run.run_config or {}).get("ops", {}).get("bronze__trades", {}).get("config", {})
        ranges = config.get("ranges") or []
        timeline = _run_timeline(instance, run.run_id)
        runs.append(
            {
                "run_id": run.run_id,
                "batch_id": config.get("batch_id"),
                "messages": sum(r["end"] - r["start"] for r in ranges) if ranges else None,
                "catch_up": "platform/catch_up" in run.tags,
                "worker_peak_mb": round(peaks[timeline["pid"]], 1) if timeline.get("pid") in peaks else None,
                **timeline,
            }
        )
    return runs


STAGES = (
    "sensor wait",
    "queue (dequeue loop)",
    "worker start (imports)",
    "run setup",
    "bronze step (land)",
    "silver step (enrich, serve)",
    "run end",
    "total (enqueue to end)",
)


def _where_time_goes(runs: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Mean and max seconds of each stage of the landing runs (the catch-up run is left out).

    sensor wait: previous run's end to this run's enqueue (tick interval, the sensor's evaluation);
    queue: enqueue to launch (the run coordinator's dequeue loop); worker start: launch to RUN_START (a new
    process imports the code location); setup: RUN_START to the first step (resources, executor); then the
    two steps, and the end of the last step to the run's end.
    """
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    previous_end = None
    for run in runs:
        if run["catch_up"] or run["outcome"] != "success":
            previous_end = run.get("end", previous_end)
            continue
        steps = run["steps"]
        bronze, silver = steps.get("bronze__trades", {}), steps.get("silver__trades_enriched", {})
        points = [
            ("sensor wait", previous_end, run.get("queued")),
            ("queue (dequeue loop)", run.get("queued"), run.get("launched")),
            ("worker start (imports)", run.get("launched"), run.get("start")),
            ("run setup", run.get("start"), bronze.get("start")),
            ("bronze step (land)", bronze.get("start"), bronze.get("end")),
            ("silver step (enrich, serve)", silver.get("start"), silver.get("end")),
            ("run end", silver.get("end"), run.get("end")),
            ("total (enqueue to end)", run.get("queued"), run.get("end")),
        ]
        for name, start, end in points:
            if start is not None and end is not None:
                stages[name].append(end - start)
        previous_end = run.get("end")
    return {
        name: {"mean": round(statistics.fmean(v), 2), "max": round(max(v), 2), "n": len(v)}
        for name, v in stages.items()
        if v
    }


def run_e2e(args: argparse.Namespace, workdir: Path, bootstrap: str, cap: int) -> dict[str, Any]:
    """The full Dagster path at ``--rate`` trades/s; see the module docstring. Returns latency figures."""
    from platform_assets.core.trades.lookup import flatten, write_lookup
    from platform_assets.settings import Settings
    from platform_devkit.trades_standin import make_trades

    home, data_dir = workdir / "dagster_home", workdir / "e2e_data"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(SHIPPED_DAGSTER_YAML, home / "dagster.yaml")
    settings = Settings(data_dir=data_dir)
    # The lookup of the previous window, as in a running deployment: the first micro-batch must not race
    # the feed job's own lookup step (which still runs, against the local lookup server).
    write_lookup(
        flatten(lookup_body(STANDIN_SYMBOLS)["symbols"]), settings.table_path("raw", "trade_symbols")
    )
    total = int(args.rate * args.seconds)
    trades = make_trades(total)
    topic = f"bench_e2e_{uuid.uuid4().hex[:8]}"
    lookup = LookupServer(lookup_body(STANDIN_SYMBOLS))
    daemon: subprocess.Popen[Any] | None = None
    paced = paced_standin_class()(trades, args.rate)
    try:
        with paced as standin:
            env = _platform_env(
                home,
                data_dir,
                PLATFORM_KAFKA_BOOTSTRAP=bootstrap,
                PLATFORM_TRADES_TOPIC=topic,
                PLATFORM_TRADES_WS_URL=standin.url,
                PLATFORM_TRADES_LOOKUP_URL=lookup.url,
                PLATFORM_TRADES_MAX_BATCH_ROWS=str(cap),
                PLATFORM_TRADES_ALLOWED_LATENCY=str(args.allowed_latency),
            )
            subprocess.run([BIN / "dagster", "instance", "migrate"], env=env, check=True, capture_output=True)
            daemon = subprocess.Popen(
                [BIN / "dagster-daemon", "run", "-m", "platform_assets.definitions"],
                env=env,
                cwd=workdir,
                stdout=(workdir / "logs" / "daemon.log").open("w"),
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
            launched = time.time()
            _launch_feed(env, workdir, seconds=args.seconds + 600, max_trades=total)
            poller = ServedPoller(Path(settings.serving_url.removeprefix("sqlite:///")), standin.position)
            from dagster import DagsterInstance

            instance = DagsterInstance.from_config(str(home))
            with TreeSampler(daemon.pid) as sampler:
                outcome = _wait_for_trades(args, standin, poller, daemon, launched)
                _let_runs_finish(instance)
            runs = _micro_batch_runs(instance, dict(sampler.peaks))
            instance.dispose()
    finally:
        stop_group(daemon)
        lookup.close()
    arrived = sorted(
        seen - sent
        for seen, sent in zip(poller.seen_at, standin.sent_at, strict=True)
        if seen is not None and sent is not None
    )
    lag = sorted(standin.lag())
    sent = [at for at in standin.sent_at if at is not None]
    landing_runs = [r for r in runs if not r["catch_up"]]
    batch_sizes = [r["messages"] for r in landing_runs if r["messages"]]
    bronze = [
        (r["messages"], step["end"] - step["start"])
        for r in landing_runs
        if r["messages"] and "start" in (step := r["steps"].get("bronze__trades", {})) and "end" in step
    ]
    return {
        "trades": total,
        "rate": args.rate,
        "seconds": args.seconds,
        "batch_cap": cap,
        "outcome": outcome,
        "sent": len(sent),
        "send_rate": round((len(sent) - 1) / (max(sent) - min(sent)), 1) if len(sent) > 1 else None,
        "send_lag_p99_s": _percentile(lag, 99, 4),
        "send_lag_max_s": round(lag[-1], 4) if lag else None,
        "feed_started_after_s": round(standin.t0 - launched, 2) if standin.t0 else None,
        "arrived": len(arrived),
        "all_arrived": len(arrived) == total,
        "p50_s": _percentile(arrived, 50),
        "p95_s": _percentile(arrived, 95),
        "max_s": round(arrived[-1], 2) if arrived else None,
        "min_s": round(arrived[0], 2) if arrived else None,
        "poll_s": args.poll,
        "micro_batch_runs": len(landing_runs),
        "catch_up_runs": len(runs) - len(landing_runs),
        "failed_runs": sum(r["outcome"] == "failure" for r in runs),
        "messages_per_batch_mean": round(statistics.fmean(batch_sizes)) if batch_sizes else None,
        # the landing step's own rate in the real runs (small batches: its fixed costs weigh more)
        "bronze_step_rows_per_s": round(sum(n for n, _ in bronze) / sum(t for _, t in bronze))
        if bronze
        else None,
        "worker_peak_mb_max": max((r["worker_peak_mb"] or 0 for r in runs), default=None),
        "stages": _where_time_goes(runs),
        "runs": runs,
    }


def _let_runs_finish(instance: Any, timeout: float = 30.0) -> None:
    """Wait for the micro-batch run in flight (it served the last trades and is writing metrics and the
    dashboard), so its timeline counts too. A catch-up run the sensor may start later is not waited for."""
    from dagster import RunsFilter
    from dagster._core.storage.dagster_run import IN_PROGRESS_RUN_STATUSES

    deadline = time.monotonic() + timeout
    in_flight = RunsFilter(job_name=MICRO_BATCH_JOB, statuses=IN_PROGRESS_RUN_STATUSES)
    while instance.get_run_records(in_flight, limit=1) and time.monotonic() < deadline:
        time.sleep(0.5)


def _percentile(ordered: list[float], q: float, digits: int = 2) -> float | None:
    """The q-th percentile of sorted values, interpolated linearly between ranks (numpy's default)."""
    if not ordered:
        return None
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return round(ordered[low] + (ordered[high] - ordered[low]) * (rank - low), digits)


def _wait_for_trades(
    args: argparse.Namespace,
    standin: Any,
    poller: ServedPoller,
    daemon: subprocess.Popen[Any],
    launched: float,
) -> str:
    """Poll Enriched_Trades until every trade arrived, the daemon died, or the time is up."""
    total = len(standin.trades)
    last_report = time.monotonic()
    while True:
        served = poller.poll()
        now = time.time()
        if served == total:
            return "all trades served"
        if daemon.poll() is not None:
            return f"dagster-daemon exited with {daemon.returncode} (see logs/daemon.log)"
        if standin.t0 is None and now - launched > args.start_timeout:
            return f"the feed run did not connect within {args.start_timeout:g} s"
        if standin.t0 is not None and now > standin.t0 + args.seconds + args.drain_timeout:
            return f"{total - served} trades not served {args.drain_timeout:g} s after the last was due"
        if time.monotonic() - last_report >= 10:
            last_report = time.monotonic()
            print(
                f"    {now - launched:5.0f} s: {standin.trade_frames_sent:,} sent, {served:,} served",
                flush=True,
            )
        time.sleep(args.poll)


# ----------------------------------------------------------------------------------------------------
# Report (parent side)


def _fmt_int(value: Any) -> str:
    return "-" if value is None else f"{value:,.0f}"


def _fmt_float(value: Any, digits: int = 1) -> str:
    return "-" if value is None else f"{value:,.{digits}f}"


def _verdict(met: bool | None) -> str:
    return {True: "met", False: "MISSED", None: "n/a"}[met]


def _goals(
    results: dict[str, dict], e2e: dict[str, Any] | None, caps: list[int]
) -> dict[str, dict[str, Any]]:
    goals: dict[str, dict[str, Any]] = {}
    # Per cap, the median over its runs (--repeat): one slow run on a shared machine does not decide.
    lands = {
        cap: statistics.median(
            r["rows_per_s"] for label, r in results.items() if label.split(" ")[0] == f"land-{cap}"
        )
        for cap in caps
        if f"land-{cap}" in results
    }
    if lands:
        worst = round(min(lands.values()))
        runs = sum(1 for label in results if label.startswith("land-"))
        notes = (["the slowest cap"] if len(lands) > 1 else []) + (
            [f"median of {runs // len(lands)} runs"] if runs > len(lands) else []
        )
        goals["landing"] = {
            "goal": f"landing >= {GOAL_LANDING_ROWS_PER_S:,} rows/s per micro-batch",
            "value": worst,
            "shown": f"{worst:,} rows/s",
            "met": worst >= GOAL_LANDING_ROWS_PER_S,
            "note": ", ".join(notes),
        }
    if e2e is not None and e2e.get("p95_s") is not None:
        goals["latency"] = {
            "goal": f"p95 latency <= {GOAL_P95_LATENCY_S:g} s (default sensor interval)",
            "value": e2e["p95_s"],
            "shown": f"{e2e['p95_s']:.1f} s",
            "met": e2e["p95_s"] <= GOAL_P95_LATENCY_S and e2e["all_arrived"],
            "note": "" if e2e["all_arrived"] else "not every trade arrived",
        }
    growth = []
    for kind in ("land", "enrich"):
        measured = [(cap, results[f"{kind}-{cap}"]) for cap in caps if f"{kind}-{cap}" in results]
        if len(measured) >= 2:
            (small, a), (large, b) = measured[0], measured[-1]
            ratio = (b["peak_mb"] - b["base_mb"]) / max(1.0, a["peak_mb"] - a["base_mb"])
            growth.append((kind, ratio, large / small))
    if growth:
        goals["memory"] = {
            "goal": "memory bounded by the batch cap",
            "value": {kind: round(ratio, 2) for kind, ratio, _ in growth},
            "shown": ", ".join(f"{kind} x{ratio:.2f}" for kind, ratio, _ in growth),
            "met": all(ratio <= GOAL_MEMORY_SLACK * caps_ratio for _, ratio, caps_ratio in growth),
            "note": f"growth of peak - base for a x{growth[0][2]:g} cap; met if at most linear",
        }
    return goals


def report(
    args: argparse.Namespace, results: dict[str, dict], e2e: dict[str, Any] | None, goals: dict
) -> None:
    print()
    print(
        f"Trade stream benchmark: {args.trades:,} trades for feed and landing, caps "
        f"{', '.join(f'{c:,}' for c in args.batch_cap)}; "
        + ("landing only" if args.landing_only else f"e2e {args.rate:g} trades/s for {args.seconds:g} s")
        + f" ({os.cpu_count()} cores)"
    )
    header = f"{'phase':<14} {'rows':>10} {'seconds':>9} {'rows/s':>10} {'peak MB':>8} {'base MB':>8}  note"
    print()
    print(header)
    print("-" * len(header))
    notes = {
        "feed": "run_feed: stand-in (no interval) -> mock broker, incl. final flush",
        "land": "land_batch, one micro-batch into a fresh bronze table",
        "enrich": "enrich_pending: silver merge + SQLite Enriched_Trades",
    }
    for label, r in results.items():
        kind = label.split("-")[0]
        breakdown = r.get("breakdown")
        note = notes[kind]
        if breakdown:
            cpu = r.get("cpu_breakdown", {})
            note += "; " + ", ".join(
                f"{k} {v:.2f} s" + (f" (CPU {cpu[k]:.2f})" if k in cpu else "") for k, v in breakdown.items()
            )
        if r.get("cpu_seconds") is not None:
            note += f"; CPU {r['cpu_seconds']:.2f} s"
        print(
            f"{label:<14} {_fmt_int(r['rows']):>10} {_fmt_float(r['seconds'], 2):>9} "
            f"{_fmt_int(r['rows_per_s']):>10} {_fmt_float(r['peak_mb']):>8} {_fmt_float(r.get('base_mb')):>8}  "
            f"{note}"
        )
    if e2e is not None:
        print()
        print(
            f"end to end (dagster-daemon, sensor every 5 s, cap {e2e['batch_cap']:,}): {e2e['outcome']}; "
            f"{e2e['arrived']:,} of {e2e['trades']:,} trades arrived"
        )
        print(
            f"  latency (sent -> in Enriched_Trades, polled every {e2e['poll_s']:g} s): p50 "
            f"{_fmt_float(e2e['p50_s'])} s, p95 {_fmt_float(e2e['p95_s'])} s, max {_fmt_float(e2e['max_s'])} s, "
            f"min {_fmt_float(e2e['min_s'])} s"
        )
        print(
            f"  stand-in: {e2e['sent']:,} sent at {_fmt_float(e2e['send_rate'])} trades/s, send lag p99 "
            f"{_fmt_float(e2e['send_lag_p99_s'], 3)} s, max {_fmt_float(e2e['send_lag_max_s'], 3)} s; "
            f"first trade {_fmt_float(e2e['feed_started_after_s'])} s after the feed job was launched"
        )
        print(
            f"  runs: {e2e['micro_batch_runs']} micro-batch runs ({_fmt_int(e2e['messages_per_batch_mean'])} "
            f"messages each on average), {e2e['catch_up_runs']} catch-up, {e2e['failed_runs']} failed; "
            f"bronze step {_fmt_int(e2e['bronze_step_rows_per_s'])} rows/s; largest run worker peak "
            f"{_fmt_float(e2e['worker_peak_mb_max'])} MB"
        )
        for run in e2e["runs"]:
            if run["outcome"] == "failure":
                print(
                    f"  run {run['run_id'][:8]} (batch {run['batch_id']}) failed: {run.get('error', '?')[:300]}"
                )
        if e2e["stages"]:
            print("  where a micro-batch's time goes (seconds):      mean      max")
            for name, s in e2e["stages"].items():
                print(f"    {name:<42} {s['mean']:>7.2f}  {s['max']:>7.2f}")
    print()
    print("goals (for reference, not asserted)")
    for g in goals.values():
        note = f"  ({g['note']})" if g["note"] else ""
        print(f"  {g['goal']:<56} {g['shown']:>22}  {_verdict(g['met'])}{note}")


# ----------------------------------------------------------------------------------------------------
# Orchestration (parent side)


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt  # SIGTERM cleans up like Ctrl-C


def orchestrate(args: argparse.Namespace) -> int:
    from platform_devkit.kafka_broker import NativeMockCluster, await_topics
    from platform_devkit.trades_standin import TradesStandin, make_trades

    signal.signal(signal.SIGTERM, _interrupt)
    workdir = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="stream_bench_"))
    workdir.mkdir(parents=True, exist_ok=True)
    (workdir / "logs").mkdir(exist_ok=True)
    print(f"workdir {workdir}", flush=True)
    results: dict[str, dict] = {}
    e2e: dict[str, Any] | None = None
    status = 0
    try:
        # The devkit's mock cluster (the one `make dev` runs with --partitions): the same broker as
        # EmbeddedBroker, plus topics with a chosen number of partitions.
        with NativeMockCluster() as broker:
            partitions = max(4, -(-args.trades // TRADES_PER_PARTITION))
            symbols = spread_symbols(partitions)
            params = {
                "bootstrap": broker.bootstrap,
                "topic": f"bench_{uuid.uuid4().hex[:8]}",
                "trades": args.trades,
                "symbols": symbols,
            }
            broker.create_topic(params["topic"], partitions)
            await_topics(broker.bootstrap, [params["topic"]])
            print(
                f"[{time.strftime('%H:%M:%S')}] {args.trades:,} trades over {partitions} symbols and partitions",
                flush=True,
            )
            with TradesStandin(make_trades(args.trades, symbols)) as standin:
                (workdir / "params.json").write_text(
                    json.dumps({**params, "feed_url": standin.url, "profile": args.profile})
                )
                steps: list[tuple[str, int | None, int]] = [("feed", None, 1)]
                for cap in args.batch_cap:
                    steps += [("land", cap, run) for run in range(1, args.repeat + 1)]
                    if not args.landing_only:
                        steps.append(("enrich", cap, 1))
                for phase, cap, run in steps:
                    label = _label(phase, cap) + (f" #{run}" if run > 1 else "")
                    print(f"[{time.strftime('%H:%M:%S')}] phase {label} ...", end=" ", flush=True)
                    results[label] = r = _spawn(phase, cap, workdir, args.verbose)
                    print(
                        f"{r['seconds']:.1f} s, {r['rows_per_s']:,} rows/s, peak {r['peak_mb']:.0f} MB",
                        flush=True,
                    )
                    if phase == "land" and args.profile:
                        profile = workdir / "results" / f"{_label(phase, cap)}.profile.txt"
                        print(profile.read_text(), flush=True)
            if not args.skip_e2e and not args.landing_only:
                print(
                    f"[{time.strftime('%H:%M:%S')}] phase e2e: {args.rate:g} trades/s for {args.seconds:g} s under "
                    "dagster-daemon ...",
                    flush=True,
                )
                e2e = run_e2e(args, workdir, broker.bootstrap, args.batch_cap[0])
                print(f"    {e2e['outcome']}", flush=True)
    except (RuntimeError, KeyboardInterrupt, subprocess.CalledProcessError) as exc:
        print(
            f"\ninterrupted: {exc!r}" if isinstance(exc, KeyboardInterrupt) else f"\n{exc}", file=sys.stderr
        )
        status = 1
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    goals = _goals(results, e2e, args.batch_cap)
    report(args, results, e2e, goals)
    if args.json:
        figures = {
            "params": vars(args) | {"cores": os.cpu_count()},
            "phases": results,
            "e2e": e2e,
            "goals": goals,
        }
        Path(args.json).write_text(json.dumps(figures, indent=2, default=str))
        print(f"\nfigures written to {args.json}")
    if args.keep:
        print(f"work dir kept: {workdir}")
    return status


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--trades", type=int, default=200_000, help="trades for feed and landing (200,000)")
    parser.add_argument(
        "--batch-cap",
        type=int,
        nargs="+",
        default=[100_000, 200_000],
        help="micro-batch caps to land and enrich (default 100000 200000); the smallest is the e2e run's cap",
    )
    parser.add_argument("--rate", type=float, default=2000, help="e2e: trades per second sent (2000)")
    parser.add_argument(
        "--allowed-latency",
        type=int,
        default=0,
        help="e2e: PLATFORM_TRADES_ALLOWED_LATENCY of the daemon (0: a batch at every tick, what the latency "
        "goal measures; the platform's default is 30)",
    )
    parser.add_argument("--seconds", type=float, default=60, help="e2e: seconds of trades sent (60)")
    parser.add_argument("--poll", type=float, default=0.5, help="e2e: seconds between Enriched_Trades polls")
    parser.add_argument(
        "--start-timeout", type=float, default=120, help="e2e: seconds for the feed run to connect (120)"
    )
    parser.add_argument(
        "--drain-timeout", type=float, default=120, help="e2e: seconds after the last trade is due (120)"
    )
    parser.add_argument(
        "--skip-e2e", action="store_true", help="only the feed, landing and enrichment phases"
    )
    parser.add_argument(
        "--landing-only",
        action="store_true",
        help="only the feed and landing phases (no enrichment, no e2e)",
    )
    parser.add_argument(
        "--repeat", type=int, default=1, help="land each cap this many times, each in a new process (1)"
    )
    parser.add_argument(
        "--profile",
        action="store_true",
        help="run land_batch under cProfile: results/land-<cap>.prof and .profile.txt (printed); slows it",
    )
    parser.add_argument("--workdir", default=None, help="work dir (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (lake, logs, Dagster home)")
    parser.add_argument("--json", default=None, help="write the figures to this JSON file")
    parser.add_argument(
        "--verbose", action="store_true", help="show the phases' output instead of logging it"
    )
    parser.add_argument("--phase", choices=CHILD_PHASES, help=argparse.SUPPRESS)
    parser.add_argument("--cap", type=int, default=None, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.phase:
        if not args.workdir:
            parser.error("--phase needs --workdir")
        return run_phase(args.phase, Path(args.workdir), args.cap)
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    if args.trades < 1 or args.rate <= 0 or args.seconds <= 0 or args.poll <= 0:
        parser.error("--trades, --rate, --seconds and --poll must be positive")
    if any(cap < 1 or cap > args.trades for cap in args.batch_cap):
        parser.error(f"every --batch-cap must be between 1 and --trades ({args.trades:,})")
    args.batch_cap = sorted(set(args.batch_cap))
    return orchestrate(args)


if __name__ == "__main__":
    raise SystemExit(main())
