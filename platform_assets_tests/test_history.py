"""The history loader: a window of the source into bronze and silver, counted against the source, audited
with trigger ``history``, once per table (``--force`` to repeat), never moving the incremental watermark."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime

import polars as pl
import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterInstance

from platform_assets.cli import history
from platform_assets.core.audit import AuditStore
from platform_assets.core.lake import delta
from platform_assets.core.medallion.config import load_tables
from platform_assets.core.medallion.extract import list_files
from platform_assets.core.medallion.steps import history as core_history
from platform_assets.core.medallion.steps.bronze import watermark_name
from platform_assets.core.medallion.steps.history import HistoryAlreadyLoaded, HistoryError
from platform_assets.core.state import StateStore
from platform_assets_tests.conftest import settings_for
from platform_devkit import sample
from platform_devkit.medallion import materialize_medallion

JAN1, JAN3, FAR = (
    datetime(2025, 1, 1, tzinfo=UTC),
    datetime(2025, 1, 3, tzinfo=UTC),
    datetime(2100, 1, 1, tzinfo=UTC),
)


@pytest.fixture
def settings(tmp_path, sqlite_source):
    sample.init(sqlite_source.url, scale=1, seed=5, days=3, end=date(2025, 1, 4))  # 2025-01-01 .. 2025-01-03
    return replace(settings_for(tmp_path, sqlite_source), partition_start=JAN1.date())


def table(settings, name):
    return next(t for t in load_tables(settings.tables_file) if t.table == name)


def source_count(settings, sql: str) -> int:
    with sa.create_engine(settings.source_url).connect() as connection:
        return connection.execute(sa.text(sql)).scalar_one()


def jobs(settings) -> list[dict]:
    with sa.create_engine(settings.audit_url).connect() as connection:
        rows = connection.execute(sa.text('SELECT * FROM "Job_Metadata" ORDER BY job_id')).mappings().all()
    return [dict(r) for r in rows]


def test_a_window_of_facts_lands_in_bronze_day_folders_and_silver(settings):
    facts = table(settings, "FactStream")
    run_id = history.load_history(settings, facts, JAN1, JAN3, force=False)

    expected = source_count(settings, "SELECT COUNT(*) FROM FactStream WHERE stream_timestamp < '2025-01-03'")
    assert 0 < expected < source_count(settings, "SELECT COUNT(*) FROM FactStream")  # a real window
    bronze = settings.table_path("bronze", "factstream")
    assert sorted(p.name for p in bronze.iterdir()) == ["stream_date=2025-01-01", "stream_date=2025-01-02"]
    landed = pl.concat([pl.read_parquet(f) for d in bronze.iterdir() for f in list_files(d)])
    assert landed.height == expected and landed["stream_id"].n_unique() == expected
    silver = delta.read(str(settings.table_path("silver", "factstream")))
    assert silver.height == expected and silver["stream_date"].max().isoformat() == "2025-01-02"

    [job] = jobs(settings)
    assert (job["run_id"], job["trigger"], job["status"]) == (run_id, "history", "Completed")
    tasks = {t["asset_key"]: t for t in AuditStore(settings.audit_url).tasks(run_id)}
    assert tasks["bronze/factstream"]["rows_written"] == tasks["bronze/factstream"]["rows_read"] == expected
    assert tasks["silver/factstream"]["table_name"] == "dev.silver.factstream"
    assert AuditStore(settings.audit_url).parameters(run_id)["to"] == JAN3.isoformat()


def test_the_watermark_never_moves_and_a_second_load_needs_force(settings):
    users = table(settings, "DimUser")
    assert materialize_medallion(settings, instance=DagsterInstance.ephemeral(), log_level="ERROR").success
    state = StateStore(settings.state_url, settings.env)
    before = state.get(watermark_name(users))
    silver_before = delta.read(str(settings.table_path("silver", "dimuser"))).sort("user_id")

    history.load_history(settings, users, datetime(2000, 1, 1, tzinfo=UTC), FAR, force=False)
    assert state.get(watermark_name(users)) == before  # same value, same version
    assert delta.read(str(settings.table_path("silver", "dimuser"))).sort("user_id").equals(silver_before)

    with pytest.raises(
        HistoryAlreadyLoaded, match=r"DimUser: history \[2000-01-01.*already loaded.*needs --force"
    ):
        history.load_history(settings, users, datetime(2000, 1, 1, tzinfo=UTC), FAR, force=False)
    history.load_history(settings, users, datetime(2000, 1, 1, tzinfo=UTC), FAR, force=True)
    assert [j["status"] for j in jobs(settings) if j["trigger"] == "history"] == [
        "Completed",
        "Failed",
        "Completed",
    ]
    assert state.get(watermark_name(users)) == before


def test_a_count_mismatch_fails_loudly_and_loads_nothing(settings, monkeypatch):
    facts = table(settings, "FactStream")
    real = core_history.count_source_rows
    monkeypatch.setattr(core_history, "count_source_rows", lambda *a: real(*a) + 1)  # a row the load missed
    with pytest.raises(
        HistoryError, match=r"wrote \d+ rows but the source holds \d+; the files were removed"
    ):
        history.load_history(settings, facts, JAN1, JAN3, force=False)
    bronze = settings.table_path("bronze", "factstream")
    assert not any(list_files(d) for d in bronze.iterdir())
    assert not delta.table_exists(str(settings.table_path("silver", "factstream")))
    assert core_history.loaded(StateStore(settings.state_url, settings.env), facts) is None
    [job] = jobs(settings)
    assert job["status"] == "Failed" and "the source holds" in job["error_message"]


def test_the_command_refuses_bad_input_in_one_line(settings, monkeypatch, capsys):
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PLATFORM_SOURCE_URL", settings.source_url)
    monkeypatch.setenv("PLATFORM_TABLES_FILE", str(settings.tables_file))
    assert history.main(["--table", "Nope", "--from", "2025-01-01", "--to", "2025-01-02"]) == 2
    assert "--table 'Nope' is not in" in capsys.readouterr().err
    assert history.main(["--table", "FactStream", "--from", "01/02/2025", "--to", "2025-01-02"]) == 2
    assert "--from must be an ISO date" in capsys.readouterr().err
    assert history.main(["--table", "DimDate", "--from", "2025-01-01", "--to", "2025-01-02"]) == 1
    assert "has no change column" in capsys.readouterr().err
    assert history.main(["--table", "FactStream", "--from", "2025-01-01", "--to", "2025-01-02"]) == 0
    assert history.main(["--table", "FactStream", "--from", "2025-01-01", "--to", "2025-01-02"]) == 2
    assert "needs --force" in capsys.readouterr().err


def test_a_second_medallion_instance_loads_from_its_own_source(settings, monkeypatch, capsys, tmp_path):
    """``--medallion crm``: the table of a second source database (docs/components.md) is read from the URL
    in that instance's variable, into its own prefixed lake table."""
    crm_url = f"sqlite:///{tmp_path / 'crm.db'}"
    sample.init(crm_url, scale=2, seed=9, days=3, end=date(2025, 1, 4))
    defs = tmp_path / "defs"
    for folder, attributes in (("medallion", {"name": "medallion"}), ("crm", {"name": "crm",
            "tables_file": str(settings.tables_file), "source_url_env": "CRM_SOURCE_URL"})):  # fmt: skip
        (defs / folder).mkdir(parents=True)
        declaration = {"type": "platform_assets.components.MedallionComponent", "attributes": attributes}
        (defs / folder / "defs.yaml").write_text(yaml.safe_dump(declaration))
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(settings.data_dir))
    monkeypatch.setenv("PLATFORM_SOURCE_URL", settings.source_url)
    monkeypatch.setenv("PLATFORM_TABLES_FILE", str(settings.tables_file))
    monkeypatch.setenv("PLATFORM_STATE_URL", settings.state_url)
    monkeypatch.setenv("PLATFORM_AUDIT_URL", settings.audit_url)
    argv = ["--table", "FactStream", "--from", "2025-01-01", "--to", "2025-01-03"]

    assert history.main([*argv, "--medallion", "sales"], defs_folder=defs) == 2
    assert "--medallion 'sales' is not declared" in capsys.readouterr().err
    assert history.main([*argv, "--medallion", "crm"], defs_folder=defs) == 2  # CRM_SOURCE_URL unset
    assert "CRM_SOURCE_URL is not set" in capsys.readouterr().err

    monkeypatch.setenv("CRM_SOURCE_URL", crm_url)
    assert history.main([*argv, "--medallion", "crm"], defs_folder=defs) == 0
    with sa.create_engine(crm_url).connect() as connection:
        expected = connection.execute(
            sa.text("SELECT COUNT(*) FROM FactStream WHERE stream_timestamp < '2025-01-03'")
        ).scalar_one()
    silver = delta.read(str(settings.table_path("silver", "crm_factstream")))
    assert silver.height == expected > 0
    assert not delta.table_exists(str(settings.table_path("silver", "factstream")))  # the default's untouched
