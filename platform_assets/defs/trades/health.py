"""The trade stream's reconciliation check, and the streams' health as the dashboard page shows it.

Reconciliation (``core.trades.reconcile``): each feed window a run records, else the micro-batches the
run enriched. Health (``core.trades.dashboard.StreamHealth``): per stream, read from the Delta logs and
the state store only (the consumer lag was measured by the stream's bronze step, the one step that talks
to the broker, and kept with its reconciliation), so regenerating the page after every batch stays cheap.
"""

from __future__ import annotations

import polars as pl
from dagster import AssetCheckResult, MetadataValue

from platform_assets.core.streaming.reconcile import last_landing, recalled, remember, table_rows
from platform_assets.core.trades.dashboard import StreamHealth
from platform_assets.core.trades.landing import TRADES
from platform_assets.core.trades.reconcile import (
    TradeReconciliation,
    TradeTables,
    reconcile_run,
    reconcile_window,
)
from platform_assets.core.trades.serving import MetricsRow, ServingStore
from platform_assets.core.trades.stream import HELD_TABLE, SILVER_QUARANTINE_TABLE, EnrichRun
from platform_assets.core.trades.windows import WindowCount
from platform_assets.lib.metadata import reconciliation_result
from platform_assets.lib.resources import LakehouseResource

LOANS = "loan_applications"


def trade_tables(lakehouse: LakehouseResource) -> TradeTables:
    return TradeTables(
        bronze=str(lakehouse.path("bronze", "trades")),
        dead_letters=str(lakehouse.path("bronze", "trades_quarantine")),
        silver_quarantine=str(lakehouse.path("silver", SILVER_QUARANTINE_TABLE)),
        held=str(lakehouse.path("silver", HELD_TABLE)),
    )


def reconcile_trades(
    lakehouse: LakehouseResource,
    store: ServingStore,
    lookup: pl.DataFrame,
    not_trading: pl.DataFrame | None,
    counts: list[WindowCount],
    run: EnrichRun,
) -> TradeReconciliation | None:
    """The windows recorded by this run (the first that does not reconcile, else the newest; each kept
    for the health view), else the micro-batches the run enriched, else the last one silver consumed.
    None before silver consumed anything."""
    tables = trade_tables(lakehouse)
    if counts:
        results = [
            reconcile_window(
                tables,
                store,
                lookup,
                not_trading,
                epoch=count.epoch,
                end_offsets=count.window.end_offsets,
                start_offsets=count.start_offsets,
                batches=count.batches,
                window_start=count.window.start,
                window_end=count.window.end,
            )
            for count in counts
        ]
        remember(lakehouse.state(), TRADES.name, "window", results[-1].as_dict())
        return next((r for r in results if not r.ok), results[-1])
    if run.last_batch is None:
        return None
    first = run.first_batch if run.first_batch is not None else run.last_batch
    return reconcile_run(tables, store, lookup, not_trading, first_batch=first, last_batch=run.last_batch)


def trades_reconciliation_check(asset, reconciled: TradeReconciliation | None) -> AssetCheckResult:
    if reconciled is None:
        return reconciliation_result(
            asset, {}, passed=True, more={"note": MetadataValue.text("nothing landed and enriched yet")}
        )
    more: dict = {"scope": MetadataValue.text(reconciled.scope)}
    if reconciled.window_start is not None and reconciled.window_end is not None:
        more["window_start"] = MetadataValue.timestamp(reconciled.window_start)
        more["window_end"] = MetadataValue.timestamp(reconciled.window_end)
    numbers = {
        **reconciled.numbers(),
        "first_batch": reconciled.first_batch,
        "last_batch": reconciled.last_batch,
    }
    problem = None
    if not reconciled.ok:
        problem = (
            f"{reconciled.scope}: {reconciled.offsets_in_range} offset(s) = {reconciled.bronze_rows} bronze "
            f"row(s) + {reconciled.dead_lettered} dead letter(s) off by {reconciled.landing_difference}; "
            f"{reconciled.tradable} tradable trade(s) = {reconciled.served} served + {reconciled.held} held "
            f"off by {reconciled.trades_difference}"
        )
        if reconciled.unlanded_batches:
            problem += f"; micro-batch(es) without a landing commit: {list(reconciled.unlanded_batches)}"
    return reconciliation_result(asset, numbers, passed=reconciled.ok, description=problem, more=more)


def stream_health(
    lakehouse: LakehouseResource, run: EnrichRun, last_window: MetricsRow | None
) -> list[StreamHealth]:
    """The trade stream's health, and the loan stream's once it has landed anything."""
    state = lakehouse.state()
    landed = last_landing(str(lakehouse.path("bronze", "trades")))
    batch = recalled(state, TRADES.name, "batch") or {}
    streams = [
        StreamHealth(
            name=TRADES.name,
            last_batch=landed.batch_id if landed else None,
            last_batch_at=landed.committed_at if landed else None,
            consumer_lag=batch.get("consumer_lag"),
            reconciliation=recalled(state, TRADES.name, "window"),
            held=run.held_total,
            dead_letters=table_rows(str(lakehouse.path("bronze", "trades_quarantine"))),
            volume=last_window.delta_rows if last_window else None,
            threshold=last_window.threshold if last_window else None,
        )
    ]
    # the loan stream's tables as streams.yaml declares them: bronze/loan_applications(_quarantine)
    landed = last_landing(str(lakehouse.path("bronze", LOANS)))
    if landed is not None:
        batch = recalled(state, LOANS, "batch") or {}
        streams.append(
            StreamHealth(
                name=LOANS,
                last_batch=landed.batch_id,
                last_batch_at=landed.committed_at,
                consumer_lag=batch.get("consumer_lag"),
                reconciliation=batch or None,
                dead_letters=table_rows(str(lakehouse.path("bronze", f"{LOANS}_quarantine"))),
            )
        )
    return streams
