"""Turn a Dagster run (its record and event log) into the plain facts the audit tables hold.

Everything is read from Dagster's own records, so any run of any job or asset (present or future,
batch or streaming) is audited without code in the assets, and a run that crashed or was killed is
described by whatever Dagster recorded about it (run monitoring marks it failed, a cancel marks it
canceled).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from dagster import (
    AssetCheckEvaluation,
    DagsterEvent,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    EventLogEntry,
    EventLogRecord,
)
from dagster._core.storage.dagster_run import RunRecord

from platform_assets.defs.monitoring.job_names import JobCatalog, attributed_job_name
from platform_assets.lib.metadata import RECONCILIATION_CHECK

# Run tags a job (or the sensor that launches it) may set to describe itself in the audit trail.
from platform_assets.lib.tags import (
    ASSET_PARTITION_RANGE_END_TAG,
    ASSET_PARTITION_RANGE_START_TAG,
    JOB_TYPE_TAG,
    MICRO_BATCH_TAG,
    PARAMETER_TAG_PREFIX,
    PARENT_RUN_TAG,
    STREAMING_SOURCE_TAG,
)

STATUS = {
    DagsterRunStatus.QUEUED: "Queued",
    DagsterRunStatus.NOT_STARTED: "Queued",
    DagsterRunStatus.STARTING: "Running",
    DagsterRunStatus.STARTED: "Running",
    DagsterRunStatus.CANCELING: "Running",
    DagsterRunStatus.SUCCESS: "Completed",
    DagsterRunStatus.FAILURE: "Failed",
    DagsterRunStatus.CANCELED: "Canceled",
}
TERMINAL = {"Completed", "Failed", "Canceled"}

RUN_EVENTS = {
    DagsterEventType.RUN_ENQUEUED: "Queued",
    DagsterEventType.RUN_STARTING: "Starting",
    DagsterEventType.RUN_START: "Running",
    DagsterEventType.RUN_SUCCESS: "Completed",
    DagsterEventType.RUN_FAILURE: "Failed",
    DagsterEventType.RUN_CANCELING: "Canceling",
    DagsterEventType.RUN_CANCELED: "Canceled",
}
STEP_EVENTS = {
    DagsterEventType.STEP_START,
    DagsterEventType.STEP_SUCCESS,
    DagsterEventType.STEP_FAILURE,
    DagsterEventType.STEP_SKIPPED,
}
OTHER_EVENTS = {DagsterEventType.ASSET_MATERIALIZATION, DagsterEventType.ASSET_CHECK_EVALUATION}


@dataclass
class TaskFacts:
    step_key: str
    asset_key: str
    partition_key: str | None = None
    status: str = "Running"
    start_time: datetime | None = None
    end_time: datetime | None = None
    rows_read: int | None = None
    rows_written: int | None = None
    delta_version: int | None = None
    error_message: str | None = None
    # Every partition the step materialized for this asset, in event order (a range run writes several;
    # the row counts are then their sums).
    partitions: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class LogFacts:
    event_key: str
    status: str
    timestamp: datetime
    message: str


@dataclass(frozen=True)
class CheckFailure:
    asset_key: str
    check_name: str
    severity: str
    rows_failed: int | None


@dataclass
class RunFacts:
    run_id: str
    job: dict[str, Any]
    tasks: list[TaskFacts] = field(default_factory=list)
    parameters: dict[str, Any] = field(default_factory=dict)
    logs: list[LogFacts] = field(default_factory=list)
    check_failures: list[CheckFailure] = field(default_factory=list)

    @property
    def status(self) -> str:
        return self.job["status"]

    @property
    def failed_assets(self) -> list[str]:
        return sorted({t.asset_key for t in self.tasks if t.status == "Failed"})


def _time(timestamp: float | None) -> datetime | None:
    return None if timestamp is None else _when(timestamp)


def _when(timestamp: float) -> datetime:
    """A Dagster timestamp as the audit tables' naive UTC time."""
    return datetime.fromtimestamp(timestamp, UTC).replace(tzinfo=None)


def error_text(error: Any) -> str | None:
    """The user's error from a serialized Dagster error: Dagster's own wrappers are skipped, and the
    exception that caused the user's error (e.g. the driver error) is appended."""
    chain = []
    while error is not None:
        message = (error.message or "").strip()
        if message and not message.startswith("dagster._core.errors."):
            chain.append(message)
        error = getattr(error, "cause", None)
    return " | caused by: ".join(chain[:2])[:4000] if chain else None


def _partition_range(tags: Mapping[str, str]) -> str | None:
    """The run's partition range ``a...b`` when it is one run over several partitions (single-run backfill)."""
    start, end = tags.get(ASSET_PARTITION_RANGE_START_TAG), tags.get(ASSET_PARTITION_RANGE_END_TAG)
    return f"{start}...{end}" if start and end else None


def _partition(tags: Mapping[str, str]) -> str | None:
    if "dagster/partition" in tags:
        return tags["dagster/partition"]
    return _partition_range(tags)


def _task_partition(partitions: list[str], run_range: str | None) -> str | None:
    """What a task row's ``partition_key`` says the step covered.

    A step of a range run materializes the whole range at once (one event per partition), so its row
    holds the run's range ``a...b``, like the run's own row, rather than whichever partition came last.
    Outside a range run, one partition is itself and several are the first and last written.
    """
    distinct = list(dict.fromkeys(partitions))
    if not distinct:
        return None
    if run_range is not None:
        return run_range
    return distinct[0] if len(distinct) == 1 else f"{distinct[0]}...{distinct[-1]}"


def _trigger(tags: Mapping[str, str]) -> str:
    if "dagster/backfill" in tags:
        return "backfill"
    if "dagster/schedule_name" in tags:
        return "schedule"
    if "dagster/sensor_name" in tags:
        return "sensor"
    return "manual"


def _flatten(prefix: str, value: Any, out: dict[str, Any]) -> None:
    if isinstance(value, Mapping):
        for key, item in value.items():
            _flatten(f"{prefix}.{key}" if prefix else str(key), item, out)
    else:
        out[prefix] = value


# Dagster's own tags that say what a run was asked to do (which partitions, by which backfill, schedule or
# sensor, which steps, a retry of which run, the limits a user may set in the launchpad): audited like a
# user's tags. Every other ``dagster/`` tag is Dagster's plumbing (the tick id, a sensor's run key, retry
# bookkeeping, run metrics) and every ``.dagster/`` tag is hidden by Dagster itself (the gRPC server's socket
# path, the run worker): neither is a parameter of the process.
DAGSTER_PARAMETER_TAGS = frozenset(
    {
        "dagster/partition",
        "dagster/partition_set",
        ASSET_PARTITION_RANGE_START_TAG,
        ASSET_PARTITION_RANGE_END_TAG,
        "dagster/backfill",
        "dagster/schedule_name",
        "dagster/sensor_name",
        "dagster/step_selection",
        "dagster/solid_selection",
        "dagster/parent_run_id",
        "dagster/root_run_id",
        "dagster/retry_number",
        "dagster/is_resume_retry",
        "dagster/priority",
        "dagster/max_retries",
        "dagster/retry_strategy",
        "dagster/retry_on_asset_or_op_failure",
        "dagster/max_runtime",
        "dagster/isolation",
        "dagster/concurrency_key",
        "dagster/image",
    }
)


def audited_tag(key: str) -> bool:
    """Whether a run tag is one of the run's parameters: a tag a user or the platform set, or one of
    :data:`DAGSTER_PARAMETER_TAGS` (a multi-dimensional partition's ``dagster/partition/<dimension>`` too);
    not Dagster's internal ones."""
    if key.startswith(".dagster/"):
        return False
    if key.startswith("dagster/"):
        return key in DAGSTER_PARAMETER_TAGS or key.startswith("dagster/partition/")
    return True


def parameters(run_config: Mapping[str, Any], tags: Mapping[str, str]) -> dict[str, Any]:
    """The run's configuration (flattened, e.g. ``ops.bronze__dimuser.config.from_date``), the tags it was
    launched with (:func:`audited_tag`: not Dagster's plumbing), and the parameters its tags declare
    (:data:`PARAMETER_TAG_PREFIX`)."""
    out: dict[str, Any] = {}
    _flatten("", {k: v for k, v in run_config.items() if k != "loggers"}, out)
    out.update({f"tag.{k}": v for k, v in tags.items() if audited_tag(k)})
    # Parameters a job declares through its run tags, under their own names (e.g. Kafka_Topic).
    out.update(
        {k[len(PARAMETER_TAG_PREFIX) :]: v for k, v in tags.items() if k.startswith(PARAMETER_TAG_PREFIX)}
    )
    return out


def _metadata_value(metadata: Mapping[str, Any], name: str) -> Any:
    entry = metadata.get(name)
    return None if entry is None else getattr(entry, "value", entry)


def _add(total: int | None, value: int | None) -> int | None:
    return total if value is None else (total or 0) + value


def _step_asset(step_key: str) -> str:
    """Dagster names an asset's step after its key with '/' → '__' (``bronze__dimuser``)."""
    return step_key.replace("__", "/")


def collect(
    instance: DagsterInstance,
    record: RunRecord,
    environment: str,
    ui_base: str,
    jobs: JobCatalog | None = None,
) -> RunFacts:
    """The run's facts; with ``jobs``, a run of an implicit asset job is named after the platform job
    that covers its assets (see :mod:`platform_assets.defs.monitoring.job_names`)."""
    run = record.dagster_run
    tags = dict(run.tags)
    status = STATUS.get(run.status, "Running")
    events = instance.get_records_for_run(
        run.run_id, of_type=set(RUN_EVENTS) | STEP_EVENTS | OTHER_EVENTS, limit=None
    ).records
    facts = RunFacts(
        run_id=run.run_id,
        job={
            "job_name": run.job_name,
            "job_type": tags.get(JOB_TYPE_TAG, "Batch"),
            "status": status,
            "start_time": _time(record.start_time),
            "end_time": _time(record.end_time) if status in TERMINAL else None,
            "streaming_source": tags.get(STREAMING_SOURCE_TAG),
            "micro_batch_id": tags.get(MICRO_BATCH_TAG),
            "environment": environment,
            "partition_key": _partition(tags),
            "trigger": _trigger(tags),
            "ui_url": f"{ui_base.rstrip('/')}/runs/{run.run_id}",
            "parent_run_id": tags.get(PARENT_RUN_TAG),
        },
        parameters=parameters(run.run_config or {}, tags),
    )
    folder = _EventFolder(facts)
    for event_record in events:
        folder.apply(event_record)
    facts.tasks = folder.task_rows()
    run_range = _partition_range(tags)
    for task in facts.tasks:
        task.partition_key = _task_partition(task.partitions, run_range)
    selected = {k.to_user_string() for k in run.asset_selection or ()} or {t.asset_key for t in facts.tasks}
    if selected:
        facts.parameters["assets"] = ",".join(sorted(selected))
    facts.parameters["dagster_job_name"] = run.job_name
    facts.job["job_name"] = attributed_job_name(run.job_name, selected, jobs)
    if status == "Failed":
        step_errors = [f"{t.asset_key}: {t.error_message}" for t in facts.tasks if t.error_message]
        facts.job["error_message"] = "\n".join(step_errors or folder.run_errors)[:4000] or "run failed"
    if facts.job["start_time"] is None and facts.logs:
        facts.job["start_time"] = facts.logs[0].timestamp
    return facts


@dataclass
class _EventFolder:
    """Folds a run's events, in order, into its facts: a log row per run event, step failure and failed
    check; a task row per (step, asset) materialized, and per step that materialized nothing."""

    facts: RunFacts
    asset_tasks: dict[tuple[str, str], TaskFacts] = field(default_factory=dict)  # (step key, asset key)
    step_tasks: dict[str, TaskFacts] = field(default_factory=dict)
    run_errors: list[str] = field(default_factory=list)

    def apply(self, record: EventLogRecord) -> None:
        entry = record.event_log_entry
        event = entry.get_dagster_event()
        when = _when(entry.timestamp)
        kind = event.event_type
        if kind in RUN_EVENTS:
            self._run_event(record.storage_id, entry, event, when)
        elif kind in STEP_EVENTS:
            self._step_event(record.storage_id, event, when)
        elif kind == DagsterEventType.ASSET_MATERIALIZATION:
            self._materialization(event, when)
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            self._check_evaluation(record.storage_id, event.asset_check_evaluation_data, when)

    def task_rows(self) -> list[TaskFacts]:
        """A row per asset a step materialized; a step that materialized none has a row of its own."""
        stepped = {step for step, _ in self.asset_tasks}
        rest = [t for k, t in self.step_tasks.items() if k not in stepped]
        return list(self.asset_tasks.values()) + rest

    def _run_event(self, storage_id: int, entry: EventLogEntry, event: DagsterEvent, when: datetime) -> None:
        kind = event.event_type
        message = entry.message or event.message or RUN_EVENTS[kind]
        if kind == DagsterEventType.RUN_FAILURE:
            error = getattr(event.event_specific_data, "error", None)
            self.run_errors.append(error_text(error) or message)
        self.facts.logs.append(LogFacts(f"{kind.value}:{storage_id}", RUN_EVENTS[kind], when, message[:2000]))

    def _step_event(self, storage_id: int, event: DagsterEvent, when: datetime) -> None:
        """A step started or ended: its row, and the rows of the assets it materialized, follow it."""
        kind, step_key = event.event_type, event.step_key or ""
        task = self.step_tasks.setdefault(step_key, TaskFacts(step_key, _step_asset(step_key)))
        if kind == DagsterEventType.STEP_START:
            task.start_time = when
        elif kind == DagsterEventType.STEP_SUCCESS:
            task.status, task.end_time = "Completed", when
        elif kind == DagsterEventType.STEP_SKIPPED:
            task.status, task.end_time = "Skipped", when
        else:
            task.status, task.end_time = "Failed", when
            task.error_message = error_text(event.step_failure_data.error)
            message = f"step {step_key} failed: {task.error_message}"[:2000]
            self.facts.logs.append(LogFacts(f"STEP_FAILURE:{storage_id}", "Failed", when, message))
        for (step, _), asset_task in self.asset_tasks.items():
            if step == step_key:
                asset_task.status, asset_task.end_time = task.status, task.end_time
                asset_task.start_time = asset_task.start_time or task.start_time
                asset_task.error_message = task.error_message

    def _materialization(self, event: DagsterEvent, when: datetime) -> None:
        materialization = event.materialization
        step_key = event.step_key or ""
        asset = materialization.asset_key.to_user_string()
        step = self.step_tasks.get(step_key)
        task = self.asset_tasks.setdefault(
            (step_key, asset), TaskFacts(step_key, asset, start_time=step.start_time if step else when)
        )
        _count_rows(task, materialization.partition, materialization.metadata)
        task.delta_version = _metadata_value(materialization.metadata, "delta_version")
        if step is not None and step.status != "Running":
            task.status, task.end_time = step.status, step.end_time

    def _check_evaluation(self, storage_id: int, evaluation: AssetCheckEvaluation, when: datetime) -> None:
        if evaluation.check_name == RECONCILIATION_CHECK:
            self.facts.parameters.update(reconciliation_parameters(evaluation))
        if evaluation.passed:
            return
        severity = evaluation.severity.value
        asset = evaluation.asset_key.to_user_string()
        failed = _metadata_value(evaluation.metadata, "rows_failed")
        self.facts.check_failures.append(CheckFailure(asset, evaluation.check_name, severity, failed))
        message = f"check {asset}:{evaluation.check_name} failed ({severity}); rows_failed={failed}"
        self.facts.logs.append(
            LogFacts(f"CHECK_FAILED:{storage_id}", f"Check{severity.title()}", when, message)
        )


# Every check named RECONCILIATION_CHECK (bronze against its source, a stream's offsets against its table,
# any asset's) is recorded among the run's parameters, whatever its verdict: the audit then holds, per
# run, what was counted on both sides, not only that the counts disagreed.
_PARAMETER_NAME = 200  # Process_Parameter_Metadata.parameter_name's length


def reconciliation_parameters(evaluation: AssetCheckEvaluation) -> dict[str, Any]:
    """A ``reconciliation`` evaluation's metadata as run parameters named
    ``reconciliation.<asset key>[<partition>].<name>`` (no ``[...]`` for an unpartitioned check), e.g.
    ``reconciliation.bronze/factstream[2026-03-01].source_rows``, and its verdict as ``.passed``. A later
    evaluation of the same check and partition in the run (a retried step) replaces the earlier one."""
    where = evaluation.asset_key.to_user_string()
    partition = getattr(evaluation, "partition", None)
    prefix = f"{RECONCILIATION_CHECK}.{where}" + (f"[{partition}]" if partition is not None else "")
    values = {name: _metadata_value(evaluation.metadata, name) for name in evaluation.metadata}
    values["passed"] = evaluation.passed
    return {_parameter_name(f"{prefix}.{name}"): value for name, value in values.items()}


def _parameter_name(name: str) -> str:
    """``name`` as it fits the parameter column: a name too long keeps its start and ends in a digest of
    the whole, so two long names never share a row (the audit refuses to cut a key)."""
    if len(name) <= _PARAMETER_NAME:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:16]
    return f"{name[: _PARAMETER_NAME - len(digest) - 1]}~{digest}"


def _count_rows(task: TaskFacts, partition: str | None, metadata: Mapping[str, Any]) -> None:
    """The rows read and written of one materialization: another day of the same step (a range run)
    adds its own to the row, which describes the whole step; otherwise they replace what was there."""
    rows_read = _metadata_value(metadata, "rows_read")
    rows_written = _metadata_value(metadata, "rows_written")
    if partition is not None and task.partitions and partition not in task.partitions:
        task.rows_read = _add(task.rows_read, rows_read)
        task.rows_written = _add(task.rows_written, rows_written)
    else:
        task.rows_read, task.rows_written = rows_read, rows_written
    if partition is not None and partition not in task.partitions:
        task.partitions.append(partition)


def affected_runs(records: Iterable[RunRecord]) -> list[RunRecord]:
    """Records de-duplicated by run id, keeping the latest, in the order Dagster created the runs (its
    run storage id): the runs a pass records first get their ``Job_Metadata`` ids in that order, whatever
    order they were fetched in (runs in progress come newest first, changed runs by update time)."""
    latest: dict[str, RunRecord] = {}
    for record in records:
        current = latest.get(record.dagster_run.run_id)
        if current is None or record.update_timestamp >= current.update_timestamp:
            latest[record.dagster_run.run_id] = record
    return sorted(latest.values(), key=lambda r: r.storage_id)
