"""Trades joined with the symbol lookup, one row per (symbol, trade_id), merged into a Delta table.

``price`` and ``quantity`` arrive as exchange decimal strings and leave as Float64: the serving
databases, Delta and polars all hold an IEEE double exactly as written (a value read back compares
equal on SQLite, PostgreSQL and MariaDB alike), and exchange quotes carry at most 8 decimals, well
inside a double's 15 significant digits for the prices and sizes of traded pairs. A string that is
not a number is an error, never a silent null.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import polars as pl
from deltalake import DeltaTable
from deltalake.exceptions import DeltaError

from platform_assets.core.lake import delta
from platform_assets.core.trades.trade_rules import trade_problem_expr

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
    return _one_per_trade(matched).cast(SCHEMA), unmatched


def _one_per_trade(frame: pl.DataFrame) -> pl.DataFrame:
    """One row per (symbol, trade_id): the copy of the lowest micro-batch, ties broken on the rest."""
    return (
        frame.sort([*KEYS, "micro_batch_id", "price", "quantity", "trade_time"], nulls_last=True)
        .unique(list(KEYS), keep="first", maintain_order=True)
        .select(COLUMNS)
    )


def _match_predicate(source: pl.DataFrame) -> str:
    """Match on the key, within the batch's span of trade times.

    Every copy of a trade carries the trade's own time (the exchange's, repeated by a resend), so the
    bound loses no match, and it lets the merge skip every file of other times by its statistics: a
    batch reads the few files of its minutes, not the table's history.
    """
    on_key = "t.symbol = s.symbol AND t.trade_id = s.trade_id"
    if source.is_empty() or source["trade_time"].null_count():  # (the trade rules keep nulls out of silver)
        return on_key
    first, last = source["trade_time"].min(), source["trade_time"].max()
    if not isinstance(first, datetime) or not isinstance(last, datetime):  # a timestamp column: never
        raise TypeError(f"trade_time is {source['trade_time'].dtype}, not a timestamp")
    return f"{on_key} AND t.trade_time >= '{first.isoformat()}' AND t.trade_time <= '{last.isoformat()}'"


def merge_silver(table_uri: str, enriched: pl.DataFrame) -> MergeResult:
    """Upsert ``enriched`` into the Delta table at ``table_uri`` keyed on (symbol, trade_id).

    New keys are inserted; a key already present is replaced only by a copy from a lower
    ``micro_batch_id`` (a retried older micro-batch landing after a newer one), so the table agrees with
    :func:`enrich` whatever order batches land in. Merging rows already there commits nothing: the
    version stays put. The table is created (change data feed on) on first use. A copy is matched within
    the batch's span of trade times (:func:`_match_predicate`), so the merge reads the files of those
    times only, not the table's history.
    """
    missing = [c for c in COLUMNS if c not in enriched.columns]
    if missing:
        raise ValueError(f"enriched rows lack column(s) {', '.join(missing)}")
    source = delta.normalize_timestamps(enriched.select(COLUMNS).cast(SCHEMA))
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
            _match_predicate(source),
            source_alias="s",
            target_alias="t",
        )
        .when_matched_update_all(predicate="s.micro_batch_id < t.micro_batch_id")
        .when_not_matched_insert_all()
        .execute()
    )
    version = delta.version(table_uri)
    if version is None:  # the merge just committed to it
        raise RuntimeError(f"no Delta table at {table_uri} after merging into it")
    return MergeResult(version, metrics["num_target_rows_inserted"], metrics["num_target_rows_updated"])


# --- before enrichment: the rules, and what the lookup knows ---------------------------------------


def rule_problems(trades: pl.DataFrame, *, received: str = "ingested_at") -> pl.DataFrame:
    """``trades`` with a ``reason`` column: why a row breaks the trade rules, null for a valid one.

    The reference for the trade time is the column ``received`` (when the row was landed); without it,
    only the lower bound applies.
    """
    frame = trades
    if received not in frame.columns:
        frame = frame.with_columns(pl.lit(None, dtype=delta.TIMESTAMP).alias(received))
    return frame.with_columns(trade_problem_expr(trade_time="trade_time", received=received)).select(
        [*trades.columns, "reason"]
    )


@dataclass(frozen=True)
class LookupSplit:
    """Trades split by what the lookup says of their symbol."""

    known: pl.DataFrame  # a TRADING symbol of the lookup: enrich
    not_tradable: pl.DataFrame  # listed, but not TRADING: filter and count
    unknown: pl.DataFrame  # not listed at all (or the lookup cannot tell): hold


def split_by_lookup(
    trades: pl.DataFrame, lookup: pl.DataFrame, not_trading: pl.DataFrame | None
) -> LookupSplit:
    """Split ``trades`` (input order kept) by their symbol: TRADING in ``lookup``; listed as not TRADING
    (in ``not_trading``, or in ``lookup`` with another status); or unknown. ``not_trading`` None: the
    lookup was written without that list, so every symbol missing from it is unknown."""
    symbols = lookup.select(
        pl.col("symbol").cast(pl.String), *(["status"] if "status" in lookup.columns else [])
    )
    tradable = symbols.filter(pl.col("status") == "TRADING") if "status" in symbols.columns else symbols
    listed = (
        [symbols.filter(pl.col("status") != "TRADING").select("symbol")]
        if "status" in symbols.columns
        else []
    )
    if not_trading is not None:
        listed.append(not_trading.select(pl.col("symbol").cast(pl.String)))
    halted = pl.concat(listed).unique() if listed else pl.DataFrame(schema={"symbol": pl.String})
    trades = trades.with_columns(pl.col("symbol").cast(pl.String))
    is_known = pl.col("symbol").is_in(tradable["symbol"].unique().implode())
    is_halted = ~is_known & pl.col("symbol").is_in(halted["symbol"].implode())
    return LookupSplit(
        trades.filter(is_known),
        trades.filter(is_halted.fill_null(False)),
        trades.filter(~is_known.fill_null(False) & ~is_halted.fill_null(False)),
    )


# polars' panics derive from BaseException
_ROW_ERRORS = (Exception, pl.exceptions.PanicException)


def enrich_safely(trades: pl.DataFrame, lookup: pl.DataFrame) -> tuple[pl.DataFrame, pl.DataFrame]:
    """``(enriched, failed)``: :func:`enrich` of ``trades``; when it fails, the rows that make it fail are
    found by halving and returned in ``failed`` with a ``reason`` (the error), the others enriched.

    A row the trade rules let through but enrichment cannot take (a bug, a case the rules missed) must
    not stop the stream: it goes to silver's quarantine instead. Costs one extra call per halving, only
    when something fails.
    """
    try:
        return enrich(trades, lookup)[0], trades.clear().with_columns(reason=pl.lit(None, dtype=pl.String))
    except _ROW_ERRORS as exc:  # any failure of one row must stay with that row
        try:
            enrich(trades.clear(), lookup)
        except _ROW_ERRORS:
            raise exc from None  # not a row's fault (the lookup, the columns): fail the run
        if trades.height <= 1:
            return enrich(trades.clear(), lookup)[0], trades.with_columns(
                reason=pl.lit(f"enrichment failed: {type(exc).__name__}: {exc}"[:500])
            )
    half = trades.height // 2
    first, first_failed = enrich_safely(trades.slice(0, half), lookup)
    second, second_failed = enrich_safely(trades.slice(half), lookup)
    # the halves may share a resent trade: keep one copy per key, as enrich() does
    return _one_per_trade(pl.concat([first, second])), pl.concat([first_failed, second_failed])
