"""The demo's loan window: one short window through the real job and sensor, twice, each on a new
embedded broker (the second lands in a new epoch, nothing reset): bronze holds both windows' messages
once each, silver still one row per application, the same rows (the second window repeats the first's
events, so ties on event time go to the later epoch, with the same values)."""

from __future__ import annotations

import polars as pl

from platform_assets.settings import Settings
from platform_assets_tests.loans.test_stream import expected_silver
from platform_devkit.loans import run_window_offline


def test_the_demo_window_lands_twice_in_two_epochs(tmp_path, instance):
    settings = Settings(data_dir=tmp_path / "data")
    for window_number in (1, 2):
        window = run_window_offline(settings, instance, applications=60, max_batch_rows=50)
        assert window.success and window.topic == "loanApplications"
        sent = len(window.produced.messages)
        assert window.micro_batches == -(-sent // 50)
        assert window.bronze_rows == window_number * len(window.produced.events)
        assert window.dead_letters == window_number * window.produced.poison
        assert window.silver_rows == 60
    bronze = pl.read_delta(str(settings.table_path("bronze", "loan_applications")))
    assert (
        bronze.group_by("kafka_epoch").len().sort("kafka_epoch")["len"].to_list()
        == [len(window.produced.events)] * 2
    )
    silver = pl.read_delta(str(settings.table_path("silver", "loan_applications")))
    assert set(silver["kafka_epoch"]) == {1}
    got = {r["application_id"]: (r["status"], r["amount"]) for r in silver.iter_rows(named=True)}
    assert got == expected_silver(window.produced.events)
