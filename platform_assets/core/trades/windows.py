"""Feed windows and their counts, per epoch: what each ``Ingestion_Metrics`` row holds and when it is due.

A feed window ends with the topic's end offsets (and the topic incarnation they belong to). Its row is due
once silver has consumed every message before those offsets, or once the window's epoch is over (its
incarnation vanished: what did not land by then never will, and was counted as lost upstream when the
next epoch started). A window's delta is the number of distinct enriched trades its own messages brought
(a trade counts once, in the window that first brought it); its total adds the previous window's total
*of the same epoch* (the first window of an epoch counts from zero), so a new epoch never shows as a
negative or inflated window. Counting a window reads only the micro-batches from the previous window's
first one on (each row records the micro-batches its window's messages landed in), never older history.

No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, replace
from datetime import datetime

import polars as pl

from platform_assets.core.audit.values import as_utc
from platform_assets.core.lake import delta
from platform_assets.core.state import StateStore
from platform_assets.core.streaming import EPOCH_COLUMN, stream_position
from platform_assets.core.streaming.position import StreamPosition
from platform_assets.core.trades.enrich import KEYS
from platform_assets.core.trades.serving import MetricsRow, ServingStore
from platform_assets.core.trades.stream import INGESTION_TABLE, checkpoint_name
from platform_assets.core.volume import below_floor


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


@dataclass(frozen=True)
class NewTrades:
    """What a window brought: its distinct enriched trades not brought by an earlier window, and the
    micro-batches its messages landed in (None: no message of it is in bronze)."""

    count: int = 0
    micro_batches: tuple[int, int] | None = None


def new_trades(
    bronze_uri: str,
    silver_uri: str,
    epoch: int,
    end_offsets: Mapping[int, int],
    start_offsets: Mapping[int, int] | None = None,
    *,
    from_batch: int = 0,
    epoch_first_batch: int = 0,
    tradable: Collection[str] | None = None,
    own_start: Mapping[int, int] | None = None,
) -> NewTrades:
    """Distinct enriched trades among the bronze rows of ``epoch`` from ``start_offsets`` (the previous
    window's end; None: the epoch's start) to ``end_offsets``, less those an earlier window brought.

    Reads only bronze's micro-batches from ``from_batch`` on (the previous window's first batch, or the
    epoch's first), so the cost follows the window, not the table's history: file statistics on
    ``micro_batch_id`` prune every older file. A trade is new when none of its copies among those rows
    lies before the window's start and silver's copy of it (the one of its lowest micro-batch) is not
    from an earlier batch of the same epoch. So each trade counts once per epoch, in the window that first
    brought it. A trade silver holds from an earlier epoch (``epoch_first_batch``: this epoch's first
    batch) is looked up by its key; with ``tradable`` (the lookup's TRADING symbols) given, only keys of
    those symbols are, so the trades of symbols never enriched cost no lookup.

    The micro-batches reported are those of the rows from ``own_start`` (default ``start_offsets``) on:
    a count that spans the previous window too reports the window's own batches.
    """
    if (
        epoch < 0
        or not end_offsets
        or not (delta.table_exists(bronze_uri) and delta.table_exists(silver_uri))
    ):
        return NewTrades()
    rows = _window_rows(bronze_uri, epoch, end_offsets, start_offsets, own_start, from_batch)
    if rows is None or rows.filter("in_window").is_empty():
        return NewTrades()
    first_seen = rows.group_by(KEYS).agg(pl.col("in_window").all().alias("new")).filter("new")
    count = _enriched(first_seen, silver_uri, from_batch, epoch_first_batch, tradable)
    ours = rows.filter("own")
    if ours.is_empty():
        return NewTrades(count)
    batches = ours.select(
        pl.col("micro_batch_id").min().alias("a"), pl.col("micro_batch_id").max().alias("b")
    )
    return NewTrades(count, (int(batches["a"][0]), int(batches["b"][0])))


def _window_rows(
    bronze_uri: str,
    epoch: int,
    end_offsets: Mapping[int, int],
    start_offsets: Mapping[int, int] | None,
    own_start: Mapping[int, int] | None,
    from_batch: int,
) -> pl.DataFrame | None:
    """Bronze's rows of ``epoch`` before ``end_offsets`` in micro-batches from ``from_batch`` on: the trade
    keys, the micro-batch, and whether each row is from ``start_offsets`` on (``in_window``) and from
    ``own_start`` on (``own``). None for a table without epochs asked for an epoch other than 0."""
    bronze = pl.scan_delta(bronze_uri).filter(pl.col("micro_batch_id") >= from_batch)
    before_end = pl.any_horizontal(
        (pl.col("kafka_partition") == p) & (pl.col("kafka_offset") < end) for p, end in end_offsets.items()
    )
    if EPOCH_COLUMN in bronze.collect_schema().names():
        before_end = before_end & (pl.col(EPOCH_COLUMN).fill_null(0) == epoch)
    elif epoch != 0:
        return None

    def from_offsets(offsets: Mapping[int, int]) -> pl.Expr:
        return pl.any_horizontal(
            (pl.col("kafka_partition") == p) & (pl.col("kafka_offset") >= offsets.get(p, 0))
            for p in end_offsets
        )

    in_window = from_offsets(start_offsets or {})
    own = in_window if own_start is None else from_offsets(own_start)
    return (
        bronze.filter(before_end)
        .select(*KEYS, "micro_batch_id", in_window.alias("in_window"), own.alias("own"))
        .collect()
    )


def _enriched(
    first_seen: pl.DataFrame,
    silver_uri: str,
    from_batch: int,
    epoch_first_batch: int,
    tradable: Collection[str] | None,
) -> int:
    """How many of the trade keys ``first_seen`` silver holds from micro-batch ``from_batch`` on, or (after
    a new epoch's first batch, ``epoch_first_batch`` > 0) from an earlier epoch: a trade sent again after
    the topic started over counts again. ``tradable`` bounds the keys looked up in the earlier epochs."""
    silver = pl.scan_delta(silver_uri)
    recent = silver.filter(pl.col("micro_batch_id") >= from_batch).select(KEYS).collect()
    count = first_seen.join(recent, on=list(KEYS), how="semi").height
    if epoch_first_batch <= 0:
        return count
    unmatched = first_seen.join(recent, on=list(KEYS), how="anti")
    if tradable is not None:
        unmatched = unmatched.filter(
            pl.col("symbol").is_in(pl.Series(list(tradable), dtype=pl.String).implode())
        )
    if unmatched.is_empty():
        return count
    earlier = (
        silver.filter(
            pl.col("micro_batch_id") < epoch_first_batch,
            pl.col("trade_id").is_in(unmatched["trade_id"].implode()),
        )
        .select(KEYS)
        .collect()
    )
    return count + unmatched.join(earlier, on=list(KEYS), how="semi").height


@dataclass(frozen=True)
class WindowCount:
    """A due window's count, before it is recorded: what its ``Ingestion_Metrics`` row will hold."""

    window: FeedWindow
    table: str
    epoch: int
    total_rows: int
    delta_rows: int
    threshold: int
    # The micro-batches that may hold the window's messages (from the previous window's first batch or
    # the epoch's first, to the next epoch's first or None), and where the window's messages start: the
    # previous window of the same epoch's end offsets (None: the epoch's first window).
    batches: tuple[int, int | None] = (0, None)
    start_offsets: Mapping[int, int] | None = None
    # The micro-batches the window's own messages landed in (None: none of them landed).
    micro_batches: tuple[int, int] | None = None

    @property
    def low_volume(self) -> bool:
        """Fewer new trades than the threshold: the volume judge's fixed floor (core.volume)."""
        return below_floor(self.delta_rows, self.threshold)


def count_windows(
    windows: Iterable[FeedWindow],
    consumed: StreamPosition | None,
    serving: ServingStore,
    *,
    bronze_uri: str,
    silver_uri: str,
    threshold: int,
    table: str = INGESTION_TABLE,
    tradable: Collection[str] | None = None,
) -> list[WindowCount]:
    """The counts of the windows that are due and not recorded yet, oldest first.

    A window waits while its epoch is the consumed one and silver has not consumed its end offsets.
    ``tradable``: the lookup's TRADING symbols, which bound the lookups of :func:`new_trades`.
    Each delta is taken against the previous window of the same epoch, so record them in order.
    """
    ordered = sorted(windows, key=lambda w: (w.start, w.end))
    if not ordered:
        return []
    recorded = {(m.window_start, m.window_end): m for m in serving.metrics(table, since=ordered[0].end)}
    counts: list[WindowCount] = []
    previous: dict[int, _Seen] = {}  # the latest window seen so far per epoch (recorded or counted here)
    for window in ordered:
        epoch = window_epoch(window, consumed)
        key = (as_utc(window.start), as_utc(window.end))
        if epoch is None:
            continue
        before = previous.get(epoch)
        first_of_epoch = epoch_batches(consumed, epoch)[0]
        if key in recorded:
            previous[epoch] = _recorded(before, window, recorded[key], first_of_epoch)
            continue
        seen = _Seen.after(before, window, 0, 0, None)
        if before is None:
            seen = replace(seen, from_batch=first_of_epoch)
        if before is not None and before.start_known:
            # Count the previous window again with this one: its trades released from the held table
            # since its row was written count here, where they were enriched.
            start, from_batch, already = before.start, before.from_batch, before.delta
        else:
            start, from_batch, already = seen.start, seen.from_batch, 0
        new = new_trades(
            bronze_uri,
            silver_uri,
            epoch,
            window.end_offsets,
            start,
            from_batch=from_batch,
            epoch_first_batch=first_of_epoch,
            tradable=tradable,
            own_start=seen.start,
        )
        delta_rows = new.count - already
        total = (before.total if before is not None else 0) + delta_rows
        after_epoch = epoch_batches(consumed, epoch)[1]
        counts.append(
            WindowCount(
                window,
                table,
                epoch,
                total,
                delta_rows,
                threshold,
                (seen.from_batch, after_epoch),
                seen.start,
                new.micro_batches,
            )
        )
        first = new.micro_batches[0] if new.micro_batches else None
        previous[epoch] = replace(seen, total=total, delta=delta_rows, first_batch=first)
    return counts


def _recorded(before: _Seen | None, window: FeedWindow, row: MetricsRow, first_of_epoch: int) -> _Seen:
    """A window already recorded (``row``), as the next window's count needs it."""
    seen = _Seen.after(before, window, row.total_rows, row.delta_rows, row.first_micro_batch)
    if before is None:
        # Its predecessors are out of sight. Its start is the epoch's when nothing was counted before it
        # (its total is its delta); otherwise the next window counts its own only.
        seen = replace(seen, start_known=row.total_rows == row.delta_rows, from_batch=first_of_epoch)
    return seen


@dataclass(frozen=True)
class _Seen:
    """A window as the next one's count needs it: its totals, where its messages start and end, the
    micro-batch reading its messages starts at, and the first micro-batch its own messages landed in."""

    total: int
    delta: int
    start: Mapping[int, int] | None  # None: the epoch's start
    end: Mapping[int, int]
    from_batch: int
    first_batch: int | None
    start_known: bool = True  # False: a recorded window whose predecessor is out of sight

    @classmethod
    def after(
        cls, before: _Seen | None, window: FeedWindow, total: int, delta: int, first: int | None
    ) -> _Seen:
        """``window``, following ``before`` (None: the first window seen of its epoch)."""
        if before is None:
            return cls(total, delta, None, window.end_offsets, first or 0, first)
        reading = before.first_batch if before.first_batch is not None else before.from_batch
        return cls(total, delta, before.end, window.end_offsets, reading, first)


def epoch_batches(consumed: StreamPosition | None, epoch: int) -> tuple[int, int | None]:
    """The micro-batches of ``epoch``: its first batch id, and the next epoch's (None while it is open)."""
    epochs = {e.number: e for e in (consumed.epochs if consumed is not None else ())}
    first = epochs[epoch].first_batch if epoch in epochs else 0
    after = epochs[epoch + 1].first_batch if epoch + 1 in epochs else None
    return first, after
