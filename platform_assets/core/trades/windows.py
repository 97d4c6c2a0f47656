"""Feed windows and their counts, per epoch: what each ``Ingestion_Metrics`` row holds and when it is due.

A feed window ends with the topic's end offsets (and the topic incarnation they belong to). Its row is due
once silver has consumed every message before those offsets, or once the window's epoch is over (its
incarnation vanished: what did not land by then never will, and was counted as lost upstream when the
next epoch started). A window's total is the number of distinct enriched trades among the bronze rows of
its epoch before its end offsets; its delta is the difference to the previous window *of the same
epoch* (the first window of an epoch counts from zero), so a new epoch never shows as a negative or
inflated window.

No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import datetime

import polars as pl

from platform_assets.core import delta
from platform_assets.core.audit.values import as_utc
from platform_assets.core.state import StateStore
from platform_assets.core.trades.enrich import KEYS
from platform_assets.core.trades.landing import EPOCH_COLUMN, stream_position
from platform_assets.core.trades.position import StreamPosition
from platform_assets.core.trades.serving import ServingStore
from platform_assets.core.trades.stream import INGESTION_TABLE, checkpoint_name


@dataclass(frozen=True)
class FeedWindow:
    """One feed invocation: its wall-clock span, the topic's end offsets when it ended and the topic
    incarnation they belong to (None for a window recorded before incarnations were)."""

    start: datetime
    end: datetime
    end_offsets: Mapping[int, int]
    incarnation: str | None = None

    def complete(self, landed: Mapping[int, int]) -> bool:
        """True when every message before the end offsets is landed (``landed``: next offset per partition)."""
        return all(landed.get(p, 0) >= end for p, end in self.end_offsets.items())


def consumed_position(bronze_uri: str, state: StateStore, app_id: str) -> StreamPosition | None:
    """Where the stream stood after the last micro-batch silver consumed (None before silver's first run)."""
    entry = state.get(checkpoint_name(app_id))
    if entry is None or not delta.table_exists(bronze_uri):
        return None
    position = stream_position(bronze_uri, batch_id=int(entry.value["micro_batch_id"]))
    return position if position.found else None


def window_epoch(window: FeedWindow, consumed: StreamPosition | None) -> int | None:
    """The epoch whose rows ``window`` counts, once its row is due; None while it is not due yet."""
    if consumed is None:
        return None
    if window.incarnation is None or window.incarnation == consumed.incarnation:
        return consumed.epoch if window.complete(consumed.next_offsets) else None
    epoch = consumed.epoch_of(window.incarnation)
    if epoch is not None:
        # An epoch before the consumed one is over; the consumed one waits for its offsets.
        if epoch.number < consumed.epoch:
            return epoch.number
        return epoch.number if window.complete(consumed.next_offsets) else None
    current = consumed.epoch_of(consumed.incarnation)
    if current is not None and current.started_at and as_utc(current.started_at) > as_utc(window.end):
        # An incarnation that vanished before anything of it landed: the window counts nothing.
        return -1
    return None  # its incarnation may still start an epoch


def enriched_total(bronze_uri: str, silver_uri: str, end_offsets: Mapping[int, int], epoch: int) -> int:
    """Distinct enriched trades among the bronze rows of ``epoch`` before ``end_offsets``.

    The bronze keys (one column pair, pruned by statistics), semi-joined with the silver keys: silver
    holds one row per trade of a tradable symbol, whichever batch brought it.
    """
    if (
        epoch < 0
        or not end_offsets
        or not delta.table_exists(bronze_uri)
        or not delta.table_exists(silver_uri)
    ):
        return 0
    bronze = pl.scan_delta(bronze_uri)
    before = pl.any_horizontal(
        (pl.col("kafka_partition") == p) & (pl.col("kafka_offset") < end) for p, end in end_offsets.items()
    )
    if EPOCH_COLUMN in bronze.collect_schema().names():
        before = before & (pl.col(EPOCH_COLUMN).fill_null(0) == epoch)
    elif epoch != 0:
        return 0
    keys = bronze.filter(before).select(KEYS).unique()
    silver = pl.scan_delta(silver_uri).select(KEYS)
    return keys.join(silver, on=list(KEYS), how="semi").select(pl.len()).collect().item()


@dataclass(frozen=True)
class WindowCount:
    """A due window's count, before it is recorded: what its ``Ingestion_Metrics`` row will hold."""

    window: FeedWindow
    table: str
    epoch: int
    total_rows: int
    delta_rows: int
    threshold: int
    # The epoch's micro-batches (first, first of the next epoch or None), and where the window's messages
    # start: the previous window of the same epoch's end offsets (None: the epoch's first window).
    batches: tuple[int, int | None] = (0, None)
    start_offsets: Mapping[int, int] | None = None

    @property
    def low_volume(self) -> bool:
        return self.delta_rows < self.threshold


def count_windows(
    windows: Iterable[FeedWindow],
    consumed: StreamPosition | None,
    serving: ServingStore,
    *,
    bronze_uri: str,
    silver_uri: str,
    threshold: int,
    table: str = INGESTION_TABLE,
) -> list[WindowCount]:
    """The counts of the windows that are due and not recorded yet, oldest first.

    A window waits while its epoch is the consumed one and silver has not consumed its end offsets.
    Each delta is taken against the previous window of the same epoch, so record them in order.
    """
    recorded = {(m.window_start, m.window_end): m for m in serving.metrics(table)}
    ordered = sorted(windows, key=lambda w: (w.start, w.end))
    counts: list[WindowCount] = []
    # The latest window seen so far per epoch (recorded rows and counts of this call): total, end offsets.
    previous: dict[int, tuple[int, Mapping[int, int]]] = {}
    for window in ordered:
        epoch = window_epoch(window, consumed)
        key = (as_utc(window.start), as_utc(window.end))
        if key in recorded:
            if epoch is not None:
                previous[epoch] = (recorded[key].total_rows, window.end_offsets)
            continue
        if epoch is None:
            continue
        total = enriched_total(bronze_uri, silver_uri, window.end_offsets, epoch)
        before, starts = previous.get(epoch, (None, None))
        counts.append(
            WindowCount(
                window,
                table,
                epoch,
                total,
                total if before is None else total - before,
                threshold,
                epoch_batches(consumed, epoch),
                starts,
            )
        )
        previous[epoch] = (total, window.end_offsets)
    return counts


def epoch_batches(consumed: StreamPosition | None, epoch: int) -> tuple[int, int | None]:
    """The micro-batches of ``epoch``: its first batch id, and the next epoch's (None while it is open)."""
    epochs = {e.number: e for e in (consumed.epochs if consumed is not None else ())}
    first = epochs[epoch].first_batch if epoch in epochs else 0
    after = epochs[epoch + 1].first_batch if epoch + 1 in epochs else None
    return first, after
