"""Reading the lake's Delta tables in assets of your own, through dagster-deltalake's ``DeltaTableResource``.

The platform writes its tables itself, in the core (exactly-once commits, SCD merges, schema checks, one
writer per table's pool): an IO manager writing them would bypass all of that. An asset built on top of
silver or gold only reads, and :func:`lake_table` gives it the resource for one table: the table's location
in this environment's lake and the lake's storage options, i.e. the provider of the lake URL's scheme.
Credentials and endpoints are not put into the resource: delta-rs reads them from each store's standard
variables (``AWS_*``, ``GOOGLE_*``, ``AZURE_*``), as the platform's own reads do, so no secret appears in
run config or the UI.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from dagster_deltalake import AzureConfig, DeltaTableResource, GcsConfig, LocalConfig, S3Config

from platform_assets.core.lake.locations import Layer, is_url
from platform_assets.settings import Settings, SettingsError

StorageConfig = LocalConfig | S3Config | GcsConfig | AzureConfig

_SCHEMES = {
    "s3": "s3",
    "s3a": "s3",
    "gs": "gcs",
    "gcs": "gcs",
    "az": "azure",
    "abfs": "azure",
    "abfss": "azure",
    "adl": "azure",
}


def storage_config(lake_url: str) -> StorageConfig:
    """The dagster-deltalake storage options for a lake at ``lake_url`` (a folder or an object-store URL)."""
    if not is_url(lake_url) or lake_url.startswith("file://"):
        return LocalConfig()
    parts = urlsplit(lake_url)
    provider = _SCHEMES.get(parts.scheme)
    if provider is None:
        raise SettingsError(
            f"PLATFORM_LAKE_URL={parts.scheme}://...: no Delta storage provider for {parts.scheme!r} "
            f"(known: {', '.join(sorted(_SCHEMES))})"
        )
    if provider == "s3":
        return S3Config()
    if provider == "gcs":
        return GcsConfig()
    # azure
    # abfss://container@account.dfs.core.windows.net/...: the account is in the URL (it is not a secret);
    # az://container/... names it in AZURE_STORAGE_ACCOUNT_NAME, as for delta-rs itself.
    account = parts.netloc.rpartition("@")[2].split(".")[0] if "@" in parts.netloc else ""
    account = account or os.environ.get("AZURE_STORAGE_ACCOUNT_NAME", "")
    if not account:
        raise SettingsError(
            f"PLATFORM_LAKE_URL={parts.scheme}://{parts.netloc}/...: name the storage account "
            "(abfss://<container>@<account>.dfs.core.windows.net/...) or set AZURE_STORAGE_ACCOUNT_NAME"
        )
    return AzureConfig(account_name=account)


def lake_table(settings: Settings, layer: Layer, table: str) -> DeltaTableResource:
    """A read-only handle on ``<layer>/<table>`` of this environment's lake (``table`` as in tables.yaml)."""
    return DeltaTableResource(
        url=str(settings.table_path(layer, table)), storage_options=storage_config(settings.lake_url)
    )
