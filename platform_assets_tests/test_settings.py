"""Settings: the one place that reads the environment."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey, build_schedule_context

from platform_assets.definitions import build_definitions
from platform_assets.settings import DEFAULT_COUNTRIES, SettingsError, load_settings


def test_defaults_follow_the_contract(tmp_path):
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path)})
    assert settings.env == "dev"
    assert settings.source_url == f"sqlite:///{tmp_path / 'source.db'}"
    assert settings.audit_url == f"sqlite:///{tmp_path / 'audit.db'}"
    assert settings.partition_start == date(2024, 1, 1)
    assert settings.alert_webhook_url is None
    assert settings.country_api_url == "https://restcountries.com/v3.1"
    assert (settings.customer_threshold, settings.product_threshold) == (500, 600)
    assert settings.countries == DEFAULT_COUNTRIES
    assert settings.table_path("silver", "DimUser") == tmp_path / "lake" / "dev" / "silver" / "dimuser"


def test_environment_selects_the_catalog_folder(tmp_path):
    for env in ("dev", "sit", "prod"):
        settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "PLATFORM_ENV": env})
        assert settings.lake_root == Path(tmp_path) / "lake" / env


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        ("PLATFORM_ENV", "qa", "PLATFORM_ENV must be one of"),
        ("PLATFORM_PARTITION_START", "01/02/2024", "PLATFORM_PARTITION_START must be a date"),
        ("PLATFORM_CUSTOMER_THRESHOLD", "many", "PLATFORM_CUSTOMER_THRESHOLD must be an integer"),
        ("PLATFORM_BATCH_SIZE", "0", "PLATFORM_BATCH_SIZE must be positive"),
        ("PLATFORM_COUNTRIES", " , ", "PLATFORM_COUNTRIES must be a comma-separated list"),
    ],
)
def test_bad_values_are_rejected_with_the_variable_name(name, value, message):
    with pytest.raises(SettingsError, match=message):
        load_settings({name: value})


def test_secrets_set_in_the_environment_are_remembered_not_shown(tmp_path):
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path),
                              "PLATFORM_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook?sig=s1g-v4lue"})
    assert "PLATFORM_ALERT_WEBHOOK_URL" in settings.secrets_in_environment
    assert "s1g-v4lue" not in repr(settings)


def test_configured_countries_become_the_partitions(tmp_path):
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "PLATFORM_COUNTRIES": "India, Japan ,Brazil"})
    assert settings.countries == ("India", "Japan", "Brazil")
    defs = build_definitions(settings)
    partitions = defs.resolve_asset_graph().get(AssetKey(["raw", "countries"])).partitions_def
    assert partitions.get_partition_keys() == ["India", "Japan", "Brazil"]
    schedule = defs.resolve_schedule_def("countries_twice_daily")
    request = next(iter(schedule.evaluate_tick(build_schedule_context()).run_requests))
    assert request.tags["dagster/asset_partition_range_start"] == "India"
    assert request.tags["dagster/asset_partition_range_end"] == "Brazil"
