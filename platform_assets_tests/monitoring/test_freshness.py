"""Freshness: each asset's policy (defaults per layer, overrides from tables.yaml and streams.yaml) on the
code location's specs, and the alerts: a stale asset alerts once, and once more when it recovers. Time is
moved by the tests (``now`` for the core; Dagster's clock, frozen, for the sensor), never waited for."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml
from dagster import (
    AssetKey,
    AssetMaterialization,
    DagsterInstance,
    Definitions,
    build_sensor_context,
    instance_for_test,
)
from dagster._core.test_utils import freeze_time

from platform_assets.core.errors import ConfigError, ConfigurationError
from platform_assets.core.freshness import (
    DAILY,
    STREAMING,
    TWICE_DAILY,
    Deadline,
    Freshness,
    Observation,
    freshness_alerts,
    parse_freshness,
)
from platform_assets.core.medallion.config import parse_table
from platform_assets.core.streaming import declaration
from platform_assets.definitions import build_definitions
from platform_assets.defs.monitoring.freshness import freshness_sensor
from platform_assets.lib.freshness import from_policy
from platform_assets.lib.resources import AuditResource
from platform_assets.settings import Settings
from platform_assets_tests.receiver import Receiver

T0 = datetime(2026, 3, 2, 2, 30, tzinfo=UTC)
HOUR = timedelta(hours=1)
GOLD_DIMUSER = AssetKey(["gold", "dimuser"])
PACKAGE = Path(declaration.__file__).resolve().parents[2]


# --- the decision (core) ----------------------------------------------------------------------------


def test_a_stale_asset_alerts_once_and_recovers_once():
    policy = Freshness(timedelta(hours=26))
    said: dict[str, str] = {}
    ticks = [
        (T0 + HOUR, T0),  # fresh, first seen: remembered, no alert
        (T0 + 27 * HOUR, T0),  # past 26 h: stale
        (T0 + 30 * HOUR, T0),  # still stale: said already
        (T0 + 31 * HOUR, T0 + 31 * HOUR - timedelta(minutes=5)),  # updated: fresh again
        (T0 + 32 * HOUR, T0 + 31 * HOUR - timedelta(minutes=5)),  # still fresh
    ]
    sent = []
    for now, last_update in ticks:
        alerts, said = freshness_alerts(
            [Observation("gold/dimuser", policy, last_update)], said, now, environment="dev"
        )
        sent.append([a.payload for a in alerts])
    assert [len(s) for s in sent] == [0, 1, 0, 1, 0]
    assert sent[1] == [
        {
            "environment": "dev",
            "alert": "stale",
            "asset": "gold/dimuser",
            "last_update": "2026-03-02T02:30:00+00:00",
            "lag_seconds": 27 * 3600,
            "allowed_lag": "26h",
            "allowed_lag_seconds": 26 * 3600,
            "checked_at": "2026-03-03T05:30:00+00:00",
        }
    ]
    assert sent[3][0]["alert"] == "fresh"
    assert sent[3][0]["last_update"] == "2026-03-03T09:25:00+00:00"
    assert sent[3][0]["lag_seconds"] == 300
    assert said == {"gold/dimuser": "fresh"}


def test_a_never_updated_asset_is_not_judged_a_first_stale_one_alerts_a_retired_one_is_forgotten():
    alerts, said = freshness_alerts(
        [
            Observation("silver/countries", TWICE_DAILY, None),
            Observation("silver/trades_enriched", STREAMING, T0 - timedelta(minutes=10)),
        ],
        {"gold/retired_table": "stale"},
        T0,
    )
    assert [(a.asset, a.state) for a in alerts] == [("silver/trades_enriched", "stale")]
    assert said == {"silver/trades_enriched": "stale"}  # an asset without a policy any more is forgotten


def test_the_window_ends_exactly_at_fail_after():
    policy = Freshness(timedelta(minutes=10), timedelta(minutes=5))
    assert policy.state(T0, T0 + timedelta(minutes=9, seconds=59)) == "fresh"
    assert policy.state(T0, T0 + timedelta(minutes=10)) == "stale"


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("26h", Freshness(timedelta(hours=26))),
        ({"fail": "10m", "warn": "5m"}, Freshness(timedelta(minutes=10), timedelta(minutes=5))),
        ({"fail": "2d"}, Freshness(timedelta(days=2))),
        (None, None),
    ],
)
def test_freshness_fields(value, expected):
    assert parse_freshness(value) == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("26 hours", "DimUser.freshness: '26 hours' is not a duration such as 10m, 13h or 2d"),
        ("30s", "DimUser.freshness: fail after 30s is shorter than a minute"),
        ({"fail": "1h", "warn": "2h"}, "DimUser.freshness: warn (2h) must be shorter than fail (1h)"),
        ({"warn": "2h"}, "DimUser.freshness: needs 'fail'"),
        ({"fail": "1h", "late": "2h"}, "DimUser.freshness: unknown field(s) ['late'] (fail, warn; or cron"),
    ],
)
def test_a_wrong_freshness_in_tables_yaml_names_the_table_and_field(value, message):
    with pytest.raises(ConfigError) as raised:
        parse_table({"table": "DimUser", "key": "user_id", "freshness": value})
    assert str(raised.value).startswith(message)


def test_a_wrong_freshness_in_streams_yaml_names_file_line_and_field():
    text = (
        (PACKAGE / "streams.yaml")
        .read_text()
        .replace("    allowed_latency: 5\n", "    allowed_latency: 5\n    freshness: {fail: 1m, warn: 2m}\n")
    )
    with pytest.raises(ConfigError) as raised:
        declaration.parse_streams(text, "streams.yaml")
    assert "streams.1.freshness" in str(raised.value)
    assert "warn (2m) must be shorter than fail (1m)" in str(raised.value)


# --- the policies on the code location's specs --------------------------------------------------------


@pytest.fixture
def overridden(tmp_path, monkeypatch) -> Settings:
    """A location whose tables.yaml gives DimUser 3 days and whose streams.yaml gives the loan stream 3
    minutes."""
    tables = yaml.safe_load((PACKAGE / "tables.yaml").read_text())
    for entry in tables["tables"]:
        if entry["table"] == "DimUser":
            entry["freshness"] = {"fail": "3d", "warn": "2d"}
    tables_file = tmp_path / "tables.yaml"
    tables_file.write_text(yaml.safe_dump(tables))
    streams = (
        (PACKAGE / "streams.yaml")
        .read_text()
        .replace("    allowed_latency: 5\n", "    allowed_latency: 5\n    freshness: 3m\n")
    )
    streams_file = tmp_path / "streams.yaml"
    streams_file.write_text(streams)
    monkeypatch.setattr(declaration, "STREAMS_FILE", streams_file)
    return Settings(data_dir=tmp_path / "data", tables_file=tables_file)


def declared(settings: Settings) -> dict[str, Freshness | None]:
    graph = build_definitions(settings).resolve_asset_graph()
    return {
        key.to_user_string(): from_policy(graph.get(key).freshness_policy_or_from_metadata)
        for key in graph.get_all_asset_keys()
    }


def test_every_layer_gets_its_default_and_on_demand_assets_none(tmp_path):
    policies = declared(Settings(data_dir=tmp_path))
    for table in ("dimuser", "dimartist", "dimtrack", "dimdate", "factstream"):
        for layer in ("bronze", "silver", "gold"):
            assert policies[f"{layer}/{table}"] == DAILY == Freshness(26 * HOUR, 25 * HOUR)
    assert policies["silver/trades_enriched"] == STREAMING == Freshness(10 * HOUR / 60, 5 * HOUR / 60)
    assert policies["silver/loan_applications"] == STREAMING
    assert policies["bronze/trades"] == STREAMING
    assert policies["silver/countries"] == TWICE_DAILY == Freshness(13 * HOUR, 12 * HOUR)
    assert policies["raw/customer_data"] is None and policies["raw/product_data"] is None


def test_tables_yaml_and_streams_yaml_override_the_defaults(overridden):
    policies = declared(overridden)
    three_days = Freshness(timedelta(days=3), timedelta(days=2))
    assert [policies[f"{layer}/dimuser"] for layer in ("bronze", "silver", "gold")] == [three_days] * 3
    assert policies["gold/dimartist"] == DAILY
    three_minutes = Freshness(timedelta(minutes=3))
    assert policies["bronze/loan_applications"] == three_minutes
    assert policies["silver/loan_applications"] == three_minutes  # read from the stream's bronze table
    assert policies["silver/trades_enriched"] == STREAMING  # the other stream keeps its default


# --- the sensor, on a real instance, posting to a webhook on loopback -----------------------------------


def webhook_audit(tmp_path: Path, receiver: Receiver) -> AuditResource:
    """The audit resource of a ``dev`` deployment whose alerts go to ``receiver``, one attempt each."""
    return AuditResource(
        audit_url=f"sqlite:///{tmp_path / 'audit.db'}",
        environment="dev",
        alert_webhook_url=receiver.url,
        alert_attempts=1,
    )


class Ticks:
    """The freshness sensor ticked at the moments a test chooses (Dagster's clock frozen at each), its
    cursor carried from tick to tick as the daemon carries it."""

    def __init__(self, instance: DagsterInstance, definitions: Definitions, audit: AuditResource) -> None:
        self.instance, self.definitions, self.audit = instance, definitions, audit
        self.cursor: str | None = None

    def __call__(self, now: datetime) -> str:
        """One tick at ``now``; its skip message."""
        with freeze_time(now):
            context = build_sensor_context(
                instance=self.instance,
                definitions=self.definitions,
                resources={"audit": self.audit},
                cursor=self.cursor,
            )
            result = freshness_sensor(context)
        self.cursor = context.cursor
        return result.skip_message or ""


def test_the_sensor_alerts_stale_once_and_fresh_once(tmp_path):
    definitions = build_definitions(Settings(data_dir=tmp_path))
    key = AssetKey(["gold", "dimuser"])
    with instance_for_test() as instance, Receiver(fail_first=1) as receiver:
        tick = Ticks(instance, definitions, webhook_audit(tmp_path, receiver))

        with freeze_time(T0):
            instance.report_runless_asset_event(AssetMaterialization(key))
        tick(T0 + HOUR)
        assert receiver.bodies == [] and receiver.attempts == 0
        assert json.loads(tick.cursor or "") == {"gold/dimuser": "fresh"}  # the only asset ever materialized

        message = tick(T0 + 27 * HOUR)  # the webhook answers 503 once: not delivered, retried next tick
        assert "1 alert(s) to retry" in message
        assert receiver.bodies == [] and json.loads(tick.cursor or "") == {"gold/dimuser": "fresh"}

        tick(T0 + 27 * HOUR + timedelta(minutes=1))
        tick(T0 + 28 * HOUR)
        assert [(b["alert"], b["asset"]) for b in receiver.bodies] == [("stale", "gold/dimuser")]
        stale = receiver.bodies[0]
        assert stale["last_update"] == T0.isoformat()
        assert stale["allowed_lag"] == "26h" and stale["allowed_lag_seconds"] == 26 * 3600
        assert stale["environment"] == "dev"

        updated = T0 + 28 * HOUR + timedelta(minutes=30)
        with freeze_time(updated):
            instance.report_runless_asset_event(AssetMaterialization(key))
        tick(updated + timedelta(minutes=1))
        tick(updated + 2 * HOUR)
        assert [b["alert"] for b in receiver.bodies] == ["stale", "fresh"]
        assert receiver.bodies[1]["last_update"] == updated.isoformat()
        assert json.loads(tick.cursor or "") == {"gold/dimuser": "fresh"}


# --- deadlines (Dagster's cron policy) ------------------------------------------------------------------

DUE_BY_NINE = Deadline("0 9 * * *", timedelta(hours=1))  # updated between 08:00 and 09:00 every day


def test_a_deadline_judges_against_the_last_tick_that_has_passed():
    tick = datetime(2026, 3, 2, 9, tzinfo=UTC)
    assert DUE_BY_NINE.state(tick - timedelta(minutes=10), tick) == "fresh"  # on time
    assert DUE_BY_NINE.state(tick - timedelta(hours=1), tick) == "fresh"  # the window's first instant
    assert DUE_BY_NINE.state(tick - timedelta(hours=2), tick) == "stale"  # too early: does not count
    assert DUE_BY_NINE.state(tick + timedelta(minutes=30), tick) == "fresh"  # late, fresh from then on
    assert DUE_BY_NINE.state(None, tick) == "unknown"


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"cron": "9am daily", "within": "1h"}, "DimUser.freshness: '9am daily' is not a cron schedule"),
        ({"cron": "0 9 * * *"}, "DimUser.freshness: needs 'within'"),
        ({"cron": "0 9 * * *", "within": "1h", "by": 1}, "DimUser.freshness: unknown field(s) ['by']"),
        ({"cron": "0 9 * * *", "within": "20s"}, "DimUser.freshness: within 20s is shorter than a minute"),
    ],
)
def test_a_wrong_deadline_in_tables_yaml_names_the_table_and_field(value, message):
    with pytest.raises(ConfigError) as raised:
        parse_table({"table": "DimUser", "key": "user_id", "freshness": value})
    assert str(raised.value).startswith(message)


def test_a_deadline_dagster_refuses_is_one_line_naming_the_asset(tmp_path):
    tables = yaml.safe_load((PACKAGE / "tables.yaml").read_text())
    for entry in tables["tables"]:
        if entry["table"] == "DimUser":  # a window longer than the cron's interval (an hour)
            entry["freshness"] = {"cron": "0 * * * *", "within": "2h"}
    tables_file = tmp_path / "tables.yaml"
    tables_file.write_text(yaml.safe_dump(tables))
    with pytest.raises(ConfigurationError) as raised:
        build_definitions(Settings(data_dir=tmp_path / "data", tables_file=tables_file))
    assert str(raised.value).startswith(
        "bronze/dimuser: deadline refused by Dagster: lower_bound_delta must be less than or equal"
    )


def test_the_sensor_alerts_a_missed_deadline_once_and_its_recovery_once(tmp_path):
    tables = yaml.safe_load((PACKAGE / "tables.yaml").read_text())
    for entry in tables["tables"]:
        if entry["table"] == "DimUser":
            entry["freshness"] = {"cron": "0 9 * * *", "within": "1h", "timezone": "Europe/Berlin"}
    tables_file = tmp_path / "tables.yaml"
    tables_file.write_text(yaml.safe_dump(tables))
    definitions = build_definitions(Settings(data_dir=tmp_path / "data", tables_file=tables_file))
    assert from_policy(definitions.resolve_asset_graph().get(GOLD_DIMUSER).freshness_policy) == Deadline(
        "0 9 * * *", HOUR, "Europe/Berlin"
    )
    nine_berlin = datetime(2026, 3, 3, 8, tzinfo=UTC)  # 09:00 in Berlin (CET, UTC+1)
    with instance_for_test() as instance, Receiver() as receiver:
        tick = Ticks(instance, definitions, webhook_audit(tmp_path, receiver))

        with freeze_time(nine_berlin - 2 * HOUR):  # 07:00 in Berlin: before the window
            instance.report_runless_asset_event(AssetMaterialization(GOLD_DIMUSER))
        tick(nine_berlin - timedelta(minutes=30))  # judged against yesterday's 09:00: fresh
        tick(nine_berlin + timedelta(minutes=1))  # today's deadline passed, the update was too early
        tick(nine_berlin + timedelta(minutes=2))
        assert [(b["alert"], b["asset"]) for b in receiver.bodies] == [("stale", "gold/dimuser")]
        stale = receiver.bodies[0]
        assert stale["deadline"] == nine_berlin.isoformat()
        assert stale["window_start"] == (nine_berlin - HOUR).isoformat()
        assert stale["deadline_cron"] == "0 9 * * *" and stale["deadline_timezone"] == "Europe/Berlin"
        assert "allowed_lag" not in stale

        late = nine_berlin + timedelta(minutes=40)
        with freeze_time(late):
            instance.report_runless_asset_event(AssetMaterialization(GOLD_DIMUSER))
        tick(late + timedelta(minutes=1))
        tick(late + 3 * HOUR)
        assert [b["alert"] for b in receiver.bodies] == ["stale", "fresh"]
        assert receiver.bodies[1]["last_update"] == late.isoformat()
