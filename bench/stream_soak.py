"""Trade stream soak: thousands of micro-batches through the real landing, enrichment, metrics and
maintenance code, to show the per-batch cost, the files per table and the memory stay flat.

    python bench/stream_soak.py                          # 2,000 batches of 8,640 trades (a tenth of a day)
    python bench/stream_soak.py --batches 200            # quick check
    python bench/stream_soak.py --batches 20000          # a whole day at 2,000 trades/s
    python bench/stream_soak.py --maintain-every 0 --json soak.json

The stream runs at ``--rate`` (2,000) trades/s; a micro-batch holds ``--rows-per-batch`` (8,640) trades, the
trades of 4.32 s, so a day is 20,000 batches. Time is compressed (batches follow each other as fast as the
machine allows, the trades carry simulated times), trades are not: every trade is produced to the broker,
landed, enriched and served.

The broker is the devkit's embedded one in a process of its own (``python -m platform_devkit.kafka_broker
--partitions 4``, as ``make dev`` runs it), so this process's RSS is the platform's. For each batch, in
this process, the core functions the Dagster assets call (no Dagster here):

  produce   the batch's trades as the feed writes them (``messages.to_kafka``), flushed (not measured)
  plan      what the sensor does: ``streaming.plan_next`` (the Delta log and the topic's watermarks)
  land      what ``bronze/trades`` does: ``landing.land_batch`` (dead letters to ``bronze/trades_quarantine``),
            ``commit_offsets``, the lag (``topic_end``, ``stream_position``)
  enrich    what ``silver/trades_enriched`` does first: the lookup files, ``stream.enrich_pending``
  metrics   then the feed windows: ``windows.count_windows`` over the recent windows, each due window's
            ``Ingestion_Metrics`` row (``append_metrics`` with the dead-lettered and held counts); silver's
            row count; the volume check's metrics read
  dashboard every ``--dashboard-every`` batches (the asset: after every run), ``render_dashboard``; its
            cost is reported apart, as it grows with the serving table (see the report)
  maintain  every ``--maintain-every`` batches: ``platform_assets.core.lake.maintenance.maintain`` on every Delta
            table of the stream, under the stream tables' policy (``DEFAULT_POLICY``), as
            ``table_maintenance_job`` runs it

A feed window ends every ``--window-batches`` batches (its end offsets read with ``topic_end``), as a feed
run would record it. Sizes (files and bytes per table and in ``_delta_log``, the serving and state
databases, this process's and the broker's RSS) are read every ``--measure-every`` batches.

The report shows the batches 10, 100, 1,000, 10,000 (those within ``--batches``) and the last: median
milliseconds over the batch and ``--smooth`` batches each side, wall and CPU (this process, all threads);
the goal is a per-batch cost (plan + land + enrich + metrics) at the end of at most 1.2 x the cost at batch
10, judged on CPU time (the machine may be shared). The functions that grew most are listed from timers
wrapped around the platform's functions (the platform code is not changed).
"""

from __future__ import annotations

import argparse
import json
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from lake_files import as_dict, folder_size, lake_tables, sqlite_size  # bench/lake_files.py
from measure import peak_mb, rss_mb  # bench/measure.py: this script's folder is on sys.path
from stream_bench import lookup_body, spread_symbols  # bench/stream_bench.py

RATE = 2_000  # trades per second
ROWS_PER_BATCH = 8_640  # 4.32 s of trades: a day of 86,400 s is 20,000 batches
PARTITIONS = 4  # the embedded broker's topic under make dev
REPORT_BATCHES = (10, 100, 1_000, 10_000)
GOAL_RATIO = 1.2
RECENT_WINDOWS = (
    50  # platform_assets.defs.trades.assets.RECENT_WINDOWS: the windows the metrics step looks at
)
PHASES = ("plan", "land", "enrich", "metrics")  # the per-batch cost judged by the goal
STREAM_TABLES = (  # (layer, table) of every Delta table the stream writes
    ("bronze", "trades"),
    ("bronze", "trades_quarantine"),
    ("silver", "trades_enriched"),
    ("silver", "trades_held"),
    ("silver", "trades_enriched_quarantine"),
)
# Platform functions timed per batch: (label, module, class or None, attribute), wrapped where the calling
# code looks them up (a function imported by name is wrapped in the importing module). The labels name what
# grows when a phase grows.
_CORE = "platform_assets.core"
TIMED = (
    ("plan: read_position (Delta log)", f"{_CORE}.streaming.planning", None, "read_position"),
    ("plan: watermarks", f"{_CORE}.streaming.planning", None, "_plan_ranges"),
    ("land: read from Kafka", f"{_CORE}.streaming.reading", None, "_read_ranges"),
    ("land: parse", f"{_CORE}.streaming.landing", None, "decode_batch"),
    ("land: Delta append", f"{_CORE}.streaming.landing", None, "write_deltalake"),
    ("land: lag (stream_position)", f"{_CORE}.streaming", None, "stream_position"),
    ("enrich: read bronze batches", f"{_CORE}.trades.stream", None, "_batches"),
    ("enrich: merge silver", f"{_CORE}.trades.stream", None, "merge_silver"),
    ("enrich: held summary", f"{_CORE}.trades.stream", None, "held_summary"),
    ("enrich: state compare-and-set", f"{_CORE}.state", "StateStore", "compare_and_set"),
    ("enrich: serve (upsert)", f"{_CORE}.trades.serving", "ServingStore", "upsert_trades"),
    ("metrics: consumed_position", f"{_CORE}.trades.windows", None, "consumed_position"),
    ("metrics: count_windows", f"{_CORE}.trades.windows", None, "count_windows"),
    ("metrics: new_trades (a window's count)", f"{_CORE}.trades.windows", None, "new_trades"),
    ("dashboard: render_dashboard", f"{_CORE}.trades.dashboard", None, "render_dashboard"),
    ("metrics: silver row_count", f"{_CORE}.delta", None, "row_count"),
    ("metrics: read Ingestion_Metrics", f"{_CORE}.trades.serving", "ServingStore", "metrics"),
)


def _quiet() -> None:
    warnings.filterwarnings("ignore")


# ----------------------------------------------------------------------------------------------------
# The broker (a process of its own)


class BrokerProcess:
    """``python -m platform_devkit.kafka_broker`` with one topic of ``partitions`` partitions; stopped (by
    its process id, SIGTERM then SIGKILL) when the ``with`` block ends."""

    def __init__(self, workdir: Path, topic: str, partitions: int) -> None:
        self.address_file = workdir / "kafka" / "bootstrap"
        self.log = workdir / "broker.log"
        self.command = [
            sys.executable,
            "-m",
            "platform_devkit.kafka_broker",
            "--address-file",
            str(self.address_file),
            "--topic",
            topic,
            "--partitions",
            str(partitions),
        ]
        self.process: subprocess.Popen | None = None
        self.bootstrap = ""

    def __enter__(self) -> BrokerProcess:
        from platform_devkit.kafka_broker import read_address

        self.address_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(self.command, stdout=log, stderr=subprocess.STDOUT)
        self.bootstrap = read_address(self.address_file, timeout=30)
        return self

    def rss_mb(self) -> float:
        if self.process is None:
            return 0.0
        try:
            for line in Path(f"/proc/{self.process.pid}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
        except OSError:
            pass
        return 0.0

    def __exit__(self, *exc: object) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()


# ----------------------------------------------------------------------------------------------------
# The trades


class TradeSource:
    """The simulated feed: ``rate`` trades/s over ``symbols``, simulated times ending now (a trade time may
    never be more than a day after the broker's timestamp), each symbol's trade ids increasing."""

    def __init__(self, symbols: list[str], rate: int, rows_per_batch: int, batches: int) -> None:
        self.symbols = symbols
        self.rows_per_batch = rows_per_batch
        self.step_ms = 1000.0 / rate
        now_ms = int(time.time() * 1000)
        self.start_ms = now_ms - int(batches * rows_per_batch * self.step_ms) - 60_000
        self.produced = 0

    def sim_time(self, trade_number: int) -> datetime:
        return datetime.fromtimestamp((self.start_ms + trade_number * self.step_ms) / 1000, UTC)

    def produce_batch(self, producer: Any, topic: str) -> int:
        """Produce one batch of trades and wait until the broker has them all; the number produced."""
        from platform_assets.core.trades.messages import Trade, to_kafka

        failures: list[str] = []

        def delivered(err: Any, msg: Any) -> None:
            if err is not None:
                failures.append(str(err))

        n_symbols = len(self.symbols)
        for i in range(self.produced, self.produced + self.rows_per_batch):
            symbol = self.symbols[i % n_symbols]
            trade_ms = int(self.start_ms + i * self.step_ms)
            trade = Trade(
                symbol=symbol,
                trade_id=1_000_000 + i // n_symbols,
                price=f"{100 + (i * 7919) % 900}.{(i * 31) % 100:02d}",
                quantity=f"0.{(i % 97) + 1:03d}",
                trade_time_ms=trade_ms,
                event_time_ms=trade_ms + 3,
                buyer_is_maker=i % 2 == 0,
            )
            key, value = to_kafka(trade)
            while True:
                try:
                    producer.produce(topic, key=key, value=value, on_delivery=delivered)
                    break
                except BufferError:  # the local queue is full: let deliveries drain it
                    producer.poll(0.05)
            if i % 1000 == 0:
                producer.poll(0)
        left = producer.flush(30)
        if left or failures:
            raise RuntimeError(f"{left} trade(s) not delivered, {len(failures)} failed: {failures[:3]}")
        self.produced += self.rows_per_batch
        return self.rows_per_batch


# ----------------------------------------------------------------------------------------------------
# One micro-batch, as the sensor and the two assets run it


class Stream:
    """The stream's tables, stores and clients, and the steps of one micro-batch."""

    def __init__(self, args: argparse.Namespace, workdir: Path, bootstrap: str) -> None:
        from confluent_kafka import Producer

        from platform_assets.core.state import StateStore
        from platform_assets.core.streaming.kafka import client_config, producer_config
        from platform_assets.core.trades import lookup as symbols_api
        from platform_assets.core.trades.serving import ServingStore
        from platform_assets.settings import Settings

        self.settings = Settings(data_dir=workdir / "data", kafka_bootstrap=bootstrap)
        self.topic = self.settings.trades_topic
        self.app_id = f"trades:{self.topic}"  # TradeStreamResource.app_id
        self.conf = client_config(bootstrap, None)
        self.producer = Producer(producer_config(bootstrap, None))
        path = self.settings.table_path
        self.bronze = str(path("bronze", "trades"))
        self.bronze_quarantine = str(path("bronze", "trades_quarantine"))
        self.silver = str(path("silver", "trades_enriched"))
        self.held = str(path("silver", "trades_held"))
        self.silver_quarantine = str(path("silver", "trades_enriched_quarantine"))
        self.lookup_folder = path("raw", "trade_symbols")
        self.dashboard_dir = self.settings.data_dir / "dashboard"
        self.state = StateStore(self.settings.state_url, self.settings.env)
        self.serving = ServingStore(self.settings.serving_url)
        self.serving.setup()
        self.symbols = spread_symbols(PARTITIONS)
        # The lookup as raw/trade_symbols writes it: every symbol TRADING, so every trade is enriched.
        symbols_api.publish(lookup_body(self.symbols)["symbols"], Path(str(self.lookup_folder)))
        self.windows: list[Any] = []  # the feed windows recorded so far (kafka/trades materializations)
        self.max_batch_rows = max(args.rows_per_batch, self.settings.trades_max_batch_rows)

    def plan(self):
        from platform_assets.core.streaming import metadata_consumer, plan_next
        from platform_assets.core.streaming.incarnation import accepted_incarnation

        with metadata_consumer(self.conf) as consumer:
            return plan_next(
                consumer,
                self.conf,
                self.topic,
                self.bronze,
                self.app_id,
                self.max_batch_rows,
                accepted_incarnation=accepted_incarnation(self.state, self.app_id),
            )

    def land(self, plan) -> Any:
        from platform_assets.core import streaming
        from platform_assets.core.streaming.dead_letters import keep_quarantined
        from platform_assets.core.trades import landing

        result = landing.land_batch(
            self.conf,
            self.topic,
            plan.ranges,
            self.bronze,
            app_id=self.app_id,
            batch_id=plan.batch_id,
            keep_quarantined=lambda bad: keep_quarantined(
                self.bronze_quarantine, plan.batch_id, bad, datetime.now(UTC)
            ),
            epoch=plan.epoch,
            incarnation=plan.incarnation,
            lost_upstream=plan.lost_upstream,
        )
        streaming.commit_offsets(self.conf, self.topic, self.app_id, plan.ranges)
        _, ends = streaming.topic_end(self.conf, self.topic)
        landed = streaming.stream_position(self.bronze).next_offsets
        lag = sum(max(0, end - landed.get(p, 0)) for p, end in ends.items())
        return result, lag

    def enrich(self):
        from platform_assets.core.trades import lookup as symbols_api
        from platform_assets.core.trades.stream import enrich_pending, read_lookup

        lookup = read_lookup(self.lookup_folder)
        return enrich_pending(
            self.bronze,
            self.silver,
            lookup,
            self.serving,
            self.state,
            app_id=self.app_id,
            not_trading=symbols_api.read_not_trading(self.lookup_folder),
            held_uri=self.held,
            quarantine_uri=self.silver_quarantine,
        )

    def metrics(self) -> dict[str, Any]:
        """The rest of the silver asset but the dashboard: the due windows' rows, silver's row count, the
        volume check's read of the metrics."""
        from platform_assets.core.lake import delta
        from platform_assets.core.trades import held, windows
        from platform_assets.core.trades.stream import INGESTION_TABLE

        counts = windows.count_windows(
            self.windows[-RECENT_WINDOWS:],
            windows.consumed_position(self.bronze, self.state, self.app_id),
            self.serving,
            bronze_uri=self.bronze,
            silver_uri=self.silver,
            threshold=self.settings.min_ingested_rows,
        )
        recorded = []
        for count in counts:
            ends, starts = count.window.end_offsets, count.start_offsets
            row = self.serving.append_metrics(
                count.window.start,
                count.window.end,
                count.table,
                count.total_rows,
                count.threshold,
                dead_lettered_rows=held.dead_lettered_count(
                    self.bronze_quarantine,
                    ends,
                    starts,
                    silver_quarantine_uri=self.silver_quarantine,
                    batches=count.batches,
                ),
                held_rows=held.held_count(self.held, ends, starts, batches=count.batches),
                delta_rows=count.delta_rows,
                micro_batches=count.micro_batches,
            )
            recorded.append({"total_rows": row.total_rows, "delta_rows": row.delta_rows})
        silver_rows = delta.row_count(self.silver) if delta.table_exists(self.silver) else 0
        self.serving.metrics(INGESTION_TABLE)
        return {"windows_recorded": recorded, "silver_rows": silver_rows}

    def dashboard(self) -> None:
        """The dashboard page the silver asset writes after each run."""
        from platform_assets.core.trades.dashboard import render_dashboard

        render_dashboard(self.serving, self.dashboard_dir)

    def end_window(self, start: datetime, end: datetime) -> None:
        """A feed window ends: the topic's end offsets and incarnation, as the feed records them."""
        from platform_assets.core.streaming import topic_end
        from platform_assets.core.trades.windows import FeedWindow

        incarnation, ends = topic_end(self.conf, self.topic)
        self.windows.append(FeedWindow(start, end, ends, incarnation))

    def table_uris(self) -> list[str]:
        return [str(self.settings.table_path(layer, table)) for layer, table in STREAM_TABLES]


# ----------------------------------------------------------------------------------------------------
# Maintenance (platform_assets.core.lake.maintenance)


def maintenance_available() -> bool:
    try:
        from platform_assets.core.lake import maintenance  # noqa: F401
    except ImportError:
        return False
    return True


def maintain_tables(uris: list[str]) -> dict[str, Any]:
    """``maintain`` on each existing table under the stream tables' policy (platform_assets.defs.maintenance.
    tables.STREAM_POLICY is core.maintenance's DEFAULT_POLICY; that module imports Dagster, this one does
    not). Per table: seconds and the report's figures."""
    from platform_assets.core.lake import delta
    from platform_assets.core.lake.maintenance import DEFAULT_POLICY, maintain

    out = {}
    for uri in uris:
        if delta.table_exists(uri):
            t0 = time.perf_counter()
            report = maintain(uri, DEFAULT_POLICY)
            out[Path(uri).name] = {"seconds": round(time.perf_counter() - t0, 3), **report.metrics()}
    return out


# ----------------------------------------------------------------------------------------------------
# Measuring


class FunctionTimers:
    """Wall and CPU seconds spent inside the :data:`TIMED` platform functions, by replacing them where the
    calling code looks them up (in this process only; the platform code is not changed). A timed function
    called inside another timed one counts in both."""

    def __init__(self) -> None:
        self.wall: dict[str, float] = {}
        self.cpu: dict[str, float] = {}

    def install(self) -> FunctionTimers:
        import functools
        import importlib

        for label, module_name, class_name, attribute in TIMED:
            module = importlib.import_module(module_name)
            owner = getattr(module, class_name) if class_name else module
            original = getattr(owner, attribute)

            def timed(*args: Any, __original=original, __label=label, **kwargs: Any) -> Any:
                cpu0, t0 = time.process_time(), time.perf_counter()
                try:
                    return __original(*args, **kwargs)
                finally:
                    self.wall[__label] = self.wall.get(__label, 0.0) + time.perf_counter() - t0
                    self.cpu[__label] = self.cpu.get(__label, 0.0) + time.process_time() - cpu0

            setattr(owner, attribute, functools.wraps(original)(timed))
        return self

    def since(self, wall: dict[str, float], cpu: dict[str, float]) -> dict[str, list[float]]:
        """``{label: [wall s, CPU s]}`` spent since the copies ``wall`` and ``cpu`` were taken."""
        return {
            label: [round(spent - wall.get(label, 0.0), 5), round(self.cpu[label] - cpu.get(label, 0.0), 5)]
            for label, spent in self.wall.items()
            if spent != wall.get(label, 0.0)
        }


def measure(stream: Stream, broker: BrokerProcess) -> dict[str, Any]:
    tables = lake_tables(Path(str(stream.settings.lake_root)), snapshot=True)
    dashboard_files, dashboard_bytes = folder_size(stream.dashboard_dir)
    return {
        "tables": as_dict(tables),
        "serving_bytes": sqlite_size(stream.settings.serving_url),
        "state_bytes": sqlite_size(stream.settings.state_url),
        "dashboard_bytes": dashboard_bytes,
        "rss_mb": round(rss_mb(), 1),
        "broker_rss_mb": round(broker.rss_mb(), 1),
    }


def report_batches(total: int) -> list[int]:
    shown = [b for b in REPORT_BATCHES if b <= total]
    return shown + ([total] if total not in shown else [])


# ----------------------------------------------------------------------------------------------------
# The soak


def soak(args: argparse.Namespace, workdir: Path) -> dict[str, Any]:
    records: list[dict[str, Any]] = []
    windows_log: list[dict[str, Any]] = []
    measure_at = set(report_batches(args.batches))
    status: dict[str, Any] = {}
    with BrokerProcess(workdir, "trades", PARTITIONS) as broker:
        stream = Stream(args, workdir, broker.bootstrap)
        source = TradeSource(stream.symbols, args.rate, args.rows_per_batch, args.batches)
        timers = FunctionTimers().install()
        window_start = source.sim_time(0)
        started = time.perf_counter()
        try:
            for n in range(1, args.batches + 1):
                record: dict[str, Any] = {"batch": n}
                t0 = time.perf_counter()
                produced = source.produce_batch(stream.producer, stream.topic)
                record["produce_s"] = time.perf_counter() - t0
                window_due = n % args.window_batches == 0
                if window_due:  # the feed window ends with this batch's trades
                    window_end = source.sim_time(source.produced)
                    stream.end_window(window_start, window_end)
                    window_start = window_end
                before = (dict(timers.wall), dict(timers.cpu))
                cpu_total = 0.0
                for phase in PHASES:
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    if phase == "plan":
                        plan = stream.plan()
                        planned = sum(len(r) for r in plan.ranges.values())
                        if planned != produced:
                            raise RuntimeError(f"batch {n}: planned {planned} messages, produced {produced}")
                        record["batch_id"] = plan.batch_id
                    elif phase == "land":
                        result, lag = stream.land(plan)
                        if result.rows + len(result.quarantined) != produced:
                            raise RuntimeError(f"batch {n}: landed {result.rows} of {produced}")
                        record["lag"] = lag
                    elif phase == "enrich":
                        run = stream.enrich()
                        if run.served != produced:
                            raise RuntimeError(f"batch {n}: served {run.served} of {produced} trades")
                    else:
                        out = stream.metrics()
                        if out["windows_recorded"]:
                            windows_log.extend({"batch": n, **w} for w in out["windows_recorded"])
                    cpu = time.process_time() - cpu0
                    record[f"{phase}_s"] = time.perf_counter() - t0
                    record[f"{phase}_cpu_s"] = cpu
                    cpu_total += cpu
                record["total_s"] = sum(record[f"{p}_s"] for p in PHASES)
                record["total_cpu_s"] = cpu_total
                record["window_ended"] = window_due
                record["functions"] = timers.since(*before)
                if args.dashboard_every and (n % args.dashboard_every == 0 or n == 1):
                    cpu0, t0 = time.process_time(), time.perf_counter()
                    stream.dashboard()
                    record["dashboard_s"] = time.perf_counter() - t0
                    record["dashboard_cpu_s"] = time.process_time() - cpu0
                if args.maintain_every and n % args.maintain_every == 0:
                    t0 = time.perf_counter()
                    record["maintenance"] = maintain_tables(stream.table_uris())
                    record["maintain_s"] = time.perf_counter() - t0
                record["peak_mb"] = round(peak_mb(), 1)  # the batch where it jumps names the cause
                if n in measure_at or n % args.measure_every == 0:
                    record.update(measure(stream, broker))
                else:
                    record["rss_mb"] = round(rss_mb(), 1)
                records.append(record)
                if n == 1 or n % args.progress_every == 0 or n == args.batches:
                    _progress(record, n, started, source.produced)
                if args.max_minutes and time.perf_counter() - started > 60 * args.max_minutes:
                    if "tables" not in record:
                        record.update(measure(stream, broker))
                    _progress(record, n, started, source.produced)
                    status["time_limit"] = n
                    print(f"time limit of {args.max_minutes:g} min reached after batch {n:,}", flush=True)
                    break
        except (RuntimeError, KeyboardInterrupt) as exc:  # report the batches measured so far
            print(f"\nstopped at batch {len(records) + 1}: {exc!r}", file=sys.stderr)
            status["stopped"] = len(records) + 1
        status["trades"] = source.produced
        status["seconds"] = time.perf_counter() - started
    return {"batches": records, "windows": windows_log, "peak_mb": round(peak_mb(), 1), **status}


def _progress(record: dict[str, Any], n: int, started: float, produced: int) -> None:
    tables = record.get("tables", {})
    bronze = tables.get("bronze/trades", {})
    silver = tables.get("silver/trades_enriched", {})
    files = (
        f"; bronze {bronze.get('data_files', '?')} files / {bronze.get('log_files', '?')} log, "
        f"silver {silver.get('data_files', '?')} / {silver.get('log_files', '?')}"
        if tables
        else ""
    )
    print(
        f"[{time.strftime('%H:%M:%S')}] batch {n}: plan {1000 * record['plan_s']:.0f} ms, land "
        f"{1000 * record['land_s']:.0f}, enrich {1000 * record['enrich_s']:.0f}, metrics "
        f"{1000 * record['metrics_s']:.0f} (CPU {1000 * record['total_cpu_s']:.0f} ms)"
        + (f", maintain {record['maintain_s']:.2f} s" if "maintain_s" in record else "")
        + f"{files}; RSS {record['rss_mb']:.0f} MB; {produced:,} trades in {time.perf_counter() - started:.0f} s",
        flush=True,
    )


# ----------------------------------------------------------------------------------------------------
# Report


def _around(records: list[dict[str, Any]], n: int, key: str, smooth: int) -> float | None:
    """Median of ``key`` over batches ``n - smooth .. n + smooth`` (clipped to the batches run; a batch that
    ended a feed window is left out: its window count is a once-per-window cost, reported apart)."""
    lo, hi = max(1, n - smooth), min(len(records), n + smooth)
    if hi - lo < 2 * smooth:  # near either end, keep the window's width
        lo, hi = (1, min(len(records), 1 + 2 * smooth)) if lo == 1 else (max(1, hi - 2 * smooth), hi)
    values = [r[key] for r in records[lo - 1 : hi] if key in r and not r.get("window_ended")]
    return statistics.median(values) if values else None


def _ms(value: float | None) -> str:
    return "-" if value is None else f"{1000 * value:,.0f}"


def report(args: argparse.Namespace, result: dict[str, Any]) -> dict[str, Any]:
    records = result["batches"]
    if not records:
        print("no batch was measured")
        return {}
    s = args.smooth
    print()
    print(
        f"Stream soak: {len(records):,} micro-batches of {args.rows_per_batch:,} trades ({result['trades']:,} "
        f"trades, {len(records) * args.rows_per_batch / args.rate / 3600:.2f} h of the stream at {args.rate:,}/s) "
        f"in {result['seconds'] / 60:.1f} min; feed window every {args.window_batches} batches; "
        + (f"maintenance every {args.maintain_every} batches" if args.maintain_every else "no maintenance")
    )
    if result.get("time_limit"):
        print(
            f"stopped by the time limit (--max-minutes {args.max_minutes:g}) after batch {result['time_limit']:,}"
        )
    print(f"ms per batch: median over the batch and {s} each side (window ends left out)")
    header = (
        f"{'batch':>6} {'plan':>6} {'land':>6} {'enrich':>7} {'metrics':>7} {'total':>7} {'CPU':>6} "
        f"{'bronze files':>12} {'log':>6} {'log MB':>7} {'silver files':>12} {'log':>6} {'log MB':>7} "
        f"{'serving MB':>10} {'RSS MB':>7} {'broker MB':>9}"
    )
    print(header)
    print("-" * len(header))
    lines = []
    for n in report_batches(len(records)):
        r = records[n - 1]
        t = r.get("tables", {})
        bronze, silver = t.get("bronze/trades", {}), t.get("silver/trades_enriched", {})
        line = {
            "batch": n,
            **{f"{p}_s": _around(records, n, f"{p}_s", s) for p in (*PHASES, "total")},
            "total_cpu_s": _around(records, n, "total_cpu_s", s),
            "bronze": bronze,
            "silver": silver,
            "serving_mb": r.get("serving_bytes", 0) / 2**20,
            "rss_mb": r["rss_mb"],
            "broker_rss_mb": r.get("broker_rss_mb"),
        }
        lines.append(line)
        print(
            f"{n:>6,} {_ms(line['plan_s']):>6} {_ms(line['land_s']):>6} {_ms(line['enrich_s']):>7} "
            f"{_ms(line['metrics_s']):>7} {_ms(line['total_s']):>7} {_ms(line['total_cpu_s']):>6} "
            f"{bronze.get('data_files', 0):>12,} {bronze.get('log_files', 0):>6,} "
            f"{bronze.get('log_bytes', 0) / 2**20:>7.1f} {silver.get('data_files', 0):>12,} "
            f"{silver.get('log_files', 0):>6,} {silver.get('log_bytes', 0) / 2**20:>7.1f} "
            f"{line['serving_mb']:>10.1f} {line['rss_mb']:>7.0f} {line['broker_rss_mb'] or 0:>9.0f}"
        )
    goal = _goal(records, s)
    if goal:
        print(
            f"goal: per-batch cost at batch {goal['last']:,} <= {GOAL_RATIO} x batch {goal['first']}: "
            f"CPU {_ms(goal['cpu_last'])} / {_ms(goal['cpu_first'])} ms = x {goal['cpu_ratio']:.2f}, "
            f"wall {_ms(goal['wall_last'])} / {_ms(goal['wall_first'])} ms = x {goal['wall_ratio']:.2f}: "
            f"{'met' if goal['met'] else 'MISSED'} (judged on CPU)"
        )
    rss = [r["rss_mb"] for r in records]
    tenth = max(1, len(rss) // 10)
    jumps = _peak_jumps(records)
    print(
        f"memory: RSS {statistics.median(rss[:tenth]):.0f} MB over the first tenth of the batches, "
        f"{statistics.median(rss[-tenth:]):.0f} MB over the last (at the end of each batch); peak "
        f"{result['peak_mb']:.0f} MB" + (f", reached in: {', '.join(jumps)}" if jumps else "")
    )
    maint = [r["maintain_s"] for r in records if "maintain_s" in r]
    if maint:
        print(
            f"maintenance: {len(maint)} passes, median {statistics.median(maint):.2f} s, last "
            f"{maint[-1]:.2f} s, max {max(maint):.2f} s"
        )
    renders = [r for r in records if "dashboard_cpu_s" in r]
    if renders:
        shown = renders if len(renders) <= 8 else renders[:3] + renders[-5:]
        print(
            "dashboard (render_dashboard, every "
            f"{args.dashboard_every} batches; not in the per-batch cost), CPU ms [wall] at batch: "
            + ", ".join(
                f"{r['batch']:,}: {1000 * r['dashboard_cpu_s']:,.0f} [{1000 * r['dashboard_s']:,.0f}]"
                for r in shown
            )
        )
    window_costs = [(r["batch"], r["metrics_s"]) for r in records if r.get("window_ended")]
    if window_costs:
        shown = window_costs if len(window_costs) <= 8 else window_costs[:4] + window_costs[-4:]
        print(
            "batches that ended a feed window, metrics ms (the window's count): "
            + ", ".join(f"{b:,}: {1000 * sec:,.0f}" for b, sec in shown)
        )
    growth = _function_growth(records, s)
    if growth:
        print(
            f"platform functions, median CPU ms per batch over the first and the last {2 * s + 1} batches "
            "(wall ms in brackets):"
        )
        for g in growth[:12]:
            print(
                f"  {g['label']:<40} {1000 * g['early']:7.1f} -> {1000 * g['late']:7.1f}  "
                f"({1000 * (g['late'] - g['early']):+7.1f})   [{1000 * g['early_wall']:7.1f} -> {1000 * g['late_wall']:7.1f}]"
            )
    last = next((r for r in reversed(records) if "tables" in r), None)
    if last:
        print(f"stream tables at batch {last['batch']:,}:")
        for name, f in sorted(last["tables"].items()):
            if f["delta"]:
                print(
                    f"  {name:<30} {f.get('live_files') or 0:>6,} live / {f['data_files']:>6,} disk data files "
                    f"{f['data_bytes'] / 2**20:>8.1f} MB  {f['log_files']:>6,} log files ({f['log_checkpoints']} "
                    f"checkpoints, {f.get('replayed_commits') or 0} replayed) {f['log_bytes'] / 2**20:>6.1f} MB"
                )
    return {"lines": lines, "goal": goal, "function_growth": growth}


def _peak_jumps(records: list[dict[str, Any]], top: int = 4) -> list[str]:
    """The batches in which the process's peak RSS rose most, and what else ran in them."""
    rises, before = [], None
    for r in records:
        if "peak_mb" not in r:
            continue
        if before is not None and r["peak_mb"] > before:
            what = [
                w
                for w, key in (
                    ("window end", "window_ended"),
                    ("maintenance", "maintain_s"),
                    ("dashboard", "dashboard_s"),
                )
                if r.get(key)
            ]
            rises.append((r["peak_mb"] - before, r["batch"], r["peak_mb"], what))
        before = r["peak_mb"]
    return [
        f"batch {b:,} (+{rise:.0f} MB to {peak:.0f}{'; ' + ', '.join(what) if what else ''})"
        for rise, b, peak, what in sorted(rises, reverse=True)[:top]
    ]


def _goal(records: list[dict[str, Any]], s: int) -> dict[str, Any] | None:
    first = min(10, len(records))
    last = len(records)
    if last < 2 * (2 * s + 1):
        return None
    cpu_first, cpu_last = _around(records, first, "total_cpu_s", s), _around(records, last, "total_cpu_s", s)
    wall_first, wall_last = _around(records, first, "total_s", s), _around(records, last, "total_s", s)
    if not (cpu_first and cpu_last and wall_first and wall_last):
        return None
    return {
        "first": first,
        "last": last,
        "cpu_first": cpu_first,
        "cpu_last": cpu_last,
        "cpu_ratio": cpu_last / cpu_first,
        "wall_first": wall_first,
        "wall_last": wall_last,
        "wall_ratio": wall_last / wall_first,
        "met": cpu_last / cpu_first <= GOAL_RATIO,
    }


def _function_growth(records: list[dict[str, Any]], s: int) -> list[dict[str, Any]]:
    width = 2 * s + 1
    if len(records) < 2 * width:
        return []
    plain = [r for r in records if not r.get("window_ended")]
    early, late = plain[5 : 5 + width], plain[-width:]  # past the first batches (tables being created)
    labels = set().union(*(r["functions"] for r in plain))
    growth = []
    for label in labels:

        def median(rows: list[dict[str, Any]], i: int, label: str = label) -> float:
            return statistics.median(r["functions"].get(label, [0.0, 0.0])[i] for r in rows)

        growth.append(
            {
                "label": label,
                "early": median(early, 1),
                "late": median(late, 1),
                "early_wall": median(early, 0),
                "late_wall": median(late, 0),
            }
        )
    return sorted(growth, key=lambda g: g["late"] - g["early"], reverse=True)


# ----------------------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=2_000, help="micro-batches (2,000; a day is 20,000)")
    parser.add_argument(
        "--rows-per-batch", type=int, default=ROWS_PER_BATCH, help=f"trades per batch ({ROWS_PER_BATCH:,})"
    )
    parser.add_argument("--rate", type=int, default=RATE, help=f"trades per second of the stream ({RATE:,})")
    parser.add_argument(
        "--maintain-every",
        type=int,
        default=None,
        help="batches between table maintenance passes (100); 0: never",
    )
    parser.add_argument(
        "--dashboard-every",
        type=int,
        default=50,
        help="batches between dashboard renders (50; the silver asset renders it after every run: its cost "
        "is reported apart from the per-batch cost); 0: never",
    )
    parser.add_argument(
        "--max-minutes",
        type=float,
        default=30,
        help="stop after this many minutes and report the batches run (30; 0: no limit)",
    )
    parser.add_argument("--window-batches", type=int, default=500, help="batches per feed window (500)")
    parser.add_argument("--measure-every", type=int, default=10, help="read file sizes every N batches (10)")
    parser.add_argument("--smooth", type=int, default=5, help="batches each side in the reported medians (5)")
    parser.add_argument("--progress-every", type=int, default=100, help="print a line every N batches (100)")
    parser.add_argument("--workdir", default=None, help="work dir (default: a new temp dir)")
    parser.add_argument("--keep", action="store_true", help="keep the work dir (lake, databases, broker log)")
    parser.add_argument("--json", default=None, help="write every batch's figures to this JSON file")
    parser.add_argument(
        "--report-from", default=None, help="print the report of a --json file written earlier (runs nothing)"
    )
    args = parser.parse_args(argv)
    if args.report_from:
        saved = json.loads(Path(args.report_from).read_text())
        for name, value in saved["params"].items():
            if name != "report_from":
                setattr(args, name, value)
        report(args, saved["result"])
        return 0
    if min(args.batches, args.rows_per_batch, args.rate, args.window_batches, args.measure_every) < 1:
        parser.error(
            "--batches, --rows-per-batch, --rate, --window-batches and --measure-every must be positive"
        )
    _quiet()
    available = maintenance_available()
    if args.maintain_every is None:
        args.maintain_every = 100 if available else 0
    if args.maintain_every and not available:
        parser.error(
            "--maintain-every needs platform_assets.core.lake.maintenance, which this checkout lacks"
        )
    workdir = Path(args.workdir).resolve() if args.workdir else Path(tempfile.mkdtemp(prefix="stream_soak_"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(
        f"workdir {workdir}; {args.batches:,} batches of {args.rows_per_batch:,} trades; "
        + (f"maintenance every {args.maintain_every} batches" if args.maintain_every else "no maintenance"),
        flush=True,
    )
    try:
        result = soak(args, workdir)
    finally:
        if not args.keep:
            shutil.rmtree(workdir, ignore_errors=True)
    summary = report(args, result)
    if args.json:
        Path(args.json).write_text(
            json.dumps({"params": vars(args), "summary": summary, "result": result}, indent=1, default=str)
        )
        print(f"figures written to {args.json}")
    if args.keep:
        print(f"work dir kept: {workdir}")
    return 1 if "stopped" in result else 0


if __name__ == "__main__":
    sys.exit(main())
