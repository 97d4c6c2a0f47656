"""A local stand-in for the trade symbol lookup (the exchange-info API), for offline demos and tests.

It answers ``GET /api/v3/exchangeInfo`` with :func:`exchange_info`: every symbol the trade stream
stand-in trades (:data:`~platform_devkit.trades_standin.SYMBOLS`, all TRADING), one TRADING symbol that
stand-in never trades (a lookup row no trade joins to) and one symbol in BREAK (listed, but not tradable,
so the lookup must leave it out), with filters and precisions like the real API's. Anything else is a
404 with the API's error body. Like the real API it can misbehave on purpose:

- ``fail_first=K``: the first K requests get 503 (the API's answer while it is overloaded), which the
  lookup must retry;
- ``garbage="not-json"`` answers 200 with an HTML maintenance page, ``garbage="no-symbols"`` 200 with
  JSON that has no ``symbols`` (the API's error object): the lookup must refuse both.

Run it with::

    python -m platform_devkit.trades_lookup_standin --port 8767
    PLATFORM_TRADES_LOOKUP_URL=http://127.0.0.1:8767/api/v3/exchangeInfo dagster dev ...
"""

from __future__ import annotations

import argparse
import json
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from platform_devkit.standin_errors import cannot_serve
from platform_devkit.trades_standin import SYMBOLS

PATH = "/api/v3/exchangeInfo"
NOT_TRADED = "SOLUSDT"  # TRADING, but the trade stream stand-in never trades it
IN_BREAK = "LUNAUSDT"  # listed in status BREAK: not tradable
GARBAGE: dict[str, tuple[str, bytes]] = {
    "not-json": ("text/html", b"<html><body><h1>System maintenance</h1>Back soon.</body></html>"),
    "no-symbols": ("application/json", json.dumps({"code": -1003, "msg": "Too many requests."}).encode()),
}
NOT_FOUND = json.dumps({"code": -1000, "msg": "Not found."}).encode()
BUSY = json.dumps({"code": -1008, "msg": "Server is currently overloaded, please try again later."}).encode()

# symbol -> (base, quote, tick size, max price, step size, max qty, min notional): the real API's values
# around 2025, as decimal strings with 8 places like the API writes them.
_LISTING: dict[str, tuple[str, str, str, str, str, str, str]] = {
    "BTCUSDT": ("BTC", "USDT", "0.01", "1000000", "0.00001", "9000", "5"),
    "ETHUSDT": ("ETH", "USDT", "0.01", "1000000", "0.0001", "9000", "5"),
    "BNBUSDT": ("BNB", "USDT", "0.01", "100000", "0.001", "900000", "5"),
    NOT_TRADED: ("SOL", "USDT", "0.01", "10000", "0.001", "9000000", "5"),
    IN_BREAK: ("LUNA", "USDT", "0.0001", "1000", "0.01", "9000000", "1"),
}


def _decimal(value: str) -> str:
    return f"{float(value):.8f}"


def _symbol(symbol: str, status: str) -> dict[str, Any]:
    # A symbol without a listing above is taken for a ...USDT pair with BTCUSDT-like filters.
    base, quote, tick, max_price, step, max_qty, min_notional = _LISTING.get(
        symbol, (symbol.removesuffix("USDT"), "USDT", "0.01", "1000000", "0.001", "9000000", "5")
    )
    return {
        "symbol": symbol,
        "status": status,
        "baseAsset": base,
        "baseAssetPrecision": 8,
        "quoteAsset": quote,
        "quotePrecision": 8,
        "quoteAssetPrecision": 8,
        "baseCommissionPrecision": 8,
        "quoteCommissionPrecision": 8,
        "orderTypes": ["LIMIT", "LIMIT_MAKER", "MARKET", "STOP_LOSS_LIMIT", "TAKE_PROFIT_LIMIT"],
        "icebergAllowed": True,
        "ocoAllowed": True,
        "isSpotTradingAllowed": status == "TRADING",
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": _decimal(tick),
                "maxPrice": _decimal(max_price),
                "tickSize": _decimal(tick),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": _decimal(step),
                "maxQty": _decimal(max_qty),
                "stepSize": _decimal(step),
            },
            {"filterType": "ICEBERG_PARTS", "limit": 10},
            {
                "filterType": "MARKET_LOT_SIZE",
                "minQty": "0.00000000",
                "maxQty": _decimal(max_qty),
                "stepSize": "0.00000000",
            },
            {
                "filterType": "NOTIONAL",
                "minNotional": _decimal(min_notional),
                "applyMinToMarket": True,
                "maxNotional": "9000000.00000000",
                "applyMaxToMarket": False,
                "avgPriceMins": 5,
            },
            {"filterType": "MAX_NUM_ORDERS", "maxNumOrders": 200},
        ],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "EXPIRE_MAKER",
    }


def exchange_info(traded: Sequence[str] = SYMBOLS) -> dict[str, Any]:
    """The exchange-info document: ``traded`` plus :data:`NOT_TRADED` TRADING, :data:`IN_BREAK` in BREAK.

    The symbols are not sorted, as the real API does not promise an order either.
    """
    symbols = [_symbol(s, "TRADING") for s in traded if s not in (NOT_TRADED, IN_BREAK)]
    symbols.insert(min(1, len(symbols)), _symbol(IN_BREAK, "BREAK"))
    symbols.append(_symbol(NOT_TRADED, "TRADING"))
    return {
        "timezone": "UTC",
        "serverTime": 1_735_689_600_000,
        "rateLimits": [
            {"rateLimitType": "REQUEST_WEIGHT", "interval": "MINUTE", "intervalNum": 1, "limit": 6000},
            {"rateLimitType": "ORDERS", "interval": "SECOND", "intervalNum": 10, "limit": 100},
        ],
        "exchangeFilters": [],
        "symbols": symbols,
    }


class TradesLookupStandin:
    """The stand-in server on a background thread; ``with TradesLookupStandin() as api: api.url``.

    ``requests`` counts every GET answered, 503s and 404s included.
    """

    def __init__(
        self,
        traded: Sequence[str] = SYMBOLS,
        *,
        fail_first: int = 0,
        garbage: str | None = None,
        port: int = 0,
    ):
        if garbage is not None and garbage not in GARBAGE:
            raise ValueError(f"garbage must be one of {', '.join(GARBAGE)}, got {garbage!r}")
        self.body = json.dumps(exchange_info(traded)).encode()
        self.fail_first = fail_first
        self.garbage = garbage
        self.port = port
        self.url = ""
        self.requests = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None

    def _answer(self, path: str) -> tuple[int, str, bytes]:
        with self._lock:  # the server is threaded: each request gets its own number
            self.requests += 1
            number = self.requests
        if number <= self.fail_first:
            return 503, "application/json", BUSY
        if urlsplit(path).path.rstrip("/") != PATH:
            return 404, "application/json", NOT_FOUND
        if self.garbage is not None:
            return 200, *GARBAGE[self.garbage]
        return 200, "application/json", self.body

    def __enter__(self) -> TradesLookupStandin:
        standin = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                status, content_type, body = standin._answer(self.path)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        # Loopback only: a stand-in is for this machine, never a service for the network.
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        threading.Thread(target=self._server.serve_forever, name="lookup-standin", daemon=True).start()
        bound_host, bound_port = self._server.server_address[:2]
        self.url = f"http://{bound_host}:{bound_port}{PATH}"
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_devkit.trades_lookup_standin", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--port", type=int, default=8767)
    parser.add_argument("--fail-first", type=int, default=0, help="answer 503 to the first N requests")
    parser.add_argument("--garbage", choices=sorted(GARBAGE), default=None, help="answer 200 with this")
    args = parser.parse_args(argv)
    standin = TradesLookupStandin(fail_first=args.fail_first, garbage=args.garbage, port=args.port)
    try:
        standin.__enter__()
    except OSError as exc:
        return cannot_serve("symbol lookup stand-in", "127.0.0.1", args.port, exc)
    try:
        print(f"symbol lookup stand-in at {standin.url} (Ctrl+C to stop)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
