"""Which finished runs are due for deletion: the rules of core.run_retention, one by one, on plain facts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from platform_assets.core.run_retention import (
    ALERT_PENDING,
    KEPT_BATCH,
    LATEST_ASSET_EVENT,
    NEWEST_OF_JOB,
    NOT_AUDITED,
    OUT_OF_SCOPE,
    RECENT,
    UNFINISHED,
    Anchors,
    RetentionPolicy,
    RunFacts,
    deletable_before,
    kept_because,
    verdict,
)

NOW = datetime(2026, 3, 20, 12, 0, tzinfo=UTC)
STREAM = {"platform/streaming_source": "Kafka:trades", "platform/job_type": "Streaming"}


def policy(days: int = 7, scope: str = "stream") -> RetentionPolicy:
    return RetentionPolicy(
        days=days,
        scope=scope,
        stream_job="trades_micro_batch_job",
        stream_tag="platform/streaming_source",
        batch_tag="platform/micro_batch_id",
        pending_alert_tag="platform/alert_pending",
    )


def run(
    run_id: str,
    age_days: float = 10,
    status: str = "SUCCESS",
    job: str = "trades_micro_batch_job",
    tags: dict | None = None,
    updated_days: float | None = None,
) -> RunFacts:
    ended = NOW - timedelta(days=age_days)
    updated = ended if updated_days is None else NOW - timedelta(days=updated_days)
    return RunFacts(
        run_id,
        job,
        status,
        None if status not in ("SUCCESS", "FAILURE", "CANCELED") else ended,
        updated,
        STREAM if tags is None else tags,
    )


AUDITED = Anchors(audited_until=NOW - timedelta(hours=1))


@pytest.mark.parametrize("status", ["SUCCESS", "FAILURE", "CANCELED"])
def test_an_old_finished_stream_run_is_due(status):
    assert kept_because(run("a", status=status), policy(), NOW, AUDITED) is None


@pytest.mark.parametrize("status", ["QUEUED", "NOT_STARTED", "STARTING", "STARTED", "CANCELING"])
def test_an_unfinished_run_stays_however_old(status):
    assert kept_because(run("a", age_days=365, status=status), policy(), NOW, AUDITED) == UNFINISHED


def test_the_stream_scope_covers_only_the_micro_batch_job_with_streaming_tags():
    assert kept_because(run("a", job="medallion_job", tags={}), policy(), NOW, AUDITED) == OUT_OF_SCOPE
    # the feed job is tagged Streaming but carries no streaming source: its windows stay
    feed = run("b", job="trades_feed_job", tags={"platform/job_type": "Streaming"})
    assert kept_because(feed, policy(), NOW, AUDITED) == OUT_OF_SCOPE
    untagged = run("c", tags={})  # a micro-batch job run started by hand, without the sensor's tags
    assert kept_because(untagged, policy(), NOW, AUDITED) == OUT_OF_SCOPE
    # a catch-up run (silver only) carries the streaming tags without a batch id
    assert kept_because(run("d"), policy(), NOW, AUDITED) is None


def test_the_all_scope_covers_every_job():
    assert kept_because(run("a", job="medallion_job", tags={}), policy(scope="all"), NOW, AUDITED) is None


def test_age_counts_from_the_last_change_and_zero_days_keeps_everything():
    assert kept_because(run("a", age_days=6.9), policy(), NOW, AUDITED) == RECENT
    assert kept_because(run("b", age_days=7.1), policy(), NOW, AUDITED) is None
    # ended long ago but tagged yesterday (e.g. an alert delivered late): a week from that change
    assert kept_because(run("c", age_days=30, updated_days=1), policy(), NOW, AUDITED) == RECENT
    assert kept_because(run("d", age_days=3650), policy(days=0), NOW, AUDITED) == RECENT
    assert kept_because(run("e", age_days=1.5), policy(days=1), NOW, AUDITED) is None


def test_a_run_the_audit_trail_has_not_read_in_its_final_state_stays():
    behind = Anchors(audited_until=NOW - timedelta(days=20))
    assert kept_because(run("a", age_days=10), policy(), NOW, behind) == NOT_AUDITED
    assert kept_because(run("b", age_days=25), policy(), NOW, behind) is None
    assert kept_because(run("c", age_days=25), policy(), NOW, Anchors(audited_until=None)) == NOT_AUDITED
    at_the_position = run("d", age_days=20)  # updated exactly where the audit stands: maybe not read yet
    assert kept_because(at_the_position, policy(), NOW, behind) == NOT_AUDITED


def test_a_run_whose_alert_waits_for_the_webhook_stays():
    tags = {**STREAM, "platform/alert_pending": "true"}
    assert kept_because(run("a", tags=tags), policy(), NOW, AUDITED) == ALERT_PENDING
    assert (
        kept_because(run("b", tags={**tags, "platform/alert_pending": "false"}), policy(), NOW, AUDITED)
        is None
    )


def test_the_newest_run_of_a_job_and_the_latest_asset_events_stay_however_old():
    anchors = Anchors(
        audited_until=NOW,
        newest_by_job={"trades_micro_batch_job": "newest"},
        latest_asset_event_runs=frozenset({"bronze-latest"}),
    )
    assert kept_because(run("newest", age_days=40), policy(), NOW, anchors) == NEWEST_OF_JOB
    assert kept_because(run("bronze-latest", age_days=40), policy(), NOW, anchors) == LATEST_ASSET_EVENT
    assert kept_because(run("other", age_days=40), policy(), NOW, anchors) is None


def test_the_attempts_of_one_micro_batch_go_together():
    batch = {**STREAM, "platform/micro_batch_id": "41"}
    first = run("first", age_days=9, status="FAILURE", tags=batch)
    second = run("second", age_days=8.5, tags=batch)
    recent = run("recent", age_days=2, status="FAILURE", tags=batch)
    assert verdict(first, policy(), NOW, AUDITED, attempts=[first, second]) is None
    assert verdict(second, policy(), NOW, AUDITED, attempts=[first, second]) is None
    # the batch has an attempt too young to go: none of its attempts goes, the sensor's count stays right
    assert verdict(first, policy(), NOW, AUDITED, attempts=[first, second, recent]) == KEPT_BATCH
    newest = Anchors(audited_until=AUDITED.audited_until, newest_by_job={"trades_micro_batch_job": "second"})
    assert verdict(first, policy(), NOW, newest, attempts=[first, second]) == KEPT_BATCH
    assert policy().batch_of(first) == ("trades_micro_batch_job", "Kafka:trades", "41")
    assert policy().batch_of(run("catch-up")) is None


def test_deletions_are_bounded_by_the_cutoff_and_the_audit_position():
    early = NOW - timedelta(days=9)
    assert deletable_before(policy(), NOW, NOW) == NOW - timedelta(days=7)
    assert deletable_before(policy(), NOW, early) == early
    assert deletable_before(policy(), NOW, None) is None
    assert deletable_before(policy(days=0), NOW, NOW) is None


@pytest.mark.parametrize(
    ("days", "scope", "message"),
    [
        (-1, "stream", "0 or more, got -1"),
        (True, "stream", "got True"),
        (7, "everything", "one of stream, all, got 'everything'"),
    ],
)
def test_a_bad_policy_is_refused_with_what_is_allowed(days, scope, message):
    with pytest.raises(ValueError, match=message):
        policy(days=days, scope=scope)
