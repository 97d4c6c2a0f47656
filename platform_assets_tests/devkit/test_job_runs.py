"""The dev kit's in-process runs go through the platform's named jobs, so the UI and the audit tables show
``medallion_job``, ``customer_job``, ``product_job`` and ``countries_job`` rather than
``__ephemeral_asset_job__``."""

from __future__ import annotations

from datetime import date, timedelta

from dagster import AssetKey

from platform_assets.core.medallion.config import load_tables
from platform_assets.defs.countries.assets import DEFAULT_COUNTRIES, RAW_KEY, SILVER_KEY
from platform_assets.defs.medallion.jobs import JOB_NAME as MEDALLION_JOB
from platform_assets.lib.tags import PARENT_RUN_TAG
from platform_assets.settings import Settings
from platform_assets_tests.conftest import settings_for
from platform_devkit import sample
from platform_devkit.countries import pull_countries_offline
from platform_devkit.customers import run_customer_flow
from platform_devkit.medallion import days_with_data, materialize_medallion


def job_name(instance, result) -> str:
    return instance.get_run_by_id(result.run_id).job_name


def test_medallion_runs_as_its_job_dimensions_then_one_backfill(tmp_path, sqlite_source, instance):
    settings = settings_for(tmp_path, sqlite_source)
    sample.init(sqlite_source.url, seed=7, days=2, end=date(2025, 1, 3))
    run = materialize_medallion(settings, instance=instance, raise_on_error=True)
    assert run.success and len(run.results) == 2
    assert [job_name(instance, r) for r in run.results] == [MEDALLION_JOB, MEDALLION_JOB]
    dimensions, backfill = run.results
    dimension_keys = {e.asset_key for e in dimensions.get_asset_materialization_events()}
    assert AssetKey(["gold", "dimuser"]) in dimension_keys
    fact_days = {
        e.materialization.partition
        for e in backfill.get_asset_materialization_events()
        if e.asset_key == AssetKey(["gold", "factstream"])
    }
    assert fact_days == {"2025-01-01", "2025-01-02"}
    passed, failed = run.checks()
    assert passed > 0 and failed == 0


def test_a_run_of_the_days_with_data_stops_at_yesterday_whose_partition_is_the_last(tmp_path, sqlite_source):
    """After ``sample advance`` the source holds today's streams, which have no partition until today
    ends: the medallion's run covers the sample's days up to yesterday."""
    settings = settings_for(tmp_path, sqlite_source)
    today = sample.today_utc()
    sample.init(sqlite_source.url, seed=7, days=3, end=today)
    fact = next(t for t in load_tables(settings.tables_file) if t.partitioned)
    assert days_with_data(settings, fact) == (today - timedelta(days=3), today - timedelta(days=1))
    sample.advance(sqlite_source.url, seed=7)  # today's streams
    assert days_with_data(settings, fact) == (today - timedelta(days=3), today - timedelta(days=1))
    sample.init(sqlite_source.url, seed=7, days=1, end=today + timedelta(days=1))  # only today's
    assert days_with_data(settings, fact) is None


def test_customer_flow_runs_customer_job_then_product_job(tmp_path, sqlite_source, instance):
    settings = settings_for(tmp_path, sqlite_source)
    sample.init(sqlite_source.url, seed=5, days=1, customers=650)
    flow = run_customer_flow(settings, instance)
    assert flow.parent.success and flow.customer_count == 650
    assert flow.child is not None and flow.child.success
    assert job_name(instance, flow.parent) == "customer_job"
    assert job_name(instance, flow.child) == "product_job"
    assert instance.get_run_by_id(flow.child.run_id).tags[PARENT_RUN_TAG] == flow.parent.run_id


def test_customer_flow_below_the_product_threshold_has_no_child(tmp_path, sqlite_source, instance):
    settings = settings_for(tmp_path, sqlite_source)
    sample.init(sqlite_source.url, seed=5, days=1, customers=550)
    flow = run_customer_flow(settings, instance)
    assert flow.parent.success and flow.customer_count == 550
    assert flow.child is None


def test_countries_pull_runs_countries_job_offline_for_every_country(tmp_path, instance):
    settings = Settings(data_dir=tmp_path / "data", country_api_url="http://127.0.0.1:9/unreachable")
    result = pull_countries_offline(settings, instance)
    assert result.success
    assert job_name(instance, result) == "countries_job"
    assert set(instance.get_materialized_partitions(RAW_KEY)) == set(DEFAULT_COUNTRIES)
    assert instance.get_latest_materialization_event(SILVER_KEY) is not None
