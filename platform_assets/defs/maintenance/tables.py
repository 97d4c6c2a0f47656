"""Every Delta table the platform writes, how each is maintained, and which writers it shares a
concurrency pool with.

Maintenance of a table takes its writers' pool (``table_<name>``, limit 1 in dagster.yaml), so a
compaction never runs beside a landing or a merge of the same table where pools are enforced. The core
stays correct without it (conflicts are retried, a stream position is never overtaken), but a compaction
that would have to run again is better not started.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, replace

from platform_assets.core.lake.locations import Layer, quarantine_name
from platform_assets.core.lake.maintenance import DEFAULT_POLICY, MaintenancePolicy
from platform_assets.core.medallion.config import TableConfig
from platform_assets.core.trades.stream import HELD_TABLE, SILVER_QUARANTINE_TABLE
from platform_assets.defs.countries.assets import SILVER_KEY as COUNTRIES_KEY
from platform_assets.defs.countries.assets import silver_countries
from platform_assets.defs.loans.assets import QUARANTINE as LOAN_QUARANTINE
from platform_assets.defs.loans.assets import bronze_loan_applications, silver_loan_applications
from platform_assets.defs.medallion.common import pool
from platform_assets.defs.trades.assets import BRONZE_KEY, SILVER_KEY, bronze_trades, silver_trades_enriched

# The trade stream's tables: no change feed reader, so the snapshot floor applies (core.maintenance).
STREAM_POLICY = DEFAULT_POLICY


@dataclass(frozen=True)
class MaintainedTable:
    """A Delta table of the lake: ``<layer>/<name>``, its policy, the pool of its writers, and whether a
    Dagster asset of that key exists (its page then plots the maintenance figures)."""

    layer: Layer
    name: str
    policy: MaintenancePolicy
    pool: str | None
    is_asset: bool

    @property
    def key(self) -> str:
        return f"{self.layer}/{self.name}"

    @property
    def step(self) -> str:
        """The step that maintains it, named like the table's own asset step (``bronze__trades``): the
        audit trail records the step under the table it maintained."""
        return f"{self.layer}__{self.name}"


def stream_tables() -> list[MaintainedTable]:
    """bronze/trades and its dead letters (written by landing), silver/trades_enriched and its held and
    quarantined trades (written by the enrichment)."""
    landing, enrichment = bronze_trades.op.pool, silver_trades_enriched.op.pool
    bronze, silver = BRONZE_KEY.path[-1], SILVER_KEY.path[-1]
    return [
        MaintainedTable("bronze", bronze, STREAM_POLICY, landing, True),
        MaintainedTable("bronze", quarantine_name(bronze), STREAM_POLICY, landing, False),
        MaintainedTable("silver", silver, STREAM_POLICY, enrichment, True),
        MaintainedTable("silver", HELD_TABLE, STREAM_POLICY, enrichment, False),
        MaintainedTable("silver", SILVER_QUARANTINE_TABLE, STREAM_POLICY, enrichment, False),
    ]


def loan_tables() -> list[MaintainedTable]:
    """bronze/loan_applications and its dead letters (written by landing), silver/loan_applications and its
    quarantine (written by the fold). Checkpoints keep the app transactions that hold both positions."""
    landing, fold = bronze_loan_applications.op.pool, silver_loan_applications.op.pool
    bronze, silver = (key.path[-1] for key in (bronze_loan_applications.key, silver_loan_applications.key))
    return [
        MaintainedTable("bronze", bronze, STREAM_POLICY, landing, True),
        MaintainedTable("bronze", LOAN_QUARANTINE, STREAM_POLICY, landing, False),
        MaintainedTable("silver", silver, STREAM_POLICY, fold, True),
        MaintainedTable("silver", LOAN_QUARANTINE, STREAM_POLICY, fold, False),
    ]


def country_tables() -> list[MaintainedTable]:
    """silver/countries: merged twice a day from the country API's raw files (no change feed reader)."""
    layer, name = COUNTRIES_KEY.path
    return [MaintainedTable("silver", name, DEFAULT_POLICY, silver_countries.op.pool, True)]


def medallion_tables(configs: Iterable[TableConfig]) -> list[MaintainedTable]:
    """Per table of tables.yaml: silver and gold with their quarantines (bronze is Parquet files, except a
    landing-zone table's quarantine), under the table's ``maintenance:`` block."""
    tables = []
    for config in configs:
        policy, name = config.maintenance, config.name
        # Quarantines keep the rows a rule set apart, with columns of their own: never Z-ordered.
        plain = replace(policy, z_order=())
        if config.from_files:
            tables.append(MaintainedTable("bronze", quarantine_name(name), plain, pool(config), False))
        for layer in ("silver", "gold"):
            tables.append(MaintainedTable(layer, name, policy, pool(config), True))
            tables.append(MaintainedTable(layer, quarantine_name(name), plain, pool(config), False))
    return tables
