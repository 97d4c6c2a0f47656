"""Trades joined with the symbol lookup, one row per (symbol, trade_id), merged into a Delta table.

``price`` and ``quantity`` arrive as exchange decimal strings and leave as Float64: the serving
databases, Delta and polars all hold an IEEE double exactly as written (a value read back compares
equal on SQLite, PostgreSQL and MariaDB alike), and exchange quotes carry at most 8 decimals, well
inside a double's 15 significant digits for the prices and sizes of traded pairs. A string that is
not a number is an error, never a silent null.
"""

from __future__ import annotations

from dataclasses import dataclass

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from platform_assets.core import delta

KEYS = ("symbol", "trade_id")
TRADE_COLUMNS = ("symbol", "trade_id", "price", "quantity", "trade_time", "micro_batch_id")

# The columns of silver/trades_enriched (and of Enriched_Trades), in order.
SCHEMA = pl.Schema(
    {
        "symbol": pl.String,
        "trade_id": pl.Int64,
        "base_asset": pl.String,
        "quote_asset": pl.String,
        "price": pl.Float64,
        "quantity": pl.Float64,
        "trade_time": delta.TIMESTAMP,
        "micro_batch_id": pl.Int64,
    }
)
COLUMNS = tuple(SCHEMA.names())


@dataclass(frozen=True)
class MergeResult:
    """What :func:`merge_silver` did: the table version after it, and the rows it inserted or replaced."""

    version: int
    inserted: int
    updated: int

    @property
    def changed(self) -> bool:
        return bool(self.inserted or self.updated)


def _number(frame: pl.DataFrame, column: str) -> pl.Expr:
    parsed = pl.col(column).cast(pl.String).str.strip_chars().cast(pl.Float64, strict=False)
    bad = frame.filter(pl.col(column).is_not_null() & parsed.is_null())
    if bad.height:
        sample = bad.select("symbol", "trade_id", column).head(3).rows()
        raise ValueError(f"{bad.height} trade(s) have a {column} that is not a number, e.g. {sample}")
    return parsed.alias(column)


def enrich(trades: pl.DataFrame, lookup: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(enriched, unmatched)`` for a batch of trades.

    ``enriched`` holds the trades of TRADING symbols with their base and quote assets, columns
    :data:`COLUMNS`, one row per (symbol, trade_id) sorted by that key. A trade the feed resent (after a
    reconnect it may land in a later micro-batch) keeps its copy from the lowest ``micro_batch_id``; ties
    are broken on the remaining columns, so the result never depends on the input order.

    ``unmatched`` holds the input rows (all their columns, input order) whose symbol is not a TRADING
    symbol of the lookup (unknown, halted or null), so the caller can count and keep them.
    """
    missing = [c for c in TRADE_COLUMNS if c not in trades.columns]
    if missing:
        raise ValueError(f"trades lack column(s) {', '.join(missing)}; got {', '.join(trades.columns)}")
    symbols = lookup
    if "status" in symbols.columns:
        symbols = symbols.filter(pl.col("status") == "TRADING")
    symbols = symbols.select(
        pl.col("symbol").cast(pl.String), pl.col("base_asset"), pl.col("quote_asset")
    ).unique("symbol", keep="first", maintain_order=True)

    trades = trades.with_columns(pl.col("symbol").cast(pl.String))
    unmatched = trades.join(symbols.select("symbol"), on="symbol", how="anti", maintain_order="left")
    matched = trades.join(symbols, on="symbol", how="inner", maintain_order="left")
    matched = delta.normalize_timestamps(
        matched.select(
            pl.col("symbol"),
            pl.col("trade_id").cast(pl.Int64),
            pl.col("base_asset").cast(pl.String),
            pl.col("quote_asset").cast(pl.String),
            _number(matched, "price"),
            _number(matched, "quantity"),
            pl.col("trade_time"),
            pl.col("micro_batch_id").cast(pl.Int64),
        )
    )
    enriched = (
        matched.sort([*KEYS, "micro_batch_id", "price", "quantity", "trade_time"], nulls_last=True)
        .unique(list(KEYS), keep="first", maintain_order=True)
        .select(COLUMNS)
    )
    return enriched.cast(dict(SCHEMA)), unmatched


def merge_silver(table_uri: str, enriched: pl.DataFrame) -> MergeResult:
    """Upsert ``enriched`` into the Delta table at ``table_uri`` keyed on (symbol, trade_id).

    New keys are inserted; a key already present is replaced only by a copy from a lower
    ``micro_batch_id`` (a retried older micro-batch landing after a newer one), so the table agrees with
    :func:`enrich` whatever order batches land in. Merging rows already there commits nothing: the
    version stays put. The table is created (change data feed on) on first use.
    """
    missing = [c for c in COLUMNS if c not in enriched.columns]
    if missing:
        raise ValueError(f"enriched rows lack column(s) {', '.join(missing)}")
    source = delta.normalize_timestamps(enriched.select(COLUMNS).cast(dict(SCHEMA)))
    if source.select(pl.struct(KEYS).is_duplicated().any()).item():
        # delta-rs would insert both copies of a new key: the table must stay one row per trade.
        raise ValueError("enriched rows repeat a (symbol, trade_id); run enrich() on the batch first")
    if not delta.table_exists(table_uri):
        try:
            version = delta.create(table_uri, source)
            return MergeResult(version, source.height, 0)
        except DeltaError:
            if not delta.table_exists(table_uri):
                raise
            # another run created it first: merge into theirs
    metrics = (
        DeltaTable(str(table_uri))
        .merge(
            source.to_arrow(),
            "t.symbol = s.symbol AND t.trade_id = s.trade_id",
            source_alias="s",
            target_alias="t",
        )
        .when_matched_update_all(predicate="s.micro_batch_id < t.micro_batch_id")
        .when_not_matched_insert_all()
        .execute()
    )
    return MergeResult(
        delta.version(table_uri), metrics["num_target_rows_inserted"], metrics["num_target_rows_updated"]
    )
