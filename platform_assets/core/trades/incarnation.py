"""Moved to :mod:`platform_assets.core.streaming.incarnation` (every topic has incarnations, not only the
trade topic); the old import path keeps working."""

from platform_assets.core.streaming.incarnation import (
    EMBEDDED_PREFIX,
    MARKER_PREFIX,
    accept_incarnation,
    accepted_incarnation,
    accepted_name,
    is_embedded,
    mark_embedded,
    topic_incarnation,
)

__all__ = [
    "EMBEDDED_PREFIX",
    "MARKER_PREFIX",
    "accept_incarnation",
    "accepted_incarnation",
    "accepted_name",
    "is_embedded",
    "mark_embedded",
    "topic_incarnation",
]
