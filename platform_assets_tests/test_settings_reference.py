"""The settings' one declaration: the reference, the environment reader, the file check and the secrets all
come from the fields of Settings."""

from __future__ import annotations

import pytest
import yaml

from platform_assets.cli import settings_reference
from platform_assets.settings import (
    SECRET_VARIABLES,
    SETTINGS,
    VARIABLES,
    Settings,
    SettingsError,
    environment_values,
    load_settings,
)


def test_the_committed_reference_is_what_the_declaration_gives():
    committed = settings_reference.REFERENCE.read_text()
    assert committed == settings_reference.reference(), (
        "docs/settings.md is out of date: run python -m platform_assets.cli.settings_reference"
    )


def test_the_reference_has_one_row_per_declared_setting_saying_where_it_may_be_set():
    rows = {
        line.split("|")[1].strip(" `"): [cell.strip() for cell in line.split("|")[2:-1]]
        for line in settings_reference.reference().splitlines()
        if line.startswith("| `PLATFORM_")
    }
    assert list(rows) == ["PLATFORM_CONFIG_DIR", *VARIABLES]
    assert rows["PLATFORM_BATCH_SIZE"] == [
        "yes",
        "integer ≥ 1",
        "`100000`",
        "Rows per Arrow batch read from the source (memory is bounded by this, not by table size).",
    ]
    assert rows["PLATFORM_ALERT_WEBHOOK_URL"][:3] == [
        "no (secret)",
        "http(s) URL",
        "(none: alerts are logged)",
    ]
    assert rows["PLATFORM_AUDIT_URL"][0] == "without a password (secret)"
    assert rows["PLATFORM_TRADES_SCHEDULE"][1:3] == ["cron (5 fields)", "`0 0 * * *`"]
    assert rows["PLATFORM_ENGINE"][1] == "one of polars, spark"
    assert all(rows[v][0].endswith("(secret)") for v in SECRET_VARIABLES)
    assert all(s.description for s in SETTINGS.values())


def test_the_check_fails_on_a_stale_file_and_passes_once_it_is_written(tmp_path, capsys):
    output = tmp_path / "docs" / "settings.md"
    assert settings_reference.main(["--check", "--output", str(output)]) == 1
    output.parent.mkdir()
    output.write_text("# Settings\n")
    assert settings_reference.main(["--check", "--output", str(output)]) == 1
    assert "is out of date" in capsys.readouterr().err
    assert settings_reference.main(["--output", str(output)]) == 0
    assert settings_reference.main(["--check", "--output", str(output)]) == 0
    assert output.read_text() == settings_reference.reference()


def test_every_declared_variable_is_read_and_nothing_else():
    environ = {variable: f"value of {variable}" for variable in VARIABLES}
    environ |= {"PLATFORM_LAKE_DIR": "typo", "platform_batch_size": "lower case", "PLATFORM_LATE_DAYS": ""}
    found = environment_values(environ)
    assert set(found) == set(SETTINGS) - {"late_days"}  # "" counts as unset
    assert found["batch_size"] == "value of PLATFORM_BATCH_SIZE"


# a valid value per secret setting, each holding the marker
MARKED = {
    "source_url": "sqlite:///m4rker-source.db",
    "audit_url": "sqlite:///m4rker-audit.db",
    "state_url": "sqlite:///m4rker-state.db",
    "serving_url": "sqlite:///m4rker-serving.db",
    "alert_webhook_url": "https://hooks.example/m4rker",
    "kafka_config": '{"sasl.password": "m4rker"}',
    "spark_remote": "sc://spark.example:15002/;token=m4rker",
    "spark_conf": {"spark.hadoop.fs.s3a.secret.key": "m4rker"},
}


def test_every_secret_is_kept_out_of_repr(tmp_path):
    assert set(MARKED) == {name for name, s in SETTINGS.items() if s.var.secret}
    settings = Settings(data_dir=tmp_path, **MARKED)
    assert settings.kafka_config == MARKED["kafka_config"]
    assert "m4rker" not in repr(settings)


@pytest.mark.parametrize("name", sorted(n for n, s in SETTINGS.items() if not s.var.file and s.var.secret))
def test_a_file_may_not_set_an_environment_only_secret(tmp_path, name):
    folder = tmp_path / "config"
    folder.mkdir()
    (folder / "dev.yaml").write_text(yaml.safe_dump({"late_days": 2, name: "x"}, sort_keys=False))
    with pytest.raises(SettingsError) as info:
        load_settings({"PLATFORM_CONFIG_DIR": str(folder)})
    variable = SETTINGS[name].variable
    assert str(info.value) == (
        f"{folder / 'dev.yaml'}, line 2: {name} is a secret and comes only from the environment variable "
        f"{variable}"
    )


def test_values_built_in_code_and_replaced_are_checked_like_loaded_ones(tmp_path):
    from dataclasses import replace

    settings = Settings(data_dir=tmp_path, countries="Japan, Peru")
    assert settings.countries == ("Japan", "Peru")
    with pytest.raises(SettingsError) as info:
        replace(settings, trades_topic="a/b")
    assert str(info.value) == "PLATFORM_TRADES_TOPIC must be a Kafka topic name (letters, digits, '.', '_', '-'), got 'a/b'"  # fmt: skip
    with pytest.raises(SettingsError) as info:
        replace(settings, spark_remote="http://spark:15002/?token=s3cr3t")
    assert "s3cr3t" not in str(info.value)
