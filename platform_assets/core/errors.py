"""The platform's errors: one family. Each says what is wrong in terms a data engineer acts on (table,
column, file, setting); none carries a secret.

Every error the platform raises is a :class:`PlatformError`, of one kind (a direct subclass below:
configuration, source, drift, lake, stream, serving, audit, state, alerting), and says through
``retryable`` whether running the same step again, unchanged, can help: a dropped connection, a broker
that did not answer in time, a concurrent writer can; a bad setting, a drifted table, poison data cannot,
however often it is retried. The Dagster layer maps the family once (``platform_assets.lib.errors``): a
retryable error is retried, any other fails the step at once with its message. docs/errors.md lists them.

Classes used across modules live here. A class raised and caught within one module lives beside it,
derived from its kind here, and says so in its docstring (``SettingsError`` in ``platform_assets.settings``,
``AuditUnavailable`` in ``core.audit.connection``, ``LandingError`` in ``core.files.landing_zone``, ...).
Each keeps the builtin base it always had (``ValueError``, ``RuntimeError``, ``TimeoutError``), so code
that catches the builtin still catches it.
"""

from __future__ import annotations

from typing import Any, ClassVar


class PlatformError(Exception):
    """Any error the platform raises on purpose. ``retryable``: whether retrying the same step unchanged
    can help. A class sets it for all its errors; where it depends on the case (an API's 5xx answer vs a
    4xx one), the raiser passes ``retryable=`` and the instance carries it."""

    kind: ClassVar[str] = "platform"
    retryable: bool = False

    def __init__(self, *args: Any, retryable: bool | None = None) -> None:
        super().__init__(*args)
        if retryable is not None:
            self.retryable = retryable

    def details(self) -> dict[str, Any]:
        """Structured facts about the error beyond its message (e.g. the topic and partition), for the
        run's metadata. Never a secret."""
        return {}


# ----------------------------------------------------------------------------------------------------
# The kinds


class ConfigurationError(PlatformError):
    """A setting, a tables.yaml entry, a run config or the deployment (e.g. no Java) is not usable.
    Retrying cannot help: someone changes the configuration."""

    kind = "configuration"


class SourceError(PlatformError, RuntimeError):
    """A source cannot be read as configured: a missing table or column, change values that do not
    compare, an API answer that is not what it should be, a landing file that is not in the declared
    schema. Retrying cannot help, except where an API answered with a server error (5xx, 429) or did not
    answer: those instances are ``retryable``. (Connection errors of the source database itself are the
    driver's own and are retried by the step's retry policy.)"""

    kind = "source"


class DriftError(PlatformError):
    """A schema or type differs from what it was declared or recorded as (a source column that changed
    type, a platform SQL table that lost a column). Retrying cannot help until someone restores or
    redeclares it."""

    kind = "drift"


class LakeError(PlatformError):
    """A lake (Delta table) operation cannot complete: a folder that is no Delta table, a change feed
    that does not reach back far enough (not retryable), a commit that kept losing to concurrent writers
    (retryable)."""

    kind = "lake"


class StreamError(PlatformError):
    """The Kafka -> Delta landing cannot go on: the broker did not deliver in time (retryable), or the
    topic and the landed table disagree (lost, unknown or out-of-order offsets, a recreated topic) or a
    message cannot be read (poison data): not retryable, someone decides."""

    kind = "stream"


class ServingError(PlatformError):
    """The serving database cannot take or give rows. Unreachable: retryable, nothing was lost."""

    kind = "serving"


class AuditError(PlatformError):
    """The audit trail cannot be written or read. Unreachable: retryable, the monitor writes it later."""

    kind = "audit"


class StateError(PlatformError):
    """The state store (watermarks, checkpoints, processed file versions) cannot record a step's
    progress."""

    kind = "state"


class AlertError(PlatformError, RuntimeError):
    """An alert could not be delivered to the webhook. Unreachable or a server error after the
    configured attempts: retryable (the monitor retries it on a later tick). Refused (4xx): raised with
    ``retryable=False``, the webhook setting needs fixing."""

    kind = "alerting"
    retryable = True


# ----------------------------------------------------------------------------------------------------
# Configuration


class ConfigError(ConfigurationError, ValueError):
    """The table configuration (tables.yaml, a run config's value) is invalid; the message names the
    file, the table and the field. Also raised for identifiers that could inject SQL. Not retryable."""


# ----------------------------------------------------------------------------------------------------
# Sources


class UnreadableValue(SourceError, ValueError):
    """A stored change value that is not a time value in any accepted form: poison data in the source.
    Not retryable."""


class MixedStorage(UnreadableValue):
    """A change column whose values are stored in forms that cannot be compared with each other. Not
    retryable."""


def _server_side(status: int | None) -> bool:
    """Whether an HTTP status is one a later attempt may not get again (a server error, too many
    requests); None (an answer whose body is unusable) is not."""
    return status is not None and (status == 429 or status >= 500)


class CountryApiError(SourceError):
    """The REST Countries API answered, but not with a usable description of ``country``. Retryable when
    the API answered with a server error (5xx) or 429; an unknown country, a 4xx or a malformed body is
    not."""

    def __init__(self, country: str, reason: str, status: int | None = None):
        self.country = country
        self.reason = reason
        self.status = status
        super().__init__(f"{country}: {reason}", retryable=_server_side(status))

    def __reduce__(self):  # the message is built from the fields: rebuild it from them
        return type(self), (self.country, self.reason, self.status)

    def details(self) -> dict[str, Any]:
        return {"country": self.country, **({"http_status": self.status} if self.status is not None else {})}


class LookupApiError(SourceError):
    """The trade symbol lookup API answered, but not with a usable ``{"symbols": [...]}`` document.
    Retryable when the answer was a server error (5xx) or 429; a 4xx or a malformed body is not."""

    def __init__(self, url: str, reason: str, status: int | None = None):
        self.url = url
        self.reason = reason
        self.status = status
        super().__init__(f"symbol lookup {url}: {reason}", retryable=_server_side(status))

    def __reduce__(self):  # the message is built from the fields: rebuild it from them
        return type(self), (self.url, self.reason, self.status)

    def details(self) -> dict[str, Any]:
        return {"http_status": self.status} if self.status is not None else {}


# ----------------------------------------------------------------------------------------------------
# Drift


class SchemaDriftError(DriftError, ValueError):
    """A source column changed type; silver never widens or casts silently. The same file fails the
    same way again: not retryable."""


class TableDriftError(DriftError, RuntimeError):
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

    def details(self) -> dict[str, Any]:
        return {"drifted_tables": dict(self.drift)}


# ----------------------------------------------------------------------------------------------------
# Lake


class NotADeltaTableError(LakeError, ValueError):
    """A folder that should hold a Delta table holds something else. Not retryable."""


# ----------------------------------------------------------------------------------------------------
# State


class StateConflict(StateError, RuntimeError):
    """Another run changed a state entry (watermark, checkpoint) between our read and our write.
    Retryable: the retry reads the new value and starts from there."""

    retryable = True


# ----------------------------------------------------------------------------------------------------
# Serving


class ServingUnavailable(ServingError, RuntimeError):
    """The serving database cannot be reached; nothing was lost, the caller retries the same rows later.
    Retryable."""

    retryable = True


# ----------------------------------------------------------------------------------------------------
# Streams (the exactly-once Kafka -> Delta landing)


class MalformedFrame(StreamError, ValueError):
    """A trade-feed frame that claims to be a trade but cannot be read as one (bad JSON, a missing or
    mistyped field). The feed counts and logs it and carries on; one bad frame never stops ingestion.
    Poison data: not retryable."""


class BatchReadTimeout(StreamError, TimeoutError):
    """The broker did not deliver a planned offset range in time; the batch was not landed. Retryable:
    the same plan is read again (the sensor asks for it at once)."""

    retryable = True


class OffsetsLostError(StreamError, RuntimeError):
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

    def __reduce__(self):  # the message is built from the fields: rebuild it from them
        return type(self), (self.topic, self.partition, self.wanted, self.available)

    def details(self) -> dict[str, Any]:
        return {
            "topic": self.topic,
            "partition": self.partition,
            "wanted_offset": self.wanted,
            "available_offset": self.available,
        }


class OffsetsAheadError(StreamError, RuntimeError):
    """Bronze (or a plan) refers to offsets the topic does not have: the topic was recreated, or the
    table belongs to another topic. Landing would skip or misattribute messages. Not retryable."""


class NewIncarnationError(StreamError, RuntimeError):
    """The topic is a new incarnation of the one bronze landed from (recreated, or another cluster): its
    offsets are not the recorded ones. Landing stops until an operator starts a new epoch (an embedded
    broker's new incarnation starts one by itself). Retrying cannot help."""

    def __init__(self, topic: str, recorded: str | None, current: str | None, detail: str = ""):
        self.topic = topic
        self.recorded = recorded
        self.current = current
        self.detail = detail
        super().__init__(
            f"topic {topic!r} is a new incarnation ({current}) of the one bronze landed from ({recorded})"
            f"{detail}: its offsets start over, so nothing is landed from it until a new epoch is started "
            "on purpose: python -m platform_assets.cli.new_epoch (make new-epoch)"
        )

    def __reduce__(self):  # the message is built from the fields: rebuild it from them
        return type(self), (self.topic, self.recorded, self.current, self.detail)

    def details(self) -> dict[str, Any]:
        return {"topic": self.topic, "recorded_incarnation": self.recorded, "incarnation": self.current}


class BatchOrderError(StreamError, RuntimeError):
    """A batch id or range that does not follow what the table holds. Landing it would either skip a
    batch for good (a later id recorded first) or duplicate messages (a range starting before the
    table's next offset). Not retryable."""
