"""A feed window recorded from outside a run, so that a window is a window however it is started.

A run of ``trades_feed_job`` materializes ``kafka/trades`` (the window, with the topic's end offsets) and
``raw/trade_symbols`` (the lookup, refreshed as the window starts). The feed command
(:mod:`platform_assets.cli.trades_feed`) records the same two materializations, with the same metadata
(:func:`~platform_assets.defs.trades.assets.window_metadata`, :func:`~platform_assets.defs.trades.assets.lookup_metadata`),
as runless events in the Dagster instance the sensor and the enrichment read. So its window gets its own
``Ingestion_Metrics`` row (and low-volume alert), and its trades are not credited to the next window.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import AssetMaterialization, DagsterInstance

from platform_assets.core.streaming import topic_end
from platform_assets.core.trades.feed import FeedReport, Log
from platform_assets.core.trades.stream import LookupRefresh, LookupUnavailable, pull_lookup
from platform_assets.defs.trades.assets import FEED_KEY, LOOKUP_KEY, lookup_metadata, window_metadata

FROM_COMMAND = "recorded by python -m platform_assets.cli.trades_feed"


def open_instance(data_dir: Path, log: Log) -> DagsterInstance:
    """The Dagster instance of ``DAGSTER_HOME``; when it is not set, the one ``make dev`` and ``make demo``
    use for this data folder, ``<data_dir>/dagster_home`` (created if missing), saying so in the log."""
    if os.environ.get("DAGSTER_HOME"):
        return DagsterInstance.get()
    home = Path(data_dir) / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    log.info(f"DAGSTER_HOME is not set: using the Dagster instance in {home}, the one make dev uses")
    return DagsterInstance.from_config(str(home))


def record_window(
    instance: DagsterInstance, report: FeedReport, client_conf: Mapping[str, Any]
) -> dict[int, int]:
    """Record the ended window as a materialization of ``kafka/trades`` with the job's metadata: the
    topic's incarnation and end offsets now, read as the job reads them. The end offsets."""
    incarnation, end_offsets = topic_end(client_conf, report.topic)
    instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key=FEED_KEY,
            description=FROM_COMMAND,
            metadata=window_metadata(report, end_offsets, incarnation),
        )
    )
    return end_offsets


def refresh_lookup(
    instance: DagsterInstance,
    url: str,
    folder: Path | Any,
    *,
    timeout: float,
    attempts: int,
    log: Log,
) -> LookupRefresh | None:
    """Pull the lookup into ``folder`` as ``raw/trade_symbols`` does and record it as its materialization.

    A lookup API that fails is one warning, not an error: the window goes on, with the lookup pulled
    before if there is one, and the enrichment pulls the lookup itself when it has none.
    """
    try:
        pulled = pull_lookup(url, folder, timeout=timeout, attempts=attempts)
    except LookupUnavailable as exc:
        log.warning(
            f"{exc}; the window goes on without refreshing the lookup (the enrichment pulls one if there is none)"
        )
        return None
    instance.report_runless_asset_event(
        AssetMaterialization(
            asset_key=LOOKUP_KEY,
            description=FROM_COMMAND,
            metadata=lookup_metadata(pulled.listed, pulled.frame, pulled.path),
        )
    )
    log.info(f"symbol lookup refreshed: {pulled.frame.height} tradable symbol(s) of {pulled.listed} listed")
    return pulled
