"""Settings: the one place that reads the environment."""

from __future__ import annotations

import os
import subprocess
import sys
import traceback
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetKey, build_schedule_context

from platform_assets.definitions import build_definitions
from platform_assets.settings import DEFAULT_COUNTRIES, Settings, SettingsError, load_settings


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
        ("PLATFORM_ENV", "qa", "PLATFORM_ENV must be one of dev, sit, prod, got 'qa'"),
        (
            "PLATFORM_PARTITION_START",
            "01/02/2024",
            "PLATFORM_PARTITION_START must be a date like 2024-01-01 (YYYY-MM-DD), got '01/02/2024'",
        ),
        (
            "PLATFORM_CUSTOMER_THRESHOLD",
            "many",
            "PLATFORM_CUSTOMER_THRESHOLD must be an integer of 0 or more, got 'many'",
        ),
        (
            "PLATFORM_PRODUCT_THRESHOLD",
            "-1",
            "PLATFORM_PRODUCT_THRESHOLD must be an integer of 0 or more, got -1",
        ),
        ("PLATFORM_BATCH_SIZE", "abc", "PLATFORM_BATCH_SIZE must be an integer of 1 or more, got 'abc'"),
        ("PLATFORM_BATCH_SIZE", "0", "PLATFORM_BATCH_SIZE must be an integer of 1 or more, got 0"),
        ("PLATFORM_BATCH_SIZE", "-500", "PLATFORM_BATCH_SIZE must be an integer of 1 or more, got -500"),
        (
            "PLATFORM_MAX_CONCURRENT_TABLES",
            "0",
            "PLATFORM_MAX_CONCURRENT_TABLES must be an integer of 1 or more, got 0",
        ),
        (
            "PLATFORM_MAX_CONCURRENT_TABLES",
            "2.5",
            "PLATFORM_MAX_CONCURRENT_TABLES must be an integer of 1 or more, got '2.5'",
        ),
        ("PLATFORM_LATE_DAYS", "-1", "PLATFORM_LATE_DAYS must be an integer of 0 or more, got -1"),
        (
            "PLATFORM_COUNTRIES",
            " , ",
            "PLATFORM_COUNTRIES must be a comma-separated list of names like India,Japan, got ' , '",
        ),
        ("PLATFORM_COUNTRIES", "India,Japan,India", "PLATFORM_COUNTRIES names 'India' twice"),
        (
            "PLATFORM_PARTITION_START",
            "2025-02-30",
            "PLATFORM_PARTITION_START must be a date like 2024-01-01 (YYYY-MM-DD), got '2025-02-30' "
            "(day is out of range for month)",
        ),
        (
            "PLATFORM_PARTITION_START",
            "20250101",
            "PLATFORM_PARTITION_START must be a date like 2024-01-01 (YYYY-MM-DD), got '20250101'",
        ),
        # cron values are checked for range, not only for their five fields
        (
            "PLATFORM_MEDALLION_SCHEDULE",
            "99 99 * * *",
            "PLATFORM_MEDALLION_SCHEDULE must be a cron expression like '0 2 * * *' (five fields: minute 0-59, "
            "hour 0-23, day 1-31, month 1-12, weekday 0-6), got '99 99 * * *'",
        ),
        (
            "PLATFORM_COUNTRIES_SCHEDULE",
            "0 0,12 * * 9",
            "PLATFORM_COUNTRIES_SCHEDULE must be a cron expression like '0 2 * * *' (five fields: minute 0-59, "
            "hour 0-23, day 1-31, month 1-12, weekday 0-6), got '0 0,12 * * 9'",
        ),
        (
            "PLATFORM_COUNTRY_API_URL",
            "restcountries.com/v3.1",
            "PLATFORM_COUNTRY_API_URL must be an http:// or https:// URL; got 'restcountries.com/v3.1'",
        ),
        (
            "PLATFORM_UI_URL",
            "localhost:3000",
            "PLATFORM_UI_URL must be an http:// or https:// URL; got 'localhost:3000'",
        ),
        # a value that spans lines or pages is escaped and cut: the message stays one readable line
        (
            "PLATFORM_ENV",
            "prod\n" + "x" * 200,
            f"PLATFORM_ENV must be one of dev, sit, prod, got 'prod\\n{'x' * 49}...'",
        ),
    ],
)
def test_bad_values_are_rejected_in_one_line_naming_variable_value_and_what_is_allowed(name, value, message):
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert str(info.value) == message
    assert "\n" not in str(info.value)


SECRET = "s3cr3t-pa55"


@pytest.mark.parametrize(
    ("name", "value", "message"),
    [
        (
            "PLATFORM_SOURCE_URL",
            f"postgres://admin:{SECRET}@db.internal:5432/source?x=%zz%",
            "PLATFORM_SOURCE_URL names an unknown database dialect 'postgres'; expected one of sqlite, "
            "postgresql+psycopg, mysql+pymysql, mssql+pyodbc (the rest of the value is not shown)",
        ),
        (
            "PLATFORM_AUDIT_URL",
            f"admin:{SECRET}@db.internal/audit",
            "PLATFORM_AUDIT_URL is not a SQLAlchemy URL (expected dialect+driver://user:password@host/database, "
            "e.g. sqlite:///data/source.db); its value is not shown as it may hold a password",
        ),
        (
            "PLATFORM_STATE_URL",
            f"postgresql+nodriver://admin:{SECRET}@db.internal/state",
            "PLATFORM_STATE_URL names an unknown database dialect 'postgresql+nodriver'; expected one of sqlite, "
            "postgresql+psycopg, mysql+pymysql, mssql+pyodbc (the rest of the value is not shown)",
        ),
        (
            "PLATFORM_ALERT_WEBHOOK_URL",
            f"hooks.example.com/T0/{SECRET}",
            "PLATFORM_ALERT_WEBHOOK_URL must be an http:// or https:// URL; its value is not shown as it is a secret",
        ),
    ],
)
def test_bad_secrets_are_rejected_without_showing_their_value(name, value, message):
    with pytest.raises(SettingsError) as info:
        load_settings({name: value})
    assert str(info.value) == message
    # not in the traceback either (a chained parser error would repeat the URL)
    assert SECRET not in "".join(traceback.format_exception(info.value))


def test_valid_urls_are_kept_as_given(tmp_path):
    settings = load_settings(
        {
            "PLATFORM_DATA_DIR": str(tmp_path),
            "PLATFORM_SOURCE_URL": "postgresql+psycopg://postgres@127.0.0.1:5432/test",
            "PLATFORM_AUDIT_URL": "mysql+pymysql://root@127.0.0.1:3306/audit",
            "PLATFORM_ALERT_WEBHOOK_URL": "https://hooks.example.com/T0/abc",
            "PLATFORM_UI_URL": "http://dagster.internal:3000/",
        }
    )
    assert settings.source_url == "postgresql+psycopg://postgres@127.0.0.1:5432/test"
    assert settings.audit_url == "mysql+pymysql://root@127.0.0.1:3306/audit"
    assert settings.alert_webhook_url == "https://hooks.example.com/T0/abc"
    assert settings.ui_url == "http://dagster.internal:3000"
    assert settings.max_concurrent_tables == 4 and settings.batch_size == 100_000


def test_settings_built_in_code_follow_the_same_rules(tmp_path):
    with pytest.raises(SettingsError) as info:
        Settings(data_dir=tmp_path, max_concurrent_tables=0)
    assert str(info.value) == "PLATFORM_MAX_CONCURRENT_TABLES must be an integer of 1 or more, got 0"


def audit_setup(tmp_path: Path, *args: str, **environ: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "platform_assets.cli.audit_setup", *args],
        env={"PATH": os.environ["PATH"], "PLATFORM_DATA_DIR": str(tmp_path), **environ},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


@pytest.mark.parametrize(
    ("environ", "args", "message"),
    [
        (
            {"PLATFORM_BATCH_SIZE": "abc"},
            (),
            "PLATFORM_BATCH_SIZE must be an integer of 1 or more, got 'abc'",
        ),
        ({"PLATFORM_ENV": "qa"}, (), "PLATFORM_ENV must be one of dev, sit, prod, got 'qa'"),
        (
            {"PLATFORM_AUDIT_URL": f"audit-db:{SECRET}"},
            (),
            "PLATFORM_AUDIT_URL is not a SQLAlchemy URL (expected dialect+driver://user:password@host/database, "
            "e.g. sqlite:///data/source.db); its value is not shown as it may hold a password",
        ),
        (
            {},
            ("--url", f"audit-db:{SECRET}"),
            "--url is not a SQLAlchemy URL (expected dialect+driver://user:password@host/database, "
            "e.g. sqlite:///data/source.db); its value is not shown as it may hold a password",
        ),
    ],
)
def test_audit_setup_reports_a_bad_setting_in_one_line_and_exits_2(tmp_path, environ, args, message):
    done = audit_setup(tmp_path, *args, **environ)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"error: {message}\n")


def test_audit_setup_with_good_settings_creates_the_tables(tmp_path):
    done = audit_setup(tmp_path)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].startswith("audit schema version ")
    assert done.stdout.splitlines()[0].endswith(f"at sqlite:///{tmp_path / 'audit.db'}")
    assert "  Job_Metadata" in done.stdout.splitlines()


def test_secrets_set_in_the_environment_are_remembered_not_shown(tmp_path):
    settings = load_settings(
        {
            "PLATFORM_DATA_DIR": str(tmp_path),
            "PLATFORM_ALERT_WEBHOOK_URL": "http://127.0.0.1:9/hook?sig=s1g-v4lue",
        }
    )
    assert "PLATFORM_ALERT_WEBHOOK_URL" in settings.secrets_in_environment
    assert "s1g-v4lue" not in repr(settings)


def test_configured_countries_become_the_partitions(tmp_path):
    settings = load_settings(
        {"PLATFORM_DATA_DIR": str(tmp_path), "PLATFORM_COUNTRIES": "India, Japan ,Brazil"}
    )
    assert settings.countries == ("India", "Japan", "Brazil")
    defs = build_definitions(settings)
    partitions = defs.resolve_asset_graph().get(AssetKey(["raw", "countries"])).partitions_def
    assert partitions.get_partition_keys() == ["India", "Japan", "Brazil"]
    schedule = defs.resolve_schedule_def("countries_twice_daily")
    request = next(iter(schedule.evaluate_tick(build_schedule_context()).run_requests))
    assert request.tags["dagster/asset_partition_range_start"] == "India"
    assert request.tags["dagster/asset_partition_range_end"] == "Brazil"


def test_trade_stream_settings():
    defaults = load_settings({})
    assert (defaults.kafka_bootstrap, defaults.kafka_config, defaults.trades_topic) == (None, None, "trades")
    secret = '{"sasl.password": "s3cr3t"}'
    settings = load_settings(
        {
            "PLATFORM_KAFKA_BOOTSTRAP": "127.0.0.1:9092",
            "PLATFORM_KAFKA_CONFIG": secret,
            "PLATFORM_TRADES_TOPIC": "ticks",
            "PLATFORM_TRADES_WS_URL": "ws://127.0.0.1:8766",
        }
    )
    assert (settings.kafka_bootstrap, settings.kafka_config) == ("127.0.0.1:9092", secret)
    assert (settings.trades_topic, settings.trades_ws_url) == ("ticks", "ws://127.0.0.1:8766")
    assert "s3cr3t" not in repr(settings)
    assert "PLATFORM_KAFKA_CONFIG" in settings.secrets_in_environment


@pytest.mark.parametrize(
    "cron", ["0 2 * * *", "*/15 6-18 * * MON-FRI", "30 3 1,15 * *", "0 0 L * *", "0 12 * JAN 0"]
)
def test_valid_crons_are_accepted(cron):
    assert load_settings({"PLATFORM_MEDALLION_SCHEDULE": cron}).medallion_schedule == cron


def test_the_schedules_taken_as_valid_without_a_check_are_valid():
    from dagster._utils.schedules import is_valid_cron_string

    from platform_assets.settings import _KNOWN_GOOD_CRONS, Settings

    shipped = {Settings.medallion_schedule, Settings.countries_schedule, Settings.trades_schedule}
    assert shipped == _KNOWN_GOOD_CRONS
    assert all(is_valid_cron_string(cron) for cron in _KNOWN_GOOD_CRONS)


def test_the_trade_feed_schedule_comes_from_the_settings(tmp_path):
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "PLATFORM_TRADES_SCHEDULE": "30 1 * * *"})
    schedule = build_definitions(settings).resolve_schedule_def("trades_feed_daily")
    assert (schedule.cron_schedule, schedule.execution_timezone) == ("30 1 * * *", "UTC")
    assert load_settings({}).trades_schedule == "0 0 * * *"
    with pytest.raises(SettingsError) as info:
        load_settings({"PLATFORM_TRADES_SCHEDULE": "daily"})
    assert str(info.value).startswith("PLATFORM_TRADES_SCHEDULE must be a cron expression like '0 2 * * *'")


def test_secrets_reach_resources_as_environment_references_only_when_the_environment_set_them(tmp_path):
    from dagster import EnvVar

    from platform_assets.lib.resources import secret

    settings = load_settings(
        {
            "PLATFORM_DATA_DIR": str(tmp_path),
            "PLATFORM_AUDIT_URL": f"sqlite:///{tmp_path / 'a.db'}",
            "PLATFORM_KAFKA_CONFIG": '{"sasl.password": "x"}',
        }
    )
    for name, variable in (("audit_url", "PLATFORM_AUDIT_URL"), ("kafka_config", "PLATFORM_KAFKA_CONFIG")):
        value = secret(settings, name)
        assert isinstance(value, EnvVar) and value.env_var_name == variable
    default = secret(settings, "source_url")  # not set: the data folder's file, as it is
    assert not isinstance(default, EnvVar) and default == f"sqlite:///{tmp_path / 'source.db'}"
    assert secret(settings, "alert_webhook_url") is None
    with pytest.raises(ValueError, match="batch_size is not declared a secret"):
        secret(settings, "batch_size")
