"""Dagster resources, built once from settings.

URLs that may hold credentials are passed as ``EnvVar`` when they come from the environment, so Dagster
resolves them at run time and never shows or stores their values.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from dagster import ConfigurableResource, EnvVar
from upath import UPath

from platform_assets.core.audit import AuditStore
from platform_assets.core.lake.locations import Layer, landing_location, location, table_location
from platform_assets.core.medallion.config import load_tables
from platform_assets.core.sql.engines import engine_for
from platform_assets.core.state import StateStore
from platform_assets.settings import SETTINGS, Settings, SettingsError


class LakehouseResource(ConfigurableResource):
    """Where the lake, the source database and the pipeline state live, for one environment."""

    env: str
    lake_url: str
    source_url: str
    state_url: str
    batch_size: int

    @property
    def lake_root(self) -> UPath:
        return location(self.lake_url) / self.env

    def path(self, layer: Layer, table: str) -> UPath:
        return table_location(self.lake_root, layer, table)

    def landing(self, table: str) -> UPath:
        """The landing folder of a ``source: files`` table."""
        return landing_location(self.lake_root, table)

    def source_engine(self) -> sa.Engine:
        return engine_for(self.source_url)

    def state(self) -> StateStore:
        return StateStore(self.state_url, self.env)


class AuditResource(ConfigurableResource):
    """Where the audit trail is written and alerts are sent."""

    audit_url: str
    environment: str
    ui_url: str = "http://127.0.0.1:3000"
    alert_webhook_url: str | None = None
    alert_attempts: int = 4
    """Tries per alert and tick (timeout 5 s each, exponential backoff between them)."""

    def store(self) -> AuditStore:
        store = AuditStore(self.audit_url)
        store.setup()
        return store


class NoSpark(ConfigurableResource):
    """The ``spark`` resource of a deployment where every table runs on polars: no JVM, no pyspark."""

    @property
    def spark_session(self):
        raise RuntimeError(
            "no table runs on Spark here: set PLATFORM_ENGINE=spark or engine: spark in tables.yaml"
        )


def secret(settings: Settings, name: str) -> Any:
    """The secret setting ``name`` (``source_url``) as a resource's field: ``EnvVar("PLATFORM_SOURCE_URL")``
    when the environment set it, so Dagster resolves it at run time and its value never appears in run
    config or the UI; else the value itself (a default, or a password-free URL from a file)."""
    variable = SETTINGS[name].variable
    if not SETTINGS[name].var.secret:
        raise ValueError(f"{name} is not declared a secret setting")
    return EnvVar(variable) if variable in settings.secrets_in_environment else getattr(settings, name)


def uses_spark(settings: Settings) -> bool:
    """True when the engine, or any table's own ``engine:``, is Spark."""
    return settings.engine == "spark" or any(t.engine == "spark" for t in load_tables(settings.tables_file))


def engine_resource(settings: Settings) -> ConfigurableResource:
    """The Spark session resource when a table runs on Spark; otherwise a stand-in that never starts one."""
    if not uses_spark(settings):
        return NoSpark()
    try:
        from platform_assets.lib.spark import spark_resource
    except ImportError as exc:
        raise SettingsError(
            f"the spark engine needs the spark extra ({exc.name} is missing): pip install -e '.[spark]'"
        ) from None
    return spark_resource(settings)


def build_resources(settings: Settings) -> dict:
    return {
        "spark": engine_resource(settings),
        "lakehouse": LakehouseResource(
            env=settings.env,
            lake_url=settings.lake_url,
            source_url=secret(settings, "source_url"),
            state_url=secret(settings, "state_url"),
            batch_size=settings.batch_size,
        ),
        "audit": AuditResource(
            audit_url=secret(settings, "audit_url"),
            environment=settings.env,
            ui_url=settings.ui_url,
            alert_webhook_url=secret(settings, "alert_webhook_url"),
        ),
    }
