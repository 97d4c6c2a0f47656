"""Reconciliation of a landing stream: every offset the landing commits account for is a bronze row or a
dead letter.

The identity, per micro-batch ``b`` of an epoch::

    offsets_in_range(b) = bronze_rows(b) + dead_lettered(b)

``offsets_in_range(b)`` comes from the landing commits only: the next offsets recorded by ``b``'s commit
less those recorded by the previous landing commit of the same epoch (for an epoch's or a partition's
first batch: less where the batch started, which its commit records). So a batch that skipped offsets (a
range planned past what was landed) shows as offsets nobody landed. ``bronze_rows(b)`` counts the table's rows of ``b``, ``dead_lettered(b)``
the dead-letter table's messages of ``b``: a row deleted, or a message landed twice, breaks the identity.

It assumes that every offset holds a message, which is true of the platform's producers (idempotent, no
transactions). A topic written with transactions has control records on offsets that deliver nothing:
they show as a positive difference.

Cost: the newest landing commits down to the batches asked for (the log, not the data), and the rows of
those batches, found through the files' statistics on ``micro_batch_id``; never the table's history.

No Dagster import here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

import polars as pl
from deltalake import DeltaTable

from platform_assets.core.errors import StateConflict
from platform_assets.core.lake import delta
from platform_assets.core.state import StateStore
from platform_assets.core.streaming.dead_letters import ROW_KEY
from platform_assets.core.streaming.planning import open_table, topic_end
from platform_assets.core.streaming.position import (
    BATCH_KEY,
    BATCH_START_KEY,
    HISTORY_DEPTH,
    StreamPosition,
    position_from_commit,
    read_position,
)


@dataclass(frozen=True)
class Landed:
    """A landing commit: the position after it, when it was committed (None when the log has no time) and
    where the batch's ranges started (empty for a commit written before that was recorded)."""

    batch_id: int
    position: StreamPosition
    committed_at: datetime | None
    batch_start: Mapping[int, int] = field(default_factory=dict)


def _landed(commit: Mapping[str, Any], position: StreamPosition) -> Landed:
    stamp = commit.get("timestamp")
    at = datetime.fromtimestamp(stamp / 1000, UTC) if isinstance(stamp, int | float) else None
    starts = {int(p): int(o) for p, o in json.loads(commit.get(BATCH_START_KEY) or "{}").items()}
    return Landed(int(commit.get(BATCH_KEY, -1)), position, at, starts)


def landing_commits(table: DeltaTable, first_batch: int) -> dict[int, Landed]:
    """The landing commits of micro-batches ``first_batch - 1`` (the one before, whose position the batch
    starts from) to the newest, by batch id, read from the newest commits of the log down to it."""
    oldest = max(first_batch - 1, 0)
    depth = HISTORY_DEPTH
    while True:
        history = table.history(limit=depth)
        found: dict[int, Landed] = {}
        for commit in history:
            position = position_from_commit(commit)
            if position is None:
                continue
            landed = _landed(commit, position)
            found.setdefault(landed.batch_id, landed)
        if len(history) < depth or (found and min(found) <= oldest):
            return found
        newest = max(found) if found else first_batch
        depth = max(depth * 2, 2 * (newest - first_batch) + HISTORY_DEPTH)


def batch_offsets(commits: Mapping[int, Landed], batch_id: int) -> int | None:
    """The offsets micro-batch ``batch_id`` accounts for, as the landing commits record them: its next
    offsets less the previous landing commit's of the same epoch, so offsets a batch skipped count too;
    where there is none (an epoch's or a partition's first batch), less where the batch started (the
    topic's first offset then; 0 for a commit that did not record it). None when the batch has no
    landing commit."""
    landed = commits.get(batch_id)
    if landed is None:
        return None
    after = landed.position
    before = commits.get(batch_id - 1)
    start: dict[int, int] = dict(landed.batch_start)
    if before is not None and before.position.epoch == after.epoch:
        start.update(before.position.next_offsets)
    return sum(max(0, end - start.get(p, 0)) for p, end in after.next_offsets.items())


def offsets_of_batches(table_uri: str, first_batch: int, last_batch: int) -> tuple[int, list[int]]:
    """The offsets micro-batches ``first_batch..last_batch`` of the landing table account for (each as
    :func:`batch_offsets`), and the batches among them that have no landing commit."""
    table = open_table(table_uri, None)
    commits = landing_commits(table, first_batch) if table is not None else {}
    offsets, unlanded = 0, []
    for batch in range(first_batch, last_batch + 1):
        counted = batch_offsets(commits, batch)
        if counted is None:
            unlanded.append(batch)
        else:
            offsets += counted
    return offsets, unlanded


@dataclass(frozen=True)
class StreamReconciliation:
    """Micro-batches ``first_batch..last_batch`` of a stream reconciled: offsets, rows, dead letters."""

    first_batch: int
    last_batch: int
    offsets_in_range: int
    bronze_rows: int
    dead_lettered: int
    unlanded_batches: tuple[int, ...] = ()  # batches asked for that have no landing commit

    @property
    def difference(self) -> int:
        """Offsets accounted for by neither a bronze row nor a dead letter (negative: messages counted
        twice)."""
        return self.offsets_in_range - self.bronze_rows - self.dead_lettered

    @property
    def ok(self) -> bool:
        return self.difference == 0 and not self.unlanded_batches

    def numbers(self) -> dict[str, int]:
        return {
            "first_batch": self.first_batch,
            "last_batch": self.last_batch,
            "offsets_in_range": self.offsets_in_range,
            "bronze_rows": self.bronze_rows,
            "dead_lettered": self.dead_lettered,
            "difference": self.difference,
        }


def rows_of_batches(table_uri: str | None, first_batch: int, last_batch: int, *, distinct: bool) -> int:
    """Rows of micro-batches ``first_batch..last_batch`` in the table (each message once when ``distinct``:
    side tables are keyed by position). Files outside the batches are pruned by their statistics."""
    if not table_uri or not delta.table_exists(table_uri):
        return 0
    rows = pl.scan_delta(table_uri).filter(pl.col("micro_batch_id").is_between(first_batch, last_batch))
    if distinct:
        rows = rows.select(ROW_KEY).unique()
    return int(rows.select(pl.len()).collect().item())


def reconcile_batches(
    table_uri: str, dead_letter_uri: str | None, first_batch: int, last_batch: int | None = None
) -> StreamReconciliation:
    """Reconcile micro-batches ``first_batch..last_batch`` (default: ``first_batch`` alone) of the landing
    table ``table_uri`` against its dead-letter table ``dead_letter_uri``."""
    last_batch = first_batch if last_batch is None else last_batch
    offsets, unlanded = offsets_of_batches(table_uri, first_batch, last_batch)
    return StreamReconciliation(
        first_batch,
        last_batch,
        offsets,
        rows_of_batches(table_uri, first_batch, last_batch, distinct=False),
        rows_of_batches(dead_letter_uri, first_batch, last_batch, distinct=True),
        tuple(unlanded),
    )


# --- what the stream's health view shows ---------------------------------------------------------


def last_landing(table_uri: str) -> Landed | None:
    """The newest landing commit of the table (None before the first): the last micro-batch and its time."""
    table = open_table(table_uri, None)
    if table is None:
        return None
    position = read_position(table)
    if not position.found:
        return None
    for commit in table.history(limit=HISTORY_DEPTH):
        if position_from_commit(commit) is not None:
            return _landed(commit, position)
    return None


def consumer_lag(conf: Mapping[str, Any], topic: str, table_uri: str) -> int:
    """Messages the topic holds beyond what the table landed: per partition the high watermark less the
    landed position of the current epoch, summed. Asks the broker for the watermarks."""
    _, ends = topic_end(conf, topic)
    landed = read_position(open_table(table_uri, None)).next_offsets
    return sum(max(0, end - landed.get(p, 0)) for p, end in ends.items())


def table_rows(table_uri: str) -> int:
    """The table's rows from its log's file statistics (0 when there is no table)."""
    snap = delta.snapshot(table_uri)
    return 0 if snap is None else snap.rows


def reconciliation_entry(stream: str, scope: str) -> str:
    """The state entry that keeps the last reconciliation of ``scope`` (``batch``: a landing's, with the
    consumer lag after it; ``window``: a feed window's) of the stream named ``stream`` in streams.yaml."""
    return f"{stream}.reconciliation.{scope}"


def remember(state: StateStore, stream: str, scope: str, values: Mapping[str, Any]) -> None:
    """Keep the last reconciliation of ``scope`` for the health view (the last writer wins)."""
    name = reconciliation_entry(stream, scope)
    payload = {**values, "at": datetime.now(UTC).isoformat()}
    for _ in range(3):
        try:
            state.compare_and_set(name, state.get(name), payload)
            return
        except StateConflict:
            continue


def recalled(state: StateStore, stream: str, scope: str) -> dict[str, Any] | None:
    """The last reconciliation of ``scope`` kept by :func:`remember`, or None."""
    entry = state.get(reconciliation_entry(stream, scope))
    return None if entry is None else dict(entry.value)


def as_dict(reconciliation: StreamReconciliation) -> dict[str, Any]:
    return {**asdict(reconciliation), "difference": reconciliation.difference, "ok": reconciliation.ok}
