"""The trade stream part of the code location: assets, the feed job and its daily schedule, the
micro-batch job and its sensor, and the stream's resources.

``lakehouse`` is not bound here: the main Definitions provide it (``build_resources``).
"""

from __future__ import annotations

from dagster import (
    DefaultScheduleStatus,
    Definitions,
    define_asset_job,
    definitions,
    in_process_executor,
    schedule,
)

from platform_assets.defs.trades.assets import (
    BRONZE_KEY,
    FEED_KEY,
    LOOKUP_KEY,
    SILVER_KEY,
    bronze_trades,
    silver_trades_enriched,
    trade_feed,
    trade_symbols,
)
from platform_assets.defs.trades.resources import trade_resources
from platform_assets.defs.trades.sensors import MICRO_BATCH_JOB, trades_micro_batches
from platform_assets.lib.active_settings import active_settings
from platform_assets.lib.tags import JOB_TYPE_TAG
from platform_assets.settings import Settings

FEED_JOB = "trades_feed_job"
FEED_SCHEDULE = "trades_feed_daily"

# The lookup refreshes as the window starts (the seed's Event Grid trigger): both steps start together.
trades_feed_job = define_asset_job(
    FEED_JOB,
    selection=[FEED_KEY, LOOKUP_KEY],
    tags={JOB_TYPE_TAG: "Streaming"},
    description="One ingestion window: websocket trades to the Kafka topic (24 h unless configured), "
    "and a fresh symbol lookup as the window starts.",
)

# One process for both steps: a micro-batch is small, and a process per step would add seconds of
# start-up to every batch's latency.
trades_micro_batch_job = define_asset_job(
    MICRO_BATCH_JOB,
    selection=[BRONZE_KEY, SILVER_KEY],
    executor_def=in_process_executor,
    description="One micro-batch: land its offsets in bronze/trades exactly once, then enrich every "
    "batch silver has not seen, serve it and record completed windows. Started by trades_micro_batches.",
)


def trades_feed_schedule_for(cron: str):
    """The feed's schedule at ``cron`` (``PLATFORM_TRADES_SCHEDULE``, UTC; daily at 00:00 by default)."""

    @schedule(
        name=FEED_SCHEDULE,
        job=trades_feed_job,
        cron_schedule=cron,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"{cron} (UTC; every day at 00:00 by default): a new ingestion window.",
    )
    def trades_feed_daily():
        return {}

    return trades_feed_daily


def build_trade_definitions(settings: Settings) -> Definitions:
    return Definitions(
        assets=[trade_feed, trade_symbols, bronze_trades, silver_trades_enriched],
        jobs=[trades_feed_job, trades_micro_batch_job],
        schedules=[trades_feed_schedule_for(settings.trades_schedule)],
        sensors=[trades_micro_batches],
        resources=trade_resources(settings),
    )


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it: built from the
    settings of the load in progress (:mod:`platform_assets.lib.active_settings`)."""
    return build_trade_definitions(active_settings())
