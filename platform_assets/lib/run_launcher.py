"""A local run launcher that tells Dagster's run monitor whether a run's worker process is alive.

Dagster's ``DefaultRunLauncher`` starts every run in a process on this machine but cannot say whether
that process is still there. A run whose worker was killed (``kill -9``, the OOM killer, a reboot)
therefore stays ``STARTED`` for ever, keeps its concurrency-pool slots, and every later run of the same
table waits behind it. This launcher answers the monitor's health check from the worker's process id
(recorded by Dagster on the run's ``RUN_START`` event), so the monitoring daemon (``run_monitoring`` in
``dagster.yaml``) marks a dead run failed, frees its slots (``free_slots_after_run_end_seconds``) and
run retries start it again.

It judges runs by processes on this machine: right for ``make dev`` and any single-host deployment,
including runs started from the ``dagster`` CLI on that host. A deployment that runs workers on other
hosts needs a launcher with health checks of its own (Kubernetes, ECS, Docker).
"""

from __future__ import annotations

import os
from pathlib import Path

from dagster import DagsterEventType, DagsterRun, DefaultRunLauncher
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus

_PROC = Path("/proc")
# a process id is reused only after the old process is gone; a process that started after the run
# started cannot be its worker (the tolerance absorbs clock-tick rounding)
_START_TOLERANCE_SECONDS = 2.0


def _boot_time() -> float | None:
    try:
        for line in (_PROC / "stat").read_text().splitlines():
            if line.startswith("btime "):
                return float(line.split()[1])
    except OSError:
        return None
    return None


def process_alive(pid: int, started_by: float | None = None) -> bool:
    """Whether ``pid`` is a live process (not a zombie) that started no later than ``started_by``."""
    stat = _PROC / str(pid) / "stat"
    if not _PROC.is_dir():  # no /proc (macOS): a signal 0 tells whether the pid exists
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            return False
        except PermissionError:
            return True
        return True
    try:
        fields = stat.read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return False
    if fields[0] in ("Z", "X"):  # zombie or dead: killed, not yet reaped by its parent
        return False
    boot = _boot_time()
    if started_by is None or boot is None:
        return True
    process_start = boot + int(fields[19]) / os.sysconf("SC_CLK_TCK")
    return process_start <= started_by + _START_TOLERANCE_SECONDS


class LocalRunLauncher(DefaultRunLauncher):
    """``DefaultRunLauncher`` plus a worker health check for run monitoring."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: DagsterRun) -> CheckRunHealthResult:
        records = self._instance.get_records_for_run(
            run.run_id, of_type=DagsterEventType.RUN_START, limit=1, ascending=False
        ).records
        entry = records[0].event_log_entry if records else None
        if entry is None or entry.dagster_event is None:
            # nothing to judge by: never fail a run on missing information
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker not recorded yet")
        pid = entry.dagster_event.pid
        if pid is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "run worker process id not recorded")
        if process_alive(pid, started_by=entry.timestamp):
            return CheckRunHealthResult(WorkerStatus.RUNNING, f"run worker process {pid} is alive")
        return CheckRunHealthResult(
            WorkerStatus.FAILED, f"run worker process {pid} is gone (killed, or its machine restarted)"
        )
