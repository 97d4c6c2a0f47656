"""DLT-style expectations: warn keeps, drop quarantines with the rule names, fail blocks."""

from __future__ import annotations

import polars as pl

from platform_assets.core.medallion.config import Expectation
from platform_assets.core.medallion.expectations import RULE_COLUMN, apply_expectations


def frame() -> pl.DataFrame:
    return pl.DataFrame(
        {
            "id": [1, 2, 3, 4, 5, 6],
            "amount": [10, -5, 0, None, 7, -1],
            "kind": ["a", "b", "zzz", "a", None, "a"],
        }
    )


def by_name(outcome):
    return {r.name: (r.total, r.failed) for r in outcome.results}


def test_warn_keeps_rows_and_counts():
    rule = Expectation("positive", "amount > 0", "warn")
    outcome = apply_expectations(frame(), [rule])
    assert outcome.kept.equals(frame())  # nothing removed, no helper columns left behind
    assert outcome.quarantined.height == 0
    assert by_name(outcome) == {"positive": (6, 4)}  # -5, 0, NULL, -1
    assert not outcome.blocked
    assert [r.name for r in outcome.failures("warn")] == ["positive"]
    assert outcome.failures("drop") == []
    assert not outcome.results[0].passed


def test_drop_quarantines_with_rule_name():
    rule = Expectation("positive", "amount > 0", "drop")
    outcome = apply_expectations(frame(), [rule])
    assert outcome.kept["id"].to_list() == [1, 5]
    assert outcome.kept.columns == ["id", "amount", "kind"]
    assert sorted(outcome.quarantined["id"].to_list()) == [2, 3, 4, 6]
    assert outcome.quarantined.columns == ["id", "amount", "kind", RULE_COLUMN]
    assert set(outcome.quarantined[RULE_COLUMN].to_list()) == {"positive"}
    assert by_name(outcome) == {"positive": (6, 4)}
    assert not outcome.blocked


def test_drop_names_every_failed_drop_rule():
    rules = [
        Expectation("positive", "amount > 0", "drop"),
        Expectation("known_kind", "kind IN ('a', 'b')", "drop"),
        Expectation("small", "amount < 100", "warn"),
    ]
    outcome = apply_expectations(frame(), rules)
    assert outcome.kept["id"].to_list() == [1]
    rules_by_id = dict(
        zip(outcome.quarantined["id"].to_list(), outcome.quarantined[RULE_COLUMN].to_list(), strict=True)
    )
    assert rules_by_id == {
        2: "positive",
        3: "positive,known_kind",
        4: "positive",
        5: "known_kind",  # kind NULL: NULL IN (...) is NULL, a violation
        6: "positive",
    }
    assert outcome.kept.height + outcome.quarantined.height == frame().height
    # warn rules never appear in _rule
    assert by_name(outcome) == {"positive": (6, 4), "known_kind": (6, 2), "small": (6, 1)}


def test_fail_blocks():
    rules = [
        Expectation("valid", "amount BETWEEN -10 AND 10", "fail"),
        Expectation("w", "amount > 0", "warn"),
    ]
    outcome = apply_expectations(frame(), rules)
    assert outcome.blocked
    assert [r.name for r in outcome.failures("fail")] == ["valid"]
    assert by_name(outcome)["valid"] == (6, 1)  # only NULL fails
    assert outcome.kept.height == 6


def test_fail_rule_that_passes_does_not_block():
    outcome = apply_expectations(frame(), [Expectation("has_id", "id IS NOT NULL", "fail")])
    assert not outcome.blocked
    assert outcome.results[0].passed and outcome.results[0].failed == 0


def test_null_result_is_violation():
    data = pl.DataFrame({"x": [None, None, 1]}, schema={"x": pl.Int64})
    outcome = apply_expectations(data, [Expectation("pos", "x > 0", "drop")])
    assert by_name(outcome) == {"pos": (3, 2)}
    assert outcome.kept["x"].to_list() == [1]
    assert outcome.quarantined[RULE_COLUMN].to_list() == ["pos", "pos"]


def test_all_pass():
    rules = [Expectation("id_present", "id IS NOT NULL", "drop"), Expectation("any", "TRUE", "warn")]
    outcome = apply_expectations(frame(), rules)
    assert outcome.kept.equals(frame())
    assert outcome.quarantined.height == 0
    assert RULE_COLUMN in outcome.quarantined.columns
    assert by_name(outcome) == {"id_present": (6, 0), "any": (6, 0)}
    assert all(r.passed for r in outcome.results)


def test_empty_frame():
    empty = frame().clear()
    outcome = apply_expectations(empty, [Expectation("pos", "amount > 0", "drop")])
    assert by_name(outcome) == {"pos": (0, 0)}
    assert outcome.kept.height == 0 and outcome.quarantined.height == 0
    assert not outcome.blocked


def test_no_expectations():
    outcome = apply_expectations(frame(), [])
    assert outcome.kept.equals(frame())
    assert outcome.results == []
    assert outcome.quarantined.height == 0


def test_system_style_key_rule_on_composite_key():
    data = pl.DataFrame({"a": [1, None, 3], "b": [1, 2, None]})
    outcome = apply_expectations(
        data, [Expectation("key_not_null", "a IS NOT NULL AND b IS NOT NULL", "drop")]
    )
    assert outcome.kept.rows() == [(1, 1)]
    assert by_name(outcome) == {"key_not_null": (3, 2)}
