"""REST Countries ingestion: one raw JSON file per country, then one silver Delta row per country.

``raw/countries`` is partitioned by country name, so one country can be re-pulled from the UI, and
runs a whole range as one run (single-run backfill policy; the schedule asks for all countries).

Partial failure: a country that fails (HTTP error after retries, malformed body, network error)
does not stop the others. Dagster records an asset's output once for *every* partition of the
run, so when some countries failed the asset instead reports one ``AssetMaterialization`` per
country it wrote and then raises :class:`dagster.Failure`: the written countries show as
materialized partitions, the failed ones as failed, and the run fails naming them. When all
succeed it returns one ``MaterializeResult`` whose per-country metadata is attached with
``context.add_asset_metadata(partition_key=...)``, so each partition still gets its own metadata
and exactly one materialization.
"""

# No `from __future__ import annotations`: Dagster inspects the real `context` annotation.
from collections.abc import Iterator, Sequence
from pathlib import Path

import polars as pl
import requests
from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetMaterialization,
    AssetsDefinition,
    BackfillPolicy,
    ConfigurableResource,
    Failure,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
)
from upath import UPath

from platform_assets import settings
from platform_assets.core.lake import delta
from platform_assets.core.medallion.scd import CdcSpec, apply_changes
from platform_assets.core.rest import countries as api
from platform_assets.lib.metadata import numbers, table_state
from platform_assets.lib.resources import LakehouseResource

GROUP = "countries"
DEFAULT_COUNTRIES = settings.DEFAULT_COUNTRIES
RAW_KEY = AssetKey(["raw", "countries"])
SILVER_KEY = AssetKey(["silver", "countries"])
TABLE = "countries"


def country_partitions(countries: Sequence[str]) -> StaticPartitionsDefinition:
    """One partition per configured country (``settings.countries``, ``PLATFORM_COUNTRIES``); a name that
    cannot be a file fails when definitions load. There is no module-level partitions object: the
    partitions are those of the settings the definitions are built from."""
    if not countries:
        raise ValueError("at least one country must be configured")
    for name in countries:
        api.country_file_name(name)
    return StaticPartitionsDefinition(list(countries))


SILVER_SCHEMA = pl.Schema(
    {
        "name": pl.String,
        "official_name": pl.String,
        "cca2": pl.String,
        "cca3": pl.String,
        "region": pl.String,
        "subregion": pl.String,
        "population": pl.Int64,
        "area": pl.Float64,
        "capital": pl.String,
        "currencies": pl.String,
        "languages": pl.String,
        "source_file": pl.String,
    }
)
SILVER_SPEC = CdcSpec(keys=("cca3",), sequence_by=None, stored_as_scd_type=1)


class CountryApiResource(ConfigurableResource):
    """The REST Countries API (or the local stand-in): where it is and how patiently to call it."""

    base_url: str
    timeout: float = 10.0
    """Seconds to wait for a connection and for each read."""
    attempts: int = 4
    """Tries per country: connection errors, timeouts and HTTP 500/502/503/504 are retried."""
    backoff: float = 0.5
    """urllib3 backoff factor: sleeps of backoff * 2**(n-1) seconds before retry n >= 2."""

    def session(self) -> requests.Session:
        return api.session_with_retries(attempts=self.attempts, backoff=self.backoff)

    def url(self, name: str) -> str:
        return api.country_url(self.base_url, name)

    def fetch(self, session: requests.Session, name: str) -> list[dict]:
        return api.fetch_country(session, self.base_url, name, timeout=self.timeout)


def _describe(name: str, exc: Exception) -> str:
    if isinstance(exc, api.CountryApiError):
        return str(exc)
    return f"{name}: {exc.__class__.__name__}: {exc}"


def _fetch_countries(
    context: AssetExecutionContext, lakehouse: LakehouseResource, country_api: CountryApiResource
) -> Iterator:
    keys = list(context.partition_keys)
    folder = lakehouse.path("raw", TABLE)
    session = country_api.session()
    written: dict[str, dict] = {}
    errors: dict[str, str] = {}
    context.log.info(f"fetching {len(keys)} country(ies) from {country_api.base_url} into {folder}")
    try:
        for i, name in enumerate(keys, start=1):
            url = country_api.url(name)
            try:
                path = folder / api.country_file_name(name)
                matches = country_api.fetch(session, name)
                size = api.write_json_atomic(path, matches)
            except (api.CountryApiError, requests.RequestException, OSError, ValueError) as exc:
                errors[name] = _describe(name, exc)
                context.log.warning(f"[{i}/{len(keys)}] {errors[name]}")
                continue
            written[name] = {
                "url": MetadataValue.url(url),
                "path": MetadataValue.path(str(path)),
                "bytes": MetadataValue.int(size),
                "matches": MetadataValue.int(len(matches)),
            }
            context.log.info(f"[{i}/{len(keys)}] {name}: {len(matches)} match(es), {size} bytes -> {path}")
    finally:
        session.close()

    if errors:
        # The output would mark every partition of the run materialized: report the good ones only.
        for name, metadata in written.items():
            yield AssetMaterialization(asset_key=RAW_KEY, partition=name, metadata=metadata)
        raise Failure(
            description=f"{len(errors)} of {len(keys)} countries failed: " + "; ".join(errors.values()),
            metadata={"failed": list(errors), "written": list(written), "errors": errors},
        )
    for name, metadata in written.items():
        context.add_asset_metadata(metadata, partition_key=name)
    yield MaterializeResult(
        metadata={
            **numbers(countries=len(written), bytes=sum(m["bytes"].value for m in written.values())),
            "folder": MetadataValue.path(str(folder)),
        }
    )


def build_raw_countries(partitions: StaticPartitionsDefinition) -> AssetsDefinition:
    """``raw/countries`` over the configured countries (``PLATFORM_COUNTRIES``)."""
    return asset(
        key=RAW_KEY,
        group_name=GROUP,
        partitions_def=partitions,
        backfill_policy=BackfillPolicy.single_run(),
        kinds={"raw", "api", "json"},
        description="REST Countries /name/<country> responses (every match, as JSON), one file per country.",
    )(_fetch_countries)


def read_raw_files(folder: UPath | Path, warn=None) -> tuple[pl.DataFrame, dict[str, str], int]:
    """Flatten every ``*.json`` file of `folder`: (rows, {skipped file: reason}, files read).

    A file that cannot be parsed as a country response is skipped (and reported through `warn`).
    """
    rows, skipped = [], {}
    files = sorted(folder.glob("*.json")) if folder.is_dir() else []
    for path in files:
        name = api.name_from_file(path.name)
        try:
            matches = api.parse_response(path.read_bytes(), name)
            rows.append(api.flatten(matches, name=name, source_file=path.name))
        except (OSError, api.CountryApiError, TypeError, ValueError, AttributeError) as exc:
            skipped[path.name] = str(exc)
            if warn is not None:
                warn(f"skipping {path.name}: {exc}")
    return pl.DataFrame(rows, schema=SILVER_SCHEMA), skipped, len(files)


@asset(
    key=SILVER_KEY,
    deps=[RAW_KEY],
    group_name=GROUP,
    kinds={"silver", "delta", "polars"},
    description="One row per country (keyed on cca3), flattened from raw/countries; latest file wins (SCD1).",
)
def silver_countries(context: AssetExecutionContext, lakehouse: LakehouseResource) -> MaterializeResult:
    folder = lakehouse.path("raw", TABLE)
    target = str(lakehouse.path("silver", TABLE))
    batch, skipped, files = read_raw_files(folder, warn=context.log.warning)
    context.log.info(f"{files} raw file(s), {batch.height} row(s), {len(skipped)} skipped")
    result = apply_changes(target, batch, SILVER_SPEC)
    if result.rejected.height:
        context.log.warning(f"{result.rejected.height} row(s) without cca3 not stored")
    metadata = {
        **numbers(
            rows=batch.height,
            rows_inserted=result.rows_inserted,
            rows_updated=result.rows_updated,
            rows_rejected=result.rejected.height,
            files_read=files,
            files_skipped=len(skipped),
            delta_version=result.version,
        ),
        "committed": result.committed,
        # the table as its log describes it, committed this time or not (columns, version and rows)
        **table_state(delta.snapshot(target)),
    }
    if skipped:
        metadata["skipped"] = MetadataValue.json(skipped)
    return MaterializeResult(metadata=metadata)
