"""The audit database connection: a fail-fast engine, and database failures turned into
:class:`AuditUnavailable` with a message that never carries the URL's password."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import sqlalchemy as sa

from platform_assets.core.db import engine_for, redact
from platform_assets.core.redaction import redact_text

# Seconds to wait for a server before giving up: an audit outage must fail fast, not stall the run.
CONNECT_TIMEOUT = 3


class AuditUnavailable(RuntimeError):
    """The audit database cannot be reached (or is locked); the caller logs and retries later."""


def audit_engine(url: str) -> sa.Engine:
    """The shared engine for ``url``, with a connect timeout for server drivers that lack one."""
    parsed = sa.make_url(url)
    if parsed.get_driver_name() in ("psycopg", "psycopg2", "pymysql", "mysqldb") and (
        "connect_timeout" not in parsed.query
    ):
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
        url = parsed.render_as_string(hide_password=False)
    return engine_for(url)


def redacted_url(url: str) -> str:
    try:
        return redact(url)
    except Exception:  # not a URL SQLAlchemy can parse: mask what we recognise
        return redact_text(url)


@contextmanager
def unavailable_as_error(url: str) -> Iterator[None]:
    """Raise :class:`AuditUnavailable` for a database that is down, unreachable or dropped the connection."""
    try:
        yield
    except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as exc:
        raise AuditUnavailable(_unavailable_message(url, exc)) from exc
    except sa.exc.DBAPIError as exc:
        if exc.connection_invalidated:
            raise AuditUnavailable(_unavailable_message(url, exc)) from exc
        raise


def _unavailable_message(url: str, exc: Exception) -> str:
    cause = getattr(exc, "orig", None) or exc
    detail = redact_text(str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__)
    return f"audit database {redacted_url(url)} is unavailable: {detail}"
