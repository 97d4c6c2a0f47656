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


class LookupApiError(RuntimeError):
    """The trade symbol lookup API answered, but not with a usable ``{"symbols": [...]}`` document."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        self.url = url
        self.reason = reason
        self.status = status
        super().__init__(f"symbol lookup {url}: {reason}")


class ServingUnavailable(RuntimeError):
    """The serving database cannot be reached; nothing was lost, the caller retries the same rows later."""


class TableDriftError(RuntimeError):
    """A platform SQL table (audit, state, serving) differs from its declaration: a column is missing or
    holds another type. Not an outage: retrying cannot help until the table is restored as declared."""

    def __init__(self, what: str, where: str, drift: dict[str, list[str]]):
        self.what = what  # e.g. "serving database"
        self.where = where  # the database URL, password masked
        self.drift = drift  # table name -> differences
        tables = "; ".join(f"table {name}: {', '.join(problems)}" for name, problems in drift.items())
        super().__init__(
            f"{what} {where} differs from the declared tables ({tables}); retrying cannot help: restore the "
            "table(s) as declared (`make setup` lists every difference)"
        )

    def __reduce__(self):  # crosses process boundaries intact
        return type(self), (self.what, self.where, self.drift)


class MalformedFrame(ValueError):
    """A trade-feed frame that claims to be a trade but cannot be read as one (bad JSON, a missing or
    mistyped field). The feed counts and logs it and carries on; one bad frame never stops ingestion."""


class OffsetsLostError(RuntimeError):
    """Kafka no longer holds offsets that were never landed (retention removed them): data was lost
    upstream. Retrying cannot help; someone decides whether to accept the gap."""

    def __init__(self, topic: str, partition: int, wanted: int, available: int):
        self.topic = topic
        self.partition = partition
        self.wanted = wanted
        self.available = available
        super().__init__(
            f"topic {topic!r} partition {partition}: offset {wanted} is needed but the broker only holds "
            f"offsets from {available} on; {available - wanted} message(s) expired before they were landed"
        )
