"""The steps after landing: enrich the micro-batches silver has not seen, and serve them.

:func:`enrich_pending` is what ``silver/trades_enriched`` runs after each landed micro-batch. It reads
the bronze batches after its checkpoint (a state entry holding the last micro-batch id it consumed),
joins them with the symbol lookup, merges them into silver, upserts them into ``Enriched_Trades`` and
only then moves the checkpoint (compare-and-set). Every step is idempotent, so a run that fails or is
killed anywhere - the serving database down, say - is caught up by the next run without losing or
doubling a trade. Batches go in chunks, so a long backlog keeps memory bounded. Feed windows and their
``Ingestion_Metrics`` rows are counted in :mod:`.windows`.

No Dagster import here: the Dagster assets call these functions.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
import requests
from deltalake import DeltaTable

from platform_assets.core.errors import LookupApiError, SourceError
from platform_assets.core.lake import delta
from platform_assets.core.lake.locations import is_url
from platform_assets.core.redaction import redact_text
from platform_assets.core.state import StateStore
from platform_assets.core.streaming import dead_letters
from platform_assets.core.trades.enrich import (
    LookupSplit,
    MergeResult,
    enrich_safely,
    merge_silver,
    rule_problems,
    split_by_lookup,
)
from platform_assets.core.trades.feed import OFFLINE_OPTION
from platform_assets.core.trades.held import (
    held_summary,
    hold,
    quarantine,
    read_held,
    release,
    sibling,
)
from platform_assets.core.trades.lookup import FILE_NAME, fetch_lookup, publish
from platform_assets.core.trades.serving import ServingStore

logger = logging.getLogger(__name__)

INGESTION_TABLE = "Enriched_Trades"
# Side tables of silver, beside it in the lake (see platform_assets.core.trades.held).
HELD_TABLE = "trades_held"
SILVER_QUARANTINE_TABLE = "trades_enriched_quarantine"
# Micro-batches enriched per chunk when catching up: memory is bounded by this many times the batch cap
# (PLATFORM_TRADES_MAX_BATCH_ROWS); a live stream has one batch per run.
CHUNK_BATCHES = 4

# The bronze dead-letter table's columns (every stream's).
QUARANTINE_SCHEMA = dead_letters.DEAD_LETTER_SCHEMA


LOOKUP_URL_SETTING = "PLATFORM_TRADES_LOOKUP_URL"


class LookupMissing(SourceError):
    """The symbol lookup has not been pulled yet (and could not be pulled now), so no trade can be enriched.
    Not retryable as a step: the pull already made its attempts with backoff, and the next enrichment run
    (the stream sensor starts one) pulls it again; the message names the setting to check. Raised and
    handled by the trade stream only, so it lives here."""


class LookupUnavailable(SourceError):
    """The lookup API could not give a usable lookup (unreachable, an error status, a malformed body).
    Retryable when it did not answer or answered with a server error; a 4xx or a malformed body is not.
    Raised and handled by the trade stream only, so it lives here."""


@dataclass
class EnrichRun:
    """What :func:`enrich_pending` did."""

    first_batch: int | None = None
    last_batch: int | None = None  # the last micro-batch id silver has consumed after the call
    bronze_rows: int = 0
    enriched_rows: int = 0
    unmatched_rows: int = 0  # trades of symbols the lookup lists as not tradable: filtered
    held_rows: int = 0  # trades newly held: their symbol is unknown to the lookup
    released_rows: int = 0  # held trades enriched in this run
    quarantined_rows: int = 0  # rows kept in silver's quarantine instead of silver
    inserted: int = 0
    updated: int = 0
    served: int = 0
    silver_version: int | None = None
    bronze_version: int | None = None
    unmatched_symbols: list[str] = field(default_factory=list)
    held_total: int = 0  # trades in the held table after the run
    held_symbols: list[str] = field(default_factory=list)
    oldest_held: datetime | None = None  # the oldest trade time among them

    @property
    def batches(self) -> int:
        if self.first_batch is None or self.last_batch is None:
            return 0
        return self.last_batch - self.first_batch + 1

    def count(
        self, enriched: pl.DataFrame, not_tradable: pl.DataFrame, quarantined: int, merged, served: int
    ) -> None:
        """Add what one enrichment step did (a chunk of batches, or the released held trades)."""
        self.enriched_rows += enriched.height
        self.unmatched_rows += not_tradable.height
        self.quarantined_rows += quarantined
        self.inserted += merged.inserted
        self.updated += merged.updated
        self.served += served
        self.silver_version = merged.version


def checkpoint_name(app_id: str) -> str:
    return f"{app_id}.silver"


@dataclass(frozen=True)
class LookupRefresh:
    """A lookup pulled and written: how many symbols the API listed, the tradable ones, the file."""

    listed: int
    frame: pl.DataFrame
    path: Path | Any


def pull_lookup(url: str, folder: Path | Any, *, timeout: float = 10, attempts: int = 4) -> LookupRefresh:
    """Fetch the lookup from ``url``, flatten it and write it to ``folder`` (what ``raw/trade_symbols``
    does). Any failure of the API raises :class:`LookupUnavailable` naming the setting and the URL
    (redacted), never the URL's secrets."""
    try:
        entries = fetch_lookup(url, timeout=timeout, attempts=attempts)
        frame, path = publish(entries, folder)
    except LookupApiError as exc:
        reason, retryable = exc.reason, exc.retryable
    except requests.RequestException as exc:
        reason = f"no answer after {attempts} attempt(s) ({type(exc).__name__}); {OFFLINE_OPTION}"
        retryable = True
    except ValueError as exc:  # a symbol listed twice
        reason, retryable = str(exc), False
    else:
        return LookupRefresh(len(entries), frame, path)
    raise LookupUnavailable(
        f"the symbol lookup API {LOOKUP_URL_SETTING}={redact_text(url)} failed: {reason}", retryable=retryable
    ) from None


def read_lookup(
    folder: Path | Any,
    *,
    url: str | None = None,
    timeout: float = 10,
    attempts: int = 4,
    log: Any = None,
) -> pl.DataFrame:
    """The symbol lookup in ``folder``.

    A lookup that was never pulled (a fresh deployment whose first window started while the API was
    down, or before any window) is pulled from ``url`` now, on first need, so the enrichment goes on.
    Without ``url``, or when the API fails, raises :class:`LookupMissing` saying why.
    """
    path = folder / FILE_NAME
    if path.exists():
        return pl.read_parquet(str(path) if is_url(str(path)) else Path(str(path)))
    if url is None:
        raise LookupMissing(
            f"the symbol lookup {path} does not exist yet: materialize raw/trade_symbols "
            "(it also refreshes whenever a feed window starts)"
        )
    try:
        pulled = pull_lookup(url, folder, timeout=timeout, attempts=attempts)
    except LookupUnavailable as exc:
        raise LookupMissing(
            f"the symbol lookup {path} does not exist yet and could not be pulled: {exc}. Check "
            f"{LOOKUP_URL_SETTING}; trades are enriched once a lookup is there (the next run pulls it again)"
        ) from None
    (log or logger).info(
        f"the symbol lookup did not exist yet: pulled it on first need, {pulled.frame.height} tradable "
        f"symbol(s) of {pulled.listed} listed -> {pulled.path}"
    )
    return pulled.frame


def _batches(table: DeltaTable, low: int, high: int) -> pl.DataFrame:
    """Bronze rows of micro-batches ``low..high`` (file statistics prune the rest)."""
    return pl.scan_delta(table).filter(pl.col("micro_batch_id").is_between(low, high)).collect()


def enrich_pending(
    bronze_uri: str,
    silver_uri: str,
    lookup: pl.DataFrame,
    serving: ServingStore,
    state: StateStore,
    *,
    app_id: str,
    chunk_batches: int = CHUNK_BATCHES,
    log: Any = None,
    not_trading: pl.DataFrame | None = None,
    held_uri: str | None = None,
    quarantine_uri: str | None = None,
) -> EnrichRun:
    """Retry the held trades, then enrich, merge and serve every landed micro-batch after the checkpoint;
    move the checkpoint.

    Each bronze row is checked against the trade rules (a row that breaks them goes to silver's
    quarantine, ``quarantine_uri``), then split by the lookup: a TRADING symbol is enriched, a symbol
    listed as not tradable (``not_trading``, see :func:`~platform_assets.core.trades.lookup.read_not_trading`)
    is filtered and counted, an unknown symbol is held (``held_uri``) until a later lookup knows it. Held
    and quarantined rows are written before the checkpoint moves, and held rows leave the held table only
    once served (or filtered), so a run killed anywhere is repeated by the next without loss or double.
    The tables default to ``trades_held`` and ``trades_enriched_quarantine`` beside silver.

    The bronze snapshot is fixed at the start (its version is reported), so batches landing meanwhile
    wait for the next run. Raises what the serving store raises (:class:`ServingUnavailable`); the
    checkpoint then stays on the last chunk fully served.
    """
    log = log or logger
    run = EnrichRun()
    held_uri = held_uri or sibling(silver_uri, HELD_TABLE)
    quarantine_uri = quarantine_uri or sibling(silver_uri, SILVER_QUARANTINE_TABLE)
    not_tradable: set[str] = set()
    _retry_held(run, held_uri, silver_uri, quarantine_uri, lookup, not_trading, serving, not_tradable, log)
    try:
        if not delta.table_exists(bronze_uri):
            return run
        table = DeltaTable(bronze_uri)
        run.bronze_version = table.version()
        landed = table.transaction_version(app_id)
        name = checkpoint_name(app_id)
        entry = state.get(name)
        consumed = -1 if entry is None else int(entry.value["micro_batch_id"])
        run.last_batch = None if entry is None else consumed
        if landed is None or landed <= consumed:
            return run
        run.first_batch = consumed + 1
        for low in range(consumed + 1, landed + 1, chunk_batches):
            high = min(low + chunk_batches - 1, landed)
            rows = rule_problems(_batches(table, low, high))
            chunk = _enrich_chunk(rows, lookup, not_trading, serving, silver_uri, held_uri, quarantine_uri)
            entry = state.compare_and_set(
                name, entry, {"micro_batch_id": high, "bronze_version": table.version()}
            )
            run.last_batch = high
            run.bronze_rows += rows.height
            run.held_rows += chunk.held
            run.count(chunk.enriched, chunk.split.not_tradable, chunk.quarantined, chunk.merged, chunk.served)
            not_tradable.update(chunk.split.not_tradable["symbol"].unique().to_list())
            chunk.log(log, f"micro-batches {low}..{high}", rows.height, quarantine_uri)
        return run
    finally:
        run.unmatched_symbols = sorted(not_tradable)
        summary = held_summary(held_uri)
        run.held_total, run.held_symbols, run.oldest_held = summary.rows, summary.symbols, summary.oldest


@dataclass(frozen=True)
class _Chunk:
    """What enriching one chunk of bronze rows did: the rows enriched, the split by the lookup, and what
    went to silver's quarantine (``kept_aside``, with a ``reason``), to the held table, to silver and to
    serving."""

    enriched: pl.DataFrame
    split: LookupSplit
    kept_aside: pl.DataFrame
    quarantined: int
    held: int
    merged: MergeResult
    served: int

    def log(self, log: Any, label: str, bronze_rows: int, quarantine_uri: str) -> None:
        log.info(
            f"{label}: {bronze_rows} bronze row(s), {self.enriched.height} enriched, "
            f"{self.split.not_tradable.height} of symbols not tradable, {self.held} held for the lookup, "
            f"{self.quarantined} quarantined, {self.merged.inserted} new in silver, {self.served} served"
        )
        if self.quarantined:
            reasons = self.kept_aside["reason"].unique().sort()
            log.warning(
                f"{label}: {self.quarantined} row(s) kept in {quarantine_uri} instead of "
                f"silver: {'; '.join(reasons.head(5).to_list())}"
            )


def _enrich_chunk(
    rows: pl.DataFrame,
    lookup: pl.DataFrame,
    not_trading: pl.DataFrame | None,
    serving: ServingStore,
    silver_uri: str,
    held_uri: str,
    quarantine_uri: str,
) -> _Chunk:
    """Enrich bronze ``rows`` checked by the trade rules (a ``reason`` column): a row that breaks them,
    or fails to enrich, goes to silver's quarantine, an unknown symbol to the held table, the enriched to
    silver and serving. Side tables first: they are keyed, so a retry of the chunk writes nothing twice."""
    invalid = rows.filter(pl.col("reason").is_not_null())
    split = split_by_lookup(rows.filter(pl.col("reason").is_null()).drop("reason"), lookup, not_trading)
    enriched, failed = enrich_safely(split.known, lookup)
    now = datetime.now(UTC)
    kept_aside = pl.concat([invalid, failed], how="diagonal_relaxed")
    quarantined = quarantine(quarantine_uri, kept_aside, now)
    held = hold(held_uri, split.unknown, now)
    merged = merge_silver(silver_uri, enriched)
    served = serving.upsert_trades(enriched)
    return _Chunk(enriched, split, kept_aside, quarantined, held, merged, served)


def _retry_held(
    run: EnrichRun,
    held_uri: str,
    silver_uri: str,
    quarantine_uri: str,
    lookup: pl.DataFrame,
    not_trading: pl.DataFrame | None,
    serving: ServingStore,
    not_tradable: set[str],
    log: Any,
) -> None:
    """Release the held trades the lookup knows now: enrich, merge and serve them, then remove them from
    the held table (with the ones now listed as not tradable). Only the held table is read."""
    held = read_held(held_uri)
    if held.height == 0:
        return
    split = split_by_lookup(held, lookup, not_trading)
    if split.known.height == 0 and split.not_tradable.height == 0:
        log.info(f"{held.height} held trade(s) still wait for the lookup to know their symbol")
        return
    enriched, failed = enrich_safely(split.known, lookup)
    quarantined = quarantine(quarantine_uri, failed, datetime.now(UTC))
    merged = merge_silver(silver_uri, enriched)
    served = serving.upsert_trades(enriched)
    release(held_uri, pl.concat([split.known, split.not_tradable]))
    run.released_rows += split.known.height - failed.height
    run.count(enriched, split.not_tradable, quarantined, merged, served)
    not_tradable.update(split.not_tradable["symbol"].unique().to_list())
    log.info(
        f"held trades: {split.known.height} released to silver ({enriched.height} enriched, {served} served), "
        f"{split.not_tradable.height} filtered (symbol not tradable), "
        f"{held.height - split.known.height - split.not_tradable.height} still held"
    )
