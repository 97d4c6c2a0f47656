"""Trade messages: reading a websocket frame of the public trade stream and writing the Kafka record.

A frame is one JSON object, ``{"e": "trade", "E": <event ms>, "s": "BTCUSDT", "t": <trade id>,
"p": "<price>", "q": "<quantity>", "T": <trade ms>, "m": <buyer is maker>}``. Frames of any other kind
(subscription acks, pings) are not trades and read as None. Price and quantity stay the decimal strings
the exchange sent, so no float rounding happens before the data reaches the lake.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from typing import Any

from platform_assets.core.errors import MalformedFrame

_EXCERPT = 200


@dataclass(frozen=True)
class Trade:
    """One trade. It is identified by ``(symbol, trade_id)``; the feed may send the same trade twice."""

    symbol: str
    trade_id: int
    price: str
    quantity: str
    trade_time_ms: int
    event_time_ms: int
    buyer_is_maker: bool


# frame key -> (Trade field, expected type). bool is checked apart: it is a subclass of int in Python.
_FIELDS: dict[str, tuple[str, type]] = {
    "s": ("symbol", str),
    "t": ("trade_id", int),
    "p": ("price", str),
    "q": ("quantity", str),
    "T": ("trade_time_ms", int),
    "E": ("event_time_ms", int),
    "m": ("buyer_is_maker", bool),
}
_DECIMAL_FIELDS = ("p", "q")


def _excerpt(text: str | bytes) -> str:
    text = text.decode("utf-8", errors="replace") if isinstance(text, bytes) else text
    return text if len(text) <= _EXCERPT else text[:_EXCERPT] + "..."


def _field(frame: dict[str, Any], key: str, text: str | bytes) -> Any:
    name, expected = _FIELDS[key]
    if key not in frame:
        raise MalformedFrame(f"trade frame lacks {key!r} ({name}): {_excerpt(text)}")
    value = frame[key]
    is_bool = isinstance(value, bool)
    if not isinstance(value, expected) or (expected is int and is_bool):
        raise MalformedFrame(
            f"trade frame field {key!r} ({name}) must be {expected.__name__}, "
            f"got {type(value).__name__}: {_excerpt(text)}"
        )
    if key == "s" and not value:
        raise MalformedFrame(f"trade frame has an empty symbol: {_excerpt(text)}")
    if key in _DECIMAL_FIELDS:
        try:
            number = Decimal(value)
        except InvalidOperation:
            number = None
        if number is None or not number.is_finite():
            raise MalformedFrame(
                f"trade frame field {key!r} ({name}) is not a decimal number: {_excerpt(text)}"
            )
    return value


def parse_frame(text: str | bytes) -> Trade | None:
    """The trade in one websocket frame, or None when the frame is not a trade (ack, ping...).

    Raises :class:`MalformedFrame` for a frame that is not JSON, or that says it is a trade but lacks a
    field or carries one of the wrong type. A combined-stream frame, ``{"stream": ..., "data": {...}}``,
    is read through its ``data``.
    """
    try:
        frame = json.loads(text)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedFrame(f"frame is not JSON ({exc}): {_excerpt(text)}") from None
    if isinstance(frame, dict) and "stream" in frame and isinstance(frame.get("data"), dict):
        frame = frame["data"]
    if not isinstance(frame, dict) or frame.get("e") != "trade":
        return None
    values = {_FIELDS[key][0]: _field(frame, key, text) for key in _FIELDS}
    return Trade(**values)


def to_kafka(trade: Trade) -> tuple[bytes, bytes]:
    """The Kafka record of a trade: key = the symbol (so one symbol's trades stay in order on one
    partition), value = the trade as compact JSON with sorted keys (the same trade always gives the same
    bytes)."""
    # vars(), not asdict(): the fields are flat, and asdict's deep copy was most of the feed's CPU time
    value = json.dumps(vars(trade), sort_keys=True, separators=(",", ":"))
    return trade.symbol.encode("utf-8"), value.encode("utf-8")


def from_kafka(value: bytes | str) -> Trade:
    """The trade in a record value written by :func:`to_kafka`."""
    return Trade(**json.loads(value))
