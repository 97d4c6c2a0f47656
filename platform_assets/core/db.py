"""SQLAlchemy engines, created once per URL and process."""

from __future__ import annotations

from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path

import sqlalchemy as sa


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
