"""SQLAlchemy engines, created once per URL and process."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from platform_assets.core.redaction import redact_text
from platform_assets.core.sql.drift import drift_error

# Seconds to wait for a side database (audit, serving) before giving up: its outage must fail fast,
# not stall the run that reports to it.
CONNECT_TIMEOUT = 3


@lru_cache(maxsize=32)
def engine_for(url: str) -> sa.Engine:
    """A pooled engine for ``url``; ``pool_pre_ping`` replaces connections the server dropped."""
    options: dict = {"pool_pre_ping": True}
    parsed = sa.make_url(url)
    if parsed.get_backend_name() == "sqlite" and parsed.database not in (None, "", ":memory:"):
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    if url.startswith("sqlite"):
        # SQLite files are shared between Dagster step processes: wait on locks instead of failing.
        options["connect_args"] = {"timeout": 30}
    return sa.create_engine(url, **options)


def redact(url: str) -> str:
    """The URL with any password masked, for logs and metadata."""
    return sa.make_url(url).render_as_string(hide_password=True)


def utc_now() -> datetime:
    """Now, as the naive UTC timestamp the platform stores in SQL tables."""
    return datetime.now(UTC).replace(tzinfo=None)


def fail_fast_engine(url: str) -> sa.Engine:
    """The shared engine for ``url``, with a connect timeout for server drivers that lack one."""
    parsed = sa.make_url(url)
    if parsed.get_driver_name() in ("psycopg", "psycopg2", "pymysql", "mysqldb") and (
        "connect_timeout" not in parsed.query
    ):
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
        url = parsed.render_as_string(hide_password=False)
    return engine_for(url)


def redacted_url(url: str) -> str:
    """:func:`redact`, or for text SQLAlchemy cannot parse, whatever credentials can be recognised masked."""
    try:
        return redact(url)
    except (sa_exc.ArgumentError, ValueError):
        return redact_text(url)


@contextmanager
def unavailable_as(error: type[Exception], what: str, url: str) -> Iterator[None]:
    """Raise ``error`` for a database that is down, unreachable or dropped the connection, with a one-line
    message naming ``what`` and the URL without its password.

    A statement that failed on a declared table that has drifted (a column dropped or retyped: SQLite
    calls that an OperationalError too) raises :class:`~platform_assets.core.errors.TableDriftError`
    instead, naming the table and column: the database is up, and retrying cannot help.
    """
    try:
        yield
    except sa_exc.DBAPIError as exc:
        if not exc.connection_invalidated:
            drifted = drift_error(fail_fast_engine(url), what, redacted_url(url), exc)
            if drifted is not None:
                raise drifted from exc
        if exc.connection_invalidated or isinstance(exc, (sa_exc.OperationalError, sa_exc.InterfaceError)):
            raise error(_unavailable(what, url, exc)) from exc
        raise
    except sa_exc.TimeoutError as exc:
        raise error(_unavailable(what, url, exc)) from exc


def _unavailable(what: str, url: str, exc: Exception) -> str:
    cause = str(getattr(exc, "orig", None) or exc).strip()
    detail = redact_text(cause.splitlines()[0]) if cause else type(exc).__name__
    return f"{what} {redacted_url(url)} is unavailable: {detail}"
