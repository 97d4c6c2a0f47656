"""Drive the trade stream in process, as the daemon would: run a feed window, then tick the sensor
``trades_micro_batches`` and execute each run it requests until it reports being caught up.

The demo uses it to show one short window end to end; tests use it to drive the real jobs and sensor
without a daemon. Runs go to the given Dagster instance, so they appear in ``make dev`` afterwards.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path

from dagster import (
    DagsterInstance,
    ExecuteInProcessResult,
)

from platform_assets.core.state import StateStore
from platform_assets.core.streaming.incarnation import accepted_name
from platform_assets.core.streaming.kafka import EmbeddedBroker
from platform_assets.core.trades.serving import MetricsRow, ServingStore, metrics_table, trades_table
from platform_assets.core.trades.stream import HELD_TABLE, SILVER_QUARANTINE_TABLE, checkpoint_name
from platform_assets.definitions import build_definitions
from platform_assets.defs.trades.assets import BRONZE_KEY, FEED_KEY, SILVER_KEY
from platform_assets.defs.trades.definitions import FEED_JOB
from platform_assets.defs.trades.resources import trade_resources
from platform_assets.defs.trades.sensors import MICRO_BATCH_JOB, SENSOR_NAME
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import MICRO_BATCH_TAG
from platform_assets.settings import Settings, load_settings
from platform_devkit.sensor_driver import SensorDriver
from platform_devkit.trades_lookup_standin import TradesLookupStandin
from platform_devkit.trades_standin import TradesStandin


def feed_run_config(max_trades: int, seconds: float) -> dict:
    return {"ops": {"kafka__trades": {"config": {"seconds": seconds, "max_trades": max_trades}}}}


@dataclass
class StreamDriver(SensorDriver):
    """The stream's jobs and sensor for ``settings``, run in process against ``instance``."""

    sensor_name = SENSOR_NAME
    job_name = MICRO_BATCH_JOB

    settings: Settings
    instance: DagsterInstance
    run_config: dict = field(default_factory=dict)  # merged into every run (e.g. log levels)
    cursor: str | None = None

    def __post_init__(self) -> None:
        self.defs = build_definitions(self.settings)
        self.resources = {**build_resources(self.settings), **trade_resources(self.settings)}

    def feed(self, ws_url: str, *, max_trades: int, seconds: float = 30.0) -> ExecuteInProcessResult:
        """One run of ``trades_feed_job`` reading ``ws_url`` (a window and a fresh lookup)."""
        job = build_definitions(replace(self.settings, trades_ws_url=ws_url)).resolve_job_def(FEED_JOB)
        return job.execute_in_process(
            run_config={**self.run_config, **feed_run_config(max_trades, seconds)},
            instance=self.instance,
            raise_on_error=False,
        )


@dataclass(frozen=True)
class WindowSummary:
    feed: ExecuteInProcessResult
    runs: list[ExecuteInProcessResult]
    trades_fed: int
    micro_batches: int
    enriched_rows: int
    metrics: MetricsRow | None
    dashboard: Path

    @property
    def success(self) -> bool:
        return self.feed.success and all(r.success for r in self.runs)


def reset_stream(settings: Settings, instance: DagsterInstance) -> None:
    """Forget everything the stream landed: its lake tables (dead letters, held trades and silver's
    quarantine included), silver's checkpoint, an accepted incarnation, the serving tables and the assets'
    history in Dagster. Not needed after a broker restart (a new epoch starts by itself): this is for
    starting over."""
    for layer, table in (
        ("bronze", "trades"),
        ("bronze", "trades_quarantine"),
        ("silver", "trades_enriched"),
        ("silver", HELD_TABLE),
        ("silver", SILVER_QUARANTINE_TABLE),
    ):
        path = settings.table_path(layer, table)
        if path.exists():
            path.fs.rm(path.path, recursive=True)
    resources = trade_resources(settings)
    app_id = resources["trade_stream"].app_id
    state = StateStore(settings.state_url, settings.env)
    state.delete(checkpoint_name(app_id))
    state.delete(accepted_name(app_id))
    store = ServingStore(settings.serving_url)
    store.setup()
    with store.engine.begin() as conn:
        conn.execute(trades_table.delete())
        conn.execute(metrics_table.delete())
    instance.wipe_assets([FEED_KEY, BRONZE_KEY, SILVER_KEY])


def run_window_offline(
    settings: Settings,
    instance: DagsterInstance,
    trades: int = 600,
    max_batch_rows: int = 200,
    run_config: dict | None = None,
) -> WindowSummary:
    """One short feed window against the local stand-ins (websocket with a drop, a resend and a
    malformed frame; lookup API), then every micro-batch run the sensor asks for (small batches, so
    there are several). Without ``PLATFORM_KAFKA_BOOTSTRAP`` an embedded broker lives for the call: each
    call is then a new topic incarnation, which the stream lands as a new epoch (nothing to reset)."""
    # The window has ended when the sensor ticks: land it now rather than after the allowed latency.
    settings = replace(settings, trades_max_batch_rows=max_batch_rows, trades_allowed_latency=0)
    with contextlib.ExitStack() as stack:
        if not settings.kafka_bootstrap:
            broker = stack.enter_context(EmbeddedBroker())
            settings = replace(settings, kafka_bootstrap=broker.bootstrap)
        lookup = stack.enter_context(TradesLookupStandin())
        settings = replace(settings, trades_lookup_url=lookup.url)
        feed = stack.enter_context(TradesStandin(trades, drop_after=trades // 2, malformed_at=trades // 3))
        driver = StreamDriver(settings, instance, run_config=run_config or {})
        fed = driver.feed(feed.url, max_trades=trades + feed.resend, seconds=60)
        runs = driver.drain()
    store = ServingStore(settings.serving_url)
    metrics = store.metrics()
    return WindowSummary(
        feed=fed,
        runs=runs,
        trades_fed=feed.trade_frames_sent,
        micro_batches=sum(1 for r in runs if MICRO_BATCH_TAG in r.dagster_run.tags),
        enriched_rows=store.trades().height,
        metrics=metrics[-1] if metrics else None,
        dashboard=Path(driver.resources["serving"].dashboard_dir) / "index.html",
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_devkit.trades",
        description="Dev tools for the trade stream. reset: forget everything the stream landed (after "
        "restarting an embedded broker, which keeps nothing).",
    )
    parser.add_argument("command", choices=["reset"])
    parser.parse_args(argv)
    settings = load_settings()
    if settings.env == "prod":
        print("error: refusing to reset the trade stream of prod", file=sys.stderr)
        return 2
    with DagsterInstance.get() as instance:
        reset_stream(settings, instance)
    print(
        f"trade stream of {settings.env} reset: bronze/trades, silver/trades_enriched, checkpoint, serving tables"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
