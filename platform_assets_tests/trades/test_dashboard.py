"""The trade dashboard: its numbers match the serving database, and Chromium really draws it."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import zlib
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path

import polars as pl
import pytest

from platform_assets.core.trades.dashboard import render_dashboard
from platform_assets.core.trades.enrich import SCHEMA
from platform_assets.core.trades.serving import ServingStore

CHROMIUM = "/usr/bin/chromium"
T0 = datetime(2025, 3, 1, 12, 0, 0, tzinfo=UTC)
TABLE = "bronze.trades"


def trade_frame() -> pl.DataFrame:
    """Trades of three symbols over 8 minutes (uneven per minute), two batches, and one trade 7 h older."""
    rows = []
    trade_id = 1
    for symbol, base, quote, price, every in (
        ("BTCUSDT", "BTC", "USDT", 62000.0, 7),
        ("ETHBTC", "ETH", "BTC", 0.0531, 11),
        ("ETHUSDT", "ETH", "USDT", 3300.0, 23),
    ):
        for second in range(0, 8 * 60, every):
            time = T0 + timedelta(seconds=second, milliseconds=trade_id % 1000)
            batch = 1 if second < 4 * 60 else 2
            rows.append((symbol, trade_id, base, quote, price * (1 + second / 5000), 0.5, time, batch))
            trade_id += 1
    rows.append(("BTCUSDT", 99999, "BTC", "USDT", 50000.0, 1.0, T0 - timedelta(hours=7), 1))
    return pl.DataFrame(rows, schema=SCHEMA, orient="row")


def expected_per_minute(trades: pl.DataFrame, hours: float) -> pl.DataFrame:
    since = trades["trade_time"].max() - timedelta(hours=hours)
    return (
        trades.filter(pl.col("trade_time") >= since)
        .sort("trade_time", "trade_id")
        .group_by("symbol", pl.col("trade_time").dt.truncate("1m").alias("minute"))
        .agg(trades=pl.len(), last_price=pl.col("price").last())
        .sort("symbol", "minute")
    )


def filled_store(url: str) -> tuple[ServingStore, pl.DataFrame]:
    store = ServingStore(url)
    trades = trade_frame()
    store.upsert_trades(trades)
    store.append_metrics(T0, T0 + timedelta(minutes=4), TABLE, total_rows=100, threshold=10)
    store.append_metrics(
        T0 + timedelta(minutes=4), T0 + timedelta(minutes=8), TABLE, total_rows=105, threshold=10
    )
    return store, trades


class Page(HTMLParser):
    """What a test reads from a page: the text of each element with an id, the body rows (class, cells) of
    each table with an id, the figure JSON of each chart, and the classes of all elements."""

    def __init__(self, html: str):
        super().__init__()
        self.text: dict[str, str] = {}
        self.tables: dict[str, list[tuple[str, list[str]]]] = {}
        self.figures: dict[str, dict] = {}
        self.classes: list[str] = []
        self._open: list[tuple[str, dict]] = []
        self.feed(html)

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        self.classes += (attributes.get("class") or "").split()
        if tag in ("meta", "br", "img", "input", "link"):
            return
        self._open.append((tag, attributes))
        if tag == "tr" and any(t == "tbody" for t, _ in self._open):
            table = next((a["id"] for t, a in reversed(self._open) if t == "table" and "id" in a), None)
            if table is not None:
                self.tables.setdefault(table, []).append((attributes.get("class") or "", []))

    def handle_endtag(self, tag: str) -> None:
        while self._open:
            if self._open.pop()[0] == tag:
                break

    def handle_data(self, data: str) -> None:
        for _, attributes in self._open:
            if "id" in attributes:
                self.text[attributes["id"]] = self.text.get(attributes["id"], "") + data
        if self._open and self._open[-1][0] == "td":
            table = next((a["id"] for t, a in reversed(self._open) if t == "table" and "id" in a), None)
            if table is not None:
                self.tables[table][-1][1].append(data)
        if self._open and self._open[-1][0] == "script" and "data-chart" in self._open[-1][1]:
            self.figures[self._open[-1][1]["data-chart"]] = json.loads(data)


def assert_headline(page: Page, trades: pl.DataFrame) -> None:
    assert page.text["total-trades"] == f"{trades.height:,}"
    assert page.text["symbol-count"] == str(trades["symbol"].n_unique())
    assert page.text["last-trade-time"] == f"{trades['trade_time'].max():%Y-%m-%d %H:%M:%S} UTC"
    assert page.text["last-batch-id"] == str(trades["micro_batch_id"].max())
    assert page.text["generated-at"].endswith(" UTC")


# -- the page's data --


def test_dashboard_shows_the_serving_data(tmp_path: Path) -> None:
    store, trades = filled_store(f"sqlite:///{tmp_path / 'serving.db'}")
    folder = tmp_path / "dashboard"

    path = render_dashboard(store, folder, refresh_seconds=7, hours=6)

    assert path == folder / "index.html"
    html = path.read_text()
    assert '<meta http-equiv="refresh" content="7">' in html
    assert "cdn" not in html.lower()
    scripts = sorted(p.name for p in folder.glob("plotly-*.min.js"))
    assert len(scripts) == 1 and f'src="{scripts[0]}"' in html
    assert (folder / scripts[0]).stat().st_size > 1_000_000
    assert sorted(p.name for p in folder.iterdir()) == sorted(["index.html", *scripts]), "no temp file left"

    page = Page(html)
    assert_headline(page, trades)

    # trades per minute: one stacked bar trace per symbol, the old trade outside the 6 hours left out
    expected = expected_per_minute(trades, 6)
    assert expected["trades"].sum() == trades.height - 1
    charted = {trace["name"]: trace for trace in page.figures["trades-per-minute"]["data"]}
    prices = {trace["name"]: trace for trace in page.figures["price-per-minute"]["data"]}
    assert sorted(charted) == sorted(prices) == ["BTCUSDT", "ETHBTC", "ETHUSDT"]
    for (symbol,), rows in expected.group_by("symbol"):
        minutes = rows["minute"].dt.strftime("%Y-%m-%d %H:%M:%S").to_list()
        assert charted[symbol]["x"] == minutes and prices[symbol]["x"] == minutes
        assert charted[symbol]["y"] == rows["trades"].to_list()
        assert prices[symbol]["y"] == rows["last_price"].to_list()

    # the metrics history: newest window first, the second window's 5 new rows below the threshold of 10
    rows = page.tables["metrics-table"]
    assert [(kind, cells[2:]) for kind, cells in rows] == [
        ("alerted", [TABLE, "105", "5", "10", "ALERT: below threshold"]),
        ("ok", [TABLE, "100", "100", "10", "ok"]),
    ]
    assert rows[0][1][:2] == ["2025-03-01 12:04:00 UTC", "2025-03-01 12:08:00 UTC"]
    bars, threshold = page.figures["ingestion-metrics"]["data"]
    assert bars["x"] == ["2025-03-01 12:00:00", "2025-03-01 12:04:00"] and bars["y"] == [100, 5]
    assert threshold["y"] == [10, 10, 10]

    # rendering again replaces the page and keeps the one plotly.js
    store.upsert_trades(
        trades.head(1).with_columns(trade_id=pl.lit(123456, pl.Int64), micro_batch_id=pl.lit(3))
    )
    render_dashboard(store, folder)
    page = Page(path.read_text())
    assert (page.text["total-trades"], page.text["last-batch-id"]) == (f"{trades.height + 1:,}", "3")
    assert sorted(p.name for p in folder.iterdir()) == sorted(["index.html", *scripts])


def test_an_empty_database_says_no_trades_yet(tmp_path: Path) -> None:
    path = render_dashboard(ServingStore(f"sqlite:///{tmp_path / 'serving.db'}"), tmp_path / "dashboard")

    page = Page(path.read_text())
    assert page.text["no-trades"] == "No trades yet."
    assert page.text["no-metrics"] == "No ingestion metrics yet."
    assert (page.text["total-trades"], page.text["symbol-count"]) == ("0", "0")
    assert (page.text["last-trade-time"], page.text["last-batch-id"]) == ("—", "—")
    assert page.figures == {}


def test_text_from_the_database_is_escaped(tmp_path: Path) -> None:
    store = ServingStore(f"sqlite:///{tmp_path / 'serving.db'}")
    evil = "<b>X</b>&'\""
    store.upsert_trades(trade_frame().head(2).with_columns(symbol=pl.lit("</script><i>EVIL</i>")))
    store.append_metrics(T0, T0 + timedelta(minutes=1), evil, total_rows=1, threshold=10)

    html = render_dashboard(store, tmp_path / "dashboard").read_text()

    assert "<i>EVIL</i>" not in html and "</script><i>" not in html and "<b>X</b>" not in html
    page = Page(html)
    assert page.tables["metrics-table"][0][1][2] == evil
    assert [trace["name"] for trace in page.figures["trades-per-minute"]["data"]] == ["</script><i>EVIL</i>"]


# -- per-minute aggregation in each dialect --


def test_trades_per_minute_aggregates_in_the_database(serving_url: str, tmp_path: Path) -> None:
    assert ServingStore(serving_url).trades_per_minute(6).is_empty()
    store, trades = filled_store(serving_url)

    for hours in (6, 0.05, 24):
        got = store.trades_per_minute(hours)
        expected = expected_per_minute(trades, hours)
        assert got.schema == pl.Schema(
            {
                "symbol": pl.String,
                "minute": pl.Datetime("us", "UTC"),
                "trades": pl.Int64,
                "last_price": pl.Float64,
            }
        )
        assert got.rows() == expected.select(got.columns).rows(), hours
    assert store.trades_per_minute(24)["trades"].sum() == trades.height
    # the 3 minutes before the newest trade (12:07:56) reach back into 12:04
    assert store.trades_per_minute(0.05)["minute"].n_unique() == 4

    # the headline numbers are plain SQL, the same in every dialect
    assert_headline(Page(render_dashboard(store, tmp_path / "dashboard").read_text()), trades)


# -- in a browser --


def png_pixels(data: bytes) -> tuple[int, int, bytes]:
    """Width, height and the decompressed scanlines of a PNG (a filter byte per row, then the pixels)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    position, idat, size = 8, b"", None
    while position < len(data):
        (length,) = struct.unpack(">I", data[position : position + 4])
        kind, body = data[position + 4 : position + 8], data[position + 8 : position + 8 + length]
        if kind == b"IHDR":
            size = struct.unpack(">II", body[:8])
        elif kind == b"IDAT":
            idat += body
        position += 12 + length
    assert size is not None, "no IHDR chunk"
    return size[0], size[1], zlib.decompress(idat)


def headless_chromium(profile: Path, width: int, height: int, *arguments: str) -> list[str]:
    """The command of a headless Chromium with a profile of its own and a ``width`` x ``height``
    window; fails the test, saying how to install it, when Chromium is missing."""
    if shutil.which(CHROMIUM) is None:
        pytest.fail(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    return [
        CHROMIUM,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--no-first-run",
        "--hide-scrollbars",
        f"--user-data-dir={profile}",
        f"--window-size={width},{height}",
        *arguments,
    ]


def chromium(*arguments: str, profile: Path) -> subprocess.CompletedProcess:
    # the virtual time budget is below the page's refresh: the scripts run, the page is not reloaded
    command = headless_chromium(profile, 1280, 1600, "--virtual-time-budget=5000", *arguments)
    done = subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr[-2000:]
    return done


def test_chromium_draws_the_dashboard(tmp_path: Path) -> None:
    store, trades = filled_store(f"sqlite:///{tmp_path / 'serving.db'}")
    page = render_dashboard(store, tmp_path / "dashboard", refresh_seconds=60)
    screenshot = tmp_path / "dashboard.png"

    dom = chromium("--dump-dom", page.as_uri(), profile=tmp_path / "profile").stdout
    chromium(f"--screenshot={screenshot}", page.as_uri(), profile=tmp_path / "profile")

    drawn = Page(dom)
    assert_headline(drawn, trades)
    assert drawn.classes.count("js-plotly-plot") == 3, "plotly drew the three charts"
    assert drawn.classes.count("main-svg") >= 6
    minutes = len(expected_per_minute(trades, 6))
    assert drawn.classes.count("point") == 2 * minutes + 2, "a bar and a marker a minute, a bar a window"
    assert [kind for kind, _ in drawn.tables["metrics-table"]] == ["alerted", "ok"]

    width, height, pixels = png_pixels(screenshot.read_bytes())
    assert (width, height) == (1280, 1600)
    assert len(set(pixels)) > 64, "the screenshot is not blank"
    stride = len(pixels) // height
    rows = {pixels[row * stride + 1 : (row + 1) * stride] for row in range(height)}
    assert len(rows) > 200, "many different lines of pixels: text and charts, not a flat page"
