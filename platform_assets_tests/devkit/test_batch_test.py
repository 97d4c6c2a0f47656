"""The batch test (`make batch-test ENV=sit`): passes on a healthy pipeline, fails on a lost row, refuses
prod and databases it could not clean up, and leaves nothing behind."""

from __future__ import annotations

import polars as pl
import pytest
from deltalake import DeltaTable

from platform_assets.settings import load_settings
from platform_devkit import batch_test


@pytest.fixture
def sit(tmp_path, monkeypatch):
    monkeypatch.setenv("PLATFORM_ENV", "sit")
    monkeypatch.setenv("PLATFORM_DATA_DIR", str(tmp_path / "sit"))
    for name in ("SOURCE", "STATE", "AUDIT", "SERVING"):
        monkeypatch.delenv(f"PLATFORM_{name}_URL", raising=False)
    return load_settings()


def test_a_healthy_pipeline_passes_and_nothing_is_left(sit, capsys):
    assert batch_test.main([]) == 0
    out = capsys.readouterr().out
    assert "batch test PASSED (sit)" in out and "[FAIL]" not in out
    assert "[PASS] batch 2: dimuser: gold versions (keys + changed keys)" in out
    assert "[PASS] batch 2: factstream: silver equals the rules over the whole source" in out
    assert not sit.lake_root.exists()
    assert not any(sit.data_dir.glob("*.db"))


def test_a_lost_silver_row_fails_the_check(sit):
    report = batch_test.run(sit, keep=True, log=lambda _: None)
    assert report.passed
    DeltaTable(str(sit.table_path("silver", "dimartist"))).delete("artist_id = 1")
    again = batch_test.Report()
    batch_test.check_layers(sit, again, "again", None)
    # (version counts are checked against the batch before: not given here, so left out)
    failed = {r["check"] for r in again.rows if not r["ok"] and "versions" not in r["check"]}
    assert failed == {
        "dimartist: silver rows",
        "dimartist: silver equals the rules over the whole source",
    }  # gold still holds the row: it is compared with the source's rules, not with silver
    rows = pl.DataFrame(again.rows).filter(pl.col("check") == "dimartist: silver rows")
    assert int(rows["expected"][0]) == int(rows["got"][0]) + 1


def test_prod_and_foreign_databases_are_refused(sit, monkeypatch, capsys):
    monkeypatch.setenv("PLATFORM_ENV", "prod")
    assert batch_test.main([]) == 2
    assert "never runs in prod" in capsys.readouterr().err
    monkeypatch.setenv("PLATFORM_ENV", "sit")
    monkeypatch.setenv("PLATFORM_AUDIT_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test")
    assert batch_test.main([]) == 2
    err = capsys.readouterr().err
    assert "audit_url must be a SQLite file under" in err and "postgres@" not in err
    assert not sit.data_dir.exists()  # refused before touching anything
