"""A stream's sensor and job run in process, as the daemon would: tick the sensor, execute each run it
requests, until it skips (caught up). The trade and loan stream drivers (``platform_devkit.trades``,
``platform_devkit.loans``) are this with their own definitions; tests and the demo use them to drive the
real jobs and sensors without a daemon.
"""

from __future__ import annotations

from typing import Any, ClassVar

from dagster import (
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
    RunRequest,
    SensorResult,
    SkipReason,
    build_sensor_context,
)


class SensorDriver:
    """Ticks ``sensor_name`` of ``defs`` and executes the runs of ``job_name`` it requests, against
    ``instance``. A subclass (a dataclass) names the sensor, the job and the stream (for the error of a
    stream never caught up) and sets ``defs``, ``resources``, ``instance``, ``run_config`` (merged into
    every run) and ``cursor``."""

    sensor_name: ClassVar[str]
    job_name: ClassVar[str]
    stream_name: ClassVar[str] = "the stream"
    defs: Definitions
    resources: dict[str, Any]
    instance: DagsterInstance
    run_config: dict
    cursor: str | None

    def tick(self) -> tuple[Any, list[RunRequest]]:
        """One evaluation of the sensor: its result (a skip, a run request or a sensor result) and the runs
        it requests."""
        sensor = self.defs.resolve_sensor_def(self.sensor_name)
        with build_sensor_context(
            instance=self.instance, cursor=self.cursor, resources=self.resources, definitions=self.defs
        ) as context:
            result = sensor(context)
        if isinstance(result, SensorResult):
            self.cursor = result.cursor or self.cursor
            return result, list(result.run_requests or [])
        return result, [result] if isinstance(result, RunRequest) else []

    def execute(self, request: RunRequest) -> ExecuteInProcessResult:
        """Run what ``request`` asks for, with its tags and run key, as the daemon would launch it."""
        return self.defs.resolve_job_def(self.job_name).execute_in_process(
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
                skipped = isinstance(result, SkipReason) or (
                    isinstance(result, SensorResult) and result.skip_reason is not None
                )
                if not skipped:
                    raise RuntimeError(f"the sensor neither skipped nor requested a run: {result!r}")
                return results
            results.extend(self.execute(request) for request in requests)
        raise RuntimeError(f"{self.stream_name} was not caught up after {max_runs} runs")
