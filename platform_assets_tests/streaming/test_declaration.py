"""Stream declarations: streams.yaml read strictly, every error one line naming file, line and field."""

from __future__ import annotations

from pathlib import Path

import pytest

from platform_assets.core.errors import ConfigError
from platform_assets.core.streaming import load_streams, parse_streams
from platform_assets.core.streaming.declaration import STREAMS_FILE
from platform_assets_tests.streaming.conftest import METERS_YAML


def problem(text: str) -> str:
    with pytest.raises(ConfigError) as error:
        parse_streams(text, "streams.yaml")
    return str(error.value)


def test_the_package_declares_trades_and_loan_applications():
    streams = load_streams()
    assert list(streams) == ["trades", "loan_applications"]
    trades = streams["trades"]
    assert trades.decoder == "platform_assets.core.trades.landing:decode_trades"
    assert [(c.name, c.key, c.type) for c in trades.columns][4:6] == [
        ("trade_time", "trade_time_ms", "timestamp_ms"),
        ("event_time", "event_time_ms", "timestamp_ms"),
    ]
    assert streams["loan_applications"].decoder == "json"
    # The trade stream's app id follows its topic (PLATFORM_TRADES_TOPIC), as its Dagster resource's does.
    assert (trades.app_id_for(), trades.app_id_for("t2")) == ("trades:trades", "trades:t2")
    assert streams["loan_applications"].app_id_for("other") == "bronze_loan_applications"


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("type: decimal}", "type: money}", "line 7: streams.0.columns.1.type must be one of 'string', "),
        ("    app_id: bronze_meters\n", "", "line 2: streams.0.app_id is required"),
        ("topic: meters", "topic: two words", "line 3: streams.0.topic must be a Kafka topic name"),
        (
            "app_id: bronze_meters",
            "app_id: bronze meters",
            "line 13: streams.0.app_id must be letters, digits",
        ),
        (
            "max_batch_rows: 50",
            "max_batch_rows: '50'",
            "line 14: streams.0.max_batch_rows input should be a valid integer",
        ),
        ("max_batch_rows: 50", "max_batch_rows: 0", "line 14: streams.0.max_batch_rows "),
        ("check: not_empty}", "check: one_of}", "line 10: streams.0.rules.0 needs a non-empty 'values' list"),
        (
            "column: meter,",
            "column: metre,",
            "line 2: streams.0 has a rule on 'metre', which is not a declared",
        ),
        (
            "dedupe_key: [meter]",
            "dedupe_key: [meter]\n    colour: red",
            "line 9: streams.0.colour is not a known field",
        ),
        (
            "name: reading,",
            "name: kafka_offset,",
            "line 7: streams.0.columns.1.name is a column landing adds itself",
        ),
        ("decoder", "decoder", None),
        (
            "bronze/meters\n",
            "bronze/meters\n    decoder: not a function\n",
            "line 12: streams.0.decoder must be 'json' or",
        ),
        (
            "    key: meter\n",
            "    key: meter\n    key: reading\n",
            "line 5: duplicate key 'key' (first on line 4)",
        ),
    ],
)
def test_an_invalid_declaration_names_file_line_and_field(old, new, expected):
    text = METERS_YAML.replace(old, new, 1)
    if expected is None:
        assert parse_streams(text, "streams.yaml")["meters"].decoder == "json"
        return
    assert text != METERS_YAML
    message = problem(text)
    assert message.startswith(f"streams.yaml, {expected}"), message
    assert "\n" not in message


def test_two_streams_may_not_share_an_app_id_or_a_table():
    second = METERS_YAML.split("streams:\n", 1)[1].replace("name: meters", "name: meters_copy")
    message = problem(METERS_YAML + second)
    assert message == "streams.yaml, line 26: streams.1.app_id is 'bronze_meters' like streams.0's"


def test_a_missing_file_and_an_unknown_decoder_are_configuration_errors(tmp_path: Path):
    with pytest.raises(ConfigError, match="does not exist"):
        load_streams(tmp_path / "none.yaml")
    from platform_assets.core.streaming.decoding import resolve_decoder

    with pytest.raises(ConfigError, match="cannot be loaded"):
        resolve_decoder("platform_assets.core.streaming:no_such_decoder")
    assert STREAMS_FILE.name == "streams.yaml" and STREAMS_FILE.exists()


def test_the_trade_settings_default_to_the_trade_declaration(tmp_path: Path):
    from platform_assets.settings import load_settings

    trades = load_streams()["trades"]
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path)})
    assert (settings.trades_topic, settings.trades_max_batch_rows, settings.trades_allowed_latency) == (
        trades.topic,
        trades.max_batch_rows,
        trades.allowed_latency,
    )


def test_the_loan_topic_setting_defaults_to_the_loan_declaration_and_reaches_the_resource(tmp_path: Path):
    from platform_assets.defs.loans.resources import loan_resources
    from platform_assets.settings import load_settings

    loans = load_streams()["loan_applications"]
    settings = load_settings({"PLATFORM_DATA_DIR": str(tmp_path)})
    assert settings.loan_topic == loans.topic == "loanApplications"
    moved = load_settings({"PLATFORM_DATA_DIR": str(tmp_path), "PLATFORM_LOAN_TOPIC": "loans.v2"})
    assert loan_resources(moved)["loan_stream"].topic == "loans.v2"
