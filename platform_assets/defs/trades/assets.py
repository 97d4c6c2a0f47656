"""The trade stream as assets: feed window -> Kafka topic -> bronze micro-batches -> enriched silver.

- ``kafka/trades``: one materialization per feed window (the seed's ingestion pipeline). Its metadata
  records the window and the topic's end offsets when the window ended, which is how the metrics step
  knows when a window's messages are all enriched.
- ``raw/trade_symbols``: the symbol lookup from REST, as Parquet (refreshed when a feed window starts).
- ``bronze/trades``: one run per micro-batch (an explicit offset range, planned by the sensor
  ``trades_micro_batches``); exactly once through a Delta app transaction.
- ``silver/trades_enriched``: every landed batch not enriched yet, joined with the lookup, one row per
  trade; served to ``Enriched_Trades``; then the ``Ingestion_Metrics`` row of each completed window,
  the ``ingestion_volume`` check and the dashboard page.

The work is done by :mod:`platform_assets.core.trades`; these functions only wire it to Dagster.
"""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
import json
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import polars as pl
from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    Config,
    Failure,
    MaterializeResult,
    MetadataValue,
    asset,
)
from pydantic import Field

from platform_assets.core.lake import delta
from platform_assets.core.state import StateStore
from platform_assets.core.streaming import (
    BatchPlan,
    LandingResult,
    commit_offsets,
    lost_upstream,
    topic_end,
)
from platform_assets.core.streaming.reconcile import consumer_lag
from platform_assets.core.trades import lookup as symbols_api
from platform_assets.core.trades.dashboard import render_dashboard
from platform_assets.core.trades.feed import run_feed
from platform_assets.core.trades.held import dead_lettered_count, held_count
from platform_assets.core.trades.landing import TRADES
from platform_assets.core.trades.serving import MetricsRow, ServingStore
from platform_assets.core.trades.stream import (
    HELD_TABLE,
    SILVER_QUARANTINE_TABLE,
    EnrichRun,
    enrich_pending,
    pull_lookup,
    read_lookup,
)
from platform_assets.core.trades.windows import (
    INGESTION_TABLE,
    FeedWindow,
    WindowCount,
    consumed_position,
    count_windows,
)
from platform_assets.core.volume import VolumePolicy, judge_volume
from platform_assets.defs.trades.health import reconcile_trades, stream_health, trades_reconciliation_check
from platform_assets.defs.trades.resources import ServingResource, TradeStreamResource
from platform_assets.lib.errors import platform_errors
from platform_assets.lib.metadata import column_schema, numbers, table_state
from platform_assets.lib.micro_batches import MicroBatchConfig, landed_batch, landing_metadata, planned_batch
from platform_assets.lib.resources import LakehouseResource
from platform_assets.lib.stream_checks import landing_reconciliation, reconciliation_spec
from platform_assets.lib.tags import LOW_VOLUME_TAG, STREAM_ALERTS_TAG

GROUP = "trades"
FEED_KEY = AssetKey(["kafka", "trades"])
LOOKUP_KEY = AssetKey(["raw", "trade_symbols"])
BRONZE_KEY = AssetKey(["bronze", "trades"])
SILVER_KEY = AssetKey(["silver", "trades_enriched"])
VOLUME_CHECK = "ingestion_volume"
HELD_CHECK = "held_trades"
# How many recent feed windows the metrics step looks at: windows older than that are long recorded.
RECENT_WINDOWS = 50
OWNERS = ["team:data-platform"]


# --- the feed ------------------------------------------------------------------------------------


class FeedConfig(Config):
    seconds: float = Field(default=86_400.0, gt=0, description="Length of the ingestion window.")
    max_trades: int | None = Field(default=None, ge=1, description="End the window after this many trades.")


@asset(
    key=FEED_KEY,
    group_name=GROUP,
    kinds={"kafka", "websocket"},
    owners=OWNERS,
    description="One feed window: websocket trades produced to the Kafka topic, keyed by symbol.",
)
def trade_feed(
    context: AssetExecutionContext, config: FeedConfig, trade_stream: TradeStreamResource
) -> MaterializeResult:
    conf = trade_stream.producer_conf()
    with platform_errors():  # a feed never reached: one line naming the setting, not a traceback
        report = run_feed(
            trade_stream.ws_url,
            conf,
            trade_stream.topic,
            seconds=config.seconds,
            max_trades=config.max_trades,
            log=context.log,
        )
    incarnation, end_offsets = topic_end(trade_stream.client_conf(), trade_stream.topic)
    if report.lost:
        raise Failure(
            description=f"{report.lost} trade(s) may not have reached topic {trade_stream.topic!r}: "
            + report.summary(),
            metadata={"trades_produced": report.trades_produced, "lost": report.lost},
        )
    return MaterializeResult(metadata=window_metadata(report, end_offsets, incarnation))


def window_metadata(report, end_offsets: dict[int, int], incarnation: str | None = None) -> dict:
    """A window's metadata: its span, and the topic's end offsets and incarnation when it ended (which
    epoch its messages belong to)."""
    return {
        "window_start": MetadataValue.timestamp(report.window_start),
        "window_end": MetadataValue.timestamp(report.window_end),
        "end_offsets": MetadataValue.json({str(p): o for p, o in end_offsets.items()}),
        "topic": report.topic,
        "incarnation": incarnation or "",
        **numbers(
            trades_produced=report.trades_produced,
            malformed_frames=report.malformed_frames,
            invalid_trades=report.invalid_trades,
            non_trade_frames=report.non_trade_frames,
            reconnects=report.reconnects,
        ),
    }


def window_from_metadata(metadata, topic: str) -> FeedWindow | None:
    """The feed window a ``kafka/trades`` materialization records of ``topic`` (None for one of another
    topic, or without offsets, e.g. reported by hand)."""
    try:
        start, end = metadata["window_start"].value, metadata["window_end"].value
        offsets = metadata["end_offsets"].value
        if metadata["topic"].value != topic:
            return None
    except KeyError:
        return None
    incarnation = metadata["incarnation"].value if "incarnation" in metadata else None
    return FeedWindow(
        datetime.fromtimestamp(start, UTC),
        datetime.fromtimestamp(end, UTC),
        {int(p): int(o) for p, o in offsets.items()},
        incarnation or None,
    )


# --- the lookup ----------------------------------------------------------------------------------


@asset(
    key=LOOKUP_KEY,
    group_name=GROUP,
    kinds={"raw", "api", "parquet"},
    owners=OWNERS,
    description="Tradable symbols from the exchange-info REST API: flattened, TRADING only, sorted.",
)
def trade_symbols(
    context: AssetExecutionContext, lakehouse: LakehouseResource, trade_stream: TradeStreamResource
) -> MaterializeResult:
    with platform_errors():  # an API that fails: one line naming the setting, not a traceback
        pulled = pull_lookup(
            trade_stream.lookup_url,
            lakehouse.path("raw", "trade_symbols"),
            timeout=trade_stream.lookup_timeout,
            attempts=trade_stream.lookup_attempts,
        )
    context.log.info(f"{pulled.frame.height} tradable symbol(s) of {pulled.listed} listed -> {pulled.path}")
    return MaterializeResult(metadata=lookup_metadata(pulled.listed, pulled.frame, pulled.path))


def lookup_metadata(listed: int, frame: pl.DataFrame, path) -> dict:
    """The metadata of a ``raw/trade_symbols`` materialization (the job's, and the feed command's)."""
    return {
        **numbers(symbols_listed=listed),
        "dagster/row_count": MetadataValue.int(frame.height),
        "dagster/column_schema": column_schema(frame.schema),
        "path": MetadataValue.path(str(path)),
    }


# --- bronze --------------------------------------------------------------------------------------


@asset(
    key=BRONZE_KEY,
    deps=[FEED_KEY],
    group_name=GROUP,
    kinds={"delta", "kafka", "bronze"},
    owners=OWNERS,
    pool="table_trades",
    check_specs=[reconciliation_spec(BRONZE_KEY)],
    description="Every trade message consumed from the topic, one row each, landed exactly once per "
    "micro-batch (Delta app transaction), with kafka_partition, kafka_offset, kafka_epoch and micro_batch_id.",
)
def bronze_trades(
    context: AssetExecutionContext,
    config: MicroBatchConfig,
    lakehouse: LakehouseResource,
    trade_stream: TradeStreamResource,
) -> MaterializeResult:
    table = str(lakehouse.path("bronze", "trades"))
    conf, topic, app_id = trade_stream.client_conf(), trade_stream.topic, trade_stream.app_id
    plan = planned_batch(
        config, conf, topic, table, app_id, trade_stream.max_batch_rows, lakehouse.state(), context.log
    )
    if not config.ranges:  # planned now: a new epoch counts what the old incarnation left unlanded
        plan = with_losses(context.instance, topic, plan)
    quarantine = str(lakehouse.path("bronze", "trades_quarantine"))
    result = landed_batch(
        conf,
        topic,
        plan,
        table,
        quarantine,
        stream=TRADES,
        app_id=app_id,
        read_timeout=trade_stream.read_timeout,
        log=context.log,
    )
    if result.new_epoch:
        tag_new_epoch(context, topic, plan)
    # Only for lag monitoring (consumer-group tools); landing never reads it back.
    commit_offsets(conf, topic, app_id, plan.ranges)
    behind = consumer_lag(conf, topic, table)
    check = landing_reconciliation(
        BRONZE_KEY,
        table,
        quarantine,
        result.batch_id,
        stream=TRADES.name,
        state=lakehouse.state(),
        consumer_lag=behind,
    )
    return MaterializeResult(
        metadata=bronze_metadata(topic, plan, result, behind, table), check_results=[check]
    )


def bronze_metadata(
    topic: str, plan: BatchPlan, result: LandingResult, lag: int, table_uri: str
) -> dict[str, Any]:
    """A ``bronze/trades`` step's metadata: the landing's (rows as ``rows``), the lag after it, the table
    as it is now (landed this time or not: the asset page's columns, version and rows), and for the first
    batch of a new epoch what the previous incarnation left unlanded."""
    metadata = {
        **landing_metadata(topic, plan, result, rows_key="rows"),
        # consumer_lag: the name the health view and the docs use; lag: the name older runs plotted
        **numbers(lag=lag, consumer_lag=lag),
        **table_state(delta.snapshot(table_uri)),
    }
    if result.new_epoch:
        metadata.update(
            new_epoch=True,
            previous_incarnation=plan.previous_incarnation or "",
            lost_upstream=MetadataValue.int(plan.lost),
            lost_upstream_by_partition=MetadataValue.json(
                {str(p): n for p, n in sorted(plan.lost_upstream.items())}
            ),
        )
    return metadata


def with_losses(instance, topic: str, plan: BatchPlan, last_look: dict | None = None) -> BatchPlan:
    """A new epoch's plan with what the old incarnation held beyond what landed (lost upstream), as far as
    the feed windows' end offsets and ``last_look`` (the planner's last watermarks of it) saw."""
    if not plan.new_epoch:
        return plan
    ends = [w.end_offsets for w in recent_windows_of(instance, topic, plan.previous_incarnation)]
    return replace(plan, lost_upstream=lost_upstream(plan.previous_offsets, last_look or {}, *ends))


def tag_new_epoch(context: AssetExecutionContext, topic: str, plan: BatchPlan) -> None:
    """Queue the ``new_epoch`` alert in the run's tags (the audit sensor delivers it once)."""
    run = context.instance.get_run_by_id(context.run_id)
    queued = json.loads(run.tags.get(STREAM_ALERTS_TAG, "[]")) if run else []
    alert = {
        "alert": "new_epoch",
        "key": f"{topic}:epoch:{plan.epoch}:{plan.incarnation}",
        "topic": topic,
        "epoch": plan.epoch,
        "incarnation": plan.incarnation,
        "previous_incarnation": plan.previous_incarnation,
        "lost_upstream": plan.lost,
        "lost_upstream_by_partition": {str(p): n for p, n in sorted(plan.lost_upstream.items())},
    }
    if alert not in queued:
        context.instance.add_run_tags(context.run_id, {STREAM_ALERTS_TAG: json.dumps([*queued, alert])})


# --- silver, serving and metrics -----------------------------------------------------------------


@asset(
    key=SILVER_KEY,
    deps=[BRONZE_KEY, LOOKUP_KEY],
    group_name=GROUP,
    kinds={"delta", "polars", "silver"},
    owners=OWNERS,
    pool="table_trades_enriched",
    check_specs=[
        AssetCheckSpec(
            VOLUME_CHECK,
            asset=SILVER_KEY,
            description="The latest feed window in Ingestion_Metrics ingested at least "
            "PLATFORM_MIN_INGESTED_ROWS new trades.",
        ),
        AssetCheckSpec(
            HELD_CHECK,
            asset=SILVER_KEY,
            description="No trade is held waiting for a lookup that knows its symbol "
            "(silver/trades_held is empty).",
        ),
        reconciliation_spec(
            SILVER_KEY,
            "Each feed window recorded by the run (else the micro-batches it enriched) reconciles: "
            "offsets_in_range = bronze_rows + dead_lettered, and tradable = served + held over distinct "
            "trades (resent copies counted once, trades of symbols listed as not TRADING filtered).",
        ),
    ],
    description="Landed trades of TRADING symbols joined with the lookup, one row per (symbol, trade_id); "
    "upserted into Enriched_Trades; one Ingestion_Metrics row per completed feed window.",
)
def silver_trades_enriched(
    context: AssetExecutionContext,
    lakehouse: LakehouseResource,
    trade_stream: TradeStreamResource,
    serving: ServingResource,
):
    silver = str(lakehouse.path("silver", "trades_enriched"))
    state, store = lakehouse.state(), serving.store()
    lookup = enrichment_lookup(context, lakehouse, trade_stream)
    run = enrich_pending(
        str(lakehouse.path("bronze", "trades")),
        silver,
        lookup,
        store,
        state,
        app_id=trade_stream.app_id,
        log=context.log,
        not_trading=symbols_api.read_not_trading(lakehouse.path("raw", "trade_symbols")),
        held_uri=str(lakehouse.path("silver", HELD_TABLE)),
        quarantine_uri=str(lakehouse.path("silver", SILVER_QUARANTINE_TABLE)),
    )
    if run.unmatched_symbols:
        context.log.warning(
            f"{run.unmatched_rows} trade(s) of symbols not tradable in the lookup were left out: "
            + ", ".join(run.unmatched_symbols[:20])
        )
    tradable = lookup["symbol"].to_list()
    counts = record_windows(
        context, lakehouse, trade_stream, state, store, serving.min_ingested_rows, tradable
    )
    not_trading = symbols_api.read_not_trading(lakehouse.path("raw", "trade_symbols"))
    reconciled = reconcile_trades(lakehouse, store, lookup, not_trading, counts, run)
    metrics = store.metrics(INGESTION_TABLE)
    health = stream_health(lakehouse, run, metrics[-1] if metrics else None)
    page = render_dashboard(store, serving.dashboard_path(), streams=health)
    yield MaterializeResult(metadata=silver_metadata(run, len(counts), silver, page))
    yield volume_check(store.metrics(INGESTION_TABLE), serving.min_ingested_rows)
    yield held_check(run)
    yield trades_reconciliation_check(SILVER_KEY, reconciled)


def enrichment_lookup(
    context: AssetExecutionContext, lakehouse: LakehouseResource, trade_stream: TradeStreamResource
) -> pl.DataFrame:
    """The symbol lookup. One never pulled yet is pulled now and the run goes on; one that cannot be
    pulled fails the step at once (LookupMissing: the pull already retried, and the next run pulls again)."""
    with platform_errors():
        return read_lookup(
            lakehouse.path("raw", "trade_symbols"),
            url=trade_stream.lookup_url,
            timeout=trade_stream.lookup_timeout,
            attempts=trade_stream.lookup_attempts,
            log=context.log,
        )


def record_windows(
    context: AssetExecutionContext,
    lakehouse: LakehouseResource,
    trade_stream: TradeStreamResource,
    state: StateStore,
    store: ServingStore,
    threshold: int,
    tradable: list[str],
) -> list[WindowCount]:
    """One ``Ingestion_Metrics`` row for each recent feed window whose messages are all enriched now (a
    low window's alert queued first); the windows counted."""
    bronze = str(lakehouse.path("bronze", "trades"))
    counts = count_windows(
        recent_windows(context, trade_stream.topic),
        consumed_position(bronze, state, trade_stream.app_id),
        store,
        bronze_uri=bronze,
        silver_uri=str(lakehouse.path("silver", "trades_enriched")),
        threshold=threshold,
        tradable=tradable,
    )
    held_table = str(lakehouse.path("silver", HELD_TABLE))
    for count in counts:
        if count.low_volume:
            # The alert is queued in the run's tags before the row is written: a kill in between sends it
            # from this run, and the retry's copy is recognised as the same window (see trades.alerts).
            tag_low_volume(context, count)
        ends, starts = count.window.end_offsets, count.start_offsets
        row = store.append_metrics(
            count.window.start,
            count.window.end,
            count.table,
            count.total_rows,
            count.threshold,
            dead_lettered_rows=dead_lettered_count(
                str(lakehouse.path("bronze", "trades_quarantine")),
                ends,
                starts,
                silver_quarantine_uri=str(lakehouse.path("silver", SILVER_QUARANTINE_TABLE)),
                batches=count.batches,
            ),
            held_rows=held_count(held_table, ends, starts, batches=count.batches),
            delta_rows=count.delta_rows,
            micro_batches=count.micro_batches,
        )
        context.log.info(
            f"window {row.window_start:%Y-%m-%d %H:%M:%S}..{row.window_end:%H:%M:%S}: {row.total_rows} trades, "
            f"{row.delta_rows} new (threshold {row.threshold}){' - low volume' if row.alerted else ''}"
        )
    return counts


def silver_metadata(run: EnrichRun, windows_recorded: int, silver_uri: str, page: Path) -> dict[str, Any]:
    """A ``silver/trades_enriched`` step's metadata: the enrichment run's counts, the windows recorded,
    the table as it is now (merged this time or not: the asset page's columns, version and rows) and the
    dashboard page."""
    return {
        **numbers(
            batches=run.batches,
            first_batch=run.first_batch,
            last_batch=run.last_batch,
            bronze_rows=run.bronze_rows,
            enriched_rows=run.enriched_rows,
            unmatched_rows=run.unmatched_rows,
            held_rows=run.held_rows,
            released_rows=run.released_rows,
            held_total=run.held_total,
            quarantined_rows=run.quarantined_rows,
            rows_inserted=run.inserted,
            rows_updated=run.updated,
            rows_served=run.served,
            windows_recorded=windows_recorded,
            delta_version=run.silver_version,
            bronze_version=run.bronze_version,
        ),
        **table_state(delta.snapshot(silver_uri)),
        "dashboard": MetadataValue.path(str(page)),
        "serving_table": INGESTION_TABLE,
    }


def held_check(run: EnrichRun) -> AssetCheckResult:
    """Fails (WARN) while any trade waits in the held table for a lookup that knows its symbol."""
    metadata = {
        **numbers(count=run.held_total),
        "symbols": MetadataValue.json(run.held_symbols[:50]),
    }
    if run.oldest_held is not None:
        metadata["oldest"] = MetadataValue.timestamp(run.oldest_held)
    return AssetCheckResult(
        check_name=HELD_CHECK,
        asset_key=SILVER_KEY,
        passed=run.held_total == 0,
        severity=AssetCheckSeverity.WARN,
        metadata=metadata,
        description=None
        if run.held_total == 0
        else f"{run.held_total} trade(s) held: the lookup does not know {', '.join(run.held_symbols[:10])}",
    )


def volume_check(rows: list[MetricsRow], threshold: int) -> AssetCheckResult:
    """The latest recorded window against its threshold. WARN severity: a low window is alerted as its
    own ``low_volume`` alert, not as a check failure. Before the first window there is nothing to judge."""
    if not rows:
        return AssetCheckResult(
            check_name=VOLUME_CHECK,
            asset_key=SILVER_KEY,
            passed=True,
            severity=AssetCheckSeverity.WARN,
            metadata={"windows": 0, "threshold": threshold, "note": "no feed window recorded yet"},
        )
    last = rows[-1]
    # The medallion's volume judge with a fixed floor and no history: the window's row says the same
    # (``alerted`` is ``delta_rows < threshold``, WindowCount.low_volume).
    verdict = judge_volume(last.delta_rows, (), VolumePolicy.fixed_floor(last.threshold))
    return AssetCheckResult(
        check_name=VOLUME_CHECK,
        asset_key=SILVER_KEY,
        passed=verdict.passed,
        severity=AssetCheckSeverity.WARN,
        metadata={
            "window_start": MetadataValue.timestamp(last.window_start.replace(tzinfo=UTC)),
            "window_end": MetadataValue.timestamp(last.window_end.replace(tzinfo=UTC)),
            **numbers(
                windows=len(rows),
                total_rows=last.total_rows,
                delta_rows=last.delta_rows,
                threshold=last.threshold,
            ),
            "reason": MetadataValue.text(verdict.reason),
        },
        description=verdict.reason,
    )


def tag_low_volume(context: AssetExecutionContext, count: WindowCount) -> None:
    """Queue the window's ``low_volume`` alert in the run's tags; the audit sensor delivers it once."""
    run = context.instance.get_run_by_id(context.run_id)
    queued = json.loads(run.tags.get(LOW_VOLUME_TAG, "[]")) if run else []
    alert = {
        "ingestion_table": count.table,
        "window_start": count.window.start.isoformat(),
        "window_end": count.window.end.isoformat(),
        "total_rows": count.total_rows,
        "delta_rows": count.delta_rows,
        "threshold": count.threshold,
    }
    if alert not in queued:
        context.instance.add_run_tags(context.run_id, {LOW_VOLUME_TAG: json.dumps([*queued, alert])})
    context.log.warning(
        f"low volume: {count.delta_rows} new trade(s) in the window ending {count.window.end:%Y-%m-%d %H:%M:%S} "
        f"UTC, below the threshold of {count.threshold}; alert queued"
    )


def recent_windows(context: AssetExecutionContext, topic: str) -> list[FeedWindow]:
    return recent_windows_of(context.instance, topic)


def recent_windows_of(instance, topic: str, incarnation: str | None = None) -> list[FeedWindow]:
    """The recent feed windows of ``topic`` (of one ``incarnation`` only, when given)."""
    records = instance.fetch_materializations(FEED_KEY, limit=RECENT_WINDOWS).records
    windows = []
    for record in records:
        materialization = record.asset_materialization
        window = window_from_metadata(materialization.metadata, topic) if materialization else None
        if window is not None and (incarnation is None or window.incarnation == incarnation):
            windows.append(window)
    return windows
