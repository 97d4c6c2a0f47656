"""Run tags and run configuration shared by several domains."""

# Dagster's run tags for a partition range executed as one run (what a single-run backfill sets).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the partitions ``first`` … ``last`` (inclusive)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def console_log_level(level: str) -> dict:
    """Run configuration for the console logger of an in-process run (the demo prints INFO, not DEBUG)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}
