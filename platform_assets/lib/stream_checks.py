"""The ``reconciliation`` asset check of the streams, and what a bronze step keeps for the health view.

Every stream's bronze asset declares the check: after each landing, the micro-batch's offsets (from the
landing commits) against its bronze rows and dead letters (``core.streaming.reconcile``). The trade
stream's silver asset declares it too, per feed window and per enrichment run (``core.trades.reconcile``).
The check's metadata is numeric (``offsets_in_range``, ``bronze_rows``, ``dead_lettered``, ...,
``difference``), so the audit records each evaluation's numbers as run parameters.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSpec, AssetKey

from platform_assets.core.state import StateStore
from platform_assets.core.streaming.reconcile import (
    StreamReconciliation,
    as_dict,
    reconcile_batches,
    remember,
)
from platform_assets.lib.metadata import RECONCILIATION_CHECK, reconciliation_result


def reconciliation_spec(asset: AssetKey, description: str | None = None) -> AssetCheckSpec:
    return AssetCheckSpec(
        RECONCILIATION_CHECK,
        asset=asset,
        description=description
        or "The micro-batch's offsets, as the landing commits record them, are each one bronze row or one "
        "dead letter: offsets_in_range = bronze_rows + dead_lettered.",
    )


def landing_reconciliation(
    asset: AssetKey,
    table_uri: str,
    dead_letter_uri: str,
    batch_id: int,
    *,
    stream: str,
    state: StateStore,
    consumer_lag: int | None,
) -> AssetCheckResult:
    """Reconcile the landed micro-batch ``batch_id``, keep it (with the consumer lag) for the health
    view, and give the check's result."""
    reconciliation: StreamReconciliation = reconcile_batches(table_uri, dead_letter_uri, batch_id)
    remember(state, stream, "batch", {**as_dict(reconciliation), "consumer_lag": consumer_lag})
    problem = None
    if reconciliation.unlanded_batches:
        problem = f"micro-batch {batch_id} has no landing commit"
    elif not reconciliation.ok:
        problem = (
            f"micro-batch {batch_id}: {reconciliation.offsets_in_range} offset(s) landed, but "
            f"{reconciliation.bronze_rows} bronze row(s) + {reconciliation.dead_lettered} dead letter(s) "
            f"(difference {reconciliation.difference})"
        )
    return reconciliation_result(
        asset, reconciliation.numbers(), passed=reconciliation.ok, description=problem
    )
