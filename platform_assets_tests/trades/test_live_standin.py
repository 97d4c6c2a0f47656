"""The trade feed stand-in of `make dev OFFLINE=1` (``live=True``): every start brings trades the stream has
not served yet, stamped with the time they are sent.

The stream keeps the first copy of a (symbol, trade id): a stand-in replaying the demo's ids would add no
row to Enriched_Trades after `make demo`, nor in a second `make dev`.
"""

from __future__ import annotations

import json
import time

from websockets.sync.client import connect

from platform_devkit.trades_standin import TradesStandin, make_trades


def _trades(url: str, count: int) -> list[dict]:
    """The first ``count`` trade frames one connection receives (the ack and pings skipped)."""
    trades: list[dict] = []
    with connect(url, open_timeout=5) as ws:
        while len(trades) < count:
            frame = json.loads(ws.recv(timeout=5))
            if frame.get("e") == "trade":
                trades.append(frame)
    return trades


def test_each_live_start_sends_new_trade_ids_stamped_when_sent() -> None:
    replayed = {(t["s"], t["t"]) for t in make_trades(60)}  # what the demo's stand-in sends
    sessions = []
    for _ in range(2):  # two `make dev OFFLINE=1` sessions, one after the other
        before = time.time_ns() // 1_000_000
        with TradesStandin(60, live=True) as feed:
            trades = _trades(feed.url, 60)
        after = time.time_ns() // 1_000_000
        assert all(before <= t["T"] <= after and t["E"] == t["T"] + 3 for t in trades), trades[:3]
        assert not replayed & {(t["s"], t["t"]) for t in trades}
        sessions.append(trades)
    first, second = sessions
    assert min(t["t"] for t in second) > max(t["t"] for t in first)
    # per symbol, ids still go up by one trade after another, as the feed's do
    btc = [t["t"] for t in second if t["s"] == "BTCUSDT"]
    assert btc == list(range(btc[0], btc[0] + len(btc)))


def test_a_live_resend_after_a_reconnect_repeats_the_same_frames() -> None:
    with TradesStandin(60, live=True, resend=3) as feed:
        first = _trades(feed.url, 60)  # all of them: the resend is of the last three sent
        resent = _trades(feed.url, 3)
    sent_last = {(t["s"], t["t"]): t for t in first}
    assert [sent_last.get((t["s"], t["t"])) for t in resent] == resent
