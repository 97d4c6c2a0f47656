"""Trade messages in the one layout the feed writes, read a whole column at a time.

:func:`messages.to_kafka <platform_assets.core.trades.messages.to_kafka>` writes every trade as compact
JSON with sorted keys, ``{"buyer_is_maker":true,"event_time_ms":1,"price":"2.5","quantity":"1",
"symbol":"BTCUSDT","trade_id":7,"trade_time_ms":1}``. :func:`decode_canonical` recognises exactly that
layout with one anchored regular expression over a string column and takes the fields out of it.

Why a regex and not a JSON decoder: polars' ``str.json_decode`` fails the whole column on one malformed
value, turns a JSON number or boolean into a string field's text (``1.5`` -> ``"1.5"``), keeps the first of
two equal keys where Python keeps the last, and reads an integer too large for Int64 as null. A value the
pattern matches has none of these ambiguities, so every JSON reader, Python's included, reads the same
values from it:

- exactly the seven keys, once each, in sorted order, with no whitespace;
- strings without an escape, a quote or a control character, so their text is their value;
- integers in JSON's own syntax (no sign, no leading zero, no fraction or exponent) of at most 18 digits,
  so they are non-negative and below 2**63;
- ``true`` or ``false`` for the boolean.

Everything else (another key order, whitespace, escapes, missing or extra keys, other types, bytes that
are not UTF-8, no value) is not matched: the caller reads those messages one by one. The generic JSON
decoder of every other stream (:mod:`platform_assets.core.streaming.decoding`) works the same way, with a
pattern built from the stream's declaration. Whether a matched
trade is *valid* is not decided here (see :mod:`~platform_assets.core.trades.trade_rules`).

No Dagster import here.
"""

from __future__ import annotations

import polars as pl

from platform_assets.core.streaming.decoding import as_text

__all__ = ["DECODED_SCHEMA", "FIELDS", "PATTERN", "as_text", "decode_canonical"]

# Message keys in the order to_kafka writes them (sorted), with their JSON type.
FIELDS: tuple[tuple[str, str], ...] = (
    ("buyer_is_maker", "bool"),
    ("event_time_ms", "int"),
    ("price", "str"),
    ("quantity", "str"),
    ("symbol", "str"),
    ("trade_id", "int"),
    ("trade_time_ms", "int"),
)

# JSON forbids unescaped quotes, backslashes and control characters in a string; without escapes the
# text between the quotes is the value.
_STRING = r'"([^"\\\x00-\x1f]*)"'
# 18 digits at most: below 2**63 (about 9.2e18), so Int64 holds every matched value.
_INTEGER = r"(0|[1-9][0-9]{0,17})"
_BOOLEAN = r"(true|false)"
_VALUE = {"str": _STRING, "int": _INTEGER, "bool": _BOOLEAN}


def _pattern() -> str:
    members = []
    for key, kind in FIELDS:
        # Name the group after the key: extract_groups names the struct's fields after the groups.
        value = _VALUE[kind].replace("(", f"(?<{key}>", 1)
        members.append(f'"{key}":{value}')
    return r"^\{" + ",".join(members) + r"\}$"


PATTERN = _pattern()

# The columns decode_canonical returns, with their types.
DECODED_SCHEMA: dict[str, pl.DataType] = {
    "matched": pl.Boolean(),
    "symbol": pl.String(),
    "trade_id": pl.Int64(),
    "price": pl.String(),
    "quantity": pl.String(),
    "trade_time_ms": pl.Int64(),
    "event_time_ms": pl.Int64(),
    "buyer_is_maker": pl.Boolean(),
}


def decode_canonical(text: pl.Series) -> pl.DataFrame:
    """One row per value of ``text``: ``matched`` (the value has the canonical layout) and the trade's
    fields, typed as bronze keeps them (null where not matched)."""
    groups = text.str.extract_groups(PATTERN).struct.unnest()
    return groups.select(
        # Every group is mandatory: symbol is null exactly when the pattern did not match.
        matched=pl.col("symbol").is_not_null(),
        symbol=pl.col("symbol"),
        trade_id=pl.col("trade_id").cast(pl.Int64()),
        price=pl.col("price"),
        quantity=pl.col("quantity"),
        trade_time_ms=pl.col("trade_time_ms").cast(pl.Int64()),
        event_time_ms=pl.col("event_time_ms").cast(pl.Int64()),
        buyer_is_maker=pl.col("buyer_is_maker") == "true",
    )
