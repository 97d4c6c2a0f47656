"""The settings the code location is being built from, for the ``@definitions`` functions of ``defs/``.

Dagster's loader (``load_from_defs_folder``) calls each domain's ``@definitions`` function with no
arguments, so the settings cannot be passed down the way ``build_definitions(settings)`` receives them.
:func:`platform_assets.definitions.build_definitions` sets them here for the time of one load
(:func:`using_settings`) and every domain reads them back with :func:`active_settings`: one assembly path,
whether the settings come from the environment (the code location, ``dg``) or from a test.

A context variable rather than a module global: two loads in two threads each see their own settings.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from platform_assets.settings import Settings, load_settings

_settings: ContextVar[Settings | None] = ContextVar("platform_assets_settings", default=None)


def active_settings() -> Settings:
    """The settings of the load in progress; outside one (a domain's ``defs()`` called on its own), the
    environment's, read afresh."""
    return _settings.get() or load_settings()


@contextmanager
def using_settings(settings: Settings) -> Iterator[Settings]:
    """Every :func:`active_settings` call inside the block returns ``settings``."""
    token = _settings.set(settings)
    try:
        yield settings
    finally:
        _settings.reset(token)
