"""The platform's errors, in one place. Each says what is wrong in terms a data engineer acts on
(table, column, file, setting); none carries a secret.

``SettingsError`` (``platform_assets.settings``) and ``AuditUnavailable`` (``core.audit``) live beside
the one module that raises them.
"""

from __future__ import annotations


class ConfigError(ValueError):
    """The table configuration is invalid; the message names the file, the table and the field."""


class SourceError(RuntimeError):
    """The source table cannot be read as configured (missing table or column, uncomparable values).
    Retrying cannot help."""


class UnreadableValue(ValueError):
    """A stored value that is not a time value in any accepted form."""


class MixedStorage(UnreadableValue):
    """A column whose values are stored in forms that cannot be compared with each other."""


class StateConflict(RuntimeError):
    """Another run changed a state entry (watermark, checkpoint) between our read and our write."""


class SchemaDriftError(ValueError):
    """A source column changed type; silver never widens or casts silently."""


class NotADeltaTableError(ValueError):
    """A folder that should hold a Delta table holds something else."""


class AlertError(RuntimeError):
    """An alert could not be delivered to the webhook."""


class CountryApiError(RuntimeError):
    """The REST Countries API answered, but not with a usable description of ``country``."""

    def __init__(self, country: str, reason: str, status: int | None = None):
        self.country = country
        self.reason = reason
        self.status = status
        super().__init__(f"{country}: {reason}")
