"""The example report ``reports/daily_plays_per_track``: read from gold through dagster-deltalake, its rows
equal the same figures computed from the gold tables directly, and it follows gold's changes."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest
from dagster import Failure, materialize
from dagster_deltalake import AzureConfig, GcsConfig, LocalConfig, S3Config

from platform_assets.core.lake import delta
from platform_assets.definitions import build_definitions
from platform_assets.defs.reports.assets import KEY
from platform_assets.defs.reports.definitions import build_report_definitions
from platform_assets.lib.delta_tables import lake_table, storage_config
from platform_assets.settings import Settings, SettingsError
from platform_assets_tests.conftest import settings_for, tables_file_for
from platform_assets_tests.medallion.helpers import current, execute, lake, source_table
from platform_devkit import sample
from platform_devkit.medallion import materialize_medallion


def report(settings: Settings):
    """Materialize the report as the code location defines it (its asset, bound to the location's resources)."""
    result = materialize([build_definitions(settings).resolve_assets_def(KEY)], raise_on_error=True)
    [materialization] = result.asset_materializations_for_node(KEY.to_python_identifier())
    return result.asset_value(KEY), materialization.metadata


def expected(settings: Settings) -> list[tuple]:
    """Plays and seconds per day and track, computed from the gold tables read by the core."""
    streams = lake(settings, "gold", "factstream")
    names = current(lake(settings, "gold", "dimtrack")).select("track_id", "track_name")
    return (
        streams.join(names, on="track_id", how="left")
        .group_by("stream_date", "track_id", "track_name")
        .agg(pl.len().alias("plays"), pl.col("listen_duration").sum().alias("listened_seconds"))
        .sort("stream_date", "track_id")
        .rows()
    )


@pytest.mark.slow(20)
def test_the_report_equals_gold_and_follows_a_renamed_track(tmp_path, sqlite_source):
    settings = settings_for(tmp_path, sqlite_source)
    sample.init(sqlite_source.url, scale=1, seed=7, schema=None, days=2)
    assert materialize_medallion(settings, raise_on_error=True, log_level="WARNING").success

    frame, metadata = report(settings)
    assert frame.columns == ["play_date", "track_id", "track_name", "plays", "listened_seconds"]
    assert frame.rows() == expected(settings)
    assert frame.get_column("plays").sum() == lake(settings, "gold", "factstream").height
    assert frame.get_column("play_date").n_unique() == 2
    assert frame.get_column("track_name").null_count() == 0
    assert metadata["dagster/row_count"].value == frame.height
    factstream = str(settings.table_path("gold", "factstream"))
    assert metadata["gold_factstream_version"].value == delta.version(factstream)

    # a track renamed at the source: gold keeps both versions, the report names the current one
    track_id = frame.row(0, named=True)["track_id"]
    tracks = source_table(settings, None, "DimTrack")
    execute(
        settings,
        tracks.update()
        .where(tracks.c.track_id == track_id)
        .values(track_name="Renamed-Track", updated_at=datetime(2030, 1, 1, tzinfo=UTC)),
    )
    assert materialize_medallion(settings, raise_on_error=True, log_level="WARNING").success
    versions = lake(settings, "gold", "dimtrack").filter(pl.col("track_id") == track_id)
    assert versions.height == 2

    renamed, _ = report(settings)
    assert renamed.rows() == expected(settings)
    assert set(renamed.filter(pl.col("track_id") == track_id).get_column("track_name")) == {"Renamed Track"}
    assert renamed.drop("track_name").rows() == frame.drop("track_name").rows()


def test_the_report_says_which_gold_table_is_missing(tmp_path, sqlite_source):
    settings = settings_for(tmp_path, sqlite_source)
    with pytest.raises(Failure, match=r"gold/factstream has no Delta table at .*gold/factstream yet"):
        report(settings)


def test_the_report_is_left_out_without_the_sample_tables(tmp_path, sqlite_source):
    def without_factstream(document):
        document["tables"] = [t for t in document["tables"] if t["table"] != "FactStream"]

    own = Settings(data_dir=tmp_path, tables_file=tables_file_for(tmp_path, None, without_factstream))
    assert list(build_report_definitions(own).assets or []) == []
    assert KEY not in build_definitions(own).resolve_asset_graph().get_all_asset_keys()
    assert KEY in build_definitions(Settings(data_dir=tmp_path)).resolve_asset_graph().get_all_asset_keys()


def test_each_lake_gets_the_storage_options_of_its_store(tmp_path, monkeypatch):
    monkeypatch.delenv("AZURE_STORAGE_ACCOUNT_NAME", raising=False)
    assert isinstance(storage_config(str(tmp_path / "lake")), LocalConfig)
    assert isinstance(storage_config("file:///srv/lake"), LocalConfig)
    assert isinstance(storage_config("s3://bucket/lake"), S3Config)
    assert isinstance(storage_config("gs://bucket/lake"), GcsConfig)
    azure = storage_config("abfss://lake@acme.dfs.core.windows.net/platform")
    assert isinstance(azure, AzureConfig) and azure.account_name == "acme"
    with pytest.raises(SettingsError, match="name the storage account"):
        storage_config("az://lake/platform")
    monkeypatch.setenv("AZURE_STORAGE_ACCOUNT_NAME", "fromenv")
    assert storage_config("az://lake/platform").account_name == "fromenv"
    with pytest.raises(SettingsError, match="no Delta storage provider for 'ftp'"):
        storage_config("ftp://host/lake")

    settings = Settings(data_dir=tmp_path, lake_url="s3://bucket/lake")
    table = lake_table(settings, "gold", "FactStream")
    assert table.url == "s3://bucket/lake/dev/gold/factstream"
    assert table.storage_options.str_dict()["provider"] == "s3"
    # credentials are not in the resource (delta-rs reads the store's variables itself)
    assert not {"access_key_id", "secret_access_key", "token"} & set(table.storage_options.str_dict())
