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
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa
import yaml
from upath import UPath

from platform_assets.core.errors import ConfigurationError
from platform_assets.core.lake.locations import (
    LAYERS,
    catalog_name,
    landing_location,
    location,
    table_location,
)
from platform_assets.core.medallion.config import ENGINES, Engine, parse_yaml, yaml_problem

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


class SettingsError(ConfigurationError, ValueError):
    """A setting has a value the platform cannot use. Not retryable: someone changes the setting.

    The message is one line naming the variable, its value (never for a secret) and what is allowed, so
    a command can print it as it is (``error: <message>``) instead of a traceback. It lives here, beside
    the one module that raises it (every caller imports it from here).
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


def _engine(value: str, name: str = "PLATFORM_ENGINE") -> Engine:
    if value not in ENGINES:
        raise SettingsError(f"{name} must be one of {', '.join(ENGINES)}, got {shown(value)}")
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


def _topic(value: str, name: str = "PLATFORM_TRADES_TOPIC") -> str:
    """A Kafka topic name as Kafka allows it: letters, digits, '.', '_', '-', at most 249 characters."""
    if re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) and value not in (".", ".."):
        return value
    raise SettingsError(
        f"{name} must be a Kafka topic name (letters, digits, '.', '_', '-'), got {shown(value)}"
    )


# The shipped schedules (the defaults below): valid, and checked so by the tests.
_KNOWN_GOOD_CRONS = frozenset({"0 2 * * *", "0 0,12 * * *"})


def _cron(value: str, name: str) -> str:
    """A five-field cron expression (minute hour day month weekday) whose values are in range, checked
    the way Dagster checks a schedule's: ``99 99 * * *`` is refused here, not when the schedule ticks."""
    fields = value.split()
    if " ".join(fields) in _KNOWN_GOOD_CRONS:
        return " ".join(fields)
    # Imported here: Dagster takes a second to import, which commands that never load it (check_config,
    # setup, the feed) would otherwise pay on every start for the default schedules.
    from dagster._utils.schedules import is_valid_cron_string

    if (
        len(fields) == 5
        and all(re.fullmatch(r"[0-9A-Za-z*,/-]+", f) for f in fields)
        and is_valid_cron_string(" ".join(fields))
    ):
        return " ".join(fields)
    raise SettingsError(
        f"{name} must be a cron expression like '0 2 * * *' (five fields: minute 0-59, hour 0-23, "
        f"day 1-31, month 1-12, weekday 0-6), got {shown(value)}"
    )


def _websocket_url(value: str, name: str = "PLATFORM_TRADES_WS_URL") -> str:
    if value.startswith(("ws://", "wss://")) and len(value) > len("wss://"):
        return value
    raise SettingsError(f"{name} must be a ws:// or wss:// URL, got {shown(value)}")


# Whose finished runs the daily prune deletes: the trade stream's micro-batch runs, or every job's.
RUN_RETENTION_SCOPES = ("stream", "all")


def _run_retention_scope(value: str, name: str = "PLATFORM_RUN_RETENTION_SCOPE") -> str:
    if value not in RUN_RETENTION_SCOPES:
        raise SettingsError(f"{name} must be one of {', '.join(RUN_RETENTION_SCOPES)}, got {shown(value)}")
    return value


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
    "PLATFORM_TRADES_ALLOWED_LATENCY": ("trades_allowed_latency", 0),
    "PLATFORM_RUN_RETENTION_DAYS": ("run_retention_days", 0),
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
    # seconds a pending message may wait before a micro-batch starts for it (0: at once): fewer, larger
    # batches on a quiet stream; a full batch (trades_max_batch_rows) starts without waiting
    trades_allowed_latency: int = 30
    serving_url: str = field(default="", repr=False)
    min_ingested_rows: int = 1
    # when the scheduled flows run (cron, UTC for the medallion, India time for the countries as in the seed)
    medallion_schedule: str = "0 2 * * *"
    countries_schedule: str = "0 0,12 * * *"
    # Dagster's run history: finished runs older than this many days are deleted every day (0: kept for
    # ever), those of the trade stream only ("stream") or of every job ("all")
    run_retention_days: int = 7
    run_retention_scope: str = "stream"
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


class _Values:
    """The merged values (environment over file) and, for each value that came from the file, where: so a
    bad value is blamed on the line that set it, not on a variable nobody set."""

    def __init__(self, values: Mapping[str, str], origins: Mapping[str, str]) -> None:
        self.values, self.origins = values, origins

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.values.get(name, default)

    def label(self, name: str) -> str:
        """``PLATFORM_BATCH_SIZE``, or ``<file>, line 7: batch_size`` when the file set it."""
        return self.origins.get(name, name)


def _int(values: _Values, name: str, default: int) -> int:
    raw = values.get(name)
    if raw in (None, ""):
        return default
    minimum = _MINIMUM[name][1]
    try:
        number = int(raw)
    except ValueError:
        # `from None`: the chained ValueError would only repeat the value in a second traceback
        raise SettingsError(
            f"{values.label(name)} must be an integer of {minimum} or more, got {shown(raw)}"
        ) from None
    if number < minimum:
        raise SettingsError(f"{values.label(name)} must be an integer of {minimum} or more, got {number}")
    return number


def _date(values: _Values, name: str, default: date) -> date:
    raw = values.get(name)
    if raw in (None, ""):
        return default
    message = f"{values.label(name)} must be a date like 2024-01-01 (YYYY-MM-DD), got {shown(raw)}"
    if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", raw):
        raise SettingsError(message)
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:  # the right shape, not a day of the calendar (2025-02-30)
        raise SettingsError(f"{message} ({exc})") from None


def _names(values: _Values, name: str, default: tuple[str, ...]) -> tuple[str, ...]:
    raw = values.get(name)
    if not raw:
        return default
    names = tuple(part.strip() for part in raw.split(",") if part.strip())
    if not names:
        raise SettingsError(
            f"{values.label(name)} must be a comma-separated list of names like India,Japan, got {shown(raw)}"
        )
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise SettingsError(f"{values.label(name)} names {shown(twice)} twice")
    return names


def _database_url(values: _Values, name: str) -> str:
    raw = values.get(name, "")
    return database_url(raw, values.label(name)) if raw else ""


# Every variable load_settings reads; a configuration file may set those that are not secrets, by the
# name without its prefix in lower case (``late_days: 2`` for PLATFORM_LATE_DAYS).
VARIABLES = (
    "PLATFORM_DATA_DIR", "PLATFORM_SOURCE_URL", "PLATFORM_AUDIT_URL", "PLATFORM_STATE_URL",
    "PLATFORM_LAKE_URL", "PLATFORM_PARTITION_START", "PLATFORM_ALERT_WEBHOOK_URL", "PLATFORM_COUNTRY_API_URL",
    "PLATFORM_COUNTRIES", "PLATFORM_UI_URL", "PLATFORM_SOURCE_SCHEMA", "PLATFORM_CUSTOMER_THRESHOLD",
    "PLATFORM_PRODUCT_THRESHOLD", "PLATFORM_BATCH_SIZE", "PLATFORM_LATE_DAYS", "PLATFORM_MAX_CONCURRENT_TABLES",
    "PLATFORM_TABLES_FILE", "PLATFORM_KAFKA_BOOTSTRAP", "PLATFORM_KAFKA_CONFIG", "PLATFORM_TRADES_TOPIC",
    "PLATFORM_TRADES_WS_URL", "PLATFORM_TRADES_LOOKUP_URL", "PLATFORM_TRADES_MAX_BATCH_ROWS",
    "PLATFORM_TRADES_ALLOWED_LATENCY", "PLATFORM_SERVING_URL", "PLATFORM_MIN_INGESTED_ROWS", "PLATFORM_ENGINE",
    "PLATFORM_SPARK_MASTER", "PLATFORM_SPARK_REMOTE", "PLATFORM_SPARK_CONF", "PLATFORM_MEDALLION_SCHEDULE",
    "PLATFORM_COUNTRIES_SCHEDULE", "PLATFORM_RUN_RETENTION_DAYS", "PLATFORM_RUN_RETENTION_SCOPE",
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


# Query parameters (and key=value pairs inside one, like an ODBC connection string's PWD=) that carry a
# credential: matched case-insensitively, '-' read as '_' (X-Amz-Signature, sslpassword, access_token...).
_CREDENTIAL_PARTS = (
    "password", "passwd", "secret", "token", "apikey", "api_key", "accesskey", "access_key",
    "private_key", "credential", "signature",
)  # fmt: skip
_CREDENTIAL_NAMES = ("pwd", "pass", "sig", "key", "auth", "authorization")


def _credential_name(name: str) -> bool:
    name = name.strip().lower().replace("-", "_")
    return name in _CREDENTIAL_NAMES or any(part in name for part in _CREDENTIAL_PARTS)


def _url_credential(text: str) -> str | None:
    """Where ``text``, a URL, holds a credential (``None``: nowhere), in words that never quote it: a
    password in the user part (``user:password@``), any user part of a web URL (a token there is basic
    auth), or a path, query or fragment parameter named like a credential (``/;token=``, ``?sslpassword=``,
    ``#access_token=``, ``?odbc_connect=...;PWD=...``, a URL with a password in a parameter)."""
    head, sep, tail = text.strip().partition("://")  # any scheme, SASL_SSL:// too (urlsplit has rules)
    scheme, rest = (head, tail) if sep else ("", head)
    try:
        parts = urlsplit(f"//{rest}")
    except ValueError:
        return None  # not a URL this can read: the setting's own check reports it
    userinfo, at, _ = parts.netloc.rpartition("@")
    if at and ":" in userinfo:
        return "a password"
    if at and scheme.lower() in ("http", "https", "ws", "wss"):
        return "a credential in its user part (user@host)"
    path_parameters = [p.partition("=")[0] for p in parts.path.split(";")[1:]]  # sc://host/;token=...
    found = next((n for n in path_parameters if _credential_name(n)), None)
    if found is not None:
        return f"a credential in its path parameter {shown(found)}"
    for part, query in (("query", parts.query), ("fragment", parts.fragment)):
        for name, value in parse_qsl(query, keep_blank_values=True):
            if _credential_name(name):
                return f"a credential in its {part} parameter {shown(name)}"
            inner = [pair.partition("=")[0] for pair in value.split(";") if "=" in pair]
            found = next((n for n in inner if _credential_name(n)), None)
            if found is not None:
                return f"a credential ({shown(found.strip())} in its {part} parameter {shown(name)})"
            if "://" in value and (nested := _url_credential(value)) is not None:
                return f"{nested} in the URL in its {part} parameter {shown(name)}"
    return None


def _file_value(path: Path, key: str, value: object, line: int | None) -> str:
    """One setting of a configuration file in the environment's form (text), or a SettingsError that
    names the file, the line and the setting. A value is never quoted when it may hold a secret."""
    where = f"{path}, line {line}" if line else str(path)
    label = f"{where}: {key}"
    variable = f"PLATFORM_{key.upper()}"
    if variable not in VARIABLES:
        raise SettingsError(f"{where}: unknown setting {shown(key)}; expected one of the PLATFORM_* variables' "
                            "names in lower case without the prefix, e.g. late_days")  # fmt: skip
    if variable in _ENVIRONMENT_ONLY:
        raise SettingsError(f"{label} is a secret and comes only from the environment variable {variable}")
    instead = f"set {variable} in the environment instead"
    if isinstance(value, list):
        if not value:
            raise SettingsError(f"{label} is an empty list; give at least one value, or leave {key} out "
                                "for the default")  # fmt: skip
        items = []
        for number, item in enumerate(value, 1):
            if item is None or isinstance(item, dict | list | bool) or not str(item).strip():
                got = f"a {type(item).__name__}" if isinstance(item, dict | list) else shown(item)
                raise SettingsError(f"{label}: item {number} must be a non-empty text or number, got {got}")
            if "," in str(item):
                raise SettingsError(f"{label}: item {number} holds a comma, which separates the values")
            items.append(str(item).strip())
        value = ",".join(items)
    if value is None or isinstance(value, dict | bool):
        got = "a mapping" if isinstance(value, dict) else shown(value)  # a mapping may hold a secret
        raise SettingsError(f"{label} must be a text, number or list, got {got}")
    text = str(value)
    if not text.strip():
        raise SettingsError(f"{label} is empty; leave {key} out for the default")
    # the whole value and each comma-separated part (a list of URLs), read as a URL even without a scheme
    # (host:port?token=...), so a credential is refused before any message could quote it
    for part in dict.fromkeys([text, *text.split(",")]):
        part = part.strip()
        if part and (found := _url_credential(part)) is not None:
            raise SettingsError(f"{label} holds {found}; {instead}")
    if variable in _DATABASE_URLS:
        try:
            password = sa.engine.make_url(text).password
        except sa.exc.ArgumentError:
            password = None  # reported by the URL's own check, with the file's line
        if password is not None:
            raise SettingsError(f"{label} holds a password; {instead}")
    return text


def file_settings(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The variables a configuration file sets, as text (the environment's form), and for each, where it
    was set (``<file>, line <n>: <name>``) for messages."""
    try:
        text = path.read_text()
    except (OSError, UnicodeDecodeError) as exc:
        raise SettingsError(f"cannot read {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        content, lines = parse_yaml(text)
    except yaml.YAMLError as exc:
        raise SettingsError(yaml_problem(path, exc)) from None
    content = content or {}
    if not isinstance(content, dict):
        raise SettingsError(f"{path} must be a mapping of setting names to values")
    values, origins = {}, {}
    for key, value in content.items():
        line = lines.get(key) if isinstance(key, str) else None
        variable = f"PLATFORM_{str(key).upper()}"
        values[variable] = _file_value(path, str(key), value, line)
        origins[variable] = f"{path}, line {line}: {key}" if line else f"{path}: {key}"
    return values, origins


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``PLATFORM_*`` environment variables over ``config/<env>.yaml`` (all optional).

    A variable set to "" counts as unset. A bad value raises :class:`SettingsError` naming where it was set:
    the variable, or the file, line and setting name.
    """
    real = os.environ if environ is None else environ
    path = config_file(real)
    values, origins = file_settings(path) if path else ({}, {})
    if any(real.get(name) for name in origins):
        # a variable hides a file value: the file is checked on its own too, so that it does not break
        # the day the variable is unset
        _settings(_Values(values, origins), {}, path)
    merged = {**values, **{name: value for name, value in real.items() if value != ""}}
    return _settings(_Values(merged, {n: o for n, o in origins.items() if not real.get(n)}), real, path)


def _settings(env: _Values, real: Mapping[str, str], path: Path | None) -> Settings:
    label = env.label
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
            label("PLATFORM_COUNTRY_API_URL"),
        ).rstrip("/"),
        countries=_names(env, "PLATFORM_COUNTRIES", DEFAULT_COUNTRIES),
        ui_url=_http_url(
            env.get("PLATFORM_UI_URL") or "http://127.0.0.1:3000", label("PLATFORM_UI_URL")
        ).rstrip("/"),
        source_schema=env.get("PLATFORM_SOURCE_SCHEMA") or None,
        customer_threshold=_int(env, "PLATFORM_CUSTOMER_THRESHOLD", 500),
        product_threshold=_int(env, "PLATFORM_PRODUCT_THRESHOLD", 600),
        batch_size=_int(env, "PLATFORM_BATCH_SIZE", 100_000),
        late_days=_int(env, "PLATFORM_LATE_DAYS", 1),
        max_concurrent_tables=_int(env, "PLATFORM_MAX_CONCURRENT_TABLES", 4),
        tables_file=Path(env.get("PLATFORM_TABLES_FILE") or Path(__file__).with_name("tables.yaml")),
        kafka_bootstrap=env.get("PLATFORM_KAFKA_BOOTSTRAP") or None,
        kafka_config=env.get("PLATFORM_KAFKA_CONFIG") or None,
        trades_topic=_topic(env.get("PLATFORM_TRADES_TOPIC") or "trades", label("PLATFORM_TRADES_TOPIC")),
        trades_ws_url=_websocket_url(
            env.get("PLATFORM_TRADES_WS_URL") or DEFAULT_TRADES_WS_URL, label("PLATFORM_TRADES_WS_URL")
        ),
        trades_lookup_url=_http_url(
            env.get("PLATFORM_TRADES_LOOKUP_URL") or DEFAULT_TRADES_LOOKUP_URL,
            label("PLATFORM_TRADES_LOOKUP_URL"),
        ),
        trades_max_batch_rows=_int(env, "PLATFORM_TRADES_MAX_BATCH_ROWS", 100_000),
        trades_allowed_latency=_int(env, "PLATFORM_TRADES_ALLOWED_LATENCY", 30),
        serving_url=_database_url(env, "PLATFORM_SERVING_URL"),
        min_ingested_rows=_int(env, "PLATFORM_MIN_INGESTED_ROWS", 1),
        medallion_schedule=_cron(
            env.get("PLATFORM_MEDALLION_SCHEDULE") or "0 2 * * *", label("PLATFORM_MEDALLION_SCHEDULE")
        ),
        countries_schedule=_cron(
            env.get("PLATFORM_COUNTRIES_SCHEDULE") or "0 0,12 * * *", label("PLATFORM_COUNTRIES_SCHEDULE")
        ),
        run_retention_days=_int(env, "PLATFORM_RUN_RETENTION_DAYS", 7),
        run_retention_scope=_run_retention_scope(
            env.get("PLATFORM_RUN_RETENTION_SCOPE") or "stream", label("PLATFORM_RUN_RETENTION_SCOPE")
        ),
        engine=_engine(env.get("PLATFORM_ENGINE") or "polars", label("PLATFORM_ENGINE")),
        spark_master=env.get("PLATFORM_SPARK_MASTER") or "local[*]",
        spark_remote=_spark_remote(env.get("PLATFORM_SPARK_REMOTE") or None),
        spark_conf=_spark_conf(env.get("PLATFORM_SPARK_CONF")),
        secrets_in_environment=frozenset(name for name in SECRET_VARIABLES if real.get(name)),
        config_file=path,
    )
