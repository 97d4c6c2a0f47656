"""Deleting finished runs from the Dagster instance's history, page by page, as core.run_retention decides.

A deleted run loses everything the instance keeps of it: its record and tags, its event log (the asset
materializations and observations it reported included) and its captured stdout/stderr. With SQLite
storage each run also has an event log file of its own (``history/runs/<run id>.db``, about 124 KB even
once emptied), removed here as well: Dagster empties it but leaves the file.
"""

from __future__ import annotations

import contextlib
import os
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

from dagster import DagsterInstance, DagsterRunStatus, RunsFilter
from dagster._core.definitions.run_request import InstigatorType
from dagster._core.scheduler.instigation import SensorInstigatorData
from dagster._core.storage.dagster_run import RunRecord
from dagster._core.storage.event_log.sqlite.sqlite_event_log import SqliteEventLogStorage

from platform_assets.core.run_retention import (
    FINISHED,
    Anchors,
    RetentionPolicy,
    RunFacts,
    deletable_before,
    kept_because,
    verdict,
)
from platform_assets.defs.monitoring.audit import SENSOR_NAME as AUDIT_SENSOR
from platform_assets.defs.monitoring.cursor import AuditCursor

# Runs read (and deleted) per query: memory stays flat however long the history is.
PAGE_SIZE = 200
FINISHED_STATUSES = [DagsterRunStatus(name) for name in sorted(FINISHED)]


@dataclass
class PruneReport:
    examined: int = 0
    deleted: int = 0
    files_removed: int = 0  # SQLite event log files of deleted runs
    kept: Counter[str] = field(default_factory=Counter)
    deletable_before: datetime | None = None
    dry_run: bool = False  # deleted counts what would have been

    def summary(self) -> str:
        kept = ", ".join(f"{n} {reason}" for reason, n in sorted(self.kept.items())) or "none"
        verb = "would be deleted" if self.dry_run else "deleted"
        return f"{self.deleted} run(s) {verb} of {self.examined} examined; kept: {kept}"


def facts(record: RunRecord) -> RunFacts:
    run = record.dagster_run
    ended = None if record.end_time is None else datetime.fromtimestamp(record.end_time, UTC)
    return RunFacts(
        run.run_id, run.job_name, run.status.value, ended, record.update_timestamp, dict(run.tags)
    )


def audited_until(instance: DagsterInstance) -> datetime | None:
    """Up to which update time the audit trail has read the run records (its sensor's cursor), or None
    when it has read nothing. Were the sensor known under several code locations (one renamed), the
    furthest position counts: a location's state left behind would otherwise hold pruning back for ever."""
    positions = []
    for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
        data = state.instigator_data
        if state.name == AUDIT_SENSOR and isinstance(data, SensorInstigatorData) and data.cursor:
            position = AuditCursor.parse(data.cursor).updated_at
            if position is not None:
                positions.append(position)
    return max(positions, default=None)


def latest_asset_event_runs(instance: DagsterInstance) -> frozenset[str]:
    """The runs holding some asset's latest materialization or observation."""
    runs = set()
    for record in instance.get_asset_records():
        entry = record.asset_entry
        for event in (entry.last_materialization_record, entry.last_observation_record):
            if event is not None and event.event_log_entry.run_id:
                runs.add(event.event_log_entry.run_id)
    return frozenset(runs)


def delete_run_completely(instance: DagsterInstance, run_id: str) -> int:
    """Delete the run's record, tags, event log and captured logs; return how many files went with it
    (the SQLite event log file of the run, and its journal files when present)."""
    instance.delete_run(run_id)  # the record, its tags and its event log rows, asset events included
    instance.compute_log_manager.delete_logs(prefix=[run_id])  # <storage>/<run id>/compute_logs/...
    storage = instance.event_log_storage
    removed = 0
    if isinstance(storage, SqliteEventLogStorage):
        shard = storage.path_for_shard(run_id)
        for path in (shard, f"{shard}-wal", f"{shard}-shm"):
            with contextlib.suppress(FileNotFoundError):
                os.remove(path)
                removed += 1
    return removed


class _Anchors:
    """The anchors of one prune: read once, except each job's newest run, read the first time the job
    shows up (the ``all`` scope meets jobs as it goes)."""

    def __init__(self, instance: DagsterInstance, audited: datetime | None) -> None:
        self.instance = instance
        self.newest: dict[str, str] = {}
        self.latest_events = latest_asset_event_runs(instance)
        self.audited = audited

    def for_jobs(self, jobs: set[str]) -> Anchors:
        for job in jobs - self.newest.keys():
            newest = self.instance.get_run_records(RunsFilter(job_name=job), limit=1)
            self.newest[job] = newest[0].dagster_run.run_id if newest else ""
        return Anchors(self.audited, self.newest, self.latest_events)


def _attempts(
    instance: DagsterInstance, policy: RetentionPolicy, runs: Sequence[RunFacts]
) -> dict[tuple, list[RunFacts]]:
    """Every run of the micro-batches ``runs`` are attempts of (as the sensor counts them: the same job,
    stream and batch id), by batch: one query per job and stream, not one per run."""
    wanted: dict[tuple, set[str]] = defaultdict(set)
    for run in runs:
        batch = policy.batch_of(run)
        if batch is not None:
            wanted[batch[:2]].add(batch[2])
    attempts: dict[tuple, list[RunFacts]] = defaultdict(list)
    for (job, stream), batch_ids in wanted.items():
        tags: dict[str, str | list[str]] = {policy.batch_tag: sorted(batch_ids)}
        if stream is not None:
            tags[policy.stream_tag] = stream
        for record in instance.get_run_records(RunsFilter(job_name=job, tags=tags)):
            run = facts(record)
            batch = policy.batch_of(run)
            if batch is not None:  # always: the filter asked for runs with a batch tag
                attempts[batch].append(run)
    return attempts


def prune_run_history(
    instance: DagsterInstance,
    policy: RetentionPolicy,
    *,
    now: datetime | None = None,
    audited: datetime | None,
    dry_run: bool = False,
    page_size: int = PAGE_SIZE,
    log: Callable[[str], None] = print,
) -> PruneReport:
    """Delete every finished run ``policy`` finds due, oldest first, ``page_size`` runs at a time.

    ``audited``: the audit trail's position (:func:`audited_until`); no run changed at or after it is
    deleted. ``dry_run`` counts without deleting. Returns what was examined, deleted and kept (by reason).
    """
    now = now or datetime.now(UTC)
    report = PruneReport(deletable_before=deletable_before(policy, now, audited), dry_run=dry_run)
    if report.deletable_before is None:
        why = (
            "runs are kept for ever (retention 0 days)"
            if policy.keeps_everything
            else "the audit trail has recorded no run yet (its sensor has no cursor)"
        )
        log(f"nothing to prune: {why}")
        return report
    log(f"pruning finished runs that last changed before {report.deletable_before:%Y-%m-%d %H:%M:%S} UTC")
    # Only what can be due is read: finished, changed before the bound, of the stream's job unless the
    # scope is all. Candidates come in creation order (the run id cursor is the storage's row order).
    filters = RunsFilter(
        statuses=FINISHED_STATUSES,
        updated_before=report.deletable_before,
        job_name=policy.stream_job if policy.scope == "stream" else None,
    )
    anchors = _Anchors(instance, audited)
    cursor: str | None = None  # the last run read that is still there (a deleted one cannot be a cursor)
    while True:
        records = instance.get_run_records(filters, limit=page_size, cursor=cursor, ascending=True)
        page = [facts(r) for r in records]
        page_anchors = anchors.for_jobs({run.job_name for run in page})
        alone = {run.run_id: kept_because(run, policy, now, page_anchors) for run in page}
        # a run due by itself goes only with every other attempt of its micro-batch
        attempts = _attempts(instance, policy, [run for run in page if alone[run.run_id] is None])
        for run in page:
            report.examined += 1
            reason = alone[run.run_id]
            if reason is None:
                batch = policy.batch_of(run)
                reason = verdict(run, policy, now, page_anchors, attempts.get(batch, ()) if batch else ())
            if reason is not None:
                report.kept[reason] += 1
                cursor = run.run_id
            elif dry_run:
                report.deleted += 1
                cursor = run.run_id
            else:
                report.files_removed += delete_run_completely(instance, run.run_id)
                report.deleted += 1
        if page:
            log(f"{report.summary()} so far")
        if len(records) < page_size:
            return report
