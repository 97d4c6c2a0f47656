"""The trade rules: one validation for the feed, landing and silver, as a function and as a polars
expression that agree on every value."""

from __future__ import annotations

from datetime import UTC, datetime

import polars as pl
import pytest

from platform_assets.core.trades.trade_rules import (
    EARLIEST_TRADE_MS,
    MAX_AHEAD_MS,
    not_plain_decimal,
    not_positive,
    trade_problem,
    trade_problem_expr,
)

RECEIVED_MS = 1_735_689_600_000  # 2025-01-01
GOOD = {
    "symbol": "BTCUSDT",
    "trade_id": 12345,
    "price": "94000.10000000",
    "quantity": "0.00100000",
    "trade_time_ms": RECEIVED_MS - 5,
}

DECIMALS_GOOD = ["1", "0.1", "94000.10000000", "007", "0.00000001", "1" + "0" * 300]
DECIMALS_BAD = {
    "1_000": "plain",
    "1e400": "plain",
    "1E5": "plain",
    "-5": "plain",
    "+5": "plain",
    " 5": "plain",
    "5 ": "plain",
    "5\n": "plain",
    "": "plain",
    ".5": "plain",
    "5.": "plain",
    "inf": "plain",
    "NaN": "plain",
    "1,5": "plain",
    "0x10": "plain",
    "١٢": "plain",  # Arabic-Indic digits: int() reads them, the feed never writes them
    "0": "positive",
    "0.00000000": "positive",
    "0." + "0" * 400 + "1": "positive",  # > 0 as a decimal, 0.0 as a float64
    "1" + "0" * 400: "positive",  # infinite as a float64
}


def corpus() -> list[dict]:
    cases = [dict(GOOD)]
    for text in DECIMALS_GOOD + list(DECIMALS_BAD):
        cases.append({**GOOD, "price": text})
        cases.append({**GOOD, "quantity": text})
    for symbol in ["", "X" * 32, "X" * 33, None]:
        cases.append({**GOOD, "symbol": symbol})
    for trade_id in [0, -1, None, 2**62]:
        cases.append({**GOOD, "trade_id": trade_id})
    for ms in [
        EARLIEST_TRADE_MS - 1,
        EARLIEST_TRADE_MS,
        RECEIVED_MS + MAX_AHEAD_MS,
        RECEIVED_MS + MAX_AHEAD_MS + 1,
        10**15,  # year 33658: fits a timestamp, far in the future
        0,
        None,
    ]:
        cases.append({**GOOD, "trade_time_ms": ms})
    cases.append({**GOOD, "price": None})
    return cases


def scalar(case: dict) -> str | None:
    return trade_problem(**case, received_ms=RECEIVED_MS)


def test_the_rules_on_single_trades():
    assert scalar(GOOD) is None
    for text in DECIMALS_GOOD:
        assert scalar({**GOOD, "price": text}) is None, text
    for text, kind in DECIMALS_BAD.items():
        expected = not_plain_decimal("quantity") if kind == "plain" else not_positive("quantity")
        assert scalar({**GOOD, "quantity": text}) == expected, text
    assert (
        scalar({**GOOD, "trade_time_ms": 10**16})
        == "trade_time is more than a day after the time it was received"
    )
    assert scalar({**GOOD, "trade_time_ms": EARLIEST_TRADE_MS - 1}) == "trade_time is before 2009-01-01"
    assert scalar({**GOOD, "trade_id": -1}) == "trade_id is not a non-negative integer"
    assert scalar({**GOOD, "trade_id": True}) == "trade_id is not a non-negative integer"


@pytest.mark.parametrize("times", ["epoch_ms", "datetime"])
def test_the_expression_agrees_with_the_function_on_every_case(times):
    cases = corpus()
    frame = pl.DataFrame(
        {
            "symbol": [c["symbol"] for c in cases],
            "trade_id": [c["trade_id"] for c in cases],
            "price": [c["price"] for c in cases],
            "quantity": [c["quantity"] for c in cases],
            "trade_time": [c["trade_time_ms"] for c in cases],
            "ingested_at": [RECEIVED_MS] * len(cases),
        },
        schema={
            "symbol": pl.String,
            "trade_id": pl.Int64,
            "price": pl.String,
            "quantity": pl.String,
            "trade_time": pl.Int64,
            "ingested_at": pl.Int64,
        },
    )
    if times == "datetime":
        as_time = pl.from_epoch
        frame = frame.with_columns(
            as_time("trade_time", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us"),
            as_time("ingested_at", time_unit="ms").dt.replace_time_zone("UTC").dt.cast_time_unit("us"),
        )
        assert frame["ingested_at"][0] == datetime(2025, 1, 1, tzinfo=UTC)
    reasons = frame.select(trade_problem_expr(trade_time="trade_time", received="ingested_at"))["reason"]
    expected = [scalar(c) for c in cases]
    assert reasons.to_list() == expected
    # the corpus exercises every rule, good and bad
    assert expected.count(None) > 10 and len({r for r in expected if r}) >= 8
