"""Environments: config/<env>.yaml under the environment variables, secrets only from the environment, and
each environment (catalog) in its own data folder, so a dev run never touches sit."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance

from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets.monitoring.audit import audit_tick
from platform_assets.settings import CONFIG_DIR, ENVIRONMENTS, SettingsError, load_settings
from platform_assets.spotify.jobs import SCHEDULE_NAME
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
        ({"late_days": "many"}, "PLATFORM_LATE_DAYS must be an integer of 0 or more, got 'many'"),
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
    with pytest.raises(SettingsError, match="dev.yaml is not valid YAML"):
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
        if key.path[0] == "kafka":  # a topic, not a lake table
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
    sample.init(sqlite_source.url, scale=1, seed=3, days=2)

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
