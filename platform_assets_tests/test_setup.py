"""The DDL step: every silver and gold table created empty with what the pipeline writes (so a medallion
run after it gives the same tables as one without it), idempotent, and drift reported, never changed."""

from __future__ import annotations

from dataclasses import replace
from datetime import date

import polars as pl
import sqlalchemy as sa
from dagster import DagsterInstance
from deltalake import DeltaTable, write_deltalake

from platform_assets.cli import setup
from platform_assets.core.lake import delta
from platform_assets_tests.conftest import settings_for
from platform_devkit import sample
from platform_devkit.medallion import materialize_medallion

TABLES = ("dimuser", "dimartist", "dimtrack", "dimdate", "factstream")


def quiet(_: str) -> None:
    pass


def test_set_up_creates_every_table_empty_and_twice_is_a_no_op(tmp_path, sqlite_source):
    sample.init(sqlite_source.url, scale=1, seed=9, days=2)
    settings = settings_for(tmp_path, sqlite_source)
    statuses = setup.set_up(settings, log=quiet)
    assert [(s.name, s.created, s.drift) for s in statuses] == [
        (f"dev.{layer}.{t}", True, []) for t in TABLES for layer in ("silver", "gold")
    ]
    gold = str(settings.table_path("gold", "dimuser"))
    assert delta.read(gold).height == 0 and "__END_AT" in delta.read(gold).columns
    facts = DeltaTable(str(settings.table_path("silver", "factstream")))
    assert facts.metadata().partition_columns == ["stream_date"]
    assert facts.metadata().configuration["delta.enableChangeDataFeed"] == "true"
    for url, table in ((settings.audit_url, "Job_Metadata"), (settings.state_url, "platform_state"),
                       (settings.serving_url, "Enriched_Trades")):  # fmt: skip
        assert sa.inspect(sa.create_engine(url)).has_table(table)
    again = setup.set_up(settings, log=quiet)
    assert not any(s.created or s.drift for s in again)
    assert DeltaTable(gold).version() == 0


def test_a_medallion_after_set_up_gives_the_same_tables(tmp_path, sqlite_source):
    sample.init(sqlite_source.url, scale=1, seed=9, days=2, end=date(2025, 1, 3))
    base = replace(settings_for(tmp_path, sqlite_source), partition_start=date(2025, 1, 1))
    plain = replace(
        base, data_dir=tmp_path / "plain", lake_url="", state_url="", audit_url="", serving_url=""
    )
    prepared = replace(
        base, data_dir=tmp_path / "prepared", lake_url="", state_url="", audit_url="", serving_url=""
    )
    setup.set_up(prepared, log=quiet)
    for settings in (plain, prepared):
        assert materialize_medallion(
            settings, instance=DagsterInstance.ephemeral(), log_level="ERROR"
        ).success
    for table in TABLES:
        for layer in ("silver", "gold"):
            a, b = (delta.read(str(s.table_path(layer, table))) for s in (plain, prepared))
            assert a.height > 0 and a.schema == b.schema, (layer, table)
            assert a.sort(a.columns).equals(b.sort(b.columns)), (layer, table)
    assert not any(s.drift for s in setup.set_up(prepared, log=quiet))  # loaded tables still as declared


def test_drift_is_reported_and_nothing_changed(tmp_path, sqlite_source, monkeypatch, capsys):
    sample.init(sqlite_source.url, scale=1, seed=9, days=2)
    settings = settings_for(tmp_path, sqlite_source)
    setup.set_up(settings, log=quiet)
    artists = str(settings.table_path("silver", "dimartist"))
    extra = pl.DataFrame({"artist_id": [1], "label": ["x"]}).to_arrow()
    write_deltalake(artists, extra, mode="append", schema_mode="merge")
    version = DeltaTable(artists).version()
    [status] = [s for s in setup.set_up(settings, log=quiet) if s.name == "dev.silver.dimartist"]
    assert status.drift == ["column label is not declared"] and not status.created
    assert DeltaTable(artists).version() == version  # reported, never changed

    for name, value in {"PLATFORM_DATA_DIR": str(settings.data_dir), "PLATFORM_SOURCE_URL": settings.source_url,
                        "PLATFORM_TABLES_FILE": str(settings.tables_file)}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    assert setup.main([]) == 1
    out = capsys.readouterr()
    assert "dev.silver.dimartist: DRIFT\n    column label is not declared" in out.out
    assert "1 table(s) differ from their declaration: dev.silver.dimartist" in out.err
