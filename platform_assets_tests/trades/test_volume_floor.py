"""The trade stream's low-volume threshold is the volume judge's fixed floor (core.volume): a window
below it is low volume, its ``ingestion_volume`` check warns with the judge's reason, and a threshold of
0 never warns."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from dagster import AssetCheckSeverity

from platform_assets.core.trades.serving import MetricsRow
from platform_assets.core.trades.windows import FeedWindow, WindowCount
from platform_assets.defs.trades.assets import volume_check

START = datetime(2026, 3, 2, 0, 0)


def _row(delta: int, threshold: int) -> MetricsRow:
    return MetricsRow(
        metric_id=1,
        window_start=START,
        window_end=START + timedelta(hours=1),
        ingestion_table="Ingestion_Metrics",
        total_rows=500 + delta,
        delta_rows=delta,
        threshold=threshold,
        alerted=delta < threshold,  # as the serving store records it
        recorded_at=START + timedelta(hours=1),
    )


def _count(delta: int, threshold: int) -> WindowCount:
    window = FeedWindow(START.replace(tzinfo=UTC), (START + timedelta(hours=1)).replace(tzinfo=UTC), {0: 10})
    return WindowCount(window, "Ingestion_Metrics", 0, 500 + delta, delta, threshold)


@pytest.mark.parametrize(
    ("delta", "threshold", "low"),
    [(0, 1, True), (1, 1, False), (99, 100, True), (100, 100, False), (0, 0, False)],
)
def test_a_window_below_the_threshold_is_low_volume_and_its_check_warns(delta, threshold, low):
    assert _count(delta, threshold).low_volume is low
    check = volume_check([_row(500, threshold), _row(delta, threshold)], threshold)
    assert (check.passed, check.severity) == (not low, AssetCheckSeverity.WARN)
    values = {k: getattr(v, "value", v) for k, v in check.metadata.items()}
    assert (values["windows"], values["delta_rows"], values["threshold"]) == (2, delta, threshold)
    floor = "below the floor of" if low else "at or above the floor of"
    assert values["reason"] == check.description == f"{delta} row(s), {floor} {threshold}"


def test_before_the_first_window_nothing_is_judged():
    check = volume_check([], 5)
    assert check.passed and {k: getattr(v, "value", v) for k, v in check.metadata.items()}["windows"] == 0
