"""Silver never stops for good and never drops a trade it cannot place yet: rows that break the trade
rules (or make enrichment fail) are quarantined, trades of symbols the lookup does not know are held and
enriched once a later lookup knows them, trades of symbols listed as not tradable are filtered. Real
Delta tables, a SQLite serving database and state store."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import polars as pl
import pytest
from deltalake import CommitProperties, Transaction, write_deltalake

from platform_assets.core.lake import delta
from platform_assets.core.state import StateStore
from platform_assets.core.trades import held as held_module
from platform_assets.core.trades import stream
from platform_assets.core.trades.held import dead_lettered_count, held_count
from platform_assets.core.trades.lookup import flatten, not_trading, read_not_trading, write_not_trading
from platform_assets.core.trades.serving import ServingStore
from platform_assets.core.trades.stream import enrich_pending
from platform_assets_tests.trades.test_enrich import EXCHANGE_INFO

APP = "bronze_trades"
T0 = datetime(2024, 3, 1, 12, 0, tzinfo=UTC)
WITHOUT_BTC = {**EXCHANGE_INFO, "symbols": [s for s in EXCHANGE_INFO["symbols"] if s["symbol"] != "BTCUSDT"]}


class Lake:
    def __init__(self, root: Path):
        self.root = root
        self.bronze = str(root / "bronze" / "trades")
        self.silver = str(root / "silver" / "trades_enriched")
        self.held = str(root / "silver" / "trades_held")
        self.quarantine = str(root / "silver" / "trades_enriched_quarantine")
        self.serving = ServingStore(f"sqlite:///{root / 'serving.db'}")
        self.state = StateStore(f"sqlite:///{root / 'state.db'}", "test")
        self.offset = 0

    def land(self, batch_id: int, trades: list[tuple]) -> None:
        """Append ``(symbol, trade_id, price, quantity, trade_time)`` rows as micro-batch ``batch_id``,
        the way landing commits (written directly: an older landing let such values through)."""
        rows = []
        for symbol, trade_id, price, quantity, trade_time in trades:
            rows.append(
                {
                    "symbol": symbol,
                    "trade_id": trade_id,
                    "price": price,
                    "quantity": quantity,
                    "trade_time": trade_time,
                    "event_time": trade_time,
                    "buyer_is_maker": True,
                    "kafka_partition": 0,
                    "kafka_offset": self.offset,
                    "micro_batch_id": batch_id,
                    "ingested_at": T0 + timedelta(minutes=1),
                }
            )
            self.offset += 1
        frame = pl.DataFrame(
            rows,
            schema={
                "symbol": pl.String,
                "trade_id": pl.Int64,
                "price": pl.String,
                "quantity": pl.String,
                "trade_time": delta.TIMESTAMP,
                "event_time": delta.TIMESTAMP,
                "buyer_is_maker": pl.Boolean,
                "kafka_partition": pl.Int32,
                "kafka_offset": pl.Int64,
                "micro_batch_id": pl.Int64,
                "ingested_at": delta.TIMESTAMP,
            },
        )
        write_deltalake(
            self.bronze,
            frame.to_arrow(),
            mode="append",
            commit_properties=CommitProperties(app_transactions=[Transaction(APP, batch_id)]),
        )

    def enrich(self, info: dict, *, with_statuses: bool = True):
        statuses = not_trading(info["symbols"]) if with_statuses else None
        return enrich_pending(
            self.bronze, self.silver, flatten(info["symbols"]), self.serving, self.state,
            app_id=APP, not_trading=statuses, held_uri=self.held, quarantine_uri=self.quarantine,
        )  # fmt: skip

    def silver_keys(self) -> list[tuple]:
        return pl.read_delta(self.silver).sort("symbol", "trade_id").select("symbol", "trade_id").rows()

    def served_keys(self) -> list[tuple]:
        return self.serving.trades().select("symbol", "trade_id").rows()

    def held_keys(self) -> list[tuple]:
        if not delta.table_exists(self.held):
            return []
        return pl.read_delta(self.held).sort("symbol", "trade_id").select("symbol", "trade_id").rows()


@pytest.fixture
def lake(tmp_path: Path) -> Lake:
    return Lake(tmp_path)


def good(symbol: str, trade_id: int, seconds: int = 0) -> tuple:
    return (symbol, trade_id, "62000.01000000", "0.00150000", T0 + timedelta(seconds=seconds))


def test_one_bad_value_is_quarantined_and_enrichment_goes_on(lake: Lake):
    wrapped = datetime(1, 1, 1, tzinfo=UTC)  # what a trade time of 10**16 ms wrapped into, roughly
    lake.land(
        0,
        [
            good("BTCUSDT", 1),
            ("BTCUSDT", 2, "1_000", "0.1", T0),  # polars cannot read it: every run failed on it
            ("BTCUSDT", 3, "1e400", "0.1", T0),
            ("ETHBTC", 4, "-0.05", "0.1", T0),
            ("ETHBTC", 5, "0.05", "0", T0),
            ("ETHBTC", 6, "0.05", "1", wrapped),
            ("ETHBTC", 7, "0.05", "1", T0 + timedelta(days=3)),  # days after it was landed
            good("ETHBTC", 8),
        ],
    )
    first = lake.enrich(EXCHANGE_INFO)
    assert lake.silver_keys() == lake.served_keys() == [("BTCUSDT", 1), ("ETHBTC", 8)]
    quarantined = pl.read_delta(lake.quarantine).sort("kafka_offset")
    assert quarantined.select("trade_id", "kafka_partition", "kafka_offset", "micro_batch_id").rows() == [
        (t, 0, t - 1, 0) for t in range(2, 8)
    ]
    assert quarantined["price"].to_list()[:3] == ["1_000", "1e400", "-0.05"]  # as landed
    assert quarantined["reason"].to_list() == [
        "price is not a plain decimal (digits with an optional fractional part)",
        "price is not a plain decimal (digits with an optional fractional part)",
        "price is not a plain decimal (digits with an optional fractional part)",
        "quantity is not finite and greater than zero as a float64",
        "trade_time is before 2009-01-01",
        "trade_time is more than a day after the time it was received",
    ]
    assert (first.quarantined_rows, first.enriched_rows, first.last_batch) == (6, 2, 0)

    # later batches go on; a replay of the run quarantines nothing twice
    lake.land(1, [good("BTCUSDT", 9)])
    second = lake.enrich(EXCHANGE_INFO)
    assert second.last_batch == 1 and ("BTCUSDT", 9) in lake.served_keys()
    lake.state.delete(stream.checkpoint_name(APP))
    lake.enrich(EXCHANGE_INFO)
    assert pl.read_delta(lake.quarantine).height == 6
    assert dead_lettered_count(str(lake.root / "none"), {0: 10}, silver_quarantine_uri=lake.quarantine) == 6
    assert (
        dead_lettered_count(str(lake.root / "none"), {0: 5}, {0: 3}, silver_quarantine_uri=lake.quarantine)
        == 2
    )


def test_a_row_that_makes_enrichment_fail_is_quarantined_alone(lake: Lake, monkeypatch):
    lake.land(0, [good("BTCUSDT", t) for t in range(1, 9)])
    real = stream.enrich_safely.__globals__["enrich"]

    def flaky(trades, lookup):  # a bug that only trade 5 triggers
        if (trades["trade_id"] == 5).any():
            raise ValueError("cannot enrich trade 5")
        return real(trades, lookup)

    monkeypatch.setitem(stream.enrich_safely.__globals__, "enrich", flaky)
    run = lake.enrich(EXCHANGE_INFO)
    assert [k[1] for k in lake.served_keys()] == [1, 2, 3, 4, 6, 7, 8]
    (reason,) = pl.read_delta(lake.quarantine)["reason"].to_list()
    assert reason == "enrichment failed: ValueError: cannot enrich trade 5"
    assert run.quarantined_rows == 1 and run.last_batch == 0


def test_trades_of_a_symbol_missing_from_the_lookup_are_held_until_it_knows_it(lake: Lake):
    lake.land(0, [good("BTCUSDT", t, t) for t in range(60)] + [good("ETHBTC", 1), good("LUNAUSDT", 1)])
    first = lake.enrich(WITHOUT_BTC)  # a valid lookup, but BTCUSDT is missing from it
    assert lake.silver_keys() == lake.served_keys() == [("ETHBTC", 1)]
    assert lake.held_keys() == [("BTCUSDT", t) for t in range(60)]
    assert (first.held_rows, first.held_total, first.held_symbols) == (60, 60, ["BTCUSDT"])
    assert first.oldest_held == T0
    assert (first.unmatched_rows, first.unmatched_symbols) == (1, ["LUNAUSDT"])  # BREAK: filtered
    assert held_count(lake.held, {0: 62}) == 60 and held_count(lake.held, {0: 10}, {0: 5}) == 5

    # the same lookup again: still held, nothing new in silver, the held table read only
    lake.land(1, [good("ETHBTC", 2)])
    again = lake.enrich(WITHOUT_BTC)
    assert (again.released_rows, again.held_total, again.bronze_rows) == (0, 60, 1)

    # the next pull knows BTCUSDT: the held trades are enriched, served, and leave the held table
    lake.land(2, [good("BTCUSDT", 60, 60)])
    fixed = lake.enrich(EXCHANGE_INFO)
    assert (fixed.released_rows, fixed.held_total, fixed.held_rows) == (60, 0, 0)
    expected = [("BTCUSDT", t) for t in range(61)] + [("ETHBTC", 1), ("ETHBTC", 2)]
    assert lake.silver_keys() == lake.served_keys() == expected
    assert lake.held_keys() == []
    assert pl.read_delta(lake.silver).filter(pl.col("trade_id") == 0)["micro_batch_id"].to_list() == [
        0
    ]  # its own batch


def test_a_held_symbol_listed_as_not_tradable_later_is_filtered(lake: Lake):
    lake.land(0, [good("DOGEUSDT", 1), good("DOGEUSDT", 2), good("BTCUSDT", 1)])
    lake.enrich(EXCHANGE_INFO)
    assert lake.held_keys() == [("DOGEUSDT", 1), ("DOGEUSDT", 2)]
    halted = {
        **EXCHANGE_INFO,
        "symbols": [*EXCHANGE_INFO["symbols"], {"symbol": "DOGEUSDT", "status": "HALT"}],
    }
    run = lake.enrich(halted)
    assert (run.unmatched_rows, run.unmatched_symbols, run.held_total) == (2, ["DOGEUSDT"], 0)
    assert lake.held_keys() == [] and lake.served_keys() == [("BTCUSDT", 1)]


def test_a_lookup_without_the_list_of_symbols_not_trading_holds_every_missing_symbol(lake: Lake, tmp_path):
    lake.land(0, [good("LUNAUSDT", 1), good("BTCUSDT", 1)])
    run = lake.enrich(EXCHANGE_INFO, with_statuses=False)  # written by an older version
    assert lake.held_keys() == [("LUNAUSDT", 1)] and run.unmatched_rows == 0
    assert read_not_trading(tmp_path / "raw") is None
    write_not_trading(not_trading(EXCHANGE_INFO["symbols"]), tmp_path / "raw")
    assert read_not_trading(tmp_path / "raw").rows() == [("LUNAUSDT", "BREAK")]


def test_killed_after_serving_held_trades_and_before_removing_them_changes_nothing(lake: Lake, monkeypatch):
    lake.land(0, [good("BTCUSDT", t) for t in range(5)])
    lake.enrich(WITHOUT_BTC)
    assert len(lake.held_keys()) == 5

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(stream, "release", killed)
    with pytest.raises(KeyboardInterrupt):
        lake.enrich(EXCHANGE_INFO)
    monkeypatch.undo()
    assert len(lake.held_keys()) == 5 and len(lake.served_keys()) == 5  # served, not yet removed
    run = lake.enrich(EXCHANGE_INFO)
    assert run.held_total == 0 and lake.served_keys() == [("BTCUSDT", t) for t in range(5)]
    assert pl.read_delta(lake.silver).height == 5


def test_killed_after_holding_and_before_the_checkpoint_holds_each_trade_once(lake: Lake, monkeypatch):
    lake.land(0, [good("BTCUSDT", t) for t in range(5)] + [good("ETHBTC", 1)])
    real = lake.state.compare_and_set

    def killed(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(lake.state, "compare_and_set", killed)
    with pytest.raises(KeyboardInterrupt):
        lake.enrich(WITHOUT_BTC)
    monkeypatch.setattr(lake.state, "compare_and_set", real)
    run = lake.enrich(WITHOUT_BTC)
    assert run.last_batch == 0 and lake.held_keys() == [("BTCUSDT", t) for t in range(5)]
    assert pl.read_delta(lake.held).height == 5 and lake.served_keys() == [("ETHBTC", 1)]


def test_the_held_table_is_read_whole_and_bronze_only_after_the_checkpoint(lake: Lake, monkeypatch):
    for batch in range(6):
        lake.land(batch, [good("ETHBTC", batch)])
    lake.enrich(EXCHANGE_INFO)
    reads: list[tuple[int, int]] = []
    real = stream._batches

    def counted(table, low, high):
        reads.append((low, high))
        return real(table, low, high)

    monkeypatch.setattr(stream, "_batches", counted)
    lake.land(6, [good("BTCUSDT", 1)])
    lake.enrich(WITHOUT_BTC)
    assert reads == [(6, 6)]
    assert held_module.read_held(lake.held).height == 1
