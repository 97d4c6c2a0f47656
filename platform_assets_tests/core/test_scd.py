"""apply_changes against real Delta tables, pinned on the Databricks AUTO CDC worked example."""

from __future__ import annotations

import itertools
import random
from datetime import UTC, date, datetime

import polars as pl
import pytest
from deltalake import DeltaTable

from platform_assets.core.lake import delta
from platform_assets.core.medallion.scd import END_AT, START_AT, CdcSpec, apply_changes, tombstone_path

# (userId, name, city, operation, sequenceNum): the example of the Databricks AUTO CDC docs.
GOLDEN = [
    (124, "Raul", "Oaxaca", "INSERT", 1),
    (123, "Isabel", "Monterrey", "INSERT", 1),
    (125, "Mercedes", "Tijuana", "INSERT", 2),
    (126, "Lily", "Cancun", "INSERT", 2),
    (123, None, None, "DELETE", 6),
    (125, "Mercedes", "Guadalajara", "UPDATE", 6),
    (125, "Mercedes", "Mexicali", "UPDATE", 5),
    (123, "Isabel", "Chihuahua", "UPDATE", 5),
]
SCHEMA = {
    "userId": pl.Int64,
    "name": pl.String,
    "city": pl.String,
    "operation": pl.String,
    "sequenceNum": pl.Int64,
}

SCD1_EXPECTED = [(124, "Oaxaca", 1), (125, "Guadalajara", 6), (126, "Cancun", 2)]
SCD2_EXPECTED = [
    (123, "Chihuahua", 5, 6),
    (123, "Monterrey", 1, 5),
    (124, "Oaxaca", 1, None),
    (125, "Guadalajara", 6, None),
    (125, "Mexicali", 5, 6),
    (125, "Tijuana", 2, 5),
    (126, "Cancun", 2, None),
]
SCD2_UNTRACKED_EXPECTED = [
    (123, "Isabel", "Chihuahua", 1, 6),
    (124, "Raul", "Oaxaca", 1, None),
    (125, "Mercedes", "Guadalajara", 2, None),
    (126, "Lily", "Cancun", 2, None),
]

SCD1 = CdcSpec(
    keys=("userId",),
    sequence_by="sequenceNum",
    apply_as_deletes="is_delete",
    except_column_list=("operation", "name"),
)
SCD2 = CdcSpec(
    keys=("userId",),
    sequence_by="sequenceNum",
    stored_as_scd_type=2,
    apply_as_deletes="is_delete",
    except_column_list=("operation", "name", "sequenceNum"),
)
SCD2_UNTRACKED = CdcSpec(
    keys=("userId",),
    sequence_by="sequenceNum",
    stored_as_scd_type=2,
    apply_as_deletes="is_delete",
    except_column_list=("operation", "sequenceNum"),
    track_history_except_column_list=("city",),
)
CASES = {
    "scd1": (SCD1, ["userId", "city", "sequenceNum"], SCD1_EXPECTED),
    "scd2": (SCD2, ["userId", "city", START_AT, END_AT], SCD2_EXPECTED),
    "scd2_untracked": (SCD2_UNTRACKED, ["userId", "name", "city", START_AT, END_AT], SCD2_UNTRACKED_EXPECTED),
}


def events(rows: list[tuple]) -> pl.DataFrame:
    """Rows of GOLDEN as a batch, with the boolean delete marker apply_as_deletes needs."""
    df = pl.DataFrame(rows, schema=SCHEMA, orient="row")
    return df.with_columns((pl.col("operation") == "DELETE").alias("is_delete"))


def stored(path: str, columns: list[str]) -> list[tuple]:
    return sorted(delta.read(path).select(columns).rows(), key=lambda r: tuple((v is None, v) for v in r))


def expected_sorted(rows: list[tuple]) -> list[tuple]:
    return sorted(rows, key=lambda r: tuple((v is None, v) for v in r))


def shuffled_splits(seed: int) -> list[list[tuple]]:
    rng = random.Random(seed)
    rows = GOLDEN[:]
    rng.shuffle(rows)
    cuts = sorted(rng.sample(range(1, len(rows)), rng.randint(1, 4)))
    return [rows[a:b] for a, b in itertools.pairwise([0, *cuts, len(rows)])]


# --------------------------------------------------------------------------- golden example


@pytest.mark.parametrize("case", CASES)
def test_golden_single_batch(tmp_path, case):
    spec, columns, expected = CASES[case]
    target = str(tmp_path / "t")
    result = apply_changes(target, events(GOLDEN), spec)
    assert result.committed and result.version == 0
    assert result.rows_in == 8 and result.rejected.height == 0
    assert result.rows_inserted == len(expected)
    assert stored(target, columns) == expected_sorted(expected)
    assert delta.read(target).columns == columns  # no internal/excluded columns leak


def test_scd2_stores_sequence_column_as_latest_event(tmp_path):
    spec = CdcSpec(
        ("userId",), "sequenceNum", 2, apply_as_deletes="is_delete", except_column_list=("operation",)
    )
    target = str(tmp_path / "t")
    apply_changes(target, events(GOLDEN), spec)
    df = delta.read(target)
    assert df.columns == ["userId", "name", "city", "sequenceNum", START_AT, END_AT]
    assert df.schema[START_AT] == df.schema[END_AT] == pl.Int64
    assert stored(target, ["userId", "city", "sequenceNum", START_AT]) == expected_sorted(
        [(u, c, s, s) for u, c, s, _ in SCD2_EXPECTED]
    )


SPLITS = {
    # one event per call, newest first: every delete arrives before the events it must override
    "reverse_one_by_one": [[r] for r in sorted(GOLDEN, key=lambda r: -r[4])],
    # newer events stored first, then the older ones
    "new_then_old": [[r for r in GOLDEN if r[4] >= 5], [r for r in GOLDEN if r[4] < 5]],
    # the delete alone first, then everything else shuffled
    "delete_first": [[GOLDEN[4]], GOLDEN[6:] + GOLDEN[:4] + [GOLDEN[5]]],
    **{f"seed{seed}": shuffled_splits(seed) for seed in range(5)},
}


@pytest.mark.parametrize("split", SPLITS)
@pytest.mark.parametrize("case", CASES)
def test_golden_split_in_any_order(tmp_path, case, split):
    spec, columns, expected = CASES[case]
    target = str(tmp_path / "t")
    for chunk in SPLITS[split]:
        apply_changes(target, events(chunk), spec)
    assert stored(target, columns) == expected_sorted(expected)

    # replaying any chunk (or everything) afterwards changes nothing and commits nothing
    before = delta.version(target)
    for chunk in [*SPLITS[split], GOLDEN]:
        result = apply_changes(target, events(chunk), spec)
        assert not result.committed and result.version == before
        assert (result.rows_inserted, result.rows_updated, result.rows_deleted) == (0, 0, 0)
    assert delta.version(target) == before
    assert stored(target, columns) == expected_sorted(expected)


@pytest.mark.parametrize("case", CASES)
def test_replay_same_batch_is_noop(tmp_path, case):
    spec, columns, expected = CASES[case]
    target = str(tmp_path / "t")
    first = apply_changes(target, events(GOLDEN), spec)
    again = apply_changes(target, events(GOLDEN), spec)
    assert again.committed is False and again.version == first.version == 0
    assert stored(target, columns) == expected_sorted(expected)


def test_delete_only_batch_is_remembered_as_tombstone(tmp_path):
    target = str(tmp_path / "t")
    result = apply_changes(target, events([GOLDEN[4]]), SCD1)
    assert result.committed is False and result.version is None  # nothing to store in the target
    assert delta.read(tombstone_path(target)).rows() == [(123, 6)]
    apply_changes(target, events([GOLDEN[1], GOLDEN[7]]), SCD1)  # older upserts arrive later
    assert delta.read(target).height == 0
    apply_changes(target, events([(123, "Isabel", "Tulum", "UPDATE", 7)]), SCD1)  # newer one wins
    assert stored(target, ["userId", "city", "sequenceNum"]) == [(123, "Tulum", 7)]
    assert delta.read(tombstone_path(target)).height == 0  # no longer needed


# --------------------------------------------------------------------------- SCD1 specifics


def scd1_batch(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema={"id": pl.Int64, "v": pl.String, "seq": pl.Int64}, orient="row")


SIMPLE1 = CdcSpec(keys=("id",), sequence_by="seq")


def test_scd1_older_event_in_later_call_is_ignored(tmp_path):
    target = str(tmp_path / "t")
    apply_changes(target, scd1_batch([(1, "new", 5)]), SIMPLE1)
    result = apply_changes(target, scd1_batch([(1, "old", 3)]), SIMPLE1)
    assert not result.committed and result.version == 0
    assert delta.read(target).rows() == [(1, "new", 5)]


def test_scd1_equal_sequence_latest_batch_wins(tmp_path):
    target = str(tmp_path / "t")
    apply_changes(target, scd1_batch([(1, "a", 5)]), SIMPLE1)
    result = apply_changes(target, scd1_batch([(1, "b", 5)]), SIMPLE1)
    assert result.committed and result.rows_updated == 1 and result.version == 1
    assert delta.read(target).rows() == [(1, "b", 5)]


def test_scd1_ties_within_a_batch_ignore_row_order(tmp_path):
    rows = [(1, "a", 5), (1, "c", 5), (1, "b", 5), (2, "x", 1), (2, None, 1)]
    outcomes = set()
    for i, perm in enumerate(itertools.islice(itertools.permutations(rows), 0, 120, 17)):
        target = str(tmp_path / f"t{i}")
        apply_changes(target, scd1_batch(list(perm)), SIMPLE1)
        outcomes.add(tuple(sorted(delta.read(target).rows(), key=str)))
    assert outcomes == {((1, "c", 5), (2, "x", 1))}


def test_scd1_without_sequence_batch_replaces_changed_rows(tmp_path):
    spec = CdcSpec(keys=("id",), sequence_by=None, apply_as_deletes="gone")
    target = str(tmp_path / "t")
    full = pl.DataFrame({"id": [1, 2, 3], "v": ["a", "b", "c"], "gone": [False, False, False]})
    apply_changes(target, full, spec)
    reload = pl.DataFrame(
        {"id": [1, 2, 2, 3], "v": ["a", "x", "y", None], "gone": [False, False, False, True]}
    )
    result = apply_changes(target, reload, spec)
    assert (result.rows_inserted, result.rows_updated, result.rows_deleted) == (0, 1, 1)
    assert sorted(delta.read(target).rows()) == [(1, "a"), (2, "y")]  # last row per key wins
    assert apply_changes(target, reload, spec).committed is False


# --------------------------------------------------------------------------- SCD2 specifics


def scd2_batch(rows: list[tuple]) -> pl.DataFrame:
    schema = {"id": pl.Int64, "v": pl.String, "note": pl.String, "seq": pl.Int64, "del": pl.Boolean}
    return pl.DataFrame(rows, schema=schema, orient="row")


SIMPLE2 = CdcSpec(
    keys=("id",),
    sequence_by="seq",
    stored_as_scd_type=2,
    apply_as_deletes="del",
    track_history_except_column_list=("note",),
)
SIMPLE2_COLUMNS = ["id", "v", "note", "seq", START_AT, END_AT]


def test_scd2_ties_resolve_the_same_in_any_arrival_order(tmp_path):
    rows = [
        (1, "a", None, 1, False),
        (1, "b", None, 1, False),  # tie at 1: greatest tracked value wins
        (1, "c", None, 3, False),
        (1, None, None, 3, True),  # tie at 3: the delete wins
        (2, "x", "n1", 1, False),
        (2, "x", "n2", 1, False),  # same tracked values: greatest untracked wins
    ]
    expected = [(1, "b", None, 1, 1, 3), (2, "x", "n2", 1, 1, None)]
    orders = [rows, rows[::-1], [rows[3], rows[0], rows[5], rows[2], rows[4], rows[1]]]
    for i, order in enumerate(orders):
        one_call, per_row = str(tmp_path / f"one{i}"), str(tmp_path / f"rows{i}")
        apply_changes(one_call, scd2_batch(order), SIMPLE2)
        for row in order:
            apply_changes(per_row, scd2_batch([row]), SIMPLE2)
        assert sorted(delta.read(one_call).select(SIMPLE2_COLUMNS).rows()) == expected
        assert sorted(delta.read(per_row).select(SIMPLE2_COLUMNS).rows()) == expected


def test_scd2_late_event_inside_a_version_keeps_latest_untracked_values(tmp_path):
    target = str(tmp_path / "t")
    apply_changes(target, scd2_batch([(1, "a", "first", 1, False), (1, "a", "latest", 5, False)]), SIMPLE2)
    assert delta.read(target).select(SIMPLE2_COLUMNS).rows() == [(1, "a", "latest", 5, 1, None)]
    result = apply_changes(target, scd2_batch([(1, "a", "middle", 3, False)]), SIMPLE2)
    assert result.committed is False
    # a late event with a tracked change splits the version
    apply_changes(target, scd2_batch([(1, "b", "split", 3, False)]), SIMPLE2)
    assert sorted(delta.read(target).select(SIMPLE2_COLUMNS).rows()) == [
        (1, "a", "latest", 1, 1, 3),  # seq/untracked values of the lost event at 1 are gone
        (1, "a", "latest", 5, 5, None),
        (1, "b", "split", 3, 3, 5),
    ]


def test_scd2_with_utc_timestamps_out_of_order(tmp_path):
    def ts(day: int) -> datetime:
        return datetime(2025, 1, day, 12, tzinfo=UTC)

    spec = CdcSpec(keys=("id",), sequence_by="updated_at", stored_as_scd_type=2)
    schema = {"id": pl.Int64, "status": pl.String, "updated_at": pl.Datetime("us", "UTC")}
    target = str(tmp_path / "t")
    apply_changes(target, pl.DataFrame([(1, "closed", ts(3))], schema=schema, orient="row"), spec)
    apply_changes(target, pl.DataFrame([(1, "open", ts(1))], schema=schema, orient="row"), spec)
    # naive ns timestamps are normalised to UTC us
    late = pl.DataFrame({"id": [1], "status": ["review"], "updated_at": [datetime(2025, 1, 2, 12)]})
    apply_changes(target, late.with_columns(pl.col("updated_at").cast(pl.Datetime("ns"))), spec)
    df = delta.read(target).sort(START_AT)
    assert df.schema[START_AT] == df.schema[END_AT] == pl.Datetime("us", "UTC")
    assert df.select("status", START_AT, END_AT).rows() == [
        ("open", ts(1), ts(2)),
        ("review", ts(2), ts(3)),
        ("closed", ts(3), None),
    ]


# --------------------------------------------------------------------------- input handling


def test_null_keys_and_sequences_are_rejected(tmp_path):
    target = str(tmp_path / "t")
    batch = scd1_batch([(1, "ok", 1), (None, "no key", 2), (2, "no seq", None), (None, "neither", None)])
    result = apply_changes(target, batch, SIMPLE1)
    assert result.rows_in == 4 and result.rows_inserted == 1
    assert result.rejected.columns == ["id", "v", "seq", "_rule"]
    assert sorted(result.rejected.select("v", "_rule").rows()) == [
        ("neither", "key_not_null"),
        ("no key", "key_not_null"),
        ("no seq", "sequence_not_null"),
    ]
    assert delta.read(target).rows() == [(1, "ok", 1)]

    only_rejects = apply_changes(target, scd1_batch([(None, "x", 1)]), SIMPLE1)
    assert only_rejects.committed is False and only_rejects.version == 0


def test_new_column_in_later_batch_is_added(tmp_path):
    target = str(tmp_path / "t")
    apply_changes(target, scd1_batch([(1, "a", 1), (2, "b", 1)]), SIMPLE1)
    later = pl.DataFrame({"id": [2], "v": ["b"], "seq": [2], "zip": ["75001"]})
    result = apply_changes(target, later, SIMPLE1)
    assert result.committed and result.rows_updated == 1
    assert sorted(delta.read(target).rows()) == [(1, "a", 1, None), (2, "b", 2, "75001")]

    spec2 = CdcSpec(keys=("id",), sequence_by="seq", stored_as_scd_type=2)
    target2 = str(tmp_path / "t2")
    apply_changes(target2, scd1_batch([(1, "a", 1)]), spec2)
    apply_changes(target2, later.with_columns(pl.lit(1, pl.Int64).alias("id")), spec2)
    assert delta.read(target2).columns == ["id", "v", "seq", START_AT, END_AT, "zip"]
    assert sorted(delta.read(target2).rows()) == [(1, "a", 1, 1, 2, None), (1, "b", 2, 2, None, "75001")]


def test_invalid_inputs_raise_helpful_errors(tmp_path):
    target = str(tmp_path / "t")
    with pytest.raises(ValueError, match="missing column"):
        apply_changes(target, pl.DataFrame({"id": [1]}), SIMPLE1)
    with pytest.raises(ValueError, match="needs sequence_by"):
        CdcSpec(keys=("id",), sequence_by=None, stored_as_scd_type=2)
    with pytest.raises(ValueError, match="SCD type 1 stores the sequence"):
        CdcSpec(keys=("id",), sequence_by="seq", except_column_list=("seq",))
    with pytest.raises(ValueError, match="must be Boolean"):
        apply_changes(target, scd1_batch([(1, "a", 1)]), CdcSpec(("id",), "seq", apply_as_deletes="v"))
    assert CdcSpec(keys=["id"], sequence_by="seq").keys == ("id",)  # lists accepted


# --------------------------------------------------------------------------- partitions


def test_partition_values_only_touch_that_partition(tmp_path):
    spec = CdcSpec(keys=("id",), sequence_by="seq", partition_by=("stream_date",))
    day1, day2 = date(2025, 1, 1), date(2025, 1, 2)
    schema = {"id": pl.Int64, "stream_date": pl.Date, "plays": pl.Int64, "seq": pl.Int64}
    target = str(tmp_path / "fact")
    initial = [(1, day1, 10, 1), (2, day1, 20, 1), (3, day2, 30, 1), (4, day2, 40, 1)]
    apply_changes(target, pl.DataFrame(initial, schema=schema, orient="row"), spec)

    def files_by_day() -> dict[str, set[str]]:
        uris = DeltaTable(target).file_uris()
        return {d: {u for u in uris if f"stream_date={d}" in u} for d in ("2025-01-01", "2025-01-02")}

    before = files_by_day()
    update = pl.DataFrame([(3, day2, 31, 2), (5, day2, 50, 2)], schema=schema, orient="row")
    result = apply_changes(target, update, spec, partition_values={"stream_date": [day2]})
    after = files_by_day()
    assert result.committed and (result.rows_inserted, result.rows_updated) == (1, 1)
    assert after["2025-01-01"] == before["2025-01-01"]  # the other day's files are untouched
    assert after["2025-01-02"] != before["2025-01-02"]
    assert sorted(delta.read(target).select("id", "plays").rows()) == [
        (1, 10),
        (2, 20),
        (3, 31),
        (4, 40),
        (5, 50),
    ]

    again = apply_changes(target, update, spec, partition_values={"stream_date": [day2]})
    assert again.committed is False and again.version == result.version

    with pytest.raises(ValueError, match="outside partition_values"):
        apply_changes(target, update, spec, partition_values={"stream_date": [day1]})
