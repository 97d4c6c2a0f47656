"""Which finished runs of the orchestrator's run history are due for deletion: plain facts in, a verdict out.

The trade stream starts one run per micro-batch, up to tens of thousands a day; each keeps a run record,
its tags and its event log for ever unless something deletes them. A run is due only when every rule
below lets it go; the first rule that keeps it is its reason (reported as a count per reason):

* ``unfinished``: it has not ended (queued, starting, running, canceling). Never touched.
* ``out of scope``: the policy covers the stream's runs (its job, carrying the streaming source tag)
  unless its scope is ``all``.
* ``recent``: it ended, or last changed (a tag written later), less than ``days`` days ago. 0 days
  keeps every run.
* ``not audited yet``: the audit trail has not read it in its final state (it changed at or after the
  audit's position). The audit tables are the long-term record: a run leaves the orchestrator's history
  only once they hold it.
* ``alert pending``: one of its alerts still waits for the webhook; the alert is sent from the run.
* ``newest of its job``: the micro-batch sensor reads the newest run of its job (is one in flight,
  will the last failure be retried).
* ``latest asset event``: it holds an asset's latest materialization or observation (what the UI and
  the sensors show as the asset's current state; the sensor reads the latest feed window).
* ``attempt of a kept micro-batch``: the runs of one micro-batch (its attempts) go together. The sensor
  numbers a batch's run keys by how many runs the batch has, and the orchestrator never starts a run key
  twice: deleting older attempts alone would make it ask again for a key already used, and the batch
  would never start.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

FINISHED = frozenset({"SUCCESS", "FAILURE", "CANCELED"})
SCOPES = ("stream", "all")

UNFINISHED = "unfinished"
OUT_OF_SCOPE = "out of scope"
RECENT = "recent"
NOT_AUDITED = "not audited yet"
ALERT_PENDING = "alert pending"
NEWEST_OF_JOB = "newest of its job"
LATEST_ASSET_EVENT = "latest asset event"
KEPT_BATCH = "attempt of a kept micro-batch"


@dataclass(frozen=True)
class RunFacts:
    """What the verdict needs of one run. Times are timezone-aware (UTC)."""

    run_id: str
    job_name: str
    status: str  # the run status's name: SUCCESS, FAILURE, CANCELED, STARTED...
    ended_at: datetime | None  # None when no end was recorded (the update time stands in)
    updated_at: datetime
    tags: Mapping[str, str] = field(default_factory=dict)

    @property
    def last_change(self) -> datetime:
        """When the run last changed: its end, or a later update (tags written after it ended)."""
        return self.updated_at if self.ended_at is None else max(self.ended_at, self.updated_at)


@dataclass(frozen=True)
class RetentionPolicy:
    """``days``: finished runs are kept that long after their last change (0: for ever). ``scope``:
    ``stream`` covers the runs of ``stream_job`` that carry ``stream_tag``; ``all`` every job's runs.
    ``batch_tag`` names a run's micro-batch, ``pending_alert_tag`` (value ``"true"``) an undelivered alert."""

    days: int
    scope: str
    stream_job: str
    stream_tag: str
    batch_tag: str
    pending_alert_tag: str

    def __post_init__(self) -> None:
        if isinstance(self.days, bool) or not isinstance(self.days, int) or self.days < 0:
            raise ValueError(f"run retention must be a whole number of days, 0 or more, got {self.days!r}")
        if self.scope not in SCOPES:
            raise ValueError(f"run retention scope must be one of {', '.join(SCOPES)}, got {self.scope!r}")

    @property
    def keeps_everything(self) -> bool:
        return self.days == 0

    def cutoff(self, now: datetime) -> datetime | None:
        """Runs that last changed before this are old enough; None when runs are kept for ever."""
        return None if self.keeps_everything else now - timedelta(days=self.days)

    def in_scope(self, job_name: str, tags: Mapping[str, str]) -> bool:
        return self.scope == "all" or (job_name == self.stream_job and self.stream_tag in tags)

    def batch_of(self, run: RunFacts) -> tuple[str, str | None, str] | None:
        """The micro-batch ``run`` is an attempt of (its job, stream and batch id), or None."""
        batch = run.tags.get(self.batch_tag)
        return None if batch is None else (run.job_name, run.tags.get(self.stream_tag), batch)


@dataclass(frozen=True)
class Anchors:
    """What the history holds on to whatever its age, read from the orchestrator as a prune starts.

    ``audited_until``: the update time the audit trail has read the run records up to (None: it has read
    nothing). ``newest_by_job``: each job's newest run id (a job missing here has no anchor).
    ``latest_asset_event_runs``: the runs holding an asset's latest materialization or observation.
    """

    audited_until: datetime | None
    newest_by_job: Mapping[str, str] = field(default_factory=dict)
    latest_asset_event_runs: Collection[str] = frozenset()


def deletable_before(
    policy: RetentionPolicy, now: datetime, audited_until: datetime | None
) -> datetime | None:
    """The bound on a run's update time for a deletion (exclusive), or None when no run can be due: the
    retention cutoff, or the audit's position when that is earlier."""
    cutoff = policy.cutoff(now)
    if cutoff is None or audited_until is None:
        return None
    return min(cutoff, audited_until)


def kept_because(run: RunFacts, policy: RetentionPolicy, now: datetime, anchors: Anchors) -> str | None:
    """Why ``run`` stays, by itself (see the module's rules), or None when it may be deleted."""
    if run.status not in FINISHED:
        return UNFINISHED
    if not policy.in_scope(run.job_name, run.tags):
        return OUT_OF_SCOPE
    cutoff = policy.cutoff(now)
    if cutoff is None or run.last_change >= cutoff:
        return RECENT
    if anchors.audited_until is None or run.updated_at >= anchors.audited_until:
        return NOT_AUDITED
    if run.tags.get(policy.pending_alert_tag) == "true":
        return ALERT_PENDING
    if anchors.newest_by_job.get(run.job_name) == run.run_id:
        return NEWEST_OF_JOB
    if run.run_id in anchors.latest_asset_event_runs:
        return LATEST_ASSET_EVENT
    return None


def verdict(
    run: RunFacts,
    policy: RetentionPolicy,
    now: datetime,
    anchors: Anchors,
    attempts: Sequence[RunFacts] = (),
) -> str | None:
    """Why ``run`` stays, or None when it is due. ``attempts``: every run of its micro-batch (itself
    included or not), when it carries one: it goes only if all of them may go."""
    reason = kept_because(run, policy, now, anchors)
    if reason is not None:
        return reason
    for other in attempts:
        if other.run_id != run.run_id and kept_because(other, policy, now, anchors) is not None:
            return KEPT_BATCH
    return None
