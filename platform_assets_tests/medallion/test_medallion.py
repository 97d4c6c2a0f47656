"""The Spotify medallion end to end through Dagster, on SQLite, PostgreSQL and MariaDB sources."""

from __future__ import annotations

import json
import re
from datetime import UTC, date, datetime, timedelta

import polars as pl
import pytest
import sqlalchemy as sa
from dagster import AssetKey, DagsterInstance, materialize

from platform_assets.core.medallion.config import ConfigError, load_tables
from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets_tests.conftest import settings_for
from platform_assets_tests.medallion.helpers import (
    FACT_DAY,
    bronze_files,
    current,
    execute,
    insert_stream,
    lake,
    source_frame,
    source_table,
    version,
)
from platform_devkit import sample
from platform_devkit.medallion import days_with_data, materialize_medallion

DIMENSIONS = ("dimuser", "dimartist", "dimtrack")
TABLE_NAMES = {
    "dimuser": "DimUser",
    "dimartist": "DimArtist",
    "dimtrack": "DimTrack",
    "dimdate": "DimDate",
    "factstream": "FactStream",
}


def build(tmp_path, source, days=2, scale=1):
    settings = settings_for(tmp_path, source)
    # 2025-01-01 onwards: the days the tests below name
    sample.init(
        source.url,
        scale=scale,
        seed=7,
        schema=source.schema,
        days=days,
        end=date(2025, 1, 1) + timedelta(days=days),
    )
    return settings


def run_table(settings, table: str, partition_key: str | None = None, raise_on_error: bool = True):
    """Materialize bronze → silver → gold of one table."""
    assets = [a for a in build_definitions(settings).assets if a.key.path[-1] == table]
    return materialize(
        assets,
        resources=build_resources(settings),
        partition_key=partition_key,
        raise_on_error=raise_on_error,
    )


def assert_lake_matches_source(settings, source):
    for name, table in TABLE_NAMES.items():
        src = source_frame(settings, source.schema, table)
        key = load_key(settings, name)
        silver = lake(settings, "silver", name)
        assert silver.height == src.height, name
        assert silver.get_column(key).n_unique() == silver.height, f"{name}: duplicate keys in silver"
        gold = lake(settings, "gold", name)
        live = current(gold) if name in DIMENSIONS else gold
        assert sorted(live.get_column(key).to_list()) == sorted(src.get_column(key).to_list()), name


def load_key(settings, name):
    return next(t for t in load_tables(settings.tables_file) if t.name == name).keys[0]


def test_initial_load_and_a_day_of_change(tmp_path, any_source):
    settings = build(tmp_path, any_source)
    first = materialize_medallion(settings, raise_on_error=True)
    assert first.success
    passed, failed = first.checks()
    assert failed == 0 and passed > 0
    assert_lake_matches_source(settings, any_source)
    for name in DIMENSIONS:
        assert len(bronze_files(settings, name)) == 1
        assert current(lake(settings, "gold", name)).height == lake(settings, "gold", name).height
    silver_user = lake(settings, "silver", "dimuser")
    assert (
        silver_user.get_column("user_name") == silver_user.get_column("user_name").str.to_uppercase()
    ).all()

    changes = sample.advance(any_source.url, seed=7, schema=any_source.schema)
    assert materialize_medallion(settings, raise_on_error=True).success
    assert_lake_matches_source(settings, any_source)
    gold_user = lake(settings, "gold", "dimuser")
    closed = gold_user.filter(pl.col("__END_AT").is_not_null())
    # every updated user got exactly one closed version, ending where the new one starts
    assert closed.height == changes["updated_users"]
    reopened = current(gold_user).join(
        closed.select("user_id", pl.col("__END_AT").alias("end")), on="user_id"
    )
    assert (reopened.get_column("__START_AT") == reopened.get_column("end")).all()
    src_user = source_frame(settings, any_source.schema, "DimUser")
    joined = current(gold_user).join(src_user.select("user_id", "subscription_type", "country"), on="user_id")
    assert (joined.get_column("subscription_type") == joined.get_column("subscription_type_right")).all()
    assert (joined.get_column("country") == joined.get_column("country_right")).all()
    assert (
        lake(settings, "gold", "factstream").height
        == source_frame(settings, any_source.schema, "FactStream").height
    )


def test_row_committed_later_with_the_watermark_timestamp_is_not_lost(tmp_path, any_source):
    settings = build(tmp_path, any_source, days=1)
    assert run_table(settings, "dimuser").success
    users = source_table(settings, any_source.schema, "DimUser")
    src = source_frame(settings, any_source.schema, "DimUser")
    last = src.get_column("updated_at").max()
    execute(
        settings,
        users.insert().values(
            user_id=999_001,
            user_name="late writer",
            country="Chile",
            subscription_type="Free",
            start_date=last.date(),
            end_date=None,
            updated_at=last,
        ),
    )
    assert run_table(settings, "dimuser").success
    files = bronze_files(settings, "dimuser")
    assert len(files) == 2
    assert pl.read_parquet(files[-1]).get_column("user_id").to_list() == [999_001]
    gold = lake(settings, "gold", "dimuser")
    assert gold.filter(pl.col("user_id") == 999_001).get_column("user_name").to_list() == ["LATE WRITER"]
    assert gold.height == src.height + 1


def test_key_updated_twice_between_runs_keeps_the_latest(tmp_path, any_source):
    settings = build(tmp_path, any_source, days=1)
    assert run_table(settings, "dimuser").success
    users = source_table(settings, any_source.schema, "DimUser")
    base = source_frame(settings, any_source.schema, "DimUser").get_column("updated_at").max()
    for offset, plan in ((1, "Premium"), (2, "Family")):
        execute(
            settings,
            users.update()
            .where(users.c.user_id == 1)
            .values(subscription_type=plan, updated_at=base + timedelta(hours=offset)),
        )
    assert run_table(settings, "dimuser").success
    history = lake(settings, "gold", "dimuser").filter(pl.col("user_id") == 1).sort("__START_AT")
    assert history.height == 2
    assert history.get_column("subscription_type").to_list()[-1] == "Family"
    assert history.get_column("__END_AT").to_list()[0] == (base + timedelta(hours=2)).replace(tzinfo=UTC)
    silver = lake(settings, "silver", "dimuser").filter(pl.col("user_id") == 1)
    assert silver.get_column("subscription_type").to_list() == ["Family"]


def test_replay_without_changes_commits_nothing(tmp_path, any_source):
    settings = build(tmp_path, any_source, days=2)
    assert materialize_medallion(settings).success
    versions = {(layer, t): version(settings, layer, t) for layer in ("silver", "gold") for t in TABLE_NAMES}
    files = {t: len(bronze_files(settings, t)) for t in DIMENSIONS}
    assert materialize_medallion(settings).success
    assert {(layer, t): version(settings, layer, t) for layer, t in versions} == versions
    assert {t: len(bronze_files(settings, t)) for t in DIMENSIONS} == files


def test_factstream_partition_rerun_picks_up_a_late_row(tmp_path, any_source):
    settings = build(tmp_path, any_source, days=3)
    first, last = days_with_data(
        settings, next(t for t in load_tables(settings.tables_file) if t.partitioned)
    )
    assert materialize_medallion(settings).success
    late_ts = datetime(first.year, first.month, first.day, 23, 59, 59)
    insert_stream(settings, any_source.schema, 9_000_000, late_ts)
    other_day = version(settings, "gold", "factstream")
    assert run_table(settings, "factstream", partition_key=first.isoformat()).success
    gold = lake(settings, "gold", "factstream")
    day_rows = gold.filter(FACT_DAY == first)
    src_day = source_frame(settings, any_source.schema, "FactStream").filter(FACT_DAY == first)
    assert day_rows.height == src_day.height
    assert day_rows.get_column("stream_id").n_unique() == day_rows.height
    assert 9_000_000 in day_rows.get_column("stream_id").to_list()
    assert version(settings, "gold", "factstream") == other_day + 1
    # the same partition again: nothing new, nothing committed
    assert run_table(settings, "factstream", partition_key=first.isoformat()).success
    assert version(settings, "gold", "factstream") == other_day + 1
    assert lake(settings, "gold", "factstream").height == gold.height


def test_range_backfill_runs_as_one_run(tmp_path, any_source):
    settings = build(tmp_path, any_source, days=3)
    first, last = days_with_data(
        settings, next(t for t in load_tables(settings.tables_file) if t.partitioned)
    )
    instance = DagsterInstance.ephemeral()
    run = materialize_medallion(settings, instance=instance, days=(first, last))
    assert run.success and len(run.results) == 2
    fact_run = run.results[1]
    materialized = {
        (e.asset_key, e.partition)
        for e in fact_run.get_asset_materialization_events()
        for e in [e.materialization]
    }
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    assert {p for k, p in materialized if k == AssetKey(["gold", "factstream"])} == set(days)
    assert (
        lake(settings, "gold", "factstream").height
        == source_frame(settings, any_source.schema, "FactStream").height
    )


def test_each_partition_of_a_range_run_reports_its_own_counts(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=3)
    first, last = days_with_data(
        settings, next(t for t in load_tables(settings.tables_file) if t.partitioned)
    )
    run = materialize_medallion(settings, days=(first, last))
    per_day = source_frame(settings, None, "FactStream").group_by(FACT_DAY.alias("day")).len()
    expected = {d.isoformat(): n for d, n in per_day.rows()}
    events = [e.materialization for e in run.results[1].get_asset_materialization_events()]
    for layer in ("bronze", "silver", "gold"):
        counts = {
            m.partition: m.metadata["rows_inserted" if layer != "bronze" else "rows_read"].value
            for m in events
            if m.asset_key == AssetKey([layer, "factstream"])
        }
        assert counts == expected, layer
    gold = {m.partition: m.metadata for m in events if m.asset_key == AssetKey(["gold", "factstream"])}
    assert all(m["dagster/table_name"].value == "dev.gold.factstream" for m in gold.values())

    # a late row for the first day: a re-run of the range reports it on that day only
    insert_stream(settings, None, 9_100_000, datetime(first.year, first.month, first.day, 12))
    again = materialize_medallion(settings, days=(first, last))
    gold = {
        m.partition: m.metadata["rows_inserted"].value
        for e in again.results[1].get_asset_materialization_events()
        for m in [e.materialization]
        if m.asset_key == AssetKey(["gold", "factstream"])
    }
    assert gold == {d: (1 if d == first.isoformat() else 0) for d in expected}


def test_silver_and_scd2_gold_report_row_and_version_counts(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    run_table(settings, "dimuser")
    changes = sample.advance(settings.source_url, seed=7)
    result = run_table(settings, "dimuser")
    meta = {
        e.materialization.asset_key.to_user_string(): e.materialization.metadata
        for e in result.get_asset_materialization_events()
    }
    users = source_frame(settings, None, "DimUser").height
    assert meta["silver/dimuser"]["dagster/row_count"].value == users
    gold = meta["gold/dimuser"]
    assert gold["current_versions"].value == users
    assert gold["closed_versions"].value == changes["updated_users"]
    assert gold["dagster/row_count"].value == users + changes["updated_users"]
    columns = {c.name: c.description for c in gold["dagster/column_schema"].value.columns}
    assert columns["__END_AT"] == "this version is valid until; null on the current version"
    assert columns["user_name"] == "derived: UPPER(user_name)"


def test_schema_evolution_adds_a_new_source_column(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    assert run_table(settings, "dimartist").success
    execute(settings, sa.text('ALTER TABLE "DimArtist" ADD COLUMN label VARCHAR(40)'))
    artists = source_table(settings, None, "DimArtist")
    latest = source_frame(settings, None, "DimArtist").get_column("updated_at").max()
    execute(
        settings,
        artists.update()
        .where(artists.c.artist_id == 1)
        .values(label="Indie", updated_at=latest + timedelta(minutes=5)),
    )
    assert run_table(settings, "dimartist").success
    silver = lake(settings, "silver", "dimartist")
    assert "label" in silver.columns
    assert silver.filter(pl.col("artist_id") == 1).get_column("label").to_list() == ["Indie"]
    assert silver.filter(pl.col("artist_id") != 1).get_column("label").null_count() == silver.height - 1


def test_drop_rule_quarantines_and_fail_rule_blocks_downstream(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    dates = source_table(settings, None, "DimDate")
    execute(
        settings,
        dates.insert().values(
            date_key=20991399,
            date=datetime(2099, 12, 31).date(),
            day=31,
            month=13,
            year=2099,
            weekday="Thursday",
        ),
    )
    result = run_table(settings, "dimdate", raise_on_error=False)
    assert not result.success
    evaluations = {e.check_name: e for e in result.get_asset_check_evaluations()}
    assert evaluations["valid_month"].passed is False
    assert evaluations["valid_month"].metadata["rows_failed"].value == 1
    assert lake(settings, "silver", "dimdate").is_empty()
    assert lake(settings, "gold", "dimdate").is_empty()

    streams = source_table(settings, None, "FactStream")
    first = source_frame(settings, None, "FactStream").get_column("stream_timestamp").min()
    execute(
        settings,
        streams.insert().values(
            stream_id=9_100_000,
            user_id=1,
            track_id=1,
            date_key=20250101,
            listen_duration=-5,
            device_type="Web",
            stream_timestamp=first,
        ),
    )
    assert run_table(settings, "factstream", partition_key=first.date().isoformat()).success
    quarantine = lake(settings, "silver", "factstream_quarantine")
    assert quarantine.get_column("stream_id").to_list() == [9_100_000]
    assert quarantine.get_column("_rule").to_list() == ["non_negative_listen_duration"]
    assert 9_100_000 not in lake(settings, "gold", "factstream").get_column("stream_id").to_list()


def test_hostile_table_name_is_rejected_before_any_sql(tmp_path):
    from platform_assets_tests.conftest import Source, tables_file_for

    source = Source("sqlite", f"sqlite:///{tmp_path / 'never.db'}", None)

    def hostile(document):
        document["tables"][0]["table"] = 'DimUser"; DROP TABLE "DimUser'

    settings = settings_for(tmp_path, source)
    settings = type(settings)(
        data_dir=settings.data_dir,
        source_url=source.url,
        tables_file=tables_file_for(tmp_path, None, hostile),
    )
    with pytest.raises(ConfigError, match="not a valid identifier"):
        build_definitions(settings)
    assert not (tmp_path / "never.db").exists()


def test_from_date_backfill_rereads_history_without_moving_the_watermark(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    assert run_table(settings, "dimuser").success
    from platform_assets.core.state import StateStore

    store = StateStore(settings.state_url, settings.env)
    before = store.get("watermark/dimuser")
    src = source_frame(settings, None, "DimUser")
    since = src.get_column("updated_at").sort()[src.height // 2]
    assets = [a for a in build_definitions(settings).assets if a.key == AssetKey(["bronze", "dimuser"])]
    result = materialize(
        assets,
        resources=build_resources(settings),
        run_config={"ops": {"bronze__dimuser": {"config": {"from_date": since.isoformat()}}}},
    )
    assert result.success
    backfill_file = bronze_files(settings, "dimuser")[-1]
    reread = pl.read_parquet(backfill_file)
    # [from_date, watermark]: the watermark's own rows included
    expected = src.filter(
        (pl.col("updated_at") >= since) & (pl.col("updated_at") <= src.get_column("updated_at").max())
    )
    assert sorted(reread.get_column("user_id").to_list()) == sorted(expected.get_column("user_id").to_list())
    assert store.get("watermark/dimuser") == before
    # silver/gold absorb the re-read rows without duplicates or new versions
    assert run_table(settings, "dimuser").success
    gold = lake(settings, "gold", "dimuser")
    assert gold.height == src.height and current(gold).height == src.height


def test_retyped_source_column_is_rejected_with_table_and_column(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    assert run_table(settings, "dimartist").success
    silver_version = version(settings, "silver", "dimartist")
    latest = source_frame(settings, None, "DimArtist").get_column("updated_at").max()
    # recreate DimArtist with `genre` as an INTEGER column and one changed row
    execute(settings, sa.text('ALTER TABLE "DimArtist" RENAME TO "DimArtistOld"'))
    execute(
        settings,
        sa.text(
            'CREATE TABLE "DimArtist" (artist_id INTEGER PRIMARY KEY, artist_name VARCHAR(100), genre INTEGER, '
            "country VARCHAR(60), updated_at DATETIME)"
        ),
    )
    artists = source_table(settings, None, "DimArtist")
    execute(
        settings,
        artists.insert().values(
            artist_id=1,
            artist_name="Retyped",
            genre=7,
            country="Peru",
            updated_at=latest + timedelta(minutes=1),
        ),
    )
    result = run_table(settings, "dimartist", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = str(failure.event_specific_data.error.cause or failure.event_specific_data.error)
    assert "DimArtist.genre changed type" in message
    assert version(settings, "silver", "dimartist") == silver_version  # nothing written
    assert lake(settings, "silver", "dimartist").filter(pl.col("artist_id") == 1).get_column(
        "artist_name"
    ).to_list() != ["Retyped"]


def test_a_retyped_column_feeding_a_rule_then_fixed_is_set_aside_and_recovered(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    assert run_table(settings, "dimtrack").success
    tracks = source_frame(settings, None, "DimTrack")
    latest = tracks.get_column("updated_at").max()
    columns = "track_id, track_name, artist_id, album_name, duration_sec, release_date, updated_at"

    def recreate(duration_type: str, duration):
        execute(settings, sa.text('DROP TABLE IF EXISTS "DimTrackOld"'))
        execute(settings, sa.text('ALTER TABLE "DimTrack" RENAME TO "DimTrackOld"'))
        execute(
            settings,
            sa.text(
                'CREATE TABLE "DimTrack" (track_id INTEGER PRIMARY KEY, track_name VARCHAR(100), artist_id INTEGER, '
                f"album_name VARCHAR(100), duration_sec {duration_type}, release_date DATE, updated_at DATETIME)"
            ),
        )
        execute(settings, sa.text(f'INSERT INTO "DimTrack" SELECT {columns} FROM "DimTrackOld"'))
        table = source_table(settings, None, "DimTrack")
        execute(
            settings,
            table.update()
            .where(table.c.track_id == 1)
            .values(duration_sec=duration, updated_at=latest + timedelta(minutes=1)),
        )

    # the source retypes duration_sec, which the duration_flag rule computes with
    recreate("TEXT", "200")
    result = run_table(settings, "dimtrack", raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    message = failure.event_specific_data.error.message
    assert re.search(
        r"DimTrack\.duration_sec changed type from Int64 to String in bronze file "
        r"DimTrack_\d{8}T\d{12}Z\.parquet",
        message,
    ), message
    assert "ComputeError" not in message

    # the source is fixed; silver stays blocked on the file already extracted
    recreate("INTEGER", 200)
    assert not run_table(settings, "dimtrack", raise_on_error=False).success

    # the way out: set the drifted file aside (kept, with its reason) and go on
    silver = [a for a in build_definitions(settings).assets if a.key == AssetKey(["silver", "dimtrack"])]
    aside = materialize(
        silver,
        resources=build_resources(settings),
        run_config={"ops": {"silver__dimtrack": {"config": {"set_aside_drifted_files": True}}}},
    )
    assert aside.success
    moved = list((settings.lake_root / "bronze" / "_set_aside" / "dimtrack").glob("*.parquet"))
    assert len(moved) == 1 and pl.read_parquet(moved[0]).get_column("duration_sec").to_list() == ["200"]
    assert (
        "changed type" in json.loads(moved[0].with_name(moved[0].name + ".reason.json").read_text())["reason"]
    )
    metadata = aside.asset_materializations_for_node("silver__dimtrack")[0].metadata
    assert metadata["files_set_aside"].value == [str(moved[0])]

    # nothing is lost: a from_date backfill reads the set-aside row again from the fixed source
    bronze = [a for a in build_definitions(settings).assets if a.key == AssetKey(["bronze", "dimtrack"])]
    assert materialize(
        bronze,
        resources=build_resources(settings),
        run_config={"ops": {"bronze__dimtrack": {"config": {"from_date": latest.date().isoformat()}}}},
    ).success
    assert run_table(settings, "dimtrack").success
    row = lake(settings, "silver", "dimtrack").filter(pl.col("track_id") == 1)
    assert row.select("duration_sec", "duration_flag").rows() == [(200, "medium")]
    assert current(lake(settings, "gold", "dimtrack")).filter(pl.col("track_id") == 1).get_column(
        "duration_sec"
    ).to_list() == [200]


def test_a_dropped_source_connection_is_retried(tmp_path, sqlite_source, monkeypatch):
    import platform_assets.core.medallion.steps.bronze as bronze_module

    settings = build(tmp_path, sqlite_source, days=1)
    real_extract, calls = bronze_module.extract, []

    def flaky(*args, **kwargs):
        calls.append(1)
        if len(calls) == 1:
            raise sa.exc.OperationalError(
                "SELECT", {}, Exception("server closed the connection unexpectedly")
            )
        return real_extract(*args, **kwargs)

    monkeypatch.setattr(bronze_module, "extract", flaky)
    assert run_table(settings, "dimuser").success
    assert len(calls) == 2
    assert len(bronze_files(settings, "dimuser")) == 1
    assert lake(settings, "gold", "dimuser").height == source_frame(settings, None, "DimUser").height


def test_materializations_report_counts_watermarks_versions_schema_and_lineage(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    result = run_table(settings, "dimtrack")
    source_rows = source_frame(settings, None, "DimTrack").height
    meta = {
        m.asset_key.to_user_string(): m.metadata
        for m in (e.materialization for e in result.get_asset_materialization_events())
    }
    bronze, silver, gold = meta["bronze/dimtrack"], meta["silver/dimtrack"], meta["gold/dimtrack"]
    assert bronze["rows_read"].value == bronze["rows_written"].value == source_rows
    assert bronze["watermark_before"].value == "none"
    latest = source_frame(settings, None, "DimTrack").get_column("updated_at").max()
    assert bronze["watermark_after"].value.startswith(latest.isoformat())
    assert silver["rows_written"].value == source_rows and silver["delta_version"].value == 0
    lineage = silver["dagster/column_lineage"].value.deps_by_column
    assert [d.column_name for d in lineage["duration_flag"]] == ["duration_sec"]
    assert {d.asset_key for d in lineage["track_name"]} == {AssetKey(["bronze", "dimtrack"])}
    assert gold["dagster/row_count"].value == source_rows
    gold_lineage = gold["dagster/column_lineage"].value.deps_by_column
    assert [d.column_name for d in gold_lineage["__START_AT"]] == ["updated_at"]
    columns = [c.name for c in gold["dagster/column_schema"].value.columns]
    assert {"track_id", "duration_flag", "__START_AT", "__END_AT"} <= set(columns)


def test_an_empty_source_table_runs_through_every_layer(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    artists = source_table(settings, None, "DimArtist")
    execute(settings, artists.delete())
    assert run_table(settings, "dimartist").success
    assert bronze_files(settings, "dimartist") == []
    assert lake(settings, "silver", "dimartist").is_empty() and lake(settings, "gold", "dimartist").is_empty()


def test_a_row_removed_from_a_full_reload_table_leaves_silver_and_gold(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=1)
    assert run_table(settings, "dimdate").success
    dates = source_table(settings, None, "DimDate")
    before = source_frame(settings, None, "DimDate").height
    execute(settings, dates.delete().where(dates.c.date_key.in_([20250101, 20250102])))
    assert run_table(settings, "dimdate").success
    for layer in ("silver", "gold"):
        keys = lake(settings, layer, "dimdate").get_column("date_key")
        assert keys.len() == before - 2, layer
        assert not keys.is_in([20250101, 20250102]).any(), layer
    # the rows come back when the source has them again; a replay commits nothing
    execute(
        settings,
        dates.insert().values(
            date_key=20250101,
            date=datetime(2025, 1, 1).date(),
            day=1,
            month=1,
            year=2025,
            weekday="Wednesday",
        ),
    )
    assert run_table(settings, "dimdate").success
    assert 20250101 in lake(settings, "gold", "dimdate").get_column("date_key").to_list()
    versions = (version(settings, "silver", "dimdate"), version(settings, "gold", "dimdate"))
    assert run_table(settings, "dimdate").success
    assert (version(settings, "silver", "dimdate"), version(settings, "gold", "dimdate")) == versions


def test_the_daily_scheduled_run_picks_up_a_late_row_of_the_day_before(tmp_path, sqlite_source):
    from dagster import build_schedule_context

    settings = build(tmp_path, sqlite_source, days=3)  # 2025-01-01 .. 2025-01-03
    assert materialize_medallion(settings).success
    streams = source_table(settings, None, "FactStream")
    execute(
        settings,
        streams.insert().values(
            stream_id=9_200_000,
            user_id=1,
            track_id=1,
            date_key=20250102,
            listen_duration=30,
            device_type="Web",
            stream_timestamp=datetime(2025, 1, 2, 22, 0, 0),
        ),
    )
    defs = build_definitions(settings)
    tick = build_schedule_context(scheduled_execution_time=datetime(2025, 1, 4, 2, 0, tzinfo=UTC))
    [request] = list(defs.resolve_schedule_def("medallion_daily").evaluate_tick(tick).run_requests)
    result = defs.resolve_job_def("medallion_job").execute_in_process(tags=request.tags)
    assert result.success
    gold = lake(settings, "gold", "factstream")
    assert 9_200_000 in gold.get_column("stream_id").to_list()
    assert gold.height == source_frame(settings, None, "FactStream").height
