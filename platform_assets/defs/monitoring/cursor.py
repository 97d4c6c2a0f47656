"""The audit sensor's cursor: how far through Dagster's run records (ordered by update time) it is.

Runs are read in update-time order, so the cursor could be the last update time read, exclusively. But
runs may share an update time, and a batch cut off by its size limit, or a run whose final update lands
on the time already read, would then be skipped for good. Reading inclusively instead re-reads the last
run on every tick, forever. So the cursor holds both: ``updated_at``, the update time of the latest run
audited, and ``audited``, the runs already audited at or after it, each with the update time it was
audited at. Runs are read from ``updated_at`` inclusive, and one is reconciled again only when its
update time differs from the one it was audited at, that is, when it changed.

``audited`` records a time per run rather than only run ids because the sensor's own tag writes (the
audit job id, alert delivery) move a run's update time on; the run is still unchanged as far as the
audit is concerned, and ``updated_at`` does not move for it, so a run whose next update is stamped
earlier than the tag write is still read. Entries older than ``updated_at`` are dropped, so the cursor
stays about one batch long.

Serialized as JSON: ``{"updated_at": "<ISO time>", "audited": {"<run id>": "<ISO time>"}}``. The former
cursor, epoch seconds as a float, is still read (its last runs are reconciled once more, idempotently).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from dagster._core.storage.dagster_run import RunRecord

# Dagster's run storage keeps update times to the microsecond; one less makes its filter inclusive.
_RESOLUTION = timedelta(microseconds=1)


@dataclass(frozen=True)
class AuditCursor:
    updated_at: datetime | None = None
    audited: Mapping[str, datetime] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str | None) -> AuditCursor:
        if not text:
            return cls()
        if not text.lstrip().startswith("{"):  # the former cursor: epoch seconds
            return cls(datetime.fromtimestamp(float(text), UTC))
        data = json.loads(text)
        return cls(
            datetime.fromisoformat(data["updated_at"]),
            {run_id: datetime.fromisoformat(at) for run_id, at in data.get("audited", {}).items()},
        )

    def serialize(self) -> str:
        if self.updated_at is None:
            raise ValueError("an empty cursor is not saved")
        audited = {run_id: at.isoformat() for run_id, at in sorted(self.audited.items())}
        return json.dumps({"updated_at": self.updated_at.isoformat(), "audited": audited})

    @property
    def updated_after(self) -> datetime | None:
        """The bound for Dagster's ``RunsFilter(updated_after=...)`` (a strict >), so runs at
        ``updated_at`` itself are read too."""
        return None if self.updated_at is None else self.updated_at - _RESOLUTION

    def is_audited(self, record: RunRecord) -> bool:
        """True when the run was audited at its current update time: it has not changed since."""
        return self.audited.get(record.dagster_run.run_id) == record.update_timestamp

    def advanced(self, audited_now: Sequence[RunRecord], versions: Mapping[str, datetime]) -> AuditCursor:
        """The cursor once ``audited_now`` (records in update-time order) is audited; ``versions`` maps
        each run audited so far to the update time it is accounted for at."""
        updated_at = self.updated_at
        if audited_now and (updated_at is None or audited_now[-1].update_timestamp > updated_at):
            updated_at = audited_now[-1].update_timestamp
        merged = {**self.audited, **versions}
        if updated_at is None:
            return AuditCursor(None, merged)
        return AuditCursor(updated_at, {run_id: at for run_id, at in merged.items() if at >= updated_at})
