"""The one place that reads the environment.

Every other module receives a :class:`Settings` (or values taken from it); nothing else looks at
``os.environ``. The environment (``dev``/``sit``/``prod``) selects the catalog folder of the lake, the
way the seed's Unity Catalog keeps one catalog per environment.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

from upath import UPath

from platform_assets.core.lake import location

ENVIRONMENTS = ("dev", "sit", "prod")
LAYERS = ("raw", "bronze", "silver", "gold")
# Settings that may carry credentials: when set, Dagster resolves them from the environment at run
# time (EnvVar), so their values never appear in run config or the UI.
DEFAULT_COUNTRIES = ("India", "United States", "United Kingdom", "China", "Russia")
SECRET_VARIABLES = ("PLATFORM_SOURCE_URL", "PLATFORM_STATE_URL", "PLATFORM_AUDIT_URL", "PLATFORM_ALERT_WEBHOOK_URL")


class SettingsError(ValueError):
    """A setting has a value the platform cannot use."""


@dataclass(frozen=True)
class Settings:
    env: str = "dev"
    data_dir: Path = Path("data")
    # URLs may carry credentials: kept out of repr (logs, tracebacks).
    source_url: str = field(default="", repr=False)
    audit_url: str = field(default="", repr=False)
    state_url: str = field(default="", repr=False)
    lake_url: str = ""
    partition_start: date = date(2024, 1, 1)
    alert_webhook_url: str | None = field(default=None, repr=False)
    country_api_url: str = "https://restcountries.com/v3.1"
    ui_url: str = "http://127.0.0.1:3000"
    countries: tuple[str, ...] = DEFAULT_COUNTRIES
    source_schema: str | None = None
    customer_threshold: int = 500
    product_threshold: int = 600
    batch_size: int = 100_000
    late_days: int = 1
    max_concurrent_tables: int = 4
    tables_file: Path = Path(__file__).with_name("tables.yaml")
    secrets_in_environment: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise SettingsError(f"PLATFORM_ENV must be one of {', '.join(ENVIRONMENTS)}, got {self.env!r}")
        if self.late_days < 0:
            raise SettingsError(f"PLATFORM_LATE_DAYS must be 0 or more, got {self.late_days}")
        if self.batch_size <= 0:
            raise SettingsError(f"PLATFORM_BATCH_SIZE must be positive, got {self.batch_size}")
        data_dir = Path(self.data_dir).resolve()
        object.__setattr__(self, "data_dir", data_dir)
        defaults = {
            "source_url": f"sqlite:///{data_dir / 'source.db'}",
            "audit_url": f"sqlite:///{data_dir / 'audit.db'}",
            "state_url": f"sqlite:///{data_dir / 'state.db'}",
        }
        for name, default in defaults.items():
            if not getattr(self, name):
                object.__setattr__(self, name, default)
        if not self.lake_url:
            object.__setattr__(self, "lake_url", str(data_dir / "lake"))

    @property
    def lake_root(self) -> UPath:
        """``<lake_url>/<env>``: the environment's catalog (a local folder or an object-store URL)."""
        return location(self.lake_url) / self.env

    def table_path(self, layer: str, table: str) -> UPath:
        if layer not in LAYERS:
            raise SettingsError(f"unknown layer {layer!r}; expected one of {', '.join(LAYERS)}")
        return self.lake_root / layer / table.lower()


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be an integer, got {raw!r}") from exc


def _date(environ: Mapping[str, str], name: str, default: date) -> date:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise SettingsError(f"{name} must be a date like 2024-01-01, got {raw!r}") from exc


def _names(environ: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = environ.get(name)
    if not raw:
        return default
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise SettingsError(f"{name} must be a comma-separated list, got {raw!r}")
    return names


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``PLATFORM_*`` environment variables (all optional)."""
    env = os.environ if environ is None else environ
    return Settings(
        env=env.get("PLATFORM_ENV", "dev") or "dev",
        data_dir=Path(env.get("PLATFORM_DATA_DIR") or "data"),
        source_url=env.get("PLATFORM_SOURCE_URL", ""),
        audit_url=env.get("PLATFORM_AUDIT_URL", ""),
        state_url=env.get("PLATFORM_STATE_URL", ""),
        lake_url=env.get("PLATFORM_LAKE_URL", ""),
        partition_start=_date(env, "PLATFORM_PARTITION_START", date(2024, 1, 1)),
        alert_webhook_url=env.get("PLATFORM_ALERT_WEBHOOK_URL") or None,
        country_api_url=(env.get("PLATFORM_COUNTRY_API_URL") or "https://restcountries.com/v3.1").rstrip("/"),
        countries=_names(env, "PLATFORM_COUNTRIES", DEFAULT_COUNTRIES),
        ui_url=(env.get("PLATFORM_UI_URL") or "http://127.0.0.1:3000").rstrip("/"),
        source_schema=env.get("PLATFORM_SOURCE_SCHEMA") or None,
        customer_threshold=_int(env, "PLATFORM_CUSTOMER_THRESHOLD", 500),
        product_threshold=_int(env, "PLATFORM_PRODUCT_THRESHOLD", 600),
        batch_size=_int(env, "PLATFORM_BATCH_SIZE", 100_000),
        late_days=_int(env, "PLATFORM_LATE_DAYS", 1),
        max_concurrent_tables=_int(env, "PLATFORM_MAX_CONCURRENT_TABLES", 4),
        tables_file=Path(env.get("PLATFORM_TABLES_FILE") or Path(__file__).with_name("tables.yaml")),
        secrets_in_environment=frozenset(name for name in SECRET_VARIABLES if env.get(name)),
    )
