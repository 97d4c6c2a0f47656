"""A local stand-in for the public trade stream (a websocket), for offline demos and tests.

It replays a deterministic list of trades (:func:`make_trades`) in the feed's frame format. Every
connection starts with a subscription ack, and a ping-like text frame comes every ``ping_every`` trades;
both are frames the feed must ignore. Like the real feed it can misbehave on purpose:

- ``drop_after=K``: after the K-th trade frame the connection is dropped (TCP closed without a websocket
  close frame), once. The next connection first resends the last ``resend`` trades, as real feeds do
  after a reconnect, then continues where it stopped.
- ``malformed_at=I``: one unreadable frame is sent just before trade I.

``live=True`` (``make dev OFFLINE=1``, ``--live``): the trades look like a live market's instead of the
same list every time. Each is stamped with the time it is first sent (trade and event time), and the trade
ids start at the stand-in's start time in microseconds, so the trades of a later stand-in (the next
``make dev``) are new trades, not resends of the ones the demo or an earlier session already served: the
stream keeps the first copy of a (symbol, trade id) it has seen, so replayed ids would add no row.

After the last trade the connection stays open and quiet, like a market with no trades. Run it with::

    python -m platform_devkit.trades_standin --port 8766
    PLATFORM_TRADES_WS_URL=ws://127.0.0.1:8766 python -m platform_assets.cli.trades_feed --seconds 30
"""

from __future__ import annotations

import argparse
import asyncio
import json
import threading
import time
from collections.abc import Sequence
from typing import Any

from websockets.asyncio.server import ServerConnection, serve
from websockets.exceptions import ConnectionClosed

from platform_devkit.standin_errors import cannot_serve

SYMBOLS = ("BTCUSDT", "ETHUSDT", "BNBUSDT")
ACK = json.dumps({"result": None, "id": 1})
MALFORMED = '{"e": "trade", "s": "BTCUSDT", "t": '  # a frame cut short
_START_MS = 1_735_689_600_000  # 2025-01-01T00:00:00Z
_FIRST_ID = 1_000_000  # each symbol's first trade id
_BASE_PRICE = {"BTCUSDT": 94_000, "ETHUSDT": 3_300, "BNBUSDT": 700}


def make_trades(n: int, symbols: Sequence[str] = SYMBOLS) -> list[dict[str, Any]]:
    """``n`` trades in the feed's frame shape, round-robin over ``symbols``, each symbol's ids increasing.

    The same arguments always give the same trades.
    """
    trades = []
    for i in range(n):
        symbol = symbols[i % len(symbols)]
        trade_time = _START_MS + i * 37
        cents = (i * 7919) % 10_000  # varied but deterministic
        trades.append(
            {
                "e": "trade",
                "E": trade_time + 3,
                "s": symbol,
                "t": _FIRST_ID + i // len(symbols),
                "p": f"{_BASE_PRICE.get(symbol, 100)}.{cents:04d}0000",
                "q": f"0.{(i % 97) + 1:03d}00000",
                "T": trade_time,
                "m": i % 2 == 0,
            }
        )
    return trades


class TradesStandin:
    """The stand-in server on a background thread; ``with TradesStandin(...) as feed: feed.url``.

    ``trade_frames_sent`` counts every trade frame written, resends included; ``resent`` the resends.
    ``live``: fresh trade ids and send-time stamps (see the module).
    """

    def __init__(
        self,
        trades: Sequence[dict[str, Any]] | int = 100,
        *,
        drop_after: int | None = None,
        resend: int = 3,
        malformed_at: int | None = None,
        ping_every: int = 25,
        interval: float = 0.0,
        host: str = "127.0.0.1",
        port: int = 0,
        live: bool = False,
    ):
        self.trades = make_trades(trades) if isinstance(trades, int) else list(trades)
        self.live = live
        if live:  # ids above any an earlier stand-in sent (it sent far fewer than one per microsecond)
            shift = time.time_ns() // 1_000 - _FIRST_ID
            self.trades = [{**trade, "t": trade["t"] + shift} for trade in self.trades]
        self.drop_after = drop_after
        self.resend = resend
        self.malformed_at = malformed_at
        self.ping_every = ping_every
        self.interval = interval
        self.host = host
        self.port = port
        self.url = ""
        self.connections = 0
        self.trade_frames_sent = 0
        self.resent = 0
        self._next = 0  # index of the next trade never sent yet, shared by all connections
        self._dropped = False
        self._malformed_sent = False
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        self._ready = threading.Event()
        self._failure: BaseException | None = None

    # -- lifecycle ---------------------------------------------------------------------------------

    def __enter__(self) -> TradesStandin:
        self._thread = threading.Thread(target=self._serve_forever, name="trades-standin", daemon=True)
        self._thread.start()
        if not self._ready.wait(10):
            raise RuntimeError("the trades stand-in did not start within 10 s")
        if self._failure is not None:
            raise RuntimeError(f"the trades stand-in could not start: {self._failure}") from self._failure
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)
        if self._thread is not None:
            self._thread.join(10)

    def _serve_forever(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # reported to the starting thread, which raises it
            self._failure = exc
            self._ready.set()

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with serve(self._session, self.host, self.port, close_timeout=1) as server:
            bound_host, bound_port = next(iter(server.sockets)).getsockname()[:2]
            self.url = f"ws://{bound_host}:{bound_port}"
            self._ready.set()
            await self._stop.wait()
            server.close(close_connections=True)

    # -- one connection ----------------------------------------------------------------------------

    async def _session(self, ws: ServerConnection) -> None:
        self.connections += 1
        try:
            await self._replay(ws)
        except ConnectionClosed:
            pass  # the client left (its window ended); the next connection carries on from there

    async def _replay(self, ws: ServerConnection) -> None:
        await ws.send(ACK)
        if self.connections > 1 and self._next > 0:
            for trade in self.trades[max(0, self._next - self.resend) : self._next]:
                await self._send_trade(ws, trade)
                self.resent += 1
        while self._next < len(self.trades):
            if self.malformed_at == self._next and not self._malformed_sent:
                self._malformed_sent = True
                await ws.send(MALFORMED)
            trade = self.trades[self._next]
            if self.live:  # stamped once: a resend after a reconnect repeats the same frame
                now = _now_ms()
                trade = self.trades[self._next] = {**trade, "T": now, "E": now + 3}
            await self._send_trade(ws, trade)
            self._next += 1
            if self.ping_every and self._next % self.ping_every == 0:
                await ws.send(json.dumps({"ping": trade["E"]}))
            if self.drop_after is not None and not self._dropped and self._next >= self.drop_after:
                self._dropped = True
                # Closing the transport flushes what was written, then ends TCP with no close frame:
                # the client sees an abnormal closure, as when a network path breaks.
                ws.transport.close()
                return
            if self.interval:
                await asyncio.sleep(self.interval)
        await ws.wait_closed()  # quiet but open until the client or the server leaves

    async def _send_trade(self, ws: ServerConnection, trade: dict[str, Any]) -> None:
        await ws.send(json.dumps(trade))
        self.trade_frames_sent += 1


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_devkit.trades_standin", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8766)
    parser.add_argument("--trades", type=int, default=10_000, help="how many trades to replay")
    parser.add_argument("--interval", type=float, default=0.01, help="seconds between trades")
    parser.add_argument(
        "--drop-after", type=int, default=None, help="drop the connection once, after N trades"
    )
    parser.add_argument("--malformed-at", type=int, default=None, help="send one bad frame before trade N")
    parser.add_argument(
        "--live",
        action="store_true",
        help="new trade ids on every start, stamped with the time they are sent",
    )
    args = parser.parse_args(argv)
    standin = TradesStandin(
        args.trades,
        drop_after=args.drop_after,
        malformed_at=args.malformed_at,
        interval=args.interval,
        host=args.host,
        port=args.port,
        live=args.live,
    )
    try:
        standin.__enter__()
    except RuntimeError as exc:
        return cannot_serve("trade feed stand-in", args.host, args.port, exc)
    try:
        print(f"trade feed stand-in at {standin.url} (Ctrl+C to stop)", flush=True)
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    finally:
        standin.__exit__(None, None, None)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
