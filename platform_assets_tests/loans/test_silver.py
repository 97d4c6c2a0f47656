"""silver/loan_applications on data: the latest event per application wins whatever the order events
arrive or are read in, ties are broken by position, the expectations quarantine, and a micro-batch is
consumed exactly once (the checkpoint is in silver's own commit)."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import polars as pl
from deltalake import CommitProperties, Transaction, write_deltalake

from platform_assets.core.lake import delta
from platform_assets.core.loans.events import FIELDS
from platform_assets.core.loans.silver import (
    apply_pending,
    check,
    consumed,
    events,
    fold,
    keep_quarantined,
    merge_latest,
)

APP = "loans:test"
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)
BRONZE_SCHEMA = {
    **FIELDS,
    "kafka_partition": pl.Int32(),
    "kafka_offset": pl.Int64(),
    "micro_batch_id": pl.Int64(),
    "kafka_epoch": pl.Int32(),
}


def event(
    app: str, status: str, minute: int, offset: int, *, amount="1000.00", partition=0, batch=0, epoch=0
):
    return {
        "application_id": app,
        "applicant_id": f"CUS-{app}",
        "amount": amount,
        "currency": "USD",
        "status": status,
        "event_time": T0 + timedelta(minutes=minute),
        "kafka_partition": partition,
        "kafka_offset": offset,
        "micro_batch_id": batch,
        "kafka_epoch": epoch,
    }


def frame(rows: list[dict]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=BRONZE_SCHEMA)


def land(bronze: str, rows: list[dict], batch_id: int) -> None:
    """What the landing commits: the batch's rows and its app transaction, in one commit."""
    data = frame([{**r, "micro_batch_id": batch_id} for r in rows]).to_arrow()
    properties = CommitProperties(app_transactions=[Transaction(APP, batch_id)])
    write_deltalake(bronze, data, mode="append", commit_properties=properties)


def states(silver: str) -> dict[str, tuple[str, Decimal]]:
    table = pl.read_delta(silver)
    assert table["application_id"].n_unique() == table.height  # one row per application
    return {r["application_id"]: (r["status"], r["amount"]) for r in table.iter_rows(named=True)}


def test_the_latest_event_wins_in_any_order_and_ties_go_to_the_later_position():
    rows = [
        event("A", "submitted", 0, 0),
        event("A", "approved", 5, 1),
        event("A", "withdrawn", 3, 2),  # produced later, happened earlier: approved stays
        event("B", "submitted", 1, 0, partition=1),
        event("B", "rejected", 2, 1, partition=1),
        event("B", "approved", 2, 2, partition=1),  # same event time as the rejection: the later offset wins
        event("C", "submitted", 0, 5, partition=2, epoch=0),
        event("C", "approved", 0, 0, partition=2, epoch=1),  # same time, a later epoch (offsets restarted)
    ]
    expected = fold(events(frame(rows)))
    assert dict(zip(expected["application_id"], expected["status"], strict=True)) == {
        "A": "approved",
        "B": "approved",
        "C": "approved",
    }
    for seed in range(5):
        shuffled = rows[:]
        random.Random(seed).shuffle(shuffled)
        assert fold(events(frame(shuffled))).equals(expected)


def test_expectations_quarantine_with_the_rule_and_keep_the_amount_as_sent():
    rows = [
        event("A", "submitted", 0, 0, amount="2500.50"),
        event("B", "submitted", 0, 1, amount="-10.00"),
        event("C", "submitted", 0, 2, amount="12.345"),  # not cents: never rounded into silver
        event("D", "cancelled", 0, 3),
        event("E", "pending", 0, 4, amount="0"),
        event("F", "approved", 0, 5, amount=" 7 "),
    ]
    checked = check(events(frame(rows)), T0)
    assert checked.kept["application_id"].to_list() == ["A", "F"]
    assert checked.kept["amount"].to_list() == [Decimal("2500.50"), Decimal("7.00")]
    quarantined = {
        r["application_id"]: (r["_rule"], r["amount"]) for r in checked.quarantined.iter_rows(named=True)
    }
    assert quarantined == {
        "B": ("amount_positive", "-10.00"),
        "C": ("amount_positive", "12.345"),
        "D": ("known_status", "1000.00"),
        "E": ("amount_positive,known_status", "0"),
    }
    assert {r.name: r.failed for r in checked.results} == {"amount_positive": 3, "known_status": 2}


def test_batches_are_consumed_once_and_late_or_invalid_events_do_not_overwrite(tmp_path):
    bronze, silver, quarantine = (str(tmp_path / n) for n in ("bronze", "silver", "quarantine"))
    land(
        bronze,
        [event("A", "submitted", 0, 0), event("B", "submitted", 1, 1), event("C", "submitted", 2, 2)],
        0,
    )
    first = apply_pending(bronze, silver, quarantine, app_id=APP)
    assert (first.first_batch, first.last_batch, first.inserted) == (0, 0, 3)
    # batch 1: A approved, B's late submitted (older than silver's), C's status not known
    land(
        bronze,
        [
            event("A", "approved", 10, 3),
            event("B", "submitted", 0, 4, amount="999.00"),
            event("C", "cancelled", 11, 5),
        ],
        1,
    )
    land(bronze, [event("B", "rejected", 12, 6, amount="-1")], 2)  # invalid: B stays submitted
    second = apply_pending(bronze, silver, quarantine, app_id=APP, chunk_batches=1)
    assert (second.first_batch, second.last_batch, second.rows_read) == (1, 2, 4)
    assert (second.inserted, second.updated, second.rows_quarantined) == (0, 1, 2)
    assert states(silver) == {
        "A": ("approved", Decimal("1000.00")),
        "B": ("submitted", Decimal("1000.00")),
        "C": ("submitted", Decimal("1000.00")),
    }
    assert consumed(silver, APP) == 2
    rules = dict(pl.read_delta(quarantine).select("application_id", "_rule").iter_rows())
    assert rules == {"C": "known_status", "B": "amount_positive"}

    version = delta.version(silver)
    again = apply_pending(bronze, silver, quarantine, app_id=APP)
    assert again.first_batch is None and delta.version(silver) == version
    assert pl.read_delta(quarantine).height == 2


def test_a_chunk_retried_after_a_kill_lands_nothing_twice(tmp_path):
    bronze, silver, quarantine = (str(tmp_path / n) for n in ("bronze", "silver", "quarantine"))
    land(bronze, [event("A", "submitted", 0, 0), event("B", "pending", 0, 1)], 0)
    # killed after the quarantine was written, before the merge committed
    checked = check(events(pl.read_delta(bronze)), T0)
    keep_quarantined(quarantine, checked.quarantined)
    assert consumed(silver, APP) == -1
    run = apply_pending(bronze, silver, quarantine, app_id=APP)
    assert (run.inserted, run.rows_quarantined) == (1, 1)
    assert pl.read_delta(quarantine).height == 1
    # killed after the merge committed: the retry finds the batch consumed and writes nothing
    version = delta.version(silver)
    skipped = merge_latest(silver, fold(checked.kept), app_id=APP, batch_id=0)
    assert skipped.skipped and delta.version(silver) == version


def test_nothing_newer_still_moves_the_checkpoint(tmp_path):
    bronze, silver, quarantine = (str(tmp_path / n) for n in ("bronze", "silver", "quarantine"))
    land(bronze, [event("A", "approved", 5, 0)], 0)
    land(bronze, [event("A", "submitted", 1, 1)], 1)  # late: changes nothing
    apply_pending(bronze, silver, quarantine, app_id=APP, chunk_batches=1)
    assert consumed(silver, APP) == 1
    assert states(silver) == {"A": ("approved", Decimal("1000.00"))}


def test_a_merge_touches_only_the_applications_of_its_batch(tmp_path):
    bronze, silver, quarantine = (str(tmp_path / n) for n in ("bronze", "silver", "quarantine"))
    land(bronze, [event(f"APP-{i:04d}", "submitted", 0, i) for i in range(200)], 0)
    apply_pending(bronze, silver, quarantine, app_id=APP)
    before = delta.version(silver)
    land(bronze, [event("APP-0007", "approved", 5, 200), event("APP-0150", "rejected", 5, 201)], 1)
    apply_pending(bronze, silver, quarantine, app_id=APP)
    changes, _ = delta.read_changes(silver, before)
    assert sorted(changes["application_id"].to_list()) == ["APP-0007", "APP-0150"]
    assert pl.read_delta(silver).height == 200
