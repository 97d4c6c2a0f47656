"""The trade stream's landing: its declaration in ``streams.yaml`` and its decoder.

Trades land like any declared stream (:mod:`platform_assets.core.streaming`: plan, read, decode, commit
once, dead-letter); what is theirs is the decoder. The feed writes every trade in one canonical JSON
layout (:mod:`.canonical`), which a batch decodes a whole column at a time with one regular expression,
checked by the trade rules' polars expressions (:mod:`.trade_rules`). Only the messages that are not in
that layout, or break a rule, are read one by one by the reference parser :func:`_parse`, which also
gives the dead letter's reason: each message is decided by exactly one of the two, and the two agree
(:func:`to_frame_per_message`, the reference alone, gives the same rows and dead letters; a test holds
them to it).

Planning, reading, committing and dead letters are the generic ones of
:mod:`platform_assets.core.streaming`; :func:`land_batch` here is the generic one for the trade stream.

No Dagster import here: this is library code the sensor and the asset call.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from functools import partial
from typing import Any

import polars as pl

from platform_assets.core.errors import (
    BatchOrderError,
    BatchReadTimeout,
    NewIncarnationError,
    OffsetsAheadError,
)
from platform_assets.core.lake.delta import TIMESTAMP
from platform_assets.core.streaming import landing as _landing
from platform_assets.core.streaming.declaration import EPOCH_COLUMN, StreamDeclaration, stream_declaration
from platform_assets.core.streaming.decoding import QuarantinedMessage, decode_batch, is_unicode, json_object
from platform_assets.core.trades.canonical import as_text, decode_canonical
from platform_assets.core.trades.trade_rules import (
    time_problem,
    time_problem_expr,
    trade_problem,
    trade_problem_expr,
)

__all__ = [
    "SCHEMA",
    "TABLE_SCHEMA",
    "TRADES",
    # The landing's errors, raised through land_batch (defined in core.errors).
    "BatchOrderError",
    "BatchReadTimeout",
    "NewIncarnationError",
    "OffsetsAheadError",
    "QuarantinedMessage",
    "decode_trades",
    "decode_trades_per_message",
    "land_batch",
    "to_frame",
    "to_frame_per_message",
]

# The trade stream, as streams.yaml declares it.
TRADES: StreamDeclaration = stream_declaration("trades")

# Bronze columns, in order, without the epoch (added by land_batch). Prices and quantities stay strings:
# the exchange sends decimal strings and any float conversion here would change the values silently.
SCHEMA: dict[str, pl.DataType] = {k: v for k, v in TRADES.bronze_schema.items() if k != EPOCH_COLUMN}
# The bronze table's columns: the message columns and the epoch (core.streaming.position): rows landed
# before epochs existed read as null, i.e. epoch 0.
TABLE_SCHEMA: dict[str, pl.DataType] = TRADES.bronze_schema

_NUMBER_KEYS = ("trade_id", "trade_time_ms", "event_time_ms")
_DECIMAL_KEYS = ("price", "quantity")


# The generic landing under the trade stream's declaration: the same arguments but ``stream`` (``app_id``
# defaults to the declaration's for the topic, ``trades:<topic>``).
land_batch = partial(_landing.land_batch, stream=TRADES)


# --- decoding ------------------------------------------------------------------------------------


def _parse(value: bytes | None, received_ms: int) -> dict[str, Any] | str:
    """The trade in ``value``, or the reason it is not one: not a well-formed trade message, or a trade
    that breaks the rules of :mod:`~platform_assets.core.trades.trade_rules` (``received_ms``: the
    broker's timestamp of the message, the reference for the trade time)."""
    trade = json_object(value)
    if isinstance(trade, str):
        return trade
    missing = [k for k in ("symbol", *_NUMBER_KEYS, *_DECIMAL_KEYS, "buyer_is_maker") if trade.get(k) is None]
    if missing:
        return f"missing {', '.join(missing)}"
    if not isinstance(trade["symbol"], str) or not trade["symbol"]:
        return f"symbol is not a non-empty string: {trade['symbol']!r}"
    for key in _NUMBER_KEYS:
        number = trade[key]
        # bool is an int in Python; a JSON true is not a trade id.
        if isinstance(number, bool) or not isinstance(number, int) or not 0 <= number < 2**63:
            return f"{key} is not a non-negative integer: {number!r}"
    for key in _DECIMAL_KEYS:
        text = trade[key]
        if not isinstance(text, str):
            return f"{key} is not a decimal string: {text!r}"
    if not isinstance(trade["buyer_is_maker"], bool):
        return f"buyer_is_maker is not a boolean: {trade['buyer_is_maker']!r}"
    problem = trade_problem(
        symbol=trade["symbol"],
        trade_id=trade["trade_id"],
        price=trade["price"],
        quantity=trade["quantity"],
        trade_time_ms=trade["trade_time_ms"],
        received_ms=received_ms,
    ) or time_problem("event_time", trade["event_time_ms"], received_ms)
    if problem is not None:
        return problem
    # Checked last, so every message another check refuses keeps that reason.
    if not is_unicode(trade["symbol"]):
        return f"symbol is not Unicode text (it holds a lone surrogate): {trade['symbol']!r}"
    return trade


# The trade columns before times become timestamps; "row" is the message's position in the batch.
_RAW_SCHEMA: dict[str, Any] = {
    "row": pl.get_index_type(),
    **{k: SCHEMA[k] for k in ("symbol", "trade_id", "price", "quantity", "buyer_is_maker")},
    "trade_time_ms": pl.Int64(),
    "event_time_ms": pl.Int64(),
    "kafka_partition": pl.Int32(),
    "kafka_offset": pl.Int64(),
}


def decode_trades(
    stream: StreamDeclaration, messages: pl.DataFrame, landed_ms: int
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """The trade stream's decoder (see the module's docstring): the trade columns of the valid trades,
    in message order, and the dead letters. The trade time is checked against the message's broker
    timestamp, or against ``landed_ms`` when it has none."""
    del stream  # the trade layout is fixed: TRADES describes what this returns
    decoded = pl.concat(
        [
            messages.select(
                kafka_partition="partition",
                kafka_offset="offset",
                received_ms=pl.col("broker_ms").fill_null(landed_ms),
            ),
            decode_canonical(as_text(messages["value"])),
        ],
        how="horizontal",
    ).with_row_index("row")
    # A row is decided here only when it is certainly a valid trade; any doubt goes to the reference.
    valid = (
        pl.col("matched")
        & trade_problem_expr(trade_time="trade_time_ms", received="received_ms").is_null()
        & time_problem_expr("event_time", time="event_time_ms", received="received_ms").is_null()
    )
    decoded = decoded.with_columns(valid=valid)
    fast = decoded.filter("valid").select(list(_RAW_SCHEMA))
    doubtful = decoded.filter(~pl.col("valid"))["row"]
    if doubtful.is_empty():
        return _typed(fast), []
    slow, quarantined = _parse_each(messages.with_row_index("row")[doubtful], landed_ms)
    return _typed(pl.concat([fast, slow]).sort("row")), quarantined


def decode_trades_per_message(
    stream: StreamDeclaration, messages: pl.DataFrame, landed_ms: int
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """:func:`decode_trades`, one message at a time with :func:`_parse`: the reference the columnar
    decoding must equal, row for row and dead letter for dead letter."""
    del stream
    raw, quarantined = _parse_each(messages.with_row_index("row"), landed_ms)
    return _typed(raw), quarantined


def to_frame(
    messages: pl.DataFrame | Iterable[tuple[Any, ...]],
    batch_id: int,
    ingested_at: datetime,
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """Bronze rows (without the epoch) for the valid trades, and the dead letters for the other messages.

    ``messages``: a frame of :data:`~platform_assets.core.streaming.reading.MESSAGE_SCHEMA`, or
    (partition, offset, key, value) tuples, optionally with the broker's timestamp in epoch ms last. The
    result is always that of :func:`to_frame_per_message`.
    """
    return decode_batch(TRADES, messages, batch_id, ingested_at, decoder=decode_trades)


def to_frame_per_message(
    messages: pl.DataFrame | Iterable[tuple[Any, ...]],
    batch_id: int,
    ingested_at: datetime,
) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """:func:`to_frame` with the reference parser alone."""
    return decode_batch(TRADES, messages, batch_id, ingested_at, decoder=decode_trades_per_message)


def _parse_each(messages: pl.DataFrame, landed_ms: int) -> tuple[pl.DataFrame, list[QuarantinedMessage]]:
    """The trade columns of ``messages`` (a message frame with each message's ``row`` in its batch) read
    one by one, and the dead letters."""
    trades: list[dict[str, Any]] = []
    quarantined: list[QuarantinedMessage] = []
    for message in messages.iter_rows(named=True):
        stamp = message["broker_ms"]
        trade = _parse(message["value"], landed_ms if stamp is None else stamp)
        if isinstance(trade, str):
            quarantined.append(
                QuarantinedMessage(
                    message["partition"], message["offset"], trade, message["key"], message["value"]
                )
            )
            continue
        trades.append(
            {
                "row": message["row"],
                "symbol": trade["symbol"],
                "trade_id": trade["trade_id"],
                "price": trade["price"],
                "quantity": trade["quantity"],
                "trade_time_ms": trade["trade_time_ms"],
                "event_time_ms": trade["event_time_ms"],
                "buyer_is_maker": trade["buyer_is_maker"],
                "kafka_partition": message["partition"],
                "kafka_offset": message["offset"],
            }
        )
    return pl.DataFrame(trades, schema=_RAW_SCHEMA), quarantined


def _typed(raw: pl.DataFrame) -> pl.DataFrame:
    """The decoder's columns (:attr:`StreamDeclaration.message_schema`) from the trade columns: the times
    become timestamps."""

    def epoch_ms(name: str) -> pl.Expr:
        return pl.from_epoch(pl.col(name), time_unit="ms").dt.replace_time_zone("UTC").cast(TIMESTAMP)

    frame = raw.with_columns(trade_time=epoch_ms("trade_time_ms"), event_time=epoch_ms("event_time_ms"))
    return frame.select(list(TRADES.message_schema))
