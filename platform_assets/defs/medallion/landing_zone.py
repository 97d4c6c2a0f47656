"""``landing_files``: one run of bronze → silver → gold per table with new, complete landing files.

Each tick looks at the landing folder of every ``source: files`` table (metadata only, plus a hash of a
file that has settled and was not hashed before). A file is asked for when its size and modification time
are the same as on the previous tick (the cursor keeps what each tick saw) and its version is not
processed, so a file still being written is never ingested. The run key is
``<table>:<sorted version ids>``: Dagster never requests a run key twice, so each version is asked once.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from dagster import (
    AssetSelection,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    sensor,
)

from platform_assets.core.files.landing_zone import consumer_name, ready_files
from platform_assets.core.medallion.config import TableConfig
from platform_assets.lib.metadata import asset_key
from platform_assets.lib.resources import LakehouseResource

SENSOR_NAME = "landing_files"
INTERVAL_SECONDS = 30


def landing_run_config(config: TableConfig, versions: Sequence[str]) -> dict:
    return {"ops": {f"bronze__{config.name}": {"config": {"files": list(versions)}}}}


def landing_sensor(tables: Sequence[TableConfig], name: str = SENSOR_NAME) -> SensorDefinition:
    """The sensor for the ``source: files`` tables among ``tables`` (``name``: one per medallion
    instance)."""
    files_tables = [t for t in tables if t.from_files]
    keys = [asset_key(layer, t) for t in files_tables for layer in ("bronze", "silver", "gold")]

    @sensor(
        name=name,
        asset_selection=AssetSelection.assets(*keys),
        minimum_interval_seconds=INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description="Runs bronze → silver → gold of a source: files table for its landing files that are "
        "complete (same size and mtime on two ticks) and not ingested yet (per file version).",
    )
    def landing_files(context: SensorEvaluationContext, lakehouse: LakehouseResource) -> SensorResult:
        cursor = json.loads(context.cursor) if context.cursor else {}
        state = lakehouse.state()
        requests, seen = [], {}
        for table in files_tables:
            ready, seen[table.name] = ready_files(
                lakehouse.landing(table.name),
                state.processed(consumer_name(table)),
                cursor.get(table.name, {}),
            )
            if not ready:
                continue
            versions = sorted(f.version for f in ready)
            requests.append(
                RunRequest(
                    run_key=f"{table.name}:{','.join(versions)}",
                    asset_selection=[asset_key(layer, table) for layer in ("bronze", "silver", "gold")],
                    run_config=landing_run_config(table, versions),
                )
            )
        return SensorResult(run_requests=requests, cursor=json.dumps(seen, sort_keys=True))

    return landing_files
