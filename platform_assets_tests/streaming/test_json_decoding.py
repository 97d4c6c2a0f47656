"""The JSON decoder: values in the canonical layout are decoded a whole column at a time, every other
value one by one, and the two paths give the same rows and the same dead letters, value for value."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from polars.testing import assert_frame_equal

from platform_assets.core.streaming import decode_batch, decoding, encode_json, parse_streams
from platform_assets.core.streaming.decoding import canonical_pattern, decode_json, decode_json_per_message

KINDS = parse_streams(
    """\
streams:
  - name: kinds
    topic: kinds
    key: s
    columns:
      - {name: s, type: string}
      - {name: d, type: decimal}
      - {name: i, type: int64}
      - {name: j, type: int32}
      - {name: ms, type: timestamp_ms}
      - {name: b, type: boolean}
      - {name: t, type: timestamp}
      - {name: n, type: string, nullable: true}
    rules:
      - {column: d, check: positive}
    bronze_table: bronze/kinds
    dead_letter_table: bronze/kinds_quarantine
    app_id: bronze_kinds
""",
    "kinds.yaml",
)["kinds"]
INGESTED = datetime(2026, 12, 7, 12, tzinfo=UTC)
BASE = {
    "s": "BTC",
    "d": "12.50",
    "i": 7,
    "j": -3,
    "ms": 1_765_000_000_000,
    "b": True,
    "t": "2026-12-07T09:00:00Z",
    "n": "x",
}


def canonical(**changes) -> bytes:
    return encode_json(KINDS, {**BASE, **changes})[1]


def raw(text: str) -> bytes:
    return text.encode("utf-8")


CHANGES = [
    {},
    {"s": ""},
    {"s": "é ü 中"},
    {"s": 'a"b'},  # written with an escape: read one by one
    {"n": "\ud800"},  # a lone surrogate: json.dumps escapes it, no UTF-8 column holds it
    {"s": "tab\there"},
    {"s": 5},
    {"d": "-1.5"},
    {"d": "0"},
    {"d": "1."},
    {"d": ".5"},
    {"d": "1e5"},
    {"d": "+1"},
    {"d": 1.5},
    {"i": 0},
    {"i": -(2**63)},
    {"i": 2**63 - 1},
    {"i": 2**63},
    {"i": 10**17},
    {"i": 10**18},
    {"i": 1.0},
    {"i": True},
    {"j": 2**31 - 1},
    {"j": 2**31},
    {"j": -(2**31)},
    {"j": -(2**31) - 1},
    {"ms": 0},
    {"ms": -1},
    {"ms": 2**63 // 1000 - 1},
    {"ms": 2**63 // 1000},
    {"ms": 10**17},
    {"b": False},
    {"b": 1},
    {"b": "true"},
    {"t": "2026-12-07T09:00:00+00:00"},
    {"t": "2026-12-07T09:00:00-00:00"},
    {"t": "2026-12-07T09:00:00.5+01:00"},
    {"t": "2026-12-07T09:00:00.123456-02:30"},
    {"t": "2026-12-07T09:00:00.1234567Z"},
    {"t": "2026-12-07T09:00:00"},
    {"t": "2026-12-07"},
    {"t": "2026-02-30T09:00:00Z"},
    {"t": "2026-12-07T24:00:00Z"},
    {"t": "2026-12-31T23:59:60Z"},
    {"t": "0001-01-01T00:00:00+01:00"},
    {"t": "9999-12-31T23:59:59-01:00"},
    {"t": "1000-01-01T00:00:00Z"},
    {"t": "8999-12-31T23:59:59.999999Z"},
    {"t": "2026-12-07 09:00:00Z"},
    {"t": 1_765_000_000},
    {"n": None},
    {"n": ""},
]
OTHER_LAYOUTS = [
    json.dumps({**BASE}, sort_keys=True).encode(),  # another key order, with spaces
    json.dumps(BASE, separators=(",", ":")).encode(),  # the canonical layout, written by json itself
    json.dumps({**BASE, "extra": {"nested": [1]}}, separators=(",", ":")).encode(),
    canonical().replace(b'"i":7', b'"i":7,"i":8'),  # a key twice: the last wins, as in every reader
    canonical().replace(b"{", b"{ ", 1),
    canonical().replace(b"12.50", b"12.5\\u0030"),  # an escape in a decimal
    b"\xef\xbb\xbf" + canonical(),  # a UTF-8 byte order mark
    canonical().replace(b'"BTC"', b'"\xff"'),  # not UTF-8
    {k: v for k, v in BASE.items() if k != "n"},
    b"",
    b"null",
    b"[]",
    b'"text"',
    None,
]


def corpus() -> list[bytes | None]:
    values: list[bytes | None] = [canonical(**change) for change in CHANGES]
    for other in OTHER_LAYOUTS:
        values.append(json.dumps(other, separators=(",", ":")).encode() if isinstance(other, dict) else other)
    return values


def messages(values: list[bytes | None]) -> list[tuple]:
    return [(i % 3, 100 + i, b"k", v, None) for i, v in enumerate(values)]


@pytest.fixture
def read_one_by_one(monkeypatch) -> list[bytes | None]:
    """The values the per-message path was given."""
    seen: list[bytes | None] = []
    reference = decoding._record

    def spy(value, columns):
        seen.append(value)
        return reference(value, columns)

    monkeypatch.setattr(decoding, "_record", spy)
    return seen


def test_both_paths_give_the_same_rows_and_dead_letters_for_every_kind_of_value(read_one_by_one):
    batch = messages(corpus())
    frame, letters = decode_batch(KINDS, batch, 4, INGESTED, decoder=decode_json)
    one_by_one = len(read_one_by_one)
    expected, expected_letters = decode_batch(KINDS, batch, 4, INGESTED, decoder=decode_json_per_message)

    assert_frame_equal(frame, expected, check_exact=True)
    assert letters == expected_letters
    assert frame.height + len(letters) == len(batch)
    # Canonical values that certainly land never reach the per-message path; the others all do.
    seen = read_one_by_one[:one_by_one]
    for fast in (
        {},
        {"s": "é ü 中"},
        {"i": 10**17},
        {"b": False},
        {"t": "2026-12-07T09:00:00.123456-02:30"},
        {"n": ""},
    ):
        assert canonical(**fast) not in seen
    for slow in (
        {"s": 'a"b'},
        {"i": 2**63 - 1},
        {"d": "1e5"},
        {"j": 2**31},
        {"t": "2026-12-31T23:59:60Z"},
        {"n": None},
    ):
        assert canonical(**slow) in seen
    assert OTHER_LAYOUTS[0] in seen and OTHER_LAYOUTS[1] not in seen  # json's own compact output is canonical
    reasons = {m.offset - 100: m.reason for m in letters}
    assert reasons[CHANGES.index({"d": "0"})] == "d is not greater than zero"  # the declared rule
    assert reasons[CHANGES.index({"j": 2**31})] == "j is not a 32-bit integer"
    assert (
        reasons[CHANGES.index({"t": "2026-12-07T09:00:00"})] == "t is not an ISO-8601 time with a UTC offset"
    )
    assert reasons[CHANGES.index({"t": "0001-01-01T00:00:00+01:00"})] == (
        "t is not an ISO-8601 time with a UTC offset"
    )
    assert reasons[CHANGES.index({"n": "\ud800"})] == "n is not Unicode text (it holds a lone surrogate)"
    landed = dict(zip((frame["kafka_offset"] - 100).to_list(), frame["t"].to_list(), strict=True))
    assert landed[CHANGES.index({"t": "2026-12-07T09:00:00.5+01:00"})] == datetime(
        2026, 12, 7, 8, 0, 0, 500_000, tzinfo=UTC
    )


def test_a_batch_in_the_canonical_layout_is_read_a_column_at_a_time(read_one_by_one):
    batch = messages(
        [canonical(s=f"S{i}", i=i, t=f"2026-12-07T09:00:{i % 60:02d}.{i:06d}Z") for i in range(500)]
    )
    frame, letters = decode_batch(KINDS, batch, 0, INGESTED)
    assert read_one_by_one == [] and letters == []
    assert frame["i"].to_list() == list(range(500))
    assert frame["t"][499] == datetime(2026, 12, 7, 9, 0, 19, 499, tzinfo=UTC)


def test_a_type_without_a_canonical_form_reads_every_value_one_by_one(read_one_by_one):
    floats = parse_streams(
        """\
streams:
  - name: floats
    topic: floats
    columns:
      - {name: x, type: float64}
    bronze_table: bronze/floats
    dead_letter_table: bronze/floats_q
    app_id: floats
""",
        "floats.yaml",
    )["floats"]
    assert canonical_pattern(floats.columns) is None
    frame, letters = decode_batch(floats, messages([b'{"x":1.5}', b'{"x":2}', b'{"x":1e400}']), 0, INGESTED)
    assert frame["x"].to_list() == [1.5, 2.0]
    assert [m.reason for m in letters] == ["x is not a finite number"]
    assert len(read_one_by_one) == 3
