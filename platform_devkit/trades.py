"""Drive the trade stream in process, as the daemon would: run a feed window, then tick the sensor
``trades_micro_batches`` and execute each run it requests until it reports being caught up.

The demo uses it to show one short window end to end; tests use it to drive the real jobs and sensor
without a daemon. Runs go to the given Dagster instance, so they appear in ``make dev`` afterwards.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from dagster import (
    DagsterInstance,
    ExecuteInProcessResult,
    RunRequest,
    SensorResult,
    SkipReason,
    build_sensor_context,
)

from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets.settings import Settings
from platform_assets.trades.definitions import FEED_JOB
from platform_assets.trades.resources import trade_resources
from platform_assets.trades.sensors import MICRO_BATCH_JOB, SENSOR_NAME


def feed_run_config(max_trades: int, seconds: float) -> dict:
    return {"ops": {"kafka__trades": {"config": {"seconds": seconds, "max_trades": max_trades}}}}


@dataclass
class StreamDriver:
    """The stream's jobs and sensor for ``settings``, run in process against ``instance``."""

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

    def tick(self) -> tuple[SkipReason | RunRequest | SensorResult, list[RunRequest]]:
        """One evaluation of the sensor: its result and the runs it requests."""
        sensor = self.defs.resolve_sensor_def(SENSOR_NAME)
        context = build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources, definitions=self.defs
        )
        result = sensor(context)
        if isinstance(result, SensorResult):
            self.cursor = result.cursor or self.cursor
            return result, list(result.run_requests or [])
        return result, [result] if isinstance(result, RunRequest) else []

    def execute(self, request: RunRequest) -> ExecuteInProcessResult:
        """Run what ``request`` asks for, with its tags and run key, as the daemon would launch it."""
        job = self.defs.resolve_job_def(MICRO_BATCH_JOB)
        return job.execute_in_process(
            run_config={**self.run_config, **(request.run_config or {})},
            tags={**request.tags, "dagster/run_key": request.run_key or ""},
            instance=self.instance,
            asset_selection=request.asset_selection,
            raise_on_error=False,
        )

    def drain(self, max_runs: int = 200) -> list[ExecuteInProcessResult]:
        """Tick and run until the sensor skips (caught up); every run's result, in order."""
        results = []
        for _ in range(max_runs):
            result, requests = self.tick()
            if not requests:
                if not isinstance(result, SkipReason):
                    raise RuntimeError(f"the sensor neither skipped nor requested a run: {result!r}")
                return results
            results.extend(self.execute(request) for request in requests)
        raise RuntimeError(f"the stream was not caught up after {max_runs} runs")
