"""The one place that reads the environment and the configuration files.

Every other module receives a :class:`Settings` (or values taken from it); nothing else looks at
``os.environ`` or ``config/``. The environment (``dev``/``sit``/``prod``, ``PLATFORM_ENV``) is a catalog,
the way the seed's Unity Catalog keeps one catalog per environment: it picks ``config/<env>.yaml``, whose
values sit under the environment variables (a variable always wins) and over the built-in defaults.
Secrets come only from environment variables: a file that holds one is refused.

Each setting is declared once, as a field of :class:`Settings`: its name (``batch_size`` is
``PLATFORM_BATCH_SIZE`` in the environment and ``batch_size:`` in a file), its type and check, its default,
whether it is a secret (:class:`Var`) and its description. The loader (:func:`load_settings`, reading the
environment through pydantic-settings), the configuration file's check (:func:`file_settings`) and the
settings reference (``docs/settings.md``, written by ``platform_assets.cli.settings_reference``) all
come from those fields. A bad value is reported in one line naming where it was set (the variable, or the
file, line and setting) and what is allowed, never quoting a secret.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass as plain_dataclass
from datetime import date
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import parse_qsl, urlsplit

import sqlalchemy as sa
import yaml
from pydantic import BeforeValidator, Field, ValidationError, create_model
from pydantic.dataclasses import dataclass
from pydantic.fields import FieldInfo
from pydantic_core import ArgsKwargs
from pydantic_settings import BaseSettings, EnvSettingsSource, SettingsConfigDict
from pydantic_settings.sources.utils import parse_env_vars
from sqlalchemy.exc import ArgumentError, NoSuchModuleError
from upath import UPath

from platform_assets.core.config_errors import parse_yaml, problems, yaml_problem
from platform_assets.core.errors import ConfigurationError
from platform_assets.core.lake.locations import (
    LAYERS,
    catalog_name,
    landing_location,
    location,
    table_location,
)
from platform_assets.core.medallion.config import ENGINES, Engine

ENVIRONMENTS = ("dev", "sit", "prod")
DEFAULT_COUNTRIES = ("India", "United States", "United Kingdom", "China", "Russia")
# Where config/<env>.yaml files are looked for unless PLATFORM_CONFIG_DIR says otherwise.
CONFIG_DIR = Path(__file__).resolve().parents[1] / "config"
PREFIX = "PLATFORM_"
DEFAULT_TRADES_WS_URL = "wss://stream.binance.com:9443/ws/btcusdt@trade"
DEFAULT_TRADES_LOOKUP_URL = "https://api.binance.com/api/v3/exchangeInfo"
# Whose finished runs the daily prune deletes: the trade stream's micro-batch runs, or every job's.
RUN_RETENTION_SCOPES = ("stream", "all")


class SettingsError(ConfigurationError, ValueError):
    """A setting has a value the platform cannot use. Not retryable: someone changes the setting.

    The message is one line naming the variable, its value (never for a secret) and what is allowed, so
    a command can print it as it is (``error: <message>``) instead of a traceback. It lives here, beside
    the one module that raises it (every caller imports it from here).
    """


@plain_dataclass(frozen=True)
class Var:
    """Marks a field of :class:`Settings` as a setting read from ``PLATFORM_<NAME>`` (and a file).

    ``secret``: the value may carry credentials. When it is set in the environment, Dagster resolves it
    from there at run time (``EnvVar``), so it never appears in run config or the UI; messages and
    ``repr`` never show it. ``file``: whether ``config/<env>.yaml`` may set it. A secret a file may set
    (a database URL) is accepted there only without a password. ``default_text``: the default as the
    reference shows it, when it is computed (from the data folder).
    """

    secret: bool = False
    file: bool = True
    default_text: str | None = None


# Longer values are cut in messages: a pasted file or JSON blob would bury the one line that matters.
_SHOWN_CHARS = 60


def shown(value: object) -> str:
    """``value`` as it appears in a one-line message: quoted, escaped, cut to a readable length."""
    text = repr(value)
    return text if len(text) <= _SHOWN_CHARS else f"{text[: _SHOWN_CHARS - 4]}...{text[-1]}"


# ----------------------------------------------------------------------------------------------------
# checks: each takes the value as text (environment, file) or as its type (code) and returns it typed,
# or raises ValueError with what is wrong after the setting's name (the formatter puts the name first);
# each says what it accepts in words (``accepts``), for the reference


def _accepts(text: str) -> Callable[[Callable[[Any], Any]], Callable[[Any], Any]]:
    """Record what a check accepts, in the words the settings reference shows."""

    def mark(check: Callable[[Any], Any]) -> Callable[[Any], Any]:
        check.accepts = text  # type: ignore[attr-defined]
        return check

    return mark


def _database_url(value: str) -> str:
    """A SQLAlchemy URL of a dialect this installation has. The value is never put in the message, as a
    database URL may hold a password; the dialect name alone is safe to show."""
    try:
        url = sa.engine.make_url(value)
    except ArgumentError:
        raise ValueError(
            "is not a SQLAlchemy URL (expected dialect+driver://user:password@host/database, "
            "e.g. sqlite:///data/source.db); its value is not shown as it may hold a password"
        ) from None
    try:
        url.get_dialect()
    except NoSuchModuleError:
        raise ValueError(
            f"names an unknown database dialect {shown(url.drivername)}; expected one of sqlite, "
            "postgresql+psycopg, mysql+pymysql, mssql+pyodbc (the rest of the value is not shown)"
        ) from None
    return value


def database_url(value: str, name: str) -> str:
    """Check that ``value`` is a SQLAlchemy URL of a dialect this installation has; return it.

    ``name`` is what the message calls it (the variable, or ``--url``)."""
    try:
        return _database_url(value)
    except ValueError as exc:
        raise SettingsError(f"{name} {exc}") from None


@_accepts("SQLAlchemy URL")
def _optional_database_url(value: Any) -> str:
    return _database_url(value) if value else ""  # "": the data folder's SQLite file


@_accepts("text")
def _text(value: Any) -> str:
    if not isinstance(value, str):
        raise ValueError(f"must be a text, got {shown(value)}")
    return value


@_accepts("text")
def _optional_text(value: Any) -> str | None:
    return _text(value) or None if value is not None else None


@_accepts("http(s) URL")
def _http_url(value: Any) -> str:
    text = _text(value)
    if text.startswith(("http://", "https://")) and len(text) > len("https://"):
        return text
    raise ValueError(f"must be an http:// or https:// URL; got {shown(value)}")


@_accepts("http(s) URL")
def _base_url(value: Any) -> str:
    """An http(s) URL that paths are appended to: without its trailing '/'."""
    return _http_url(value).rstrip("/")


@_accepts("http(s) URL")
def _webhook_url(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, str) and value.startswith(("http://", "https://")) and len(value) > len("https://"):
        return value
    raise ValueError("must be an http:// or https:// URL; its value is not shown as it is a secret")


@_accepts("ws(s) URL")
def _websocket_url(value: Any) -> str:
    if isinstance(value, str) and value.startswith(("ws://", "wss://")) and len(value) > len("wss://"):
        return value
    raise ValueError(f"must be a ws:// or wss:// URL, got {shown(value)}")


def _one_of(*allowed: str) -> Callable[[Any], str]:
    @_accepts(f"one of {', '.join(allowed)}")
    def check(value: Any) -> str:
        if value not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}, got {shown(value)}")
        return value

    return check


def _at_least(minimum: int) -> Callable[[Any], int]:
    """An integer of ``minimum`` or more. 0 concurrent tables or a 0-row batch would hang or loop, not
    fail; "2.5" is not read as 2."""

    @_accepts(f"integer ≥ {minimum}")
    def check(value: Any) -> int:
        if isinstance(value, str):
            try:
                value = int(value)
            except ValueError:
                raise ValueError(f"must be an integer of {minimum} or more, got {shown(value)}") from None
        if isinstance(value, bool) or not isinstance(value, int):
            raise ValueError(f"must be an integer of {minimum} or more, got {shown(value)}")
        if value < minimum:
            raise ValueError(f"must be an integer of {minimum} or more, got {value}")
        return value

    return check


@_accepts("date (YYYY-MM-DD)")
def _date(value: Any) -> date:
    if isinstance(value, date):
        return value
    message = f"must be a date like 2024-01-01 (YYYY-MM-DD), got {shown(value)}"
    if not isinstance(value, str) or not re.fullmatch(r"\d{4}-\d{2}-\d{2}", value):
        raise ValueError(message)
    try:
        return date.fromisoformat(value)
    except ValueError as exc:  # the right shape, not a day of the calendar (2025-02-30)
        raise ValueError(f"{message} ({exc})") from None


@_accepts("comma-separated names")
def _names(value: Any) -> tuple[str, ...]:
    """A comma-separated list (or a sequence) of names, each once."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    names = tuple(str(part).strip() for part in parts if str(part).strip())
    if not names:
        raise ValueError(f"must be a comma-separated list of names like India,Japan, got {shown(value)}")
    twice = next((n for i, n in enumerate(names) if n in names[:i]), None)
    if twice is not None:
        raise ValueError(f"names {shown(twice)} twice")
    return names


@_accepts("Kafka topic name")
def _topic(value: Any) -> str:
    """A Kafka topic name as Kafka allows it: letters, digits, '.', '_', '-', at most 249 characters."""
    if isinstance(value, str) and re.fullmatch(r"[A-Za-z0-9._-]{1,249}", value) and value not in (".", ".."):
        return value
    raise ValueError(f"must be a Kafka topic name (letters, digits, '.', '_', '-'), got {shown(value)}")


# The shipped schedules (the defaults below): valid, and checked so by the tests.
_KNOWN_GOOD_CRONS = frozenset({"0 2 * * *", "0 0,12 * * *", "0 0 * * *"})


@_accepts("cron (5 fields)")
def _cron(value: Any) -> str:
    """A five-field cron expression (minute hour day month weekday) whose values are in range, checked
    the way Dagster checks a schedule's: ``99 99 * * *`` is refused here, not when the schedule ticks."""
    fields_ = str(value).split()
    if " ".join(fields_) in _KNOWN_GOOD_CRONS:
        return " ".join(fields_)
    # Imported here: Dagster takes a second to import, which commands that never load it (check_config,
    # setup, the feed) would otherwise pay on every start for the default schedules.
    from dagster._utils.schedules import is_valid_cron_string

    if (
        len(fields_) == 5
        and all(re.fullmatch(r"[0-9A-Za-z*,/-]+", f) for f in fields_)
        and is_valid_cron_string(" ".join(fields_))
    ):
        return " ".join(fields_)
    raise ValueError(
        "must be a cron expression like '0 2 * * *' (five fields: minute 0-59, hour 0-23, "
        f"day 1-31, month 1-12, weekday 0-6), got {shown(value)}"
    )


@_accepts("Spark Connect URL (sc://)")
def _spark_remote(value: Any) -> str | None:
    if not value:
        return None
    if isinstance(value, str) and value.startswith("sc://"):
        return value
    raise ValueError("must be a Spark Connect URL (sc://host:15002/...); its value is not shown")


@_accepts("JSON object")
def _spark_conf(value: Any) -> dict[str, str]:
    """A JSON object of Spark settings (or a mapping). Never echoed: it may hold credentials."""
    if isinstance(value, Mapping):
        return {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in value.items()}
    if not value or not str(value).strip():
        return {}
    try:
        conf = json.loads(value)
    except ValueError as exc:
        raise ValueError(f"is not valid JSON: {getattr(exc, 'msg', exc)}") from None
    if not isinstance(conf, dict) or not all(isinstance(k, str) for k in conf):
        raise ValueError("must be a JSON object of setting names to values")
    return {k: v if isinstance(v, str) else json.dumps(v) for k, v in conf.items()}


def _checked(check: Callable[[Any], Any]) -> BeforeValidator:
    return BeforeValidator(check)


Int0 = Annotated[int, _checked(_at_least(0)), Var()]
Int1 = Annotated[int, _checked(_at_least(1)), Var()]
Cron = Annotated[str, _checked(_cron), Var()]
BaseUrl = Annotated[str, _checked(_base_url), Var()]


# ----------------------------------------------------------------------------------------------------
# the declaration


@dataclass(frozen=True)
class Settings:
    """Every setting of the platform. Built by :func:`load_settings`, or in code (tests, the dev kit)
    with the same checks: ``Settings(data_dir=tmp, max_concurrent_tables=0)`` raises SettingsError."""

    env: Annotated[str, _checked(_one_of(*ENVIRONMENTS)), Var(file=False)] = Field(
        "dev",
        description="Environment (catalog): selects config/<env>.yaml and the lake folder <lake_url>/<env>.",
    )
    data_dir: Annotated[Path, Var(default_text="./data")] = Field(
        Path("data"), description="Root of the embedded lake, state and databases."
    )
    # URLs may carry credentials: kept out of repr (logs, tracebacks).
    source_url: Annotated[
        str, _checked(_optional_database_url), Var(secret=True, default_text="sqlite:///<data_dir>/source.db")
    ] = Field(
        "",
        repr=False,
        description="SQLAlchemy URL of the source database (SQLite, PostgreSQL postgresql+psycopg://..., "
        "MySQL/MariaDB mysql+pymysql://..., SQL Server).",
    )
    audit_url: Annotated[
        str, _checked(_optional_database_url), Var(secret=True, default_text="sqlite:///<data_dir>/audit.db")
    ] = Field("", repr=False, description="SQLAlchemy URL of the audit/metadata database.")
    state_url: Annotated[
        str, _checked(_optional_database_url), Var(secret=True, default_text="sqlite:///<data_dir>/state.db")
    ] = Field(
        "",
        repr=False,
        description="Where watermarks and checkpoints live (kept apart from the audit database, so an audit "
        "outage never stops data).",
    )
    lake_url: Annotated[str, _checked(_text), Var(default_text="<data_dir>/lake")] = Field(
        "",
        description="Root of the lake: a local folder or an object-store URL (s3://bucket/lake, gs://..., "
        "abfss://...).",
    )
    partition_start: Annotated[date, _checked(_date), Var()] = Field(
        date(2024, 1, 1),
        description="First day of the daily partitions (UTC); make dev and make demo start them at the "
        "sample data's first day (its days end yesterday) unless it is set.",
    )
    alert_webhook_url: Annotated[
        str | None,
        _checked(_webhook_url),
        Var(secret=True, file=False, default_text="(none: alerts are logged)"),
    ] = Field(None, repr=False, description="Where failure and low-volume alerts are POSTed as JSON.")
    country_api_url: BaseUrl = Field(
        "https://restcountries.com/v3.1", description="Base of the REST Countries API (<base>/name/<name>)."
    )
    ui_url: BaseUrl = Field(
        "http://127.0.0.1:3000",
        description="Base of the Dagster UI, for links in audit rows and alerts (make dev: http://$HOST:$PORT).",
    )
    countries: Annotated[tuple[str, ...], _checked(_names), Var()] = Field(
        DEFAULT_COUNTRIES,
        description="The countries pulled, one partition each (in a file: a YAML list).",
    )
    source_schema: Annotated[
        str | None, _checked(_optional_text), Var(default_text="(the connection's default)")
    ] = Field(None, description="Schema of the Customers and Products source tables.")
    customer_threshold: Int0 = Field(500, description="Customer threshold of the customer -> product flow.")
    product_threshold: Int0 = Field(600, description="Product threshold of the customer -> product flow.")
    batch_size: Int1 = Field(
        100_000,
        description="Rows per Arrow batch read from the source (memory is bounded by this, not by table size).",
    )
    late_days: Int0 = Field(
        1,
        description="Earlier FactStream days the daily schedule re-runs to pick up late rows (0: only the "
        "day that ended).",
    )
    max_concurrent_tables: Int1 = Field(4, description="Steps run in parallel within a run.")
    tables_file: Annotated[Path, Var(default_text="platform_assets/tables.yaml")] = Field(
        Path(__file__).with_name("tables.yaml"),
        description="The source table list (check it with make check-config).",
    )
    # the trade stream (seeds 003 and 000); no bootstrap: an embedded broker
    kafka_bootstrap: Annotated[
        str | None, _checked(_optional_text), Var(default_text="(none: an embedded broker)")
    ] = Field(
        None,
        description="Kafka bootstrap servers (Kafka, Redpanda, Event Hubs' Kafka endpoint); in a file: a "
        "YAML list or one comma-separated text.",
    )
    kafka_config: Annotated[str | None, _checked(_optional_text), Var(secret=True, file=False)] = Field(
        None,
        repr=False,
        description="Extra Kafka client settings as a JSON object, e.g. SASL for Event Hubs.",
    )
    trades_topic: Annotated[str, _checked(_topic), Var()] = Field(
        "trades", description="The topic trades land in."
    )
    loan_topic: Annotated[str, _checked(_topic), Var()] = Field(
        "loanApplications", description="The topic loan application events land from (seed 000)."
    )
    trades_ws_url: Annotated[str, _checked(_websocket_url), Var()] = Field(
        DEFAULT_TRADES_WS_URL, description="Websocket URL of the trade feed."
    )
    trades_lookup_url: Annotated[str, _checked(_http_url), Var()] = Field(
        DEFAULT_TRADES_LOOKUP_URL, description="REST URL of the symbol lookup."
    )
    trades_max_batch_rows: Int1 = Field(
        100_000,
        description="The most messages one micro-batch lands (bounds a run's memory when it catches up on "
        "a backlog); a batch starts at once when this many are pending.",
    )
    trades_allowed_latency: Int0 = Field(
        30,
        description="Seconds a pending trade message may wait before a micro-batch starts for it (0: a "
        "batch at every sensor tick that finds new messages).",
    )
    serving_url: Annotated[
        str,
        _checked(_optional_database_url),
        Var(secret=True, default_text="sqlite:///<data_dir>/serving.db"),
    ] = Field(
        "",
        repr=False,
        description="SQLAlchemy URL of the serving database (Enriched_Trades, Ingestion_Metrics).",
    )
    min_ingested_rows: Int0 = Field(
        1,
        description="Low-volume threshold: a feed window whose new enriched trades are fewer alerts once.",
    )
    # when the scheduled flows run (cron, UTC for the medallion and the trade feed, India time for the
    # countries as in the seed)
    medallion_schedule: Cron = Field("0 2 * * *", description="Cron (UTC) of the medallion's daily schedule.")
    countries_schedule: Cron = Field(
        "0 0,12 * * *", description="Cron (India time, as in the seed) of the countries pull."
    )
    trades_schedule: Cron = Field(
        "0 0 * * *", description="Cron (UTC) of the trade feed's schedule: each tick starts a new window."
    )
    run_retention_days: Int0 = Field(
        7,
        description="Finished runs are deleted from Dagster's run history this many days after they last "
        "changed (0: kept for ever).",
    )
    run_retention_scope: Annotated[str, _checked(_one_of(*RUN_RETENTION_SCOPES)), Var()] = Field(
        "stream",
        description="Whose runs are pruned: stream (the trade stream's micro-batch and catch-up runs) or "
        "all (every job's).",
    )
    engine: Annotated[Engine, _checked(_one_of(*ENGINES)), Var()] = Field(
        "polars", description="Engine of silver and gold (per table: engine: in tables.yaml)."
    )
    spark_master: Annotated[str, _checked(_text), Var()] = Field(
        "local[*]", description="Where Spark runs (the spark engine): a master URL."
    )
    spark_remote: Annotated[str | None, _checked(_spark_remote), Var(secret=True, file=False)] = Field(
        None, repr=False, description="Spark Connect instead of a master (sc://...; may hold a token)."
    )
    spark_conf: Annotated[Mapping[str, str], _checked(_spark_conf), Var(secret=True, file=False)] = Field(
        default_factory=dict, repr=False, description="Extra Spark settings as a JSON object."
    )
    # what the loader adds: not settings of their own
    secrets_in_environment: frozenset[str] = Field(
        default=frozenset(), description="The secret variables set in the environment."
    )
    config_file: Path | None = Field(
        default=None, description="The config/<env>.yaml the values came from, if any."
    )

    def __post_init__(self) -> None:
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


@plain_dataclass(frozen=True)
class Declared:
    """One setting as declared: what the loader, the file check and the reference read."""

    name: str  # batch_size
    variable: str  # PLATFORM_BATCH_SIZE
    var: Var
    accepts: str  # in words: "integer ≥ 1"
    default: Any
    description: str


def declared() -> Iterator[Declared]:
    """The settings in declaration order (the fields of :class:`Settings` marked with :class:`Var`)."""
    fields: dict[str, FieldInfo] = Settings.__pydantic_fields__  # type: ignore[attr-defined]
    for name, info in fields.items():
        var = next((m for m in info.metadata if isinstance(m, Var)), None)
        if var is None:
            continue
        check = next((m.func for m in info.metadata if isinstance(m, BeforeValidator)), None)
        accepts = getattr(check, "accepts", None) or ("path" if info.annotation is Path else "text")
        default = info.get_default(call_default_factory=True, validated_data={})
        yield Declared(name, f"{PREFIX}{name.upper()}", var, accepts, default, info.description or "")


SETTINGS: dict[str, Declared] = {d.name: d for d in declared()}
# Every variable load_settings reads; a configuration file may set those that are not secrets (nor
# PLATFORM_ENV, which picks the file), by the name without its prefix in lower case (``late_days: 2``).
VARIABLES = tuple(d.variable for d in SETTINGS.values())
# Settings that may carry credentials: when set, Dagster resolves them from the environment at run
# time (EnvVar), so their values never appear in run config or the UI; error messages never show them.
SECRET_VARIABLES = tuple(d.variable for d in SETTINGS.values() if d.var.secret)

# Settings built in code (tests, the dev kit, ``dataclasses.replace``) are checked like loaded ones, and a
# bad value is the same one-line SettingsError, not pydantic's multi-line ValidationError (which would also
# quote the value). Settings is a pydantic dataclass, not a BaseSettings model, for that reason too: built
# in code, it must not pick up the process's PLATFORM_* variables, and replace() must keep working.
_pydantic_init = Settings.__init__


def _label(name: str, origins: Mapping[str, str]) -> str:
    """``PLATFORM_BATCH_SIZE``, or ``<file>, line 7: batch_size`` when the file set it."""
    return origins.get(name) or (SETTINGS[name].variable if name in SETTINGS else name)


def _one_line(exc: ValidationError, origins: Mapping[str, str]) -> str:
    """The first problem of ``exc`` as ``<where it was set> <what is wrong>``."""
    first = problems(exc)[0]
    return f"{_label(str(first.loc[0]), origins) if first.loc else 'settings'} {first.message}"


def _validated(self: Settings, *args: Any, **kwargs: Any) -> None:
    try:
        _pydantic_init(self, *args, **kwargs)
    except ValidationError as exc:
        raise SettingsError(_one_line(exc, {})) from None  # `from None`: the error holds the values


Settings.__init__ = _validated  # type: ignore[method-assign]


def _build(values: Mapping[str, Any], origins: Mapping[str, str]) -> Settings:
    """Settings from ``values`` (by field name), a bad one blamed on where ``origins`` says it came from."""
    try:
        validator = Settings.__pydantic_validator__  # type: ignore[attr-defined]
        return validator.validate_python(ArgsKwargs((), dict(values)))
    except ValidationError as exc:
        raise SettingsError(_one_line(exc, origins)) from None


# ----------------------------------------------------------------------------------------------------
# the environment, through pydantic-settings: every declared setting as its PLATFORM_* variable, as text


class _Variables(BaseSettings):
    model_config = SettingsConfigDict(case_sensitive=True, env_ignore_empty=True, extra="ignore")


# every declared setting as its variable (the field's alias), as text: the checks are Settings'
_VARIABLE_FIELDS: dict[str, Any] = {
    d.name: (str | None, Field(None, validation_alias=d.variable)) for d in SETTINGS.values()
}
Environment = create_model("Environment", __base__=_Variables, **_VARIABLE_FIELDS)


class _EnvironmentSource(EnvSettingsSource):
    """pydantic-settings' environment source over a given mapping (``os.environ`` or a test's dict)."""

    def __init__(self, environ: Mapping[str, str]) -> None:
        self._environ = environ
        super().__init__(Environment, case_sensitive=True, env_ignore_empty=True)

    def _load_env_vars(self) -> Mapping[str, str | None]:
        # the one hook pydantic-settings offers for where variables come from (it reads os.environ)
        return parse_env_vars(self._environ, True, True, None)


def environment_values(environ: Mapping[str, str]) -> dict[str, str]:
    """The declared settings set (not to "") in ``environ``, by field name, as text."""
    names = {d.variable: d.name for d in SETTINGS.values()}
    found = _EnvironmentSource(environ)()  # by variable (the fields' aliases)
    return {names[variable]: value for variable, value in found.items() if value is not None}


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


# ----------------------------------------------------------------------------------------------------
# the configuration file: any setting that is not a secret, a database URL only without a password


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


def _file_list(label: str, key: str, value: list) -> str:
    """A YAML list as the environment's comma-separated text."""
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
    return ",".join(items)


def _file_value(path: Path, key: str, value: object, line: int | None) -> str:
    """One setting of a configuration file in the environment's form (text), or a SettingsError that
    names the file, the line and the setting. A value is never quoted when it may hold a secret."""
    where = f"{path}, line {line}" if line else str(path)
    label = f"{where}: {key}"
    setting = SETTINGS.get(key)
    if setting is None or (not setting.var.file and not setting.var.secret):
        raise SettingsError(f"{where}: unknown setting {shown(key)}; expected one of the PLATFORM_* variables' "
                            "names in lower case without the prefix, e.g. late_days")  # fmt: skip
    variable = setting.variable
    if not setting.var.file:
        raise SettingsError(f"{label} is a secret and comes only from the environment variable {variable}")
    instead = f"set {variable} in the environment instead"
    if isinstance(value, list):
        value = _file_list(label, key, value)
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
    if setting.var.secret:  # a database URL: in a file only without a password
        try:
            password = sa.engine.make_url(text).password
        except ArgumentError:
            password = None  # reported by the URL's own check, with the file's line
        if password is not None:
            raise SettingsError(f"{label} holds a password; {instead}")
    return text


def file_settings(path: Path) -> tuple[dict[str, str], dict[str, str]]:
    """The settings a configuration file sets, by name, as text (the environment's form), and for each,
    where it was set (``<file>, line <n>: <name>``) for messages."""
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
        values[str(key)] = _file_value(path, str(key), value, line)
        origins[str(key)] = f"{path}, line {line}: {key}" if line else f"{path}: {key}"
    return values, origins


def load_settings(environ: Mapping[str, str] | None = None) -> Settings:
    """Build settings from ``PLATFORM_*`` environment variables over ``config/<env>.yaml`` (all optional).

    A variable set to "" counts as unset. A bad value raises :class:`SettingsError` naming where it was set:
    the variable, or the file, line and setting name.
    """
    real = os.environ if environ is None else environ
    path = config_file(real)
    values, origins = file_settings(path) if path else ({}, {})
    from_environment = environment_values(real)
    if any(name in from_environment for name in origins):
        # a variable hides a file value: the file is checked on its own too, so that it does not break
        # the day the variable is unset
        _build(values, origins)
    secrets = frozenset(SETTINGS[name].variable for name in from_environment if SETTINGS[name].var.secret)
    merged = {**values, **from_environment, "secrets_in_environment": secrets, "config_file": path}
    return _build(merged, {n: o for n, o in origins.items() if n not in from_environment})
