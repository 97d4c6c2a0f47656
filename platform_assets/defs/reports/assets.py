"""``reports/daily_plays_per_track``: plays and listened seconds per day and track, from gold.

An example of an asset of your own over the lake: it reads ``gold/factstream`` and the current rows of
``gold/dimtrack`` (SCD type 2) through ``DeltaTableResource`` resources, computes with polars, and returns
the frame to Dagster's IO manager (the platform's tables are written only by the platform). Its
dependencies on the two gold assets give the lineage in the UI and the order when they run together.
"""

# No `from __future__ import annotations`: Dagster inspects the resources' real annotations.
import polars as pl
from dagster import AssetExecutionContext, AssetKey, Failure, MetadataValue, Output, asset
from dagster_deltalake import DeltaTableResource
from deltalake import DeltaTable
from deltalake.exceptions import TableNotFoundError

from platform_assets.core.medallion.scd import END_AT

GROUP = "reports"
KEY = AssetKey(["reports", "daily_plays_per_track"])
STREAMS = AssetKey(["gold", "factstream"])
TRACKS = AssetKey(["gold", "dimtrack"])
COLUMNS = ("play_date", "track_id", "track_name", "plays", "listened_seconds")


def daily_plays_per_track(streams: pl.LazyFrame, tracks: pl.LazyFrame) -> pl.DataFrame:
    """One row per day and track with plays: the count of streams and the sum of their listen durations,
    named by the track's current name (None for a track gold has no current row of)."""
    names = tracks.filter(pl.col(END_AT).is_null()).select("track_id", "track_name")
    return (
        streams.group_by(pl.col("stream_date").alias("play_date"), "track_id")
        .agg(plays=pl.len(), listened_seconds=pl.col("listen_duration").sum())
        .join(names, on="track_id", how="left")
        .select(COLUMNS)
        .sort("play_date", "track_id")
        .collect()
    )


def _open(resource: DeltaTableResource, key: AssetKey) -> DeltaTable:
    try:
        return resource.load()
    except TableNotFoundError:
        raise Failure(
            f"{key.to_user_string()} has no Delta table at {resource.url} yet: materialize it first "
            "(medallion_job, or with this report in one run)"
        ) from None


@asset(
    key=KEY,
    group_name=GROUP,
    deps=[STREAMS, TRACKS],
    kinds={"polars", "deltalake"},
    description="Plays and listened seconds per day and track, from gold/factstream and gold/dimtrack "
    "(read through dagster-deltalake): an example of an asset of your own on top of gold.",
)
def daily_plays_per_track_report(
    context: AssetExecutionContext,
    gold_factstream: DeltaTableResource,
    gold_dimtrack: DeltaTableResource,
) -> Output[pl.DataFrame]:
    streams, tracks = _open(gold_factstream, STREAMS), _open(gold_dimtrack, TRACKS)
    report = daily_plays_per_track(pl.scan_delta(streams), pl.scan_delta(tracks))
    context.log.info(
        f"{report.height} day-and-track rows from gold/factstream v{streams.version()} "
        f"and gold/dimtrack v{tracks.version()}"
    )
    return Output(
        report,
        metadata={
            "dagster/row_count": MetadataValue.int(report.height),
            "days": MetadataValue.int(report.get_column("play_date").n_unique()),
            "plays": MetadataValue.int(int(report.get_column("plays").sum())),
            # the gold versions the report was computed from (time travel: DeltaTableResource(version=...))
            "gold_factstream_version": MetadataValue.int(streams.version()),
            "gold_dimtrack_version": MetadataValue.int(tracks.version()),
        },
    )
