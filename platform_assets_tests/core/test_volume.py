"""Volume anomalies judged on counts alone (core.volume): the band, the score, too little history, empty
runs, the fixed floor, and the ``volume:`` field of tables.yaml."""

from __future__ import annotations

import pytest

from platform_assets.core.errors import ConfigError
from platform_assets.core.medallion.config import parse_table
from platform_assets.core.volume import (
    DEFAULT_POLICY,
    VolumePolicy,
    below_floor,
    judge_volume,
    parse_volume,
)

STEADY = [1000] * 10


def test_a_run_ten_times_below_a_steady_history_warns():
    verdict = judge_volume(100, STEADY)
    assert (verdict.judged, verdict.passed, verdict.direction) == (True, False, "drop")
    assert (verdict.median, verdict.mad) == (1000.0, 0.0)
    # MAD 0: the factor's band alone, [1000 / 5, 1000 * 5]
    assert (verdict.lower, verdict.upper) == (200.0, 5000.0)
    assert verdict.score == pytest.approx((1000 - 100) / (1000 - 200))
    assert verdict.reason.startswith("drop: 100 row(s), below 200")
    assert verdict.history_runs == 10


def test_a_run_close_to_its_history_passes():
    verdict = judge_volume(950, STEADY)
    assert (verdict.judged, verdict.passed, verdict.direction) == (True, True, None)
    assert verdict.score == pytest.approx(50 / 800)
    assert verdict.reason == "950 row(s) within [200, 5,000] (median 1,000 of 10 run(s) with rows, MAD 0)"


def test_a_spike_of_ten_times_warns():
    verdict = judge_volume(10_000, STEADY)
    assert (verdict.passed, verdict.direction) == (False, "spike")
    assert verdict.score == pytest.approx(9000 / 4000)
    assert verdict.reason.startswith("spike: 10,000 row(s), above 5,000")


def test_the_bounds_themselves_are_normal():
    assert judge_volume(200, STEADY).passed and judge_volume(5000, STEADY).passed
    assert judge_volume(200, STEADY).score == pytest.approx(1.0)
    assert not judge_volume(199, STEADY).passed and not judge_volume(5001, STEADY).passed


def test_too_little_history_is_not_judged():
    verdict = judge_volume(1, [1000, 1000, 1000], VolumePolicy(min_history=5))
    assert (verdict.judged, verdict.passed) == (False, True)
    assert verdict.reason == "not judged: 3 of 5 runs"
    assert verdict.median is None and verdict.score is None and verdict.history_runs == 3


def test_no_history_at_all_is_not_judged():
    verdict = judge_volume(500, [])
    assert (verdict.judged, verdict.passed, verdict.reason) == (False, True, "not judged: 0 of 5 runs")


def test_only_the_last_history_runs_count():
    # newest first: the 3 newest are 10 rows each, the older ones 1000
    policy = VolumePolicy(history=3, min_history=3)
    verdict = judge_volume(10, [10, 10, 10, *STEADY], policy)
    assert verdict.passed and verdict.median == 10.0 and verdict.history_runs == 3


def test_a_noisy_history_widens_the_band_by_its_spread():
    history = [100, 400, 250, 900, 50, 600, 300, 700, 150, 500]
    verdict = judge_volume(1800, history)
    median = 350.0
    mad = 225.0  # deviations 250 50 100 550 300 250 50 350 200 150 -> median 225
    assert (verdict.median, verdict.mad) == (median, mad)
    # the wider of median * 5 (1750) and median + 3.5 * 1.4826 * MAD (about 1517)
    assert verdict.upper == pytest.approx(max(median * 5, median + 3.5 * 1.4826 * mad))
    assert verdict.lower == 1.0  # the spread reaches below zero; the table never brought nothing
    assert verdict.passed is False and verdict.direction == "spike"
    assert judge_volume(60, history).passed  # far below the median, within the history's own swings


def test_a_robust_median_is_not_dragged_by_an_initial_load():
    # the first run of a watermark table read the whole table; the later ones read a day's changes
    history = [52, 48, 50, 47, 55, 51, 5000]
    verdict = judge_volume(49, history)
    assert verdict.passed and verdict.median == 51.0


def test_an_empty_run_of_a_table_that_always_brought_rows_warns():
    history = [100, 400, 250, 900, 50, 600, 300, 700, 150, 500]
    verdict = judge_volume(0, history)
    assert (verdict.passed, verdict.direction) == (False, "drop")
    assert verdict.score is not None and verdict.score > 1
    assert verdict.reason.startswith("drop: no rows, and none of the last runs was empty")


def test_an_empty_run_is_normal_when_earlier_runs_were_empty_too():
    history = [0, 40, 55, 0, 48, 52, 0, 61, 45]
    verdict = judge_volume(0, history)
    assert (verdict.judged, verdict.passed, verdict.empty_runs) == (True, True, 3)
    assert verdict.reason == "an empty run, as 3 of the last 9 were"


def test_zeros_in_the_history_are_left_out_of_the_statistics():
    history = [0, 40, 55, 0, 48, 52, 0, 61, 45]
    verdict = judge_volume(50, history)
    assert verdict.passed and verdict.median == 50.0  # of the six runs with rows, not 45 of all nine
    assert not judge_volume(500, history).passed  # a spike over the runs with rows


def test_a_history_of_empty_runs_judges_no_volume():
    verdict = judge_volume(800, [0] * 10)
    assert (verdict.judged, verdict.passed, verdict.reason) == (
        False,
        True,
        "not judged: 0 of 5 runs with rows",
    )


def test_drops_empty_judges_only_an_empty_run_as_a_drop():
    policy = VolumePolicy(drops="empty")
    assert judge_volume(1, STEADY, policy).passed  # 1000 times fewer, but not empty
    assert not judge_volume(0, STEADY, policy).passed
    assert not judge_volume(10_000, STEADY, policy).passed  # spikes still warn


def test_a_floor_is_judged_without_history():
    policy = VolumePolicy(floor=100)
    low = judge_volume(99, [], policy)
    assert (low.judged, low.passed, low.reason) == (True, False, "99 row(s), below the floor of 100")
    assert low.direction == "drop"
    ok = judge_volume(100, [], policy)
    assert (ok.judged, ok.passed) == (True, True)
    # with history, the floor holds as well as the band
    assert not judge_volume(90, [95] * 10, policy).passed


def test_the_stream_threshold_is_a_floor_without_history():
    policy = VolumePolicy.fixed_floor(5)
    assert (policy.history, policy.min_history, policy.floor) == (0, 0, 5)
    assert judge_volume(4, [1000] * 10, policy).reason == "4 row(s), below the floor of 5"  # history unused
    assert below_floor(0, 1) and not below_floor(1, 1)
    assert not below_floor(0, 0)  # a threshold of 0 never warns


def test_a_history_of_single_rows_scores_an_empty_run_finitely():
    verdict = judge_volume(1, [1] * 5)
    assert verdict.passed and verdict.score == 0.0
    assert (verdict.lower, verdict.upper) == (1.0, 5.0)
    empty = judge_volume(0, [1] * 5)
    assert not empty.passed and empty.score == 2.0  # the lower side is 0 rows wide: taken as half a row


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),
        ({}, DEFAULT_POLICY),
        ({"history": 10, "min_history": 3, "factor": 2.5}, VolumePolicy(10, 3, 2.5)),
        ({"floor": 100, "drops": "empty"}, VolumePolicy(floor=100, drops="empty")),
    ],
)
def test_volume_fields(value, expected):
    assert parse_volume(value) == expected


def test_the_default_policy():
    assert DEFAULT_POLICY == VolumePolicy(history=30, min_history=5, factor=5.0, floor=None, drops="any")
    assert parse_table({"table": "DimUser", "key": "user_id"}).volume == DEFAULT_POLICY
    assert parse_table({"table": "DimUser", "key": "user_id", "volume": None}).volume == DEFAULT_POLICY
    table = parse_table({"table": "DimUser", "key": "user_id", "volume": {"factor": 3}})
    assert table.volume == VolumePolicy(factor=3)


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ({"factor": 1}, "DimUser.volume.factor must be a number above 1, got 1"),
        ({"factor": "5x"}, "DimUser.volume.factor must be a number above 1, got '5x'"),
        ({"history": 3}, "DimUser.volume.min_history (5) cannot be more than history (3)"),
        ({"min_history": -1}, "DimUser.volume.min_history must be a whole number of runs, 0 or more, got -1"),
        ({"floor": 1.5}, "DimUser.volume.floor must be a whole number of rows, 0 or more, got 1.5"),
        ({"drops": "some"}, "DimUser.volume.drops must be one of any, empty, got 'some'"),
        ({"windows": 3}, "DimUser.volume: unknown field(s) ['windows']"),
        ("5", "DimUser.volume: expected a mapping"),
    ],
)
def test_a_wrong_volume_in_tables_yaml_names_the_table_and_field(value, message):
    with pytest.raises(ConfigError) as raised:
        parse_table({"table": "DimUser", "key": "user_id", "volume": value})
    assert str(raised.value).startswith(message)
