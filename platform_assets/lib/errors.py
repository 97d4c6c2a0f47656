"""The platform's errors as Dagster acts on them, in one place.

The core raises :class:`~platform_assets.core.errors.PlatformError` s and knows nothing of Dagster; an
asset or op wraps the core call in :func:`platform_errors` and Dagster gets:

- a non-retryable error (bad configuration, drift, poison data): ``Failure(allow_retries=False)`` with
  the error's one-line message as description and its kind, class and facts as metadata. The step fails
  at once, even under a retry policy: running it again, unchanged, would fail the same way.
- a retryable error (a dropped connection, a timeout, a concurrent writer) in a step with a retry policy
  of its own (``retry_policy=True``): the same ``Failure`` with ``allow_retries=True``, so the policy
  retries it with its own backoff.
- a retryable error in a step without one: ``RetryRequested(max_retries, seconds_to_wait)``, caused by
  that ``Failure``. Once the retries are spent Dagster fails the step and shows the Failure's description
  and metadata.

Errors that are no PlatformError pass through untouched (Dagster and a retry policy treat them as
before).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any, NoReturn

from dagster import Failure, RetryRequested

from platform_assets.core.errors import PlatformError

# A retryable error in a step without a retry policy: retried this often, this long apart. Two retries
# ride out a broker or database restart; more would only delay the failure an operator has to see.
MAX_RETRIES = 2
SECONDS_TO_WAIT = 5.0


def error_metadata(exc: PlatformError) -> dict[str, Any]:
    """What a run records of ``exc`` beside its message: kind, class, whether a retry can help, and the
    error's own facts (``details()``; never a secret). Empty facts are left out."""
    facts = {name: value for name, value in exc.details().items() if value is not None}
    return {
        "error_kind": exc.kind,
        "error_class": type(exc).__name__,
        "retryable": exc.retryable,
        **facts,
    }


def as_failure(exc: PlatformError) -> Failure:
    """``exc`` as a Dagster ``Failure``: its message, its metadata, retries allowed only if it is
    retryable."""
    return Failure(description=str(exc), metadata=error_metadata(exc), allow_retries=exc.retryable)


def raise_for_dagster(
    exc: PlatformError,
    *,
    retry_policy: bool = False,
    max_retries: int = MAX_RETRIES,
    seconds_to_wait: float = SECONDS_TO_WAIT,
) -> NoReturn:
    """Raise what Dagster should act on for ``exc`` (see the module). ``retry_policy``: the step has a
    retry policy of its own, which then decides on the retries of a retryable error."""
    failure = as_failure(exc)
    if not exc.retryable:
        # The message names what to fix and the metadata carries kind, class and facts: the core's
        # traceback under it would only bury that line in the run's log (and the UI's error panel).
        raise failure from None
    if retry_policy:
        raise failure from exc
    failure.__cause__ = exc
    raise RetryRequested(max_retries=max_retries, seconds_to_wait=seconds_to_wait) from failure


@contextmanager
def platform_errors(
    *,
    retry_policy: bool = False,
    max_retries: int = MAX_RETRIES,
    seconds_to_wait: float = SECONDS_TO_WAIT,
) -> Iterator[None]:
    """Around a step's core call: a :class:`PlatformError` raised inside becomes a ``Failure`` or a
    ``RetryRequested`` (:func:`raise_for_dagster`); anything else passes through."""
    try:
        yield
    except PlatformError as exc:
        raise_for_dagster(
            exc, retry_policy=retry_policy, max_retries=max_retries, seconds_to_wait=seconds_to_wait
        )
