"""The two side tables of enrichment: trades held for the lookup, and rows silver could not take.

- ``silver/trades_held``: landed trades whose symbol the lookup does not know (yet). Each enrichment run
  retries them first against the current lookup; a trade released (enriched, merged, served) or filtered
  (the lookup now lists its symbol as not tradable) leaves the table only after that, so a run killed at
  any point retries it. Small by nature: it holds only what is waiting.
- ``silver/trades_enriched_quarantine``: landed rows silver cannot enrich (a value the trade rules reject,
  or that makes enrichment fail for any other reason), with the reason. Nothing in it blocks a later batch.

Both are Delta tables merged idempotently on the row's position: (``kafka_partition``, ``kafka_offset``,
``micro_batch_id``). The batch id is part of the key because offsets start over when the topic does
(a new epoch), while batch ids never repeat.

The counts per window (:func:`dead_lettered_count`, :func:`held_count`) read the messages among a
window's offsets within its micro-batches, like :func:`.windows.new_trades`.

No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

import polars as pl
from deltalake import DeltaTable

from platform_assets.core.lake import delta
from platform_assets.core.streaming.dead_letters import ROW_KEY, insert_new

_ON = " AND ".join(f"t.{k} = s.{k}" for k in ROW_KEY)

# A trade as silver reads it from bronze: what enrichment needs, and where it came from.
TRADE_SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "trade_id": pl.Int64,
        "price": pl.String,
        "quantity": pl.String,
        "trade_time": delta.TIMESTAMP,
        "kafka_partition": pl.Int32,
        "kafka_offset": pl.Int64,
        "micro_batch_id": pl.Int64,
        "ingested_at": delta.TIMESTAMP,
    }
)
HELD_SCHEMA = pl.Schema({**TRADE_SCHEMA, "held_at": delta.TIMESTAMP})
QUARANTINE_SCHEMA = pl.Schema({**TRADE_SCHEMA, "reason": pl.String, "quarantined_at": delta.TIMESTAMP})


@dataclass(frozen=True)
class HeldSummary:
    """What the held table holds: how many trades, of which symbols, the oldest trade time."""

    rows: int = 0
    symbols: list[str] = field(default_factory=list)
    oldest: datetime | None = None


def _trades(rows: pl.DataFrame) -> pl.DataFrame:
    frame = rows.with_columns(
        pl.lit(None, dtype=dtype).alias(name)
        for name, dtype in TRADE_SCHEMA.items()
        if name not in rows.columns
    )
    return delta.normalize_timestamps(frame.select(TRADE_SCHEMA.names())).cast(TRADE_SCHEMA)


def read_held(held_uri: str) -> pl.DataFrame:
    """Every held trade (columns of :data:`HELD_SCHEMA`); empty when nothing was ever held."""
    if not delta.table_exists(held_uri):
        return pl.DataFrame(schema=HELD_SCHEMA)
    return pl.read_delta(held_uri).select(HELD_SCHEMA.names())


def hold(held_uri: str, rows: pl.DataFrame, now: datetime) -> int:
    """Add ``rows`` (bronze rows) to the held table, each once however often it is called; the number
    of rows given."""
    if rows.height == 0:
        return 0
    frame = _trades(rows).with_columns(held_at=pl.lit(now, dtype=delta.TIMESTAMP))
    insert_new(held_uri, frame.cast(HELD_SCHEMA))
    return rows.height


def release(held_uri: str, rows: pl.DataFrame) -> None:
    """Remove ``rows`` (matched on their position) from the held table. Call it only once they are
    enriched and served, or filtered: a kill before it makes the next run do the same again."""
    if rows.height == 0 or not delta.table_exists(held_uri):
        return
    keys = rows.select(ROW_KEY).unique().cast({k: HELD_SCHEMA[k] for k in ROW_KEY})
    DeltaTable(held_uri).merge(
        keys.to_arrow(), _ON, source_alias="s", target_alias="t"
    ).when_matched_delete().execute()


def quarantine(quarantine_uri: str, rows: pl.DataFrame, now: datetime) -> int:
    """Keep ``rows`` (bronze rows with a ``reason`` column) in silver's quarantine, each once; the number
    of rows given."""
    if rows.height == 0:
        return 0
    frame = _trades(rows).with_columns(
        reason=rows["reason"].cast(pl.String), quarantined_at=pl.lit(now, dtype=delta.TIMESTAMP)
    )
    insert_new(quarantine_uri, frame.cast(QUARANTINE_SCHEMA))
    return rows.height


def held_summary(held_uri: str) -> HeldSummary:
    held = read_held(held_uri)
    if held.height == 0:
        return HeldSummary()
    oldest = held["trade_time"].min()
    if oldest is not None and not isinstance(oldest, datetime):  # the column is a timestamp: never reached
        raise TypeError(f"held trades' trade_time is {held['trade_time'].dtype}, not a timestamp")
    return HeldSummary(held.height, held["symbol"].unique().sort().to_list(), oldest)


# --- counts per window ----------------------------------------------------------------------------


# The micro-batches of one epoch: first batch id, and the first of the next epoch (None: still open).
# Offsets start over with each epoch, so a window's offsets only mean something within its batches.
Batches = tuple[int, int | None]


def _among(
    end_offsets: Mapping[int, int], start_offsets: Mapping[int, int] | None, batches: Batches | None = None
) -> pl.Expr:
    """Rows whose (partition, offset) lies before ``end_offsets`` (and from ``start_offsets``, if given),
    landed by one of ``batches`` (when given)."""
    start_offsets = start_offsets or {}
    among = pl.any_horizontal(
        (pl.col("kafka_partition") == p)
        & (pl.col("kafka_offset") < end)
        & (pl.col("kafka_offset") >= start_offsets.get(p, 0))
        for p, end in end_offsets.items()
    )
    if batches is not None:
        first, after = batches
        among = among & (pl.col("micro_batch_id") >= first)
        if after is not None:
            among = among & (pl.col("micro_batch_id") < after)
    return among


def _count(
    table_uri: str | None, end_offsets: Mapping[int, int], start_offsets, batches: Batches | None = None
) -> int:
    if not table_uri or not end_offsets or not delta.table_exists(table_uri):
        return 0
    return (
        pl.scan_delta(table_uri)
        .filter(_among(end_offsets, start_offsets, batches))
        .select(ROW_KEY)
        .unique()
        .select(pl.len())
        .collect()
        .item()
    )


def dead_lettered_count(
    quarantine_uri: str,
    end_offsets: Mapping[int, int],
    start_offsets: Mapping[int, int] | None = None,
    *,
    silver_quarantine_uri: str | None = None,
    batches: Batches | None = None,
) -> int:
    """Messages among the offsets before ``end_offsets`` (from ``start_offsets``, when given: one window)
    that are dead-lettered: in landing's ``bronze/trades_quarantine``, plus, when given, in silver's
    quarantine."""
    return _count(quarantine_uri, end_offsets, start_offsets, batches) + _count(
        silver_quarantine_uri, end_offsets, start_offsets, batches
    )


def held_count(
    held_uri: str,
    end_offsets: Mapping[int, int],
    start_offsets: Mapping[int, int] | None = None,
    *,
    batches: Batches | None = None,
) -> int:
    """Messages among the offsets before ``end_offsets`` (from ``start_offsets``, when given) that are held
    now, waiting for a lookup that knows their symbol."""
    return _count(held_uri, end_offsets, start_offsets, batches)


def sibling(table_uri: str, name: str) -> str:
    """The table ``name`` in the same folder as ``table_uri`` (a path or a URL)."""
    head = str(table_uri).rstrip("/").rsplit("/", 1)[0]
    return f"{head}/{name}"
