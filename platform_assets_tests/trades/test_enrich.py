"""Trade symbol lookup, enrichment, silver merge and the serving store, against real servers on loopback."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import polars as pl
import pytest
import sqlalchemy as sa
from deltalake import DeltaTable

from platform_assets.core.errors import LookupApiError, ServingUnavailable
from platform_assets.core.trades.enrich import COLUMNS, enrich, merge_silver
from platform_assets.core.trades.lookup import fetch_lookup, flatten, write_lookup
from platform_assets.core.trades.serving import ServingStore


def _filters(tick: str, step: str, notional: str, kind: str = "NOTIONAL") -> list[dict]:
    return [
        {"filterType": "PRICE_FILTER", "minPrice": tick, "maxPrice": "1000000.00000000", "tickSize": tick},
        {"filterType": "LOT_SIZE", "minQty": step, "maxQty": "9000.00000000", "stepSize": step},
        {"filterType": "ICEBERG_PARTS", "limit": 10},
        {"filterType": kind, "minNotional": notional, "applyMinToMarket": True, "avgPriceMins": 5},
    ]


EXCHANGE_INFO = {
    "timezone": "UTC",
    "serverTime": 1700000000000,
    "rateLimits": [{"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "limit": 6000}],
    "symbols": [
        {
            "symbol": "ETHBTC",
            "status": "TRADING",
            "baseAsset": "ETH",
            "baseAssetPrecision": 8,
            "quoteAsset": "BTC",
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT", "MARKET"],
            "filters": _filters("0.00001000", "0.00010000", "0.00010000"),
            "permissions": ["SPOT", "MARGIN"],
        },
        {
            "symbol": "LUNAUSDT",
            "status": "BREAK",
            "baseAsset": "LUNA",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quoteAssetPrecision": 8,
            "filters": _filters("0.00010000", "0.01000000", "5.00000000"),
        },
        {
            "symbol": "BTCUSDT",
            "status": "TRADING",
            "baseAsset": "BTC",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quoteAssetPrecision": 8,
            "orderTypes": ["LIMIT"],
            "filters": _filters("0.01000000", "0.00001000", "5.00000000"),
        },
        {
            "symbol": "ADAUSDT",
            "status": "TRADING",
            "baseAsset": "ADA",
            "baseAssetPrecision": 8,
            "quoteAsset": "USDT",
            "quoteAssetPrecision": 8,
            # an older listing: MIN_NOTIONAL instead of NOTIONAL, and no LOT_SIZE
            "filters": [
                {
                    "filterType": "PRICE_FILTER",
                    "minPrice": "0.0001",
                    "maxPrice": "1000",
                    "tickSize": "0.0001",
                },
                {"filterType": "MIN_NOTIONAL", "minNotional": "1.00000000", "applyToMarket": True},
            ],
        },
    ],
}


class Api:
    """A loopback HTTP server answering GETs from a list of (status, body), the last one repeated."""

    def __init__(self, answers: list[tuple[int, bytes]]):
        self.answers = answers
        self.requests = 0
        api = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                status, body = api.answers[min(api.requests, len(api.answers) - 1)]
                api.requests += 1
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/api/v3/exchangeInfo?apiKey=s3cret"

    def __enter__(self) -> Api:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.server.shutdown()
        self.server.server_close()


# -- lookup --


def test_lookup_recovers_from_503() -> None:
    with Api([(503, b"busy"), (200, json.dumps(EXCHANGE_INFO).encode())]) as api:
        symbols = fetch_lookup(api.url, timeout=5, attempts=3)
    assert api.requests == 2
    assert [s["symbol"] for s in symbols] == ["ETHBTC", "LUNAUSDT", "BTCUSDT", "ADAUSDT"]


@pytest.mark.parametrize(
    ("answers", "status", "problem", "requests"),
    [
        ([(200, b"<html>maintenance window</html>")], None, "not JSON", 1),
        ([(200, b'{"code": -1121, "msg": "Invalid symbol."}')], None, 'a "symbols" list', 1),
        ([(200, b'{"symbols": [{"baseAsset": "BTC"}]}')], None, 'symbol 0 has no "symbol"', 1),
        ([(404, b'{"msg": "no such path"}')], 404, "HTTP 404", 1),
        ([(503, b"still busy")], 503, "HTTP 503", 2),
    ],
)
def test_lookup_rejects_unusable_answers(answers, status, problem, requests) -> None:
    with Api(answers) as api:
        with pytest.raises(LookupApiError) as caught:
            fetch_lookup(api.url, timeout=5, attempts=2)
    assert problem in str(caught.value)
    assert caught.value.status == status
    assert answers[0][1].decode()[:20] in str(caught.value)  # an excerpt of the body
    assert "s3cret" not in str(caught.value)
    assert api.requests == requests  # a 4xx or a bad body is not retried


def test_flatten_keeps_trading_symbols_sorted_with_scalar_filters(tmp_path: Path) -> None:
    frame = flatten(EXCHANGE_INFO["symbols"])
    assert frame.columns[:4] == ["symbol", "status", "base_asset", "quote_asset"]
    assert not any(isinstance(t, pl.List | pl.Struct | pl.Object) for t in frame.dtypes)
    rows = {r["symbol"]: r for r in frame.to_dicts()}
    assert frame["symbol"].to_list() == ["ADAUSDT", "BTCUSDT", "ETHBTC"]  # LUNAUSDT is in BREAK
    assert set(frame["status"]) == {"TRADING"}
    assert rows["BTCUSDT"] == {
        "symbol": "BTCUSDT",
        "status": "TRADING",
        "base_asset": "BTC",
        "quote_asset": "USDT",
        "base_asset_precision": 8,
        "quote_asset_precision": 8,
        "min_price": 0.01,
        "max_price": 1000000.0,
        "tick_size": 0.01,
        "min_qty": 0.00001,
        "max_qty": 9000.0,
        "step_size": 0.00001,
        "min_notional": 5.0,
        "max_notional": None,
    }
    assert (rows["ADAUSDT"]["step_size"], rows["ADAUSDT"]["min_notional"]) == (None, 1.0)
    assert rows["ETHBTC"]["tick_size"] == 0.00001

    path = write_lookup(frame, tmp_path / "raw")
    assert path == tmp_path / "raw" / "trade_symbols.parquet"
    assert [p.name for p in path.parent.iterdir()] == ["trade_symbols.parquet"]  # no temp file left
    assert pl.read_parquet(path).equals(frame)


# -- enrichment and silver --


T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)


def _trades(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows,
        schema={
            "symbol": pl.String,
            "trade_id": pl.Int64,
            "price": pl.String,
            "quantity": pl.String,
            "trade_time": pl.Datetime("us", "UTC"),
            "micro_batch_id": pl.Int64,
            "kafka_offset": pl.Int64,
        },
        orient="row",
    )


BATCHES = _trades(
    [
        # batch 8 lists the resent copy of ETHBTC 501 before batch 7's original: order must not matter
        ("ETHBTC", 501, "0.05312000", "1.25000000", T0 + timedelta(seconds=1), 8, 40),
        ("BTCUSDT", 1001, "62000.01000000", "0.00150000", T0, 7, 10),
        ("ETHBTC", 501, "0.05312000", "1.25000000", T0 + timedelta(seconds=1), 7, 11),
        ("DOGEUSDT", 77, "0.16000000", "100.00000000", T0, 7, 12),  # not in the lookup
        ("LUNAUSDT", 5, "0.00010000", "10.00000000", T0, 8, 41),  # halted (BREAK)
        ("BTCUSDT", 1002, "62000.50000000", "0.20000000", T0 + timedelta(milliseconds=5), 8, 42),
    ]
)


def test_enrich_keeps_one_row_per_trade_and_counts_unmatched() -> None:
    enriched, unmatched = enrich(BATCHES, flatten(EXCHANGE_INFO["symbols"]))
    assert tuple(enriched.columns) == COLUMNS
    assert enriched.schema["trade_time"] == pl.Datetime("us", "UTC")
    assert enriched.rows() == [
        ("BTCUSDT", 1001, "BTC", "USDT", 62000.01, 0.0015, T0, 7),
        ("BTCUSDT", 1002, "BTC", "USDT", 62000.5, 0.2, T0 + timedelta(milliseconds=5), 8),
        ("ETHBTC", 501, "ETH", "BTC", 0.05312, 1.25, T0 + timedelta(seconds=1), 7),  # lowest batch
    ]
    assert unmatched.height == 2
    assert unmatched.select("symbol", "trade_id", "kafka_offset").rows() == [
        ("DOGEUSDT", 77, 12),
        ("LUNAUSDT", 5, 41),
    ]
    # deterministic: any input order gives the same rows
    assert enrich(BATCHES.reverse(), flatten(EXCHANGE_INFO["symbols"]))[0].equals(enriched)


def test_enrich_rejects_a_price_that_is_not_a_number() -> None:
    bad = BATCHES.with_columns(
        price=pl.when(pl.col("trade_id") == 1002).then(pl.lit("n/a")).otherwise("price")
    )
    with pytest.raises(ValueError, match=r"1 trade\(s\) have a price that is not a number.*1002"):
        enrich(bad, flatten(EXCHANGE_INFO["symbols"]))


def test_merge_silver_is_idempotent(tmp_path: Path) -> None:
    table = str(tmp_path / "silver" / "trades_enriched")
    enriched, _ = enrich(BATCHES, flatten(EXCHANGE_INFO["symbols"]))

    first = merge_silver(table, enriched)
    assert (first.version, first.inserted) == (0, 3)
    again = merge_silver(table, enriched)
    assert (again.version, again.inserted, again.updated, again.changed) == (0, 0, 0, False)
    assert DeltaTable(table).version() == 0
    assert pl.read_delta(table).sort("symbol", "trade_id").equals(enriched)

    # the next batch: one new trade, one resend from a later batch (ignored), one that a retried
    # older batch brings with a lower micro_batch_id (replaces the copy)
    later, _ = enrich(
        _trades(
            [
                ("BTCUSDT", 1003, "61999.99000000", "0.01000000", T0 + timedelta(seconds=2), 9, 50),
                ("ETHBTC", 501, "0.05312000", "1.25000000", T0 + timedelta(seconds=1), 9, 51),
                ("BTCUSDT", 1002, "62000.50000000", "0.20000000", T0 + timedelta(milliseconds=5), 6, 3),
            ]
        ),
        flatten(EXCHANGE_INFO["symbols"]),
    )
    third = merge_silver(table, later)
    assert (third.version, third.inserted, third.updated) == (1, 1, 1)
    stored = pl.read_delta(table).sort("symbol", "trade_id")
    assert stored.select("symbol", "trade_id", "micro_batch_id").rows() == [
        ("BTCUSDT", 1001, 7),
        ("BTCUSDT", 1002, 6),
        ("BTCUSDT", 1003, 9),
        ("ETHBTC", 501, 7),
    ]
    assert merge_silver(table, later).version == 1


# -- serving --


def _served(enriched: pl.DataFrame) -> list[tuple]:
    return enriched.sort("symbol", "trade_id").rows()


def test_serving_upsert_is_idempotent(serving_url: str) -> None:
    enriched, _ = enrich(BATCHES, flatten(EXCHANGE_INFO["symbols"]))
    store = ServingStore(serving_url)
    store.setup()
    store.setup()  # twice is harmless

    assert store.upsert_trades(enriched) == 3
    assert store.upsert_trades(enriched) == 3
    assert store.trades().rows() == _served(enriched)

    # a resend from a later batch keeps the stored copy; a corrected copy from the same batch wins
    resent = enriched.filter(pl.col("trade_id") == 501).with_columns(micro_batch_id=pl.lit(9, pl.Int64))
    fixed = enriched.filter(pl.col("trade_id") == 1001).with_columns(quantity=pl.lit(0.0025))
    store.upsert_trades(pl.concat([resent, fixed]))
    expected = enriched.with_columns(
        quantity=pl.when(pl.col("trade_id") == 1001).then(0.0025).otherwise("quantity")
    )
    assert store.trades().rows() == _served(expected)


def test_metrics_alert_only_on_a_low_delta(serving_url: str) -> None:
    store = ServingStore(serving_url)
    day = datetime(2024, 3, 1, tzinfo=UTC)
    first = store.append_metrics(day, day + timedelta(hours=24), "Enriched_Trades", 1200, threshold=500)
    second = store.append_metrics(
        day + timedelta(hours=24), day + timedelta(hours=48), "Enriched_Trades", 1500, threshold=500
    )
    repeat = store.append_metrics(
        day + timedelta(hours=24), day + timedelta(hours=48), "Enriched_Trades", 9999, threshold=500
    )
    other = store.append_metrics(day, day + timedelta(hours=24), "Other_Table", 10, threshold=5)

    assert (first.total_rows, first.delta_rows, first.threshold, first.alerted) == (1200, 1200, 500, False)
    assert (second.total_rows, second.delta_rows, second.alerted) == (1500, 300, True)
    assert repeat == second  # the same window again: the stored row, not a recomputed one
    assert (other.delta_rows, other.alerted) == (10, False)
    assert second.window_start == datetime(2024, 3, 2) and second.window_end == datetime(2024, 3, 3)
    assert [(m.metric_id, m.total_rows) for m in store.metrics("Enriched_Trades")] == [
        (first.metric_id, 1200),
        (second.metric_id, 1500),
    ]
    assert len(store.metrics()) == 3


def test_serving_down_raises_then_the_same_rows_go_in(missing_database) -> None:
    name, admin = missing_database
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:5432/{name}?connect_timeout=3"
    enriched, _ = enrich(BATCHES, flatten(EXCHANGE_INFO["symbols"]))
    store = ServingStore(url)

    with pytest.raises(ServingUnavailable) as caught:
        store.upsert_trades(enriched)
    message = str(caught.value)
    assert "s3cret" not in message
    assert f"postgresql+psycopg://postgres:***@127.0.0.1:5432/{name}" in message
    assert "does not exist" in message

    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    assert store.upsert_trades(enriched) == 3
    assert store.trades().rows() == _served(enriched)
