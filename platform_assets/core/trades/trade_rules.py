"""What makes a trade valid: one set of rules for the feed, landing and silver.

A trade is valid when

- its symbol is a non-empty string of at most :data:`MAX_SYMBOL_LENGTH` characters (the serving column);
- its trade id is a non-negative integer;
- its price and its quantity are written the way the feed writes numbers, plain digits with an optional
  fractional part (no sign, exponent, underscore, space or ``inf``/``nan``), and are finite and greater
  than zero once read as a float64, the type silver and serving store (a value so small that it reads as
  0.0, or so long that it reads as infinity, fails);
- its trade time is not before :data:`EARLIEST_TRADE_MS` (2009-01-01) and not more than
  :data:`MAX_AHEAD_MS` (a day) after the reference time: the broker timestamp of the Kafka message when
  landing, the time the frame was received at the feed, the time the row was landed in silver.

The rules exist twice, as :func:`trade_problem` for one trade (the feed reads frames one by one) and as
:func:`trade_problem_expr` for a polars frame (landing, silver), and both give the same reason, or none,
for the same values (a test runs both over one corpus); likewise :func:`time_problem` and
:func:`time_problem_expr`. Reasons never quote the value: the dead-letter tables keep the raw value
beside the reason.

No Dagster import here.
"""

from __future__ import annotations

import math
import re
from datetime import UTC, datetime

import polars as pl

MAX_SYMBOL_LENGTH = 32
EARLIEST_TRADE = datetime(2009, 1, 1, tzinfo=UTC)
EARLIEST_TRADE_MS = int(EARLIEST_TRADE.timestamp() * 1000)
MAX_AHEAD_MS = 24 * 60 * 60 * 1000
# The same pattern for Python (fullmatch) and polars (anchored; Rust's `$` is the end of the text).
DECIMAL_PATTERN = r"[0-9]+(?:\.[0-9]+)?"
_DECIMAL = re.compile(DECIMAL_PATTERN)

SYMBOL_INVALID = "symbol is not a non-empty string of at most 32 characters"
TRADE_ID_INVALID = "trade_id is not a non-negative integer"
TRADE_TIME_MISSING = "trade_time is missing"
TRADE_TIME_TOO_EARLY = "trade_time is before 2009-01-01"
TRADE_TIME_TOO_LATE = "trade_time is more than a day after the time it was received"


def not_plain_decimal(name: str) -> str:
    return f"{name} is not a plain decimal (digits with an optional fractional part)"


def not_positive(name: str) -> str:
    return f"{name} is not finite and greater than zero as a float64"


def _decimal_problem(name: str, text: object) -> str | None:
    if not isinstance(text, str) or _DECIMAL.fullmatch(text) is None:
        return not_plain_decimal(name)
    value = float(text)
    if not (math.isfinite(value) and value > 0):
        return not_positive(name)
    return None


def trade_problem(
    *,
    symbol: object,
    trade_id: object,
    price: object,
    quantity: object,
    trade_time_ms: object,
    received_ms: int,
) -> str | None:
    """Why this trade is not valid, or None when it is. ``received_ms``: the reference time (epoch ms)."""
    if not isinstance(symbol, str) or not 0 < len(symbol) <= MAX_SYMBOL_LENGTH:
        return SYMBOL_INVALID
    if isinstance(trade_id, bool) or not isinstance(trade_id, int) or trade_id < 0:
        return TRADE_ID_INVALID
    for name, text in (("price", price), ("quantity", quantity)):
        problem = _decimal_problem(name, text)
        if problem is not None:
            return problem
    return time_problem("trade_time", trade_time_ms, received_ms)


def time_problem(name: str, ms: object, received_ms: int) -> str | None:
    """Why the time ``ms`` (epoch milliseconds) of field ``name`` is out of range, or None. Landing applies
    it to the event time too: a time out of range would not even fit bronze's timestamp type."""
    if isinstance(ms, bool) or not isinstance(ms, int):
        return f"{name} is missing"
    if ms < EARLIEST_TRADE_MS:
        return f"{name} is before 2009-01-01"
    if ms > received_ms + MAX_AHEAD_MS:
        return f"{name} is more than a day after the time it was received"
    return None


def _decimal_expr(name: str) -> tuple[tuple[pl.Expr, str], ...]:
    text = pl.col(name).cast(pl.String)
    plain = text.str.contains(f"^{DECIMAL_PATTERN}$").fill_null(False)
    value = text.cast(pl.Float64, strict=False)
    positive = (value.is_finite() & (value > 0)).fill_null(False)
    return ((~plain, not_plain_decimal(name)), (~positive, not_positive(name)))


def trade_problem_expr(*, trade_time: str = "trade_time", received: str = "ingested_at") -> pl.Expr:
    """:func:`trade_problem` over a frame: the reason per row, null for a valid trade.

    Reads ``symbol``, ``trade_id``, ``price`` and ``quantity`` (strings, as bronze holds them), and the
    trade time and the reference time from the columns ``trade_time`` and ``received``: either epoch
    milliseconds (integers) or datetimes.
    """

    symbol_ok = pl.col("symbol").cast(pl.String).str.len_chars().is_between(1, MAX_SYMBOL_LENGTH)
    trade_id_ok = pl.col("trade_id").cast(pl.Int64, strict=False) >= 0
    cases: list[tuple[pl.Expr, str]] = [
        (~symbol_ok.fill_null(False), SYMBOL_INVALID),
        (~trade_id_ok.fill_null(False), TRADE_ID_INVALID),
        *_decimal_expr("price"),
        *_decimal_expr("quantity"),
    ]
    return _first_reason(cases, otherwise=time_problem_expr("trade_time", time=trade_time, received=received))


def time_problem_expr(name: str, *, time: str, received: str) -> pl.Expr:
    """:func:`time_problem` over a frame: why the time in column ``time`` (of the field called ``name`` in
    the reason) is out of range, null when it is not. ``time`` and ``received`` hold epoch milliseconds
    (integers) or datetimes."""
    time_ms = _millis(time)
    received_ms = _millis(received)
    cases = [
        (time_ms.is_null(), f"{name} is missing"),
        (time_ms < EARLIEST_TRADE_MS, f"{name} is before 2009-01-01"),
        (
            (time_ms > received_ms + MAX_AHEAD_MS).fill_null(False),
            f"{name} is more than a day after the time it was received",
        ),
    ]
    return _first_reason(cases, otherwise=pl.lit(None, dtype=pl.String))


def _first_reason(cases: list[tuple[pl.Expr, str]], *, otherwise: pl.Expr) -> pl.Expr:
    """The reason of the first case whose condition holds, else ``otherwise``; named ``reason``."""
    expr = pl.when(cases[0][0]).then(pl.lit(cases[0][1]))
    for condition, reason in cases[1:]:
        expr = expr.when(condition).then(pl.lit(reason))
    return expr.otherwise(otherwise).alias("reason")


def _millis(column: str) -> pl.Expr:
    """Epoch milliseconds of ``column``, whether it holds datetimes or integer milliseconds."""
    return pl.col(column).map_batches(
        lambda s: s.dt.epoch("ms") if isinstance(s.dtype, pl.Datetime) else s.cast(pl.Int64, strict=False),
        return_dtype=pl.Int64,
    )
