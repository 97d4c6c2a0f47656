"""The medallion's steps as plain functions: plain inputs in, a result object out.

Each step owns its whole unit of work, state included (bronze: state → window → extract →
compare-and-set; silver: the processed-files checkpoint → rules → merge; gold: the change-feed
checkpoint → AUTO CDC), the way dlt's ``Incremental`` owns its state. The Dagster assets only turn the
results into metadata and check results, and other engines plug in here.
"""

from platform_assets.core.medallion.steps.bronze import BronzeResult, run_bronze
from platform_assets.core.medallion.steps.gold import GoldResult, run_gold
from platform_assets.core.medallion.steps.silver import SilverResult, run_silver
from platform_assets.core.medallion.steps.units import UnitResult

__all__ = ["BronzeResult", "GoldResult", "SilverResult", "UnitResult", "run_bronze", "run_gold", "run_silver"]
