"""The error family: every exception class of the package is a PlatformError of one kind, keeps the
builtin base its callers catch, says whether a retry can help, and reaches Dagster as a Failure (no
retry) or a RetryRequested (retry) with its message."""

from __future__ import annotations

import importlib
import inspect
import pickle
import pkgutil

import pytest
import yaml
from dagster import (
    DagsterEventType,
    Failure,
    RetryPolicy,
    RetryRequested,
    asset,
    materialize,
)

import platform_assets
from platform_assets.core import errors
from platform_assets.core.alerts import AlertPolicy, post_alert
from platform_assets.core.audit.connection import AuditUnavailable
from platform_assets.core.config_errors import DuplicateKeyError
from platform_assets.core.files.landing_zone import LandingError, StaleSnapshotError
from platform_assets.core.lake.delta import ChangeFeedUnavailable
from platform_assets.core.lake.maintenance import MaintenanceConflict
from platform_assets.core.medallion.steps.history import HistoryAlreadyLoaded, HistoryError
from platform_assets.core.spark.session import JavaMissingError
from platform_assets.core.trades import landing
from platform_assets.core.trades.stream import LookupMissing, LookupUnavailable
from platform_assets.defs.trades.resources import KafkaNotConfigured
from platform_assets.lib.errors import platform_errors, raise_for_dagster
from platform_assets.settings import SettingsError
from platform_assets_tests.receiver import Receiver

KINDS = {
    errors.ConfigurationError: "configuration",
    errors.SourceError: "source",
    errors.DriftError: "drift",
    errors.LakeError: "lake",
    errors.StreamError: "stream",
    errors.ServingError: "serving",
    errors.AuditError: "audit",
    errors.StateError: "state",
    errors.AlertError: "alerting",
}


def package_exception_classes() -> list[type[BaseException]]:
    """Every exception class defined at module level anywhere in ``platform_assets``."""
    found = []
    for module_info in pkgutil.walk_packages(platform_assets.__path__, "platform_assets."):
        module = importlib.import_module(module_info.name)
        for value in vars(module).values():
            if (
                inspect.isclass(value)
                and issubclass(value, BaseException)
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return found


def test_every_exception_class_of_the_package_is_a_platform_error_of_one_kind_with_a_docstring():
    classes = package_exception_classes()
    names = {c.__name__ for c in classes}
    # the walk does find the classes (spread over core, settings and defs), not an empty list
    assert {"SettingsError", "LandingError", "KafkaNotConfigured", "BatchReadTimeout", "ConfigError"} <= names
    strays = [f"{c.__module__}.{c.__qualname__}" for c in classes if not issubclass(c, errors.PlatformError)]
    assert strays == [], f"derive these from a kind in platform_assets.core.errors: {strays}"
    kindless = [
        f"{c.__module__}.{c.__qualname__}"
        for c in classes
        if c is not errors.PlatformError and not any(issubclass(c, kind) for kind in KINDS)
    ]
    assert kindless == []
    undocumented = [f"{c.__module__}.{c.__qualname__}" for c in classes if not vars(c).get("__doc__")]
    assert undocumented == [], "say when it is raised and whether a retry helps"


def test_each_kind_is_named_and_not_retryable_unless_said_so():
    assert {kind: kind.kind for kind in KINDS} == KINDS
    assert [k.__name__ for k in KINDS if k.retryable] == ["AlertError"]
    assert errors.PlatformError("x").retryable is False


@pytest.mark.parametrize(
    ("cls", "builtin"),
    [
        (errors.ConfigError, ValueError),
        (SettingsError, ValueError),
        (DuplicateKeyError, yaml.YAMLError),
        (errors.SourceError, RuntimeError),
        (errors.UnreadableValue, ValueError),
        (errors.SchemaDriftError, ValueError),
        (errors.TableDriftError, RuntimeError),
        (errors.NotADeltaTableError, ValueError),
        (errors.StateConflict, RuntimeError),
        (errors.ServingUnavailable, RuntimeError),
        (errors.MalformedFrame, ValueError),
        (landing.BatchReadTimeout, TimeoutError),
        (landing.NewIncarnationError, RuntimeError),
        (AuditUnavailable, RuntimeError),
        (LandingError, ValueError),
        (LookupMissing, RuntimeError),
        (JavaMissingError, RuntimeError),
        (KafkaNotConfigured, RuntimeError),
        (HistoryAlreadyLoaded, RuntimeError),
        (MaintenanceConflict, RuntimeError),
        (ChangeFeedUnavailable, RuntimeError),
    ],
)
def test_callers_that_catch_the_builtin_still_catch_it(cls, builtin):
    assert issubclass(cls, builtin) and issubclass(cls, errors.PlatformError)


def test_the_landing_errors_are_the_family_s_own_under_their_old_names():
    assert landing.BatchReadTimeout is errors.BatchReadTimeout
    assert landing.OffsetsAheadError is errors.OffsetsAheadError
    assert landing.NewIncarnationError is errors.NewIncarnationError
    assert landing.BatchOrderError is errors.BatchOrderError


@pytest.mark.parametrize(
    ("error", "kind", "retryable"),
    [
        # a setting, a config entry, the deployment: someone changes it
        (errors.ConfigError("tables.yaml, table T: bad"), "configuration", False),
        (SettingsError("PLATFORM_BATCH_SIZE must be ..."), "configuration", False),
        (JavaMissingError("no java"), "configuration", False),
        (KafkaNotConfigured("no broker"), "configuration", False),
        # drift and poison data fail the same way again
        (errors.SchemaDriftError("T.c changed type"), "drift", False),
        (errors.TableDriftError("audit database", "sqlite://", {"t": ["c missing"]}), "drift", False),
        (errors.MalformedFrame("bad JSON"), "stream", False),
        (errors.UnreadableValue("'x' is not a time value"), "source", False),
        (errors.SourceError("source table T does not exist"), "source", False),
        (StaleSnapshotError("older snapshot"), "source", False),
        (HistoryAlreadyLoaded("loaded"), "source", False),
        (LookupMissing("no lookup"), "source", False),
        # the stream and the topic disagree: someone decides
        (errors.OffsetsLostError("trades", 0, 5, 9), "stream", False),
        (errors.NewIncarnationError("trades", "a", "b"), "stream", False),
        (errors.OffsetsAheadError("ahead"), "stream", False),
        (errors.BatchOrderError("order"), "stream", False),
        (errors.NotADeltaTableError("not delta"), "lake", False),
        (ChangeFeedUnavailable("cleaned up"), "lake", False),
        # outages and races: the same step again can succeed
        (errors.BatchReadTimeout("slow broker"), "stream", True),
        (errors.StateConflict("moved"), "state", True),
        (errors.ServingUnavailable("down"), "serving", True),
        (AuditUnavailable("down"), "audit", True),
        (MaintenanceConflict("lost"), "lake", True),
        (errors.AlertError("unreachable"), "alerting", True),
        # depends on the case: the raiser says
        (errors.CountryApiError("Peru", "HTTP 503", status=503), "source", True),
        (errors.CountryApiError("Peru", "HTTP 429", status=429), "source", True),
        (errors.CountryApiError("Atlantis", "HTTP 404", status=404), "source", False),
        (errors.CountryApiError("Peru", "malformed response"), "source", False),
        (errors.LookupApiError("http://api", "HTTP 502", status=502), "source", True),
        (errors.LookupApiError("http://api", "HTTP 403", status=403), "source", False),
        (HistoryError("wrote 3 rows but the source holds 4", retryable=True), "source", True),
        (errors.AlertError("refused: HTTP 400", retryable=False), "alerting", False),
    ],
    ids=lambda v: type(v).__name__ if isinstance(v, Exception) else None,
)
def test_retryable_says_whether_the_same_step_again_can_help(error, kind, retryable):
    assert (error.kind, error.retryable) == (kind, retryable)


def test_an_instance_s_retryable_does_not_change_its_class():
    assert HistoryError("x", retryable=True).retryable is True
    assert HistoryError("x").retryable is False and HistoryError.retryable is False


@pytest.mark.parametrize(
    "error",
    [
        errors.CountryApiError("Peru", "HTTP 503", status=503),
        errors.LookupApiError("http://api", "malformed"),
        errors.OffsetsLostError("trades", 1, 5, 9),
        errors.NewIncarnationError("trades", "a", "b", " (detail)"),
        errors.TableDriftError("serving database", "sqlite://", {"t": ["c missing"]}),
        HistoryError("count differs", retryable=True),
        landing.BatchReadTimeout("slow"),
    ],
    ids=lambda e: type(e).__name__,
)
def test_errors_cross_process_boundaries_with_message_and_retryable(error):
    again = pickle.loads(pickle.dumps(error))
    assert (type(again), str(again), again.retryable, again.details()) == (
        type(error),
        str(error),
        error.retryable,
        error.details(),
    )


FAST = AlertPolicy(timeout_seconds=2, attempts=2, backoff_seconds=0.01)


def test_a_webhook_that_refuses_is_not_retryable_one_that_fails_is():
    with Receiver(fail_first=10, status=400) as refusing:
        with pytest.raises(errors.AlertError) as refused:
            post_alert(refusing.url, {"run_id": "r"}, FAST)
    with Receiver(fail_first=10) as failing:
        with pytest.raises(errors.AlertError) as failed:
            post_alert(failing.url, {"run_id": "r"}, FAST)
    assert (refused.value.retryable, failed.value.retryable) == (False, True)


def test_a_lookup_api_that_does_not_answer_is_retryable():
    from platform_assets.core.trades.stream import pull_lookup

    with pytest.raises(LookupUnavailable) as raised:
        pull_lookup("http://127.0.0.1:1/api", "/nonexistent", timeout=1, attempts=1)
    assert raised.value.retryable is True and "no answer after 1 attempt(s)" in str(raised.value)


# -- the Dagster mapping ---------------------------------------------------------------------------


def test_a_non_retryable_error_becomes_a_failure_that_no_retry_policy_retries():
    error = errors.SchemaDriftError("DimArtist.genre changed type from Int64 to String")
    for policy in (False, True):
        with pytest.raises(Failure) as raised:
            raise_for_dagster(error, retry_policy=policy)
        failure = raised.value
        assert failure.description == "DimArtist.genre changed type from Int64 to String"
        assert failure.allow_retries is False
        # one line, not the core's traceback under it: the chain is cut on purpose
        assert failure.__cause__ is None and failure.__suppress_context__
        assert {k: v.value for k, v in failure.metadata.items()} == {
            "error_kind": "drift",
            "error_class": "SchemaDriftError",
            "retryable": False,
        }


def test_a_retryable_error_becomes_a_retry_request_caused_by_its_failure():
    error = errors.ServingUnavailable("serving database sqlite:// is unreachable")
    with pytest.raises(RetryRequested) as raised:
        raise_for_dagster(error, max_retries=3, seconds_to_wait=7)
    assert (raised.value.max_retries, raised.value.seconds_to_wait) == (3, 7)
    failure = raised.value.__cause__
    assert isinstance(failure, Failure) and failure.__cause__ is error
    assert failure.description == "serving database sqlite:// is unreachable"
    assert failure.metadata["retryable"].value is True


def test_a_retryable_error_in_a_step_with_its_own_retry_policy_is_a_failure_the_policy_retries():
    with pytest.raises(Failure) as raised:
        raise_for_dagster(errors.StateConflict("watermark moved"), retry_policy=True)
    assert raised.value.allow_retries is True and raised.value.description == "watermark moved"


def test_the_error_s_facts_are_metadata_and_empty_ones_are_left_out():
    with pytest.raises(Failure) as raised:
        raise_for_dagster(errors.NewIncarnationError("trades", None, "cluster-b"))
    metadata = {k: v.value for k, v in raised.value.metadata.items()}
    assert metadata == {
        "error_kind": "stream",
        "error_class": "NewIncarnationError",
        "retryable": False,
        "topic": "trades",
        "incarnation": "cluster-b",
    }


def test_other_errors_pass_through_untouched():
    with pytest.raises(KeyError):
        with platform_errors():
            raise KeyError("not ours")


def _run(raising: Exception, *, policy: RetryPolicy | None = None, retry_policy: bool = False):
    """Materialize an asset whose core call raises ``raising`` every time: (result, attempts)."""
    attempts = []

    @asset(retry_policy=policy)
    def step(context) -> None:  # unannotated: postponed annotations are text Dagster does not accept
        attempts.append(context.retry_number)
        with platform_errors(retry_policy=retry_policy, max_retries=2, seconds_to_wait=0):
            raise raising

    return materialize([step], raise_on_error=False), attempts


def _failure(result):
    """The description and metadata the run's one step failure carries."""
    (event,) = [e for e in result.all_events if e.event_type == DagsterEventType.STEP_FAILURE]
    user = event.step_failure_data.user_failure_data
    assert user is not None
    return user


def test_dagster_fails_a_non_retryable_error_at_once_even_under_a_retry_policy():
    error = errors.ConfigError("run config dimuser: from_date 'yesterday' is not a date")
    result, attempts = _run(error, policy=RetryPolicy(max_retries=3), retry_policy=True)
    assert not result.success and attempts == [0]
    data = _failure(result)
    assert data.description == str(error)
    assert data.metadata["error_kind"].value == "configuration"


def test_dagster_retries_a_retryable_error_then_fails_with_its_message():
    result, attempts = _run(errors.ServingUnavailable("serving database is unreachable"))
    assert not result.success and attempts == [0, 1, 2]
    data = _failure(result)
    assert data.description == "serving database is unreachable"
    assert data.metadata["retryable"].value is True


def test_dagster_leaves_a_retryable_error_to_the_step_s_own_retry_policy():
    result, attempts = _run(
        errors.StateConflict("watermark moved"), policy=RetryPolicy(max_retries=1), retry_policy=True
    )
    assert not result.success and attempts == [0, 1]
    assert _failure(result).description == "watermark moved"
