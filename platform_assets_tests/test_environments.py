"""Environments: config/<env>.yaml under the environment variables, secrets only from the environment, and
each environment (catalog) in its own data folder, so a dev run never touches sit."""

from __future__ import annotations

import os
import re
import subprocess
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance

from platform_assets.definitions import build_definitions
from platform_assets.defs.medallion.jobs import SCHEDULE_NAME
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.lib.resources import build_resources
from platform_assets.settings import CONFIG_DIR, ENVIRONMENTS, SettingsError, load_settings
from platform_assets_tests.conftest import tables_file_for
from platform_devkit import sample
from platform_devkit.medallion import materialize_medallion

REPO = Path(__file__).resolve().parents[1]


def config_dir(tmp_path: Path, **files: dict) -> Path:
    folder = tmp_path / "config"
    folder.mkdir(exist_ok=True)
    for env, values in files.items():
        (folder / f"{env}.yaml").write_text(yaml.safe_dump(values))
    return folder


def test_file_values_sit_between_the_defaults_and_the_environment(tmp_path):
    folder = config_dir(tmp_path, sit={"data_dir": str(tmp_path / "sit"), "late_days": 3, "batch_size": 500})
    base = {"PLATFORM_CONFIG_DIR": str(folder), "PLATFORM_ENV": "sit"}
    settings = load_settings(base)
    assert (settings.data_dir, settings.late_days, settings.batch_size) == (tmp_path / "sit", 3, 500)
    assert settings.customer_threshold == 500  # not in the file: the built-in default
    assert settings.config_file == folder / "sit.yaml"
    overridden = load_settings({**base, "PLATFORM_LATE_DAYS": "5", "PLATFORM_BATCH_SIZE": ""})
    assert (overridden.late_days, overridden.batch_size) == (5, 500)  # a variable wins; "" counts as unset
    with pytest.raises(SettingsError, match="PLATFORM_LATE_DAYS must be an integer of 0 or more, got -2"):
        load_settings({**base, "PLATFORM_LATE_DAYS": "-2"})


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"alert_webhook_url": "https://hooks.example/T0/abc"}, "alert_webhook_url is a secret and comes only "
         "from the environment variable PLATFORM_ALERT_WEBHOOK_URL"),
        ({"spark_conf": {"spark.hadoop.fs.s3a.secret.key": "x"}}, "spark_conf is a secret"),
        ({"audit_url": "postgresql+psycopg://u:hunter2@db/audit"}, "audit_url holds a password; set "
         "PLATFORM_AUDIT_URL in the environment instead"),
        ({"lake_dir": "x"}, "unknown setting 'lake_dir'"),
        ({"env": "prod"}, "unknown setting 'env'"),
        ({"late_days": None}, "late_days must be a text, number or list, got None"),
        ({"late_days": "many"}, "dev.yaml, line 1: late_days must be an integer of 0 or more, got 'many'"),
    ],
)  # fmt: skip
def test_a_bad_file_is_refused_in_one_line_that_never_shows_a_secret(tmp_path, values, message):
    folder = config_dir(tmp_path, dev=values)
    with pytest.raises(SettingsError, match=re.escape(message)) as error:
        load_settings({"PLATFORM_CONFIG_DIR": str(folder)})
    text = str(error.value)
    assert "\n" not in text and "hunter2" not in text and "abc" not in text.split(":", 1)[-1]


def test_unreadable_or_missing_files_are_clear(tmp_path):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "dev.yaml").write_text("late_days: [1\n")
    with pytest.raises(SettingsError, match=r"dev.yaml, line 2, column 1: not valid YAML: expected ','"):
        load_settings({"PLATFORM_CONFIG_DIR": str(folder)})
    with pytest.raises(SettingsError, match="has no sit.yaml for PLATFORM_ENV=sit"):
        load_settings({"PLATFORM_CONFIG_DIR": str(folder), "PLATFORM_ENV": "sit"})


def test_a_password_free_database_url_may_be_in_a_file_and_is_not_treated_as_a_secret(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    folder = config_dir(tmp_path, dev={"audit_url": url})
    settings = load_settings({"PLATFORM_CONFIG_DIR": str(folder)})
    assert settings.audit_url == url
    assert "PLATFORM_AUDIT_URL" not in settings.secrets_in_environment


def test_the_shipped_environments_have_their_own_data_folders():
    folders = {}
    for env in ENVIRONMENTS:
        settings = load_settings({"PLATFORM_ENV": env})
        assert settings.config_file == CONFIG_DIR / f"{env}.yaml"
        assert settings.lake_root.name == env
        folders[env] = settings.data_dir
        assert settings.audit_url == f"sqlite:///{settings.data_dir / 'audit.db'}"
    data = Path("data").resolve()  # dev keeps the contract's default layout; the others a folder of their own
    assert folders == {"dev": data, "sit": data / "sit", "prod": data / "prod"}


def test_every_lake_asset_shows_its_three_part_name_and_location(tmp_path):
    settings = load_settings({"PLATFORM_ENV": "sit", "PLATFORM_DATA_DIR": str(tmp_path)})
    graph = build_definitions(settings).resolve_asset_graph()
    named = {}
    for key in graph.get_all_asset_keys():
        metadata = graph.get(key).metadata
        if key.path[0] in ("kafka", "reports"):  # a topic, a report (kept by the IO manager): not lake tables
            assert "dagster/table_name" not in metadata
            continue
        named[key.to_user_string()] = metadata["dagster/table_name"]
        layer, table = key.path
        assert metadata["dagster/uri"] == str(tmp_path / "lake" / "sit" / layer / table)
    assert named["silver/dimuser"] == "sit.silver.dimuser"
    assert named["raw/countries"] == "sit.raw.countries"
    assert named["silver/trades_enriched"] == "sit.silver.trades_enriched"
    assert all(name == "sit." + key.replace("/", ".") for key, name in named.items())


def test_a_dev_run_leaves_sit_untouched(tmp_path, sqlite_source):
    tables = tables_file_for(tmp_path, None)
    common = {"source_url": sqlite_source.url, "tables_file": str(tables), "partition_start": "2025-01-01"}
    folder = config_dir(
        tmp_path,
        dev={**common, "data_dir": str(tmp_path / "data")},
        sit={**common, "data_dir": str(tmp_path / "data" / "sit")},
    )
    dev = load_settings({"PLATFORM_CONFIG_DIR": str(folder), "PLATFORM_ENV": "dev"})
    sit = load_settings({"PLATFORM_CONFIG_DIR": str(folder), "PLATFORM_ENV": "sit"})
    sample.init(sqlite_source.url, scale=1, seed=3, days=2, end=date(2025, 1, 3))

    def run(settings) -> None:  # the medallion, then the audit sensor's tick (each env has its own instance)
        instance = DagsterInstance.ephemeral()
        assert materialize_medallion(settings, instance=instance, log_level="ERROR").success
        audit_tick(instance, build_resources(settings)["audit"], None, log=lambda _: None)

    run(dev)
    assert (tmp_path / "data" / "lake" / "dev" / "gold" / "dimuser" / "_delta_log").is_dir()
    assert not (tmp_path / "data" / "sit").exists()

    run(sit)
    for settings in (dev, sit):
        with sa.create_engine(settings.audit_url).connect() as connection:
            jobs = connection.execute(sa.text('SELECT COUNT(*) FROM "Job_Metadata"')).scalar_one()
            names = connection.execute(sa.text('SELECT DISTINCT table_name FROM "Task_Metadata"')).scalars()
            names = set(names)
        assert jobs == 2  # each environment audited its own two runs only
        layers = ("bronze", "silver", "gold")
        tables = ("dimuser", "dimartist", "dimtrack", "dimdate", "factstream")
        assert names == {f"{settings.env}.{layer}.{table}" for layer in layers for table in tables}
    assert sorted(p.name for p in (tmp_path / "data" / "lake").iterdir()) == ["dev"]
    assert sorted(p.name for p in (tmp_path / "data" / "sit" / "lake").iterdir()) == ["sit"]


def test_make_clean_refuses_prod_without_force(tmp_path):
    data = tmp_path / "prod"
    table = data / "lake" / "prod" / "gold" / "dimuser"
    table.mkdir(parents=True)
    (data / "audit.db").write_text("")
    env = {**os.environ, "DAGSTER_HOME": str(data / "dagster_home"), "PLATFORM_DATA_DIR": str(data)}
    env.pop("MAKEFLAGS", None)

    def clean(*args: str) -> subprocess.CompletedProcess:
        command = ["make", "-s", "-C", str(REPO), "clean", "ENV=prod", *args]
        return subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)

    refused = clean()
    assert refused.returncode == 2
    assert "refusing to delete prod's data" in refused.stderr and "FORCE=1" in refused.stderr
    assert table.is_dir() and (data / "audit.db").exists()
    assert clean("FORCE=1").returncode == 0
    assert not (data / "lake").exists() and not (data / "audit.db").exists()


def test_schedules_come_from_the_configuration(tmp_path):
    folder = config_dir(tmp_path, sit={"data_dir": str(tmp_path), "medallion_schedule": "30 3 * * *"})
    settings = load_settings({"PLATFORM_CONFIG_DIR": str(folder), "PLATFORM_ENV": "sit"})
    schedules = {s.name: s for s in build_definitions(settings).schedules}
    assert schedules[SCHEDULE_NAME].cron_schedule == "30 3 * * *"
    assert schedules["countries_twice_daily"].cron_schedule == "0 0,12 * * *"  # the default
    with pytest.raises(
        SettingsError, match=r"PLATFORM_COUNTRIES_SCHEDULE must be a cron expression .* got 'noon'"
    ):
        load_settings(
            {"PLATFORM_CONFIG_DIR": str(folder), "PLATFORM_ENV": "sit", "PLATFORM_COUNTRIES_SCHEDULE": "noon"}
        )


# ----------------------------------------------------------------------------------------------------
# what a configuration file may not say: each refused in one line naming the file, the line and the setting


def write_config(tmp_path: Path, text: str) -> tuple[dict[str, str], Path]:
    """A config folder whose dev.yaml is ``text`` as written (yaml.safe_dump could not write a duplicate
    key), the environment that selects it, and the file's path."""
    folder = tmp_path / "config"
    folder.mkdir(exist_ok=True)
    (folder / "dev.yaml").write_text(text)
    return {"PLATFORM_CONFIG_DIR": str(folder), "PLATFORM_DATA_DIR": str(tmp_path)}, folder / "dev.yaml"


def refusal(environ: dict[str, str]) -> str:
    with pytest.raises(SettingsError) as error:
        load_settings(environ)
    assert "\n" not in str(error.value)
    return str(error.value)


CRON = "must be a cron expression like '0 2 * * *' (five fields: minute 0-59, hour 0-23, day 1-31, month 1-12, weekday 0-6)"  # fmt: skip
DATE = "must be a date like 2024-01-01 (YYYY-MM-DD)"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        # a key given twice: PyYAML would keep the last one without a word
        ("late_days: 1\nbatch_size: 500\nlate_days: 3\n", "line 3: duplicate key 'late_days' (first on line 1)"),
        ("data_dir: data\n# prod's\ndata_dir: data/prod\n", "line 3: duplicate key 'data_dir' (first on line 1)"),
        # an empty list of countries would fall back to the default five
        ("late_days: 1\ncountries: []\n", "line 2: countries is an empty list; give at least one value, or "
         "leave countries out for the default"),
        ("countries: ''\n", "line 1: countries is empty; leave countries out for the default"),
        ("countries: [India, null]\n", "line 1: countries: item 2 must be a non-empty text or number, got None"),
        ("countries: [India, Japan, India]\n", "line 1: countries names 'India' twice"),
        ("countries: ['Korea, Republic of']\n", "line 1: countries: item 1 holds a comma, which separates the values"),
        ("source_schema: ' '\n", "line 1: source_schema is empty; leave source_schema out for the default"),
        # every cron is checked the way Dagster reads it, not only for its five fields
        ("medallion_schedule: '99 99 * * *'\n", f"line 1: medallion_schedule {CRON}, got '99 99 * * *'"),
        ("countries_schedule: '0 24 * * *'\n", f"line 1: countries_schedule {CRON}, got '0 24 * * *'"),
        ("medallion_schedule: '0 2 30 2 *'\n", f"line 1: medallion_schedule {CRON}, got '0 2 30 2 *'"),
        # a date that is not a day of the calendar: one line, not a traceback from the YAML parser
        ("late_days: 1\npartition_start: 2025-13-01\n",
         f"line 2: partition_start {DATE}, got '2025-13-01' (month must be in 1..12)"),
        ("partition_start: 2025-02-30\n",
         f"line 1: partition_start {DATE}, got '2025-02-30' (day is out of range for month)"),
        ("partition_start: 1st of May\n", f"line 1: partition_start {DATE}, got '1st of May'"),
        # a bad value is blamed on the file's line, not on a variable nobody set
        ("late_days: 1\nbatch_size: abc\n", "line 2: batch_size must be an integer of 1 or more, got 'abc'"),
        ("batch_size: 0\n", "line 1: batch_size must be an integer of 1 or more, got 0"),
        ("max_concurrent_tables: 2.5\n", "line 1: max_concurrent_tables must be an integer of 1 or more, got '2.5'"),
        ("ui_url: localhost:3000\n", "line 1: ui_url must be an http:// or https:// URL; got 'localhost:3000'"),
        ("engine: duckdb\n", "line 1: engine must be one of polars, spark, got 'duckdb'"),
        ("trades_topic: a/b\n", "line 1: trades_topic must be a Kafka topic name (letters, digits, '.', '_', '-'), "
         "got 'a/b'"),
        ("trades_ws_url: http://127.0.0.1:1\n", "line 1: trades_ws_url must be a ws:// or wss:// URL, "
         "got 'http://127.0.0.1:1'"),
        ("source_url: nodialect://h/db\n", "line 1: source_url names an unknown database dialect 'nodialect'; "
         "expected one of sqlite, postgresql+psycopg, mysql+pymysql, mssql+pyodbc (the rest of the value is not shown)"),
    ],
)  # fmt: skip
def test_a_file_that_would_be_misread_is_refused_naming_file_line_and_setting(tmp_path, text, message):
    environ, path = write_config(tmp_path, text)
    assert refusal(environ) == f"{path}, {message}"


def test_a_bad_file_value_hidden_by_a_variable_is_still_refused(tmp_path):
    environ, path = write_config(tmp_path, "late_days: 1\nbatch_size: abc\n")
    message = refusal({**environ, "PLATFORM_BATCH_SIZE": "500"})
    assert message == f"{path}, line 2: batch_size must be an integer of 1 or more, got 'abc'"


def test_a_bad_variable_is_blamed_on_the_variable_even_beside_a_file(tmp_path):
    environ, _ = write_config(tmp_path, "late_days: 1\nbatch_size: 500\npartition_start: 2025-01-01\n")
    assert (
        refusal({**environ, "PLATFORM_BATCH_SIZE": "abc"})
        == "PLATFORM_BATCH_SIZE must be an integer of 1 or more, got 'abc'"
    )
    assert refusal({**environ, "PLATFORM_PARTITION_START": "2025-02-30"}) == (
        f"PLATFORM_PARTITION_START {DATE}, got '2025-02-30' (day is out of range for month)"
    )
    settings = load_settings(environ)  # the file alone is fine: unquoted dates are read as text, then checked
    assert (settings.batch_size, settings.partition_start) == (500, date(2025, 1, 1))


HUNTER = "hunter2-XYZ"


@pytest.mark.parametrize(
    ("key", "url", "where"),
    [
        ("source_url", f"postgresql+psycopg://etl:{HUNTER}@db.internal/source", "a password"),
        ("state_url", f"postgresql+psycopg://etl@db.internal/state?password={HUNTER}", "a credential in its query parameter 'password'"),
        ("audit_url", f"postgresql+psycopg://etl@db.internal/audit?sslmode=require&SSLPassword={HUNTER}",
         "a credential in its query parameter 'SSLPassword'"),
        ("serving_url", f"mysql+pymysql://etl@db/serving?passwd={HUNTER}", "a credential in its query parameter 'passwd'"),
        ("serving_url", f"mssql+pyodbc://?odbc_connect=DRIVER%3Dx%3BSERVER%3Ddb%3BPWD%3D{HUNTER}",
         "a credential ('PWD' in its query parameter 'odbc_connect')"),
        ("country_api_url", f"https://countries.example/v3.1?token={HUNTER}", "a credential in its query parameter 'token'"),
        ("country_api_url", f"https://countries.example/v3.1?Access_Token={HUNTER}",
         "a credential in its query parameter 'Access_Token'"),
        ("trades_lookup_url", f"https://api.example/exchangeInfo?API_KEY={HUNTER}", "a credential in its query parameter 'API_KEY'"),
        ("trades_lookup_url", f"https://api.example/exchangeInfo?x=1&secret={HUNTER}", "a credential in its query parameter 'secret'"),
        ("trades_lookup_url", f"https://api.example/exchangeInfo#access_token={HUNTER}",
         "a credential in its fragment parameter 'access_token'"),
        ("trades_ws_url", f"wss://feed:{HUNTER}@stream.example/ws", "a password"),
        ("trades_ws_url", f"wss://{HUNTER}@stream.example/ws", "a credential in its user part (user@host)"),
        ("ui_url", f"http://admin:{HUNTER}@dagster.internal:3000", "a password"),
        ("lake_url", f"s3://bucket/lake?aws_secret_access_key={HUNTER}", "a credential in its query parameter 'aws_secret_access_key'"),
        ("kafka_bootstrap", f"SASL_SSL://user:{HUNTER}@broker:9093", "a password"),
        ("country_api_url", f"countries.example/v3.1?apikey={HUNTER}", "a credential in its query parameter 'apikey'"),
        ("spark_master", f"sc://spark.internal:15002/;token={HUNTER}", "a credential in its path parameter 'token'"),
        ("country_api_url", f"https://proxy.example/?to=https%3A%2F%2Fu%3A{HUNTER}%40countries.example",
         "a password in the URL in its query parameter 'to'"),
    ],
)  # fmt: skip
def test_credentials_anywhere_in_a_url_in_a_file_are_refused_without_showing_them(tmp_path, key, url, where):
    environ, path = write_config(tmp_path, f"late_days: 1\n{key}: '{url}'\n")
    message = refusal(environ)
    variable = f"PLATFORM_{key.upper()}"
    assert message == f"{path}, line 2: {key} holds {where}; set {variable} in the environment instead"
    assert HUNTER not in message


def test_credentials_in_a_list_of_urls_are_refused_too(tmp_path):
    environ, path = write_config(
        tmp_path, f"kafka_bootstrap: [broker1:9092, 'SASL_SSL://u:{HUNTER}@b2:9093']\n"
    )
    message = refusal(environ)
    assert message == f"{path}, line 1: kafka_bootstrap holds a password; set PLATFORM_KAFKA_BOOTSTRAP in the environment instead"  # fmt: skip


def test_urls_without_credentials_may_be_in_a_file_and_secrets_may_come_from_the_environment(tmp_path):
    text = (
        "source_url: postgresql+psycopg://etl@127.0.0.1:5432/source?sslmode=require\n"
        "lake_url: abfss://container@account.dfs.core.windows.net/lake\n"
        "country_api_url: https://countries.example/v3.1?fields=name,capital\n"
        "kafka_bootstrap: [broker1:9092, broker2:9092]\n"
    )
    environ, _ = write_config(tmp_path, text)
    settings = load_settings(environ)
    assert settings.source_url == "postgresql+psycopg://etl@127.0.0.1:5432/source?sslmode=require"
    assert settings.lake_url == "abfss://container@account.dfs.core.windows.net/lake"
    assert settings.kafka_bootstrap == "broker1:9092,broker2:9092"
    secret_url = f"postgresql+psycopg://etl:{HUNTER}@127.0.0.1:5432/source?sslpassword={HUNTER}"
    from_environment = load_settings({**environ, "PLATFORM_SOURCE_URL": secret_url})
    assert from_environment.source_url == secret_url
    assert "PLATFORM_SOURCE_URL" in from_environment.secrets_in_environment
