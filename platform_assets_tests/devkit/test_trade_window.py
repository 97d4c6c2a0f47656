"""The demo's trade window: one short window through the real jobs and sensor, twice (the embedded
broker starts empty each time: the second window lands in a new epoch, with nothing reset)."""

from __future__ import annotations

import pytest

from platform_assets.core.trades.serving import ServingStore
from platform_assets.settings import Settings
from platform_devkit.trades import run_window_offline


@pytest.mark.slow(15)
def test_the_demo_window_lands_every_trade_once_in_small_batches(tmp_path, instance):
    settings = Settings(data_dir=tmp_path / "data")
    for _ in range(2):
        window = run_window_offline(settings, instance, trades=300, max_batch_rows=100)
        assert window.success
        assert window.trades_fed == 303  # 300 trades and 3 resent after the dropped connection
        assert window.micro_batches == 4  # 303 messages at most 100 per batch
        assert window.enriched_rows == 300
        assert (window.metrics.total_rows, window.metrics.delta_rows, window.metrics.alerted) == (
            300,
            300,
            False,
        )
        assert window.dashboard.read_text().count('id="total-trades"') == 1
    # one row per window, each counted in its own epoch
    rows = ServingStore(settings.serving_url).metrics()
    assert [(m.total_rows, m.delta_rows) for m in rows] == [(300, 300), (300, 300)]
