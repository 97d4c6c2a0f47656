"""The lake on an object store, through settings alone: an S3 stand-in (moto's server) on loopback."""

from __future__ import annotations

import socket
import subprocess
import sys
import time
from datetime import date

import pytest
from dagster import materialize

from platform_assets.core.lake import delta
from platform_assets.core.medallion.extract import list_files
from platform_assets.definitions import build_definitions
from platform_assets.defs.countries.assets import CountryApiResource, build_raw_countries, country_partitions
from platform_assets.lib.resources import build_resources
from platform_assets_tests.conftest import settings_for
from platform_assets_tests.medallion.helpers import source_frame
from platform_devkit import countries_standin as standin
from platform_devkit import sample

BUCKET = "lake"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def s3_lake(monkeypatch):
    """moto's S3 server in its own process (delta-rs holds the GIL while it waits on the network, so a
    server thread inside the test process could never answer it)."""
    pytest.importorskip("moto.server")
    boto3 = pytest.importorskip("boto3")
    s3fs = pytest.importorskip("s3fs")
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    endpoint = f"http://127.0.0.1:{port}"
    for name, value in {
        "AWS_ENDPOINT_URL": endpoint,
        "AWS_ACCESS_KEY_ID": "testing",
        "AWS_SECRET_ACCESS_KEY": "testing",
        "AWS_REGION": "us-east-1",
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_ALLOW_HTTP": "true",
    }.items():
        monkeypatch.setenv(name, value)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                boto3.client("s3").create_bucket(Bucket=BUCKET)
                break
            except Exception:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise
                time.sleep(0.2)
        s3fs.S3FileSystem.clear_instance_cache()
        yield f"s3://{BUCKET}/platform"
    finally:
        s3fs.S3FileSystem.clear_instance_cache()
        server.terminate()
        server.wait(timeout=10)


def run(settings, table, **kwargs):
    assets = [a for a in build_definitions(settings).assets if a.key.path[-1] == table]
    return materialize(assets, resources=build_resources(settings), **kwargs)


def test_the_medallion_runs_on_an_object_store(tmp_path, sqlite_source, s3_lake):
    settings = settings_for(tmp_path, sqlite_source, lake_url=s3_lake)
    assert str(settings.table_path("gold", "dimuser")) == f"{s3_lake}/dev/gold/dimuser"
    sample.init(sqlite_source.url, scale=1, seed=9, days=2, end=date(2025, 1, 3))
    assert run(settings, "dimuser").success
    assert run(settings, "factstream", partition_key="2025-01-01").success

    users = source_frame(settings, None, "DimUser").height
    bronze = list_files(settings.table_path("bronze", "dimuser"))
    assert len(bronze) == 1 and str(bronze[0]).startswith(f"{s3_lake}/dev/bronze/dimuser/DimUser_")
    assert delta.read(str(settings.table_path("silver", "dimuser"))).height == users
    assert delta.read(str(settings.table_path("gold", "dimuser"))).height == users
    day = source_frame(settings, None, "FactStream").filter(
        source_frame(settings, None, "FactStream").get_column("stream_timestamp").dt.date().cast(str)
        == "2025-01-01"
    )
    assert delta.read(str(settings.table_path("gold", "factstream"))).height == day.height
    assert not (tmp_path / "data" / "lake").exists()  # nothing went to the local disk

    # a day of change: incremental, historized; a replay commits nothing
    changes = sample.advance(sqlite_source.url, seed=9)
    assert run(settings, "dimuser").success
    gold = delta.read(str(settings.table_path("gold", "dimuser")))
    assert gold.filter(gold.get_column("__END_AT").is_not_null()).height == changes["updated_users"]
    version = delta.version(str(settings.table_path("gold", "dimuser")))
    assert run(settings, "dimuser").success
    assert delta.version(str(settings.table_path("gold", "dimuser"))) == version


def test_raw_country_files_land_on_the_object_store(tmp_path, s3_lake):
    from platform_assets.settings import Settings

    settings = Settings(data_dir=tmp_path / "data", lake_url=s3_lake)
    server, base_url = standin.serve()
    try:
        result = materialize(
            [build_raw_countries(country_partitions(settings.countries))],
            partition_key="India",
            resources={**build_resources(settings), "country_api": CountryApiResource(base_url=base_url)},
        )
    finally:
        server.shutdown()
        server.server_close()
    assert result.success
    written = settings.table_path("raw", "countries") / "india.json"
    assert written.exists() and b'"IND"' in written.read_bytes()
