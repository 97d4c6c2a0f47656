"""When the micro-batch sensor starts a batch: at once when a full batch is pending, otherwise once the oldest
pending message has waited the allowed latency (as kafka-delta-ingest's ``allowed_latency`` and
``max_messages_per_batch``). A quiet stream then gets one run per latency period instead of one per
trade, and a busy one gets full batches instead of one run per tick.

The age of the oldest pending message is not read from the topic (that would mean fetching a message per
partition on every tick): the sensor keeps in its cursor when it first saw messages beyond what is landed
or already requested, so a message's wait is measured from that tick, at most one tick after it was
produced. The cursor entries are plain JSON:

- ``pending_since``: ``{"incarnation", "epoch", "at"}``, when the sensor first saw the messages now
  pending; dropped when nothing is pending, replaced when a batch is requested;
- ``requested``: ``{"incarnation", "epoch", "batch_id", "ends"}``, the last batch requested and where it
  ends per partition: while its run is in flight, offsets past those ends are new messages (their clock
  starts then), and a plan for the same batch id means it did not land (its retry starts at once).
- ``seen_by_incarnation``: ``{incarnation: {partition: end offset}}``, the topic's end offsets last seen in
  the current incarnation and the one before: what a new epoch counts as lost upstream, the same on every
  attempt of its first batch.

No Dagster import here: the sensor calls it.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from platform_assets.core.streaming.planning import BatchPlan

PENDING_SINCE = "pending_since"
REQUESTED = "requested"
SEEN = "seen_by_incarnation"


@dataclass(frozen=True)
class BatchTrigger:
    """Start a micro-batch when ``max_rows`` messages are pending, or when the oldest pending one has
    waited ``allowed_latency`` seconds (0: at once)."""

    allowed_latency: float
    max_rows: int

    def waiting(self, pending: int, since: float, now: float) -> str | None:
        """Why no batch starts yet, or None when one is due."""
        if self.allowed_latency <= 0 or pending >= self.max_rows or now - since >= self.allowed_latency:
            return None
        return (
            f"{pending} message{'' if pending == 1 else 's'} pending, waiting up to {self.allowed_latency:g} s "
            f"or {self.max_rows} rows (first seen {int(max(0.0, now - since))} s ago)"
        )


def pending_messages(plan: BatchPlan) -> int:
    """Messages beyond the landed position, summed over partitions (the plan's ranges may hold fewer:
    they are capped at the batch size)."""
    return sum(plan.high_watermarks.get(p, r.end) - r.start for p, r in plan.ranges.items())


def _same_stream(entry: Mapping[str, Any], plan: BatchPlan) -> bool:
    return entry.get("incarnation") == plan.incarnation and entry.get("epoch") == plan.epoch


def pending_since(cursor: Mapping[str, Any], plan: BatchPlan, now: float) -> float:
    """When the sensor first saw the plan's pending messages: the cursor's time for the same incarnation
    and epoch, else now."""
    entry = cursor.get(PENDING_SINCE) or {}
    return float(entry["at"]) if entry and _same_stream(entry, plan) else now


def pending_entry(plan: BatchPlan, since: float) -> dict[str, Any]:
    return {"incarnation": plan.incarnation, "epoch": plan.epoch, "at": since}


def waiting(cursor: dict[str, Any], plan: BatchPlan, now: float, trigger: BatchTrigger) -> str | None:
    """Why the plan's batch does not start yet, or None when it is due. A new epoch's first batch and the
    retry of a batch that did not land start at once. While it waits, ``cursor`` keeps when its pending
    messages were first seen (their clock)."""
    since = pending_since(cursor, plan, now)
    if plan.new_epoch or is_retry(cursor, plan):
        return None
    reason = trigger.waiting(pending_messages(plan), since, now)
    if reason:
        cursor[PENDING_SINCE] = pending_entry(plan, since)
    return reason


def last_seen(cursor: Mapping[str, Any], incarnation: str | None) -> dict[int, int]:
    """The end offsets last seen of ``incarnation``, per partition; empty when never seen."""
    seen = (cursor.get(SEEN) or {}).get(str(incarnation)) or {}
    return {int(p): int(o) for p, o in seen.items()}


def with_seen(cursor: Mapping[str, Any], plan: BatchPlan) -> dict[str, Any]:
    """The cursor with the plan's end offsets as the last seen of its incarnation, keeping only its
    incarnation and the one before."""
    kept = {str(plan.incarnation), str(plan.previous_incarnation or plan.incarnation)}
    seen = {k: v for k, v in (cursor.get(SEEN) or {}).items() if k in kept}
    seen[str(plan.incarnation)] = {str(p): o for p, o in plan.high_watermarks.items()}
    return {**cursor, SEEN: seen}


def is_retry(cursor: Mapping[str, Any], plan: BatchPlan) -> bool:
    """True when the plan is the batch last requested: its run did not land it, and its messages have
    waited already."""
    entry = cursor.get(REQUESTED) or {}
    return bool(entry) and entry.get("batch_id") == plan.batch_id and _same_stream(entry, plan)


def after_request(cursor: Mapping[str, Any], plan: BatchPlan, now: float) -> dict[str, Any]:
    """The cursor once ``plan``'s batch is requested: where the batch ends per partition (the range's end,
    or the watermark where nothing was pending), and a new clock for what the cap left beyond it."""
    ends = {p: plan.high_watermarks[p] for p in plan.high_watermarks}
    ends.update({p: r.end for p, r in plan.ranges.items()})
    requested = {
        "incarnation": plan.incarnation,
        "epoch": plan.epoch,
        "batch_id": plan.batch_id,
        "ends": {str(p): end for p, end in sorted(ends.items())},
    }
    left = pending_messages(plan) - sum(len(r) for r in plan.ranges.values())
    updated = {k: v for k, v in cursor.items() if k != PENDING_SINCE}
    if left > 0:
        updated[PENDING_SINCE] = pending_entry(plan, now)
    return {**updated, REQUESTED: requested}


def beyond_requested(cursor: Mapping[str, Any], ends: Mapping[int, int]) -> bool:
    """True when the topic's end offsets (``ends``) are past the last requested batch: new messages."""
    requested = (cursor.get(REQUESTED) or {}).get("ends")
    if requested is None:
        return False
    return any(end > int(requested.get(str(p), 0)) for p, end in ends.items())


def seen_while_busy(cursor: Mapping[str, Any], now: float) -> dict[str, Any]:
    """The cursor once new messages were seen while a run was in flight: their clock starts now, in the
    requested batch's incarnation and epoch."""
    requested = cursor.get(REQUESTED) or {}
    since = {"incarnation": requested.get("incarnation"), "epoch": requested.get("epoch"), "at": now}
    return {**cursor, PENDING_SINCE: since}
