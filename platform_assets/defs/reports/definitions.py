"""The reports part of the code location: the example report and the read-only lake tables it uses.

The example reads the sample's gold tables, so it is only part of the code location when the table list
has them (a table list of your own leaves it out, as it leaves out the sample's tables).
"""

from dagster import Definitions, definitions

from platform_assets.core.medallion.config import load_tables
from platform_assets.defs.reports.assets import daily_plays_per_track_report
from platform_assets.lib.active_settings import active_settings
from platform_assets.lib.delta_tables import lake_table
from platform_assets.settings import Settings

READS = {"gold_factstream": "FactStream", "gold_dimtrack": "DimTrack"}


def build_report_definitions(settings: Settings) -> Definitions:
    tables = {t.name for t in load_tables(settings.tables_file)}
    if not {table.lower() for table in READS.values()} <= tables:
        return Definitions()
    return Definitions(
        assets=[daily_plays_per_track_report],
        resources={key: lake_table(settings, "gold", table) for key, table in READS.items()},
    )


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it: built from the
    settings of the load in progress (:mod:`platform_assets.lib.active_settings`)."""
    return build_report_definitions(active_settings())
