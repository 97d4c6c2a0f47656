"""The backfill dialog offers a layer (or all three) at once: every medallion asset selected together
must carry the same backfill policy, one run for the whole range, or the dialog warns of "varying backfill
policies"."""

from __future__ import annotations

from dagster import AssetKey, BackfillPolicy

from platform_assets.definitions import build_definitions
from platform_assets_tests.conftest import settings_for

TABLES = ("dimuser", "dimartist", "dimtrack", "dimdate", "factstream")


def test_every_medallion_asset_backfills_as_one_run_partitioned_or_not(tmp_path, sqlite_source):
    graph = build_definitions(settings_for(tmp_path, sqlite_source)).resolve_asset_graph()
    policies = {
        (layer, table): graph.get(AssetKey([layer, table])).backfill_policy
        for layer in ("bronze", "silver", "gold")
        for table in TABLES
    }
    assert set(policies.values()) == {BackfillPolicy.single_run()}, policies
    # partitioned and unpartitioned tables alike
    assert graph.get(AssetKey(["silver", "factstream"])).partitions_def is not None
    assert graph.get(AssetKey(["silver", "dimuser"])).partitions_def is None
