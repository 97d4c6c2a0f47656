"""The one place that reads the environment and the configuration files.

Every other module receives a :class:`Settings` (or values taken from it); nothing else looks at
``os.environ`` or ``config/``. The environment (``dev``/``sit``/``prod``, ``PLATFORM_ENV``) is a catalog,
the way the seed's Unity Catalog keeps one catalog per environment: it picks ``config/<env>.yaml``, whose
values sit under the environment variables (a variable always wins) and over the built-in defaults.
Secrets come only from environment variables: a file that holds one is refused.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import sqlalchemy as sa
import yaml
from upath import UPath

from platform_assets.core.config import ENGINES, Engine
from platform_assets.core.lake import LAYERS, catalog_name, landing_location, location, table_location

ENVIRONMENTS = ("dev", "sit", "prod")
DEFAULT_COUNTRIES = ("India", "United States", "United Kingdom", "China", "Russia")
# Settings that may carry credentials: when set, Dagster resolves them from the environment at run
# time (EnvVar), so their values never appear in run config or the UI; error messages never show them.
SECRET_VARIABLES = (
    "PLATFORM_SOURCE_URL",
    "PLATFORM_STATE_URL",
    "PLATFORM_AUDIT_URL",
    "PLATFORM_ALERT_WEBHOOK_URL",
    "PLATFORM_KAFKA_CONFIG",
    "PLATFORM_SERVING_URL",
    "PLATFORM_SPARK_CONF",
    "PLATFORM_SPARK_REMOTE",
)
# Where config/<env>.yaml files are looked for unless PLATFORM_CONFIG_DIR says otherwise.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
# Settings that may never be written in a file (tokens, webhook URLs, client credentials).
_ENVIRONMENT_ONLY = (
    "PLATFORM_ALERT_WEBHOOK_URL",
    "PLATFORM_KAFKA_CONFIG",
    "PLATFORM_SPARK_CONF",
    "PLATFORM_SPARK_REMOTE",
)
# Database URLs: in a file only without a password (a SQLite path, a trusted local server).
_DATABASE_URLS = ("PLATFORM_SOURCE_URL", "PLATFORM_AUDIT_URL", "PLATFORM_STATE_URL", "PLATFORM_SERVING_URL")
DEFAULT_TRADES_WS_URL = "wss://stream.binance.com:9443/ws/btcusdt@trade"
DEFAULT_TRADES_LOOKUP_URL = "https://api.binance.com/api/v3/exchangeInfo"


class SettingsError(ValueError):
    """A setting has a value the platform cannot use.

    The message is one line naming the variable, its value (never for a secret) and what is allowed, so
    a command can print it as it is (``error: <message>``) instead of a traceback.
    """


# Longer values are cut in messages: a pasted file or JSON blob would bury the one line that matters.
_SHOWN_CHARS = 60


def shown(value: object) -> str:
    """``value`` as it appears in a one-line message: quoted, escaped, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 4]}...{text[-1]}"


def database_url(value: str, name: str) -> str:
    """Check that ``value`` is a SQLAlchemy URL of a dialect this installation has; return it.

    ``name`` is what the message calls it (the variable, or ``--url``). The value itself is never put in
    the message, as a database URL may hold a password; the dialect name alone is safe to show.
    """
    try:
        url = sa.engine.make_url(value)
    except sa.exc.ArgumentError:
        raise SettingsError(
            f"{name} is not a SQLAlchemy URL (expected dialect+driver://user:password@host/database, "
            "e.g. sqlite:///data/source.db); its value is not shown as it may hold a password"
        ) from None
    try:
        url.get_dialect()
    except sa.exc.NoSuchModuleError:
        raise SettingsError(
            f"{name} names an unknown database dialect {shown(url.drivername)}; expected one of sqlite, "
            "postgresql+psycopg, mysql+pymysql, mssql+pyodbc (the rest of the value is not shown)"
        ) from None
    return value


def _http_url(value: str, name: str, *, secret: bool = False) -> str:
    if value.startswith(("http://", "https://")) and len(value) > len("https://"):
        return value
    got = "its value is not shown as it is a secret" if secret else f"got {shown(value)}"
    raise SettingsError(f"{name} must be an http:// or https:// URL; {got}")


def _engine(value: str) -> Engine:
    if value not in ENGINES:
        raise SettingsError(f"PLATFORM_ENGINE must be one of {', '.join(ENGINES)}, got {shown(value)}")
    return value  # type: ignore[return-value]


def _spark_remote(value: str | None) -> str | None:
    if value is None or value.startswith("sc://"):
        return value
    raise SettingsError(
        "PLATFORM_SPARK_REMOTE must be a Spark Connect URL (sc://host:15002/...); its value is not shown"
    )


def _spark_conf(value: str | None) -> dict[str, str]:
    """``PLATFORM_SPARK_CONF``: a JSON object of Spark settings. Never echoed: it may hold credentials."""
    if not value or not value.strip():
        return {}
    try:
        conf = json.loads(value)
    except ValueError as exc:
        raise SettingsError(f"PLATFORM_SPARK_CONF is not valid JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(conf, dict) or not all(isinstance(k, str) for k in conf):
        raise SettingsError("PLATFORM_SPARK_CONF must be a JSON object of setting names to values")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in conf.items()}


def _topic(value: str) -> str:
    """A Kafka topic name as Kafka allows it: letters, digits, '.', '_', '-', at most 249 characters."""
    if re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) and value not in (".", ".."):
        return value
    raise SettingsError(
        f"PLATFORM_TRADES_TOPIC must be a Kafka topic name (letters, digits, '.', '_', '-'), got {shown(value)}"
    )


def _cron(value: str, name: str) -> str:
    """A five-field cron expression (minute hour day month weekday); Dagster checks the values' ranges."""
    fields = value.split()
    if len(fields) == 5 and all(re.fullmatch(r"[0-9A-Za-z*,/-]+", f) for f in fields):
        return " ".join(fields)
    raise SettingsError(
        f"{name} must be a cron expression like '0 2 * * *' (five fields), got {shown(value)}"
    )


def _websocket_url(value: str) -> str:
    if value.startswith(("ws://", "wss://")) and len(value) > len("wss://"):
        return value
    raise SettingsError(f"PLATFORM_TRADES_WS_URL must be a ws:// or wss:// URL, got {shown(value)}")


# Integer settings and their lower bounds. Checked in Settings, so settings built in code are held to the
# same rules as the environment; 0 concurrent tables or a 0-row batch would hang or loop, not fail.
_MINIMUM = {
    "PLATFORM_BATCH_SIZE": ("batch_size", 1),
    "PLATFORM_MAX_CONCURRENT_TABLES": ("max_concurrent_tables", 1),
    "PLATFORM_LATE_DAYS": ("late_days", 0),
    "PLATFORM_CUSTOMER_THRESHOLD": ("customer_threshold", 0),
    "PLATFORM_PRODUCT_THRESHOLD": ("product_threshold", 0),
    "PLATFORM_MIN_INGESTED_ROWS": ("min_ingested_rows", 0),
    "PLATFORM_TRADES_MAX_BATCH_ROWS": ("trades_max_batch_rows", 1),
}


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
    # the trade stream (seeds 003 and 000); no bootstrap: an embedded broker
    kafka_bootstrap: str | None = None
    kafka_config: str | None = field(default=None, repr=False)  # JSON client settings (SASL...): secret
    trades_topic: str = "trades"
    trades_ws_url: str = DEFAULT_TRADES_WS_URL
    trades_lookup_url: str = DEFAULT_TRADES_LOOKUP_URL
    # the most messages one micro-batch lands: bounds a run's memory when it catches up on a backlog
    trades_max_batch_rows: int = 100_000
    serving_url: str = field(default="", repr=False)
    min_ingested_rows: int = 1
    # when the scheduled flows run (cron, UTC for the medallion, India time for the countries as in the seed)
    medallion_schedule: str = "0 2 * * *"
    countries_schedule: str = "0 0,12 * * *"
    # the engine of silver and gold (tables.yaml may choose per table); Spark's session settings
    engine: Engine = "polars"
    spark_master: str = "local[*]"
    spark_remote: str | None = field(default=None, repr=False)  # Spark Connect, sc://...: may hold a token
    spark_conf: Mapping[str, str] = field(default_factory=dict, repr=False)
    secrets_in_environment: frozenset[str] = frozenset()
    config_file: Path | None = None  # the config/<env>.yaml the values came from, if any

    def __post_init__(self) -> None:
        if self.env not in ENVIRONMENTS:
            raise SettingsError(
                f"PLATFORM_ENV must be one of {', '.join(ENVIRONMENTS)}, got {shown(self.env)}"
            )
        for name, (attribute, minimum) in _MINIMUM.items():
            value = getattr(self, attribute)
            if value < minimum:
                raise SettingsError(f"{name} must be an integer of {minimum} or more, got {value}")
        data_dir = Path(self.data_dir).resolve()
        object.__setattr__(self, "data_dir", data_dir)
        defaults = {
            "source_url": f"sqlite:///{data_dir / 'source.db'}",
            "audit_url": f"sqlite:///{data_dir / 'audit.db'}",
            "state_url": f"sqlite:///{data_dir / 'state.db'}",
            "serving_url": f"sqlite:///{data_dir / 'serving.db'}",
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
            raise SettingsError(f"unknown layer {shown(layer)}; expected one of {', '.join(LAYERS)}")
        return table_location(self.lake_root, layer, table)

    def landing_path(self, table: str) -> UPath:
        """``<lake>/<env>/landing/<table>``: where a ``source: files`` table's files are dropped."""
        return landing_location(self.lake_root, table)

    def table_name(self, layer: str, table: str) -> str:
        """``<env>.<layer>.<table>``, the table's three-part name in this environment's catalog."""
        self.table_path(layer, table)  # the same checks
        return catalog_name(self.env, layer, table)


def _int(environ: Mapping[str, str], name: str, default: int) -> int:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return int(raw)
    except ValueError:
        # `from None`: the chained ValueError would only repeat the value in a second traceback
        raise SettingsError(
            f"{name} must be an integer of {_MINIMUM[name][1]} or more, got {shown(raw)}"
        ) from None


def _date(environ: Mapping[str, str], name: str, default: date) -> date:
    raw = environ.get(name)
    if raw in (None, ""):
        return default
    try:
        return date.fromisoformat(raw)
    except ValueError:
        raise SettingsError(f"{name} must be a date like 2024-01-01 (YYYY-MM-DD), got {shown(raw)}") from None


def _names(environ: Mapping[str, str], name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = environ.get(name)
    if not raw:
        return default
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise SettingsError(
            f"{name} must be a comma-separated list of names like India,Japan, got {shown(raw)}"
        )
    return names


def _database_url(environ: Mapping[str, str], name: str) -> str:
    raw = environ.get(name, "")
    return database_url(raw, name) if raw else ""


# Every variable load_settings reads; a configuration file may set those that are not secrets, by the
# name without its prefix in lower case (``late_days: 2`` for PLATFORM_LATE_DAYS).
VARIABLES = (
    "PLATFORM_DATA_DIR", "PLATFORM_SOURCE_URL", "PLATFORM_AUDIT_URL", "PLATFORM_STATE_URL",
    "PLATFORM_LAKE_URL", "PLATFORM_PARTITION_START", "PLATFORM_ALERT_WEBHOOK_URL", "PLATFORM_COUNTRY_API_URL",
    "PLATFORM_COUNTRIES", "PLATFORM_UI_URL", "PLATFORM_SOURCE_SCHEMA", "PLATFORM_CUSTOMER_THRESHOLD",
    "PLATFORM_PRODUCT_THRESHOLD", "PLATFORM_BATCH_SIZE", "PLATFORM_LATE_DAYS", "PLATFORM_MAX_CONCURRENT_TABLES",
    "PLATFORM_TABLES_FILE", "PLATFORM_KAFKA_BOOTSTRAP", "PLATFORM_KAFKA_CONFIG", "PLATFORM_TRADES_TOPIC",
    "PLATFORM_TRADES_WS_URL", "PLATFORM_TRADES_LOOKUP_URL", "PLATFORM_TRADES_MAX_BATCH_ROWS",
    "PLATFORM_SERVING_URL", "PLATFORM_MIN_INGESTED_ROWS", "PLATFORM_ENGINE", "PLATFORM_SPARK_MASTER",
    "PLATFORM_SPARK_REMOTE", "PLATFORM_SPARK_CONF", "PLATFORM_MEDALLION_SCHEDULE", "PLATFORM_COUNTRIES_SCHEDULE",
)  # fmt: skip


def config_file(environ: Mapping[str, str]) -> Path | None:
    """``<PLATFORM_CONFIG_DIR or config/>/<env>.yaml``; None when the default folder has no such file.

    A folder named by PLATFORM_CONFIG_DIR must hold the file: a typo there would otherwise run an
    environment on built-in defaults (and dev's data folder).
    """
    env = environ.get("PLATFORM_ENV") or "dev"
    if env not in ENVIRONMENTS:
        raise SettingsError(f"PLATFORM_ENV must be one of {', '.join(ENVIRONMENTS)}, got {shown(env)}")
    named = environ.get("PLATFORM_CONFIG_DIR")
    path = Path(named or CONFIG_DIR) / f"{env}.yaml"
    if path.is_file():
        return path
    if named:
        raise SettingsError(f"PLATFORM_CONFIG_DIR={shown(named)} has no {env}.yaml for PLATFORM_ENV={env}")
    return None


def _file_value(path: Path, key: str, value: object) -> str:
    variable = f"PLATFORM_{key.upper()}"
    if variable not in VARIABLES:
        raise SettingsError(f"{path.name}: unknown setting {shown(key)}; expected one of the PLATFORM_* variables' "
                            "names in lower case without the prefix, e.g. late_days")  # fmt: skip
    if variable in _ENVIRONMENT_ONLY:
        raise SettingsError(
            f"{path.name}: {key} is a secret and comes only from the environment variable {variable}"
        )
    if isinstance(value, list):
        value = ",".join(str(v) for v in value)
    if value is None or isinstance(value, dict | bool):
        raise SettingsError(f"{path.name}: {key} must be a text, number or list, got {shown(value)}")
    text = str(value)
    if variable in _DATABASE_URLS:
        try:
            password = sa.engine.make_url(text).password
        except sa.exc.ArgumentError:
            password = None  # reported by the URL's own check, with the variable's name
        if password is not None:
            raise SettingsError(
                f"{path.name}: {key} holds a password; set {variable} in the environment instead"
            )
    return text


def file_settings(path: Path) -> dict[str, str]:
    """The variables a configuration file sets, as text (the environment's form)."""
    try:
        content = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as exc:
        raise SettingsError(f"{path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(content, dict):
        raise SettingsError(f"{path} must be a mapping of setting names to values")
    return {f"PLATFORM_{str(k).upper()}": _file_value(path, str(k), v) for k, v in content.items()}


def _overlay(environ: Mapping[str, str]) -> dict[str, str]:
    """The configuration file's values under the environment's (a variable set to "" counts as unset)."""
    path = config_file(environ)
    merged = file_settings(path) if path else {}
    merged.update({k: v for k, v in environ.items() if v != ""})
    return merged


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``PLATFORM_*`` environment variables over ``config/<env>.yaml`` (all optional)."""
    real = os.environ if environ is None else environ
    env = _overlay(real)
    webhook = env.get("PLATFORM_ALERT_WEBHOOK_URL") or None
    if webhook is not None:
        _http_url(webhook, "PLATFORM_ALERT_WEBHOOK_URL", secret=True)
    return Settings(
        env=env.get("PLATFORM_ENV", "dev") or "dev",
        data_dir=Path(env.get("PLATFORM_DATA_DIR") or "data"),
        source_url=_database_url(env, "PLATFORM_SOURCE_URL"),
        audit_url=_database_url(env, "PLATFORM_AUDIT_URL"),
        state_url=_database_url(env, "PLATFORM_STATE_URL"),
        lake_url=env.get("PLATFORM_LAKE_URL", ""),
        partition_start=_date(env, "PLATFORM_PARTITION_START", date(2024, 1, 1)),
        alert_webhook_url=webhook,
        country_api_url=_http_url(
            env.get("PLATFORM_COUNTRY_API_URL") or "https://restcountries.com/v3.1",
            "PLATFORM_COUNTRY_API_URL",
        ).rstrip("/"),
        countries=_names(env, "PLATFORM_COUNTRIES", DEFAULT_COUNTRIES),
        ui_url=_http_url(env.get("PLATFORM_UI_URL") or "http://127.0.0.1:3000", "PLATFORM_UI_URL").rstrip(
            "/"
        ),
        source_schema=env.get("PLATFORM_SOURCE_SCHEMA") or None,
        customer_threshold=_int(env, "PLATFORM_CUSTOMER_THRESHOLD", 500),
        product_threshold=_int(env, "PLATFORM_PRODUCT_THRESHOLD", 600),
        batch_size=_int(env, "PLATFORM_BATCH_SIZE", 100_000),
        late_days=_int(env, "PLATFORM_LATE_DAYS", 1),
        max_concurrent_tables=_int(env, "PLATFORM_MAX_CONCURRENT_TABLES", 4),
        tables_file=Path(env.get("PLATFORM_TABLES_FILE") or Path(__file__).with_name("tables.yaml")),
        kafka_bootstrap=env.get("PLATFORM_KAFKA_BOOTSTRAP") or None,
        kafka_config=env.get("PLATFORM_KAFKA_CONFIG") or None,
        trades_topic=_topic(env.get("PLATFORM_TRADES_TOPIC") or "trades"),
        trades_ws_url=_websocket_url(env.get("PLATFORM_TRADES_WS_URL") or DEFAULT_TRADES_WS_URL),
        trades_lookup_url=_http_url(
            env.get("PLATFORM_TRADES_LOOKUP_URL") or DEFAULT_TRADES_LOOKUP_URL, "PLATFORM_TRADES_LOOKUP_URL"
        ),
        trades_max_batch_rows=_int(env, "PLATFORM_TRADES_MAX_BATCH_ROWS", 100_000),
        serving_url=_database_url(env, "PLATFORM_SERVING_URL"),
        min_ingested_rows=_int(env, "PLATFORM_MIN_INGESTED_ROWS", 1),
        medallion_schedule=_cron(
            env.get("PLATFORM_MEDALLION_SCHEDULE") or "0 2 * * *", "PLATFORM_MEDALLION_SCHEDULE"
        ),
        countries_schedule=_cron(
            env.get("PLATFORM_COUNTRIES_SCHEDULE") or "0 0,12 * * *", "PLATFORM_COUNTRIES_SCHEDULE"
        ),
        engine=_engine(env.get("PLATFORM_ENGINE") or "polars"),
        spark_master=env.get("PLATFORM_SPARK_MASTER") or "local[*]",
        spark_remote=_spark_remote(env.get("PLATFORM_SPARK_REMOTE") or None),
        spark_conf=_spark_conf(env.get("PLATFORM_SPARK_CONF")),
        secrets_in_environment=frozenset(name for name in SECRET_VARIABLES if real.get(name)),
        config_file=config_file(real),
    )
