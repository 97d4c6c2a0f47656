"""The audit database connection: a fail-fast engine, and database failures turned into
:class:`AuditUnavailable` with a message that never carries the URL's password."""

from __future__ import annotations

from platform_assets.core.errors import AuditError
from platform_assets.core.sql.engines import CONNECT_TIMEOUT, fail_fast_engine, redacted_url, unavailable_as

__all__ = ["CONNECT_TIMEOUT", "AuditUnavailable", "audit_engine", "redacted_url", "unavailable_as_error"]


class AuditUnavailable(AuditError, RuntimeError):
    """The audit database cannot be reached (or is locked); the caller logs and retries later. Retryable.
    Raised through this module's :func:`unavailable_as_error` only, so it lives here."""

    retryable = True


audit_engine = fail_fast_engine


def unavailable_as_error(url: str):
    """Raise :class:`AuditUnavailable` for a database that is down, unreachable or dropped the connection."""
    return unavailable_as(AuditUnavailable, "audit database", url)
