"""Reconciliation of the trade stream, per feed window and per micro-batch run: exactly-once you can see.

For a set of messages (a feed window's offsets from the previous window's end offsets of the same epoch
to its own, or the micro-batches one enrichment run consumed), two identities hold:

1. **Landing**: ``offsets_in_range = bronze_rows + dead_lettered``: every offset is one bronze row or one
   dead letter of landing (``bronze/trades_quarantine``). A window's offsets are its end offsets less the
   previous window's; a run's come from the landing commits (:mod:`platform_assets.core.streaming.reconcile`).
2. **Enrichment**: ``tradable = served + held``, over distinct trades, where, among the bronze rows:

   - ``silver_quarantined``: rows in silver's quarantine (rules broken after landing): not trades;
   - ``resent_duplicates``: the other rows less the distinct (``symbol``, ``trade_id``) among them (a
     trade resent after a reconnect, in the same window or batch, counts once);
   - ``served``: distinct trades ``Enriched_Trades`` holds (whichever copy, of whichever window, served
     it: a trade resent in a later window is served, though it is new in no window's ``delta_rows``);
   - ``held``: distinct trades not served whose rows wait in ``silver/trades_held``;
   - ``filtered``: distinct trades neither served nor held whose symbol the lookup lists as not TRADING;
   - ``tradable``: the distinct trades less the filtered.

   So ``tradable - served - held`` counts the trades that went nowhere: lost. A symbol delisted after its
   trades were served does not break it (served wins), nor does one released from the held table since.

``difference`` is what both identities leave unaccounted for, ``|landing| + |enrichment|``; 0 when they
hold. Counting reads the window's (or run's) micro-batches only, as :mod:`.windows` does, and asks the
serving database for the window's keys by primary key.

No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Any

import polars as pl

from platform_assets.core.lake import delta
from platform_assets.core.streaming import EPOCH_COLUMN
from platform_assets.core.streaming.dead_letters import ROW_KEY
from platform_assets.core.streaming.planning import open_table
from platform_assets.core.streaming.reconcile import landing_commits, offsets_of_batches
from platform_assets.core.trades.enrich import KEYS, split_by_lookup
from platform_assets.core.trades.held import Batches, _among
from platform_assets.core.trades.serving import ServingStore


@dataclass(frozen=True)
class TradeTables:
    """Where the trade stream's tables are."""

    bronze: str
    dead_letters: str  # landing's: bronze/trades_quarantine
    silver_quarantine: str
    held: str


@dataclass(frozen=True)
class TradeReconciliation:
    """A window's (or a run's batches') counts, as the module's docstring defines them."""

    scope: str  # "window" or "micro-batches"
    offsets_in_range: int
    bronze_rows: int
    dead_lettered: int
    silver_quarantined: int
    resent_duplicates: int
    filtered: int
    tradable: int
    served: int
    held: int
    first_batch: int | None = None
    last_batch: int | None = None
    window_start: datetime | None = None
    window_end: datetime | None = None
    unlanded_batches: tuple[int, ...] = ()

    @property
    def landing_difference(self) -> int:
        return self.offsets_in_range - self.bronze_rows - self.dead_lettered

    @property
    def trades_difference(self) -> int:
        return self.tradable - self.served - self.held

    @property
    def difference(self) -> int:
        return abs(self.landing_difference) + abs(self.trades_difference) + len(self.unlanded_batches)

    @property
    def ok(self) -> bool:
        return self.difference == 0

    def numbers(self) -> dict[str, int]:
        """The check's numeric metadata."""
        return {
            "offsets_in_range": self.offsets_in_range,
            "bronze_rows": self.bronze_rows,
            "dead_lettered": self.dead_lettered,
            "silver_quarantined": self.silver_quarantined,
            "resent_duplicates": self.resent_duplicates,
            "filtered": self.filtered,
            "tradable": self.tradable,
            "served": self.served,
            "held": self.held,
            "landing_difference": self.landing_difference,
            "trades_difference": self.trades_difference,
            "difference": self.difference,
        }

    def as_dict(self) -> dict[str, Any]:
        values = asdict(self)
        for name in ("window_start", "window_end"):
            values[name] = None if values[name] is None else values[name].isoformat()
        return {**values, "difference": self.difference, "ok": self.ok}


def _positions(table_uri: str, among: pl.Expr) -> pl.DataFrame:
    if not delta.table_exists(table_uri):
        return pl.DataFrame(
            schema={"kafka_partition": pl.Int32, "kafka_offset": pl.Int64, "micro_batch_id": pl.Int64}
        )
    return pl.scan_delta(table_uri).filter(among).select(ROW_KEY).unique().collect()


def _classify(
    scope: str,
    rows: pl.DataFrame,
    among: pl.Expr,
    tables: TradeTables,
    serving: ServingStore,
    lookup: pl.DataFrame,
    not_trading: pl.DataFrame | None,
    offsets: int,
    **where: Any,
) -> TradeReconciliation:
    """The counts of ``rows`` (bronze rows: keys and positions) selected by ``among``."""
    dead = _positions(tables.dead_letters, among).height
    kept_aside = _positions(tables.silver_quarantine, among)
    rows = rows.with_columns(pl.col("kafka_partition").cast(pl.Int32), pl.col("kafka_offset").cast(pl.Int64))
    valid = rows.join(kept_aside, on=list(ROW_KEY), how="anti")
    distinct = valid.select(KEYS).unique()
    served = serving.served_keys(distinct) if distinct.height else distinct.clear()
    held_rows = valid.join(_positions(tables.held, among), on=list(ROW_KEY), how="semi")
    held = held_rows.select(KEYS).unique().join(served, on=list(KEYS), how="anti")
    rest = distinct.join(served, on=list(KEYS), how="anti").join(held, on=list(KEYS), how="anti")
    filtered = split_by_lookup(rest, lookup, not_trading).not_tradable.height if rest.height else 0
    return TradeReconciliation(
        scope,
        offsets_in_range=offsets,
        bronze_rows=rows.height,
        dead_lettered=dead,
        silver_quarantined=rows.height - valid.height,
        resent_duplicates=valid.height - distinct.height,
        filtered=filtered,
        tradable=distinct.height - filtered,
        served=served.height,
        held=held.height,
        **where,
    )


def reconcile_window(
    tables: TradeTables,
    serving: ServingStore,
    lookup: pl.DataFrame,
    not_trading: pl.DataFrame | None,
    *,
    epoch: int,
    end_offsets: Mapping[int, int],
    start_offsets: Mapping[int, int] | None,
    batches: Batches,
    window_start: datetime | None = None,
    window_end: datetime | None = None,
) -> TradeReconciliation:
    """Reconcile one feed window: the messages of ``epoch`` from ``start_offsets`` (None: where the epoch
    started, :func:`epoch_start`) to ``end_offsets``, among micro-batches ``batches`` (first, and the next epoch's
    first or None), as :func:`.windows.count_windows` gives them."""
    start = dict(start_offsets) if start_offsets is not None else epoch_start(tables.bronze, batches[0])
    offsets = sum(max(0, end - start.get(p, 0)) for p, end in end_offsets.items())
    among = _among(end_offsets, start, batches)
    rows = _bronze_rows(tables.bronze, among, epoch)
    micro = rows["micro_batch_id"]
    first = None if rows.is_empty() else int(micro.min())  # type: ignore[arg-type]
    last = None if rows.is_empty() else int(micro.max())  # type: ignore[arg-type]
    return _classify(
        "window", rows, among, tables, serving, lookup, not_trading, offsets,
        first_batch=first, last_batch=last, window_start=window_start, window_end=window_end,
    )  # fmt: skip


def epoch_start(bronze_uri: str, first_batch: int) -> dict[int, int]:
    """Where the epoch whose first micro-batch is ``first_batch`` started, per partition (the topic's first
    offsets then), as its landing commit records it; {} (offset 0) when it does not. Reads the log down
    to that batch: only the epoch's first window asks, while its batches are recent."""
    table = open_table(bronze_uri, None)
    landed = landing_commits(table, first_batch).get(first_batch) if table is not None else None
    return dict(landed.batch_start) if landed is not None else {}


def reconcile_run(
    tables: TradeTables,
    serving: ServingStore,
    lookup: pl.DataFrame,
    not_trading: pl.DataFrame | None,
    *,
    first_batch: int,
    last_batch: int,
) -> TradeReconciliation:
    """Reconcile the micro-batches ``first_batch..last_batch`` an enrichment run consumed; their offsets
    from the landing commits."""
    offsets, unlanded = offsets_of_batches(tables.bronze, first_batch, last_batch)
    among = pl.col("micro_batch_id").is_between(first_batch, last_batch)
    rows = _bronze_rows(tables.bronze, among, None)
    return _classify(
        "micro-batches", rows, among, tables, serving, lookup, not_trading, offsets,
        first_batch=first_batch, last_batch=last_batch, unlanded_batches=tuple(unlanded),
    )  # fmt: skip


def _bronze_rows(bronze_uri: str, among: pl.Expr, epoch: int | None) -> pl.DataFrame:
    columns = [*KEYS, *ROW_KEY]
    if not delta.table_exists(bronze_uri):
        return pl.DataFrame(schema={"symbol": pl.String, "trade_id": pl.Int64, "kafka_partition": pl.Int32,
                                    "kafka_offset": pl.Int64, "micro_batch_id": pl.Int64})  # fmt: skip
    scan = pl.scan_delta(bronze_uri).filter(among)
    if epoch is not None and EPOCH_COLUMN in scan.collect_schema().names():
        scan = scan.filter(pl.col(EPOCH_COLUMN).fill_null(0) == epoch)
    return scan.select(columns).collect()
