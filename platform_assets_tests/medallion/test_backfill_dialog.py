"""The backfill dialog of FactStream, as a browser draws it: a sample whose days end yesterday, its days
materialized, and the daily partitions starting at the sample's first day (as ``make dev`` starts them).
Headless Chromium, driven over its DevTools protocol, opens gold/factstream's page, clicks "Materialize…"
and finds the dialog's default range ("Last 90 days") showing every day of the sample."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from dagster import AssetKey, DagsterInstance
from websockets.sync.client import connect
from websockets.sync.connection import Connection

from platform_assets_tests.conftest import settings_for
from platform_assets_tests.trades.test_dashboard import headless_chromium, png_pixels
from platform_assets_tests.webserver import dagster_home, running_webserver
from platform_devkit import sample
from platform_devkit.medallion import materialize_medallion

DAYS = 3  # of streams in the sample, ending yesterday
WIDTH, HEIGHT = 1400, 1000
GOLD = AssetKey(["gold", "factstream"])

# The header's split button: "Materialize…" opens the launch dialog of a partitioned asset.
CLICK_MATERIALIZE = r"""(() => {
  const button = [...document.querySelectorAll("button")].find(
    (b) => /^Materialize(…|\.\.\.)$/.test(b.innerText.trim()) && !b.disabled
  );
  if (button) button.click();
  return Boolean(button);
})()"""

# The dialog's text, and whether its opening transition is over (Blueprint's overlay classes).
DIALOG = r"""(() => {
  const dialog = document.querySelector(".bp5-dialog") || document.querySelector('[role="dialog"]');
  const opening = document.querySelector('[class*="overlay-enter-active"], [class*="overlay-appear-active"]');
  return { text: dialog ? dialog.innerText : "", settled: opening === null };
})()"""


class Tab:
    """One page of a headless Chromium, over the DevTools protocol's websocket."""

    def __init__(self, socket: Connection) -> None:
        self.socket = socket
        self.calls = 0

    def call(self, method: str, **params: Any) -> dict:
        self.calls += 1
        self.socket.send(json.dumps({"id": self.calls, "method": method, "params": params}))
        while True:  # events come in between; the answer carries the call's id
            message = json.loads(self.socket.recv(timeout=60))
            if message.get("id") == self.calls:
                assert "error" not in message, f"{method}: {message['error']}"
                return message["result"]

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", expression=expression, returnByValue=True)
        assert "exceptionDetails" not in result, result["exceptionDetails"]
        return result["result"].get("value")

    def wait_for(self, expression: str, done: Callable[[Any], bool], what: str, timeout: float = 60) -> Any:
        """The value of ``expression`` once ``done`` holds for it, evaluated every quarter second."""
        deadline = time.monotonic() + timeout
        while True:
            value = self.evaluate(expression)
            if done(value):
                return value
            if time.monotonic() > deadline:
                pytest.fail(f"{what} within {timeout} s; last seen: {value!r}")
            time.sleep(0.25)


def _until(what: str, probe: Callable[[], Any], timeout: float = 30) -> Any:
    deadline = time.monotonic() + timeout
    while not (value := probe()):
        if time.monotonic() > deadline:
            pytest.fail(f"{what} within {timeout} s")
        time.sleep(0.1)
    return value


def _page_socket(port: int) -> str | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/json/list", timeout=2) as answer:
            targets = json.load(answer)
    except OSError:
        return None
    return next((t["webSocketDebuggerUrl"] for t in targets if t["type"] == "page"), None)


@contextmanager
def browser_tab(url: str, profile: Path) -> Iterator[Tab]:
    """Headless Chromium showing ``url`` in a ``WIDTH`` x ``HEIGHT`` viewport, driven over DevTools."""
    # any free debugging port: Chromium writes it to DevToolsActivePort
    command = headless_chromium(profile, WIDTH, HEIGHT, "--remote-debugging-port=0", url)
    browser = subprocess.Popen(
        command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True
    )
    try:
        active = profile / "DevToolsActivePort"

        def port() -> int | None:
            lines = active.read_text().splitlines() if active.exists() else []
            return int(lines[0]) if len(lines) == 2 else None

        debugger = _until("Chromium's DevTools port", port)
        page = _until("Chromium's page", lambda: _page_socket(debugger))
        with connect(page, max_size=None, open_timeout=30) as socket:  # a screenshot is megabytes
            tab = Tab(socket)
            # the viewport itself, not the window (whose frame takes its share of --window-size)
            tab.call(
                "Emulation.setDeviceMetricsOverride",
                width=WIDTH,
                height=HEIGHT,
                deviceScaleFactor=1,
                mobile=False,
            )
            yield tab
    finally:
        os.killpg(browser.pid, signal.SIGTERM)  # the browser and its renderers: the group it leads
        try:
            browser.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(browser.pid, signal.SIGKILL)
            browser.wait()


@pytest.fixture
def materialized_days(tmp_path: Path, sqlite_source):
    """A sample of ``DAYS`` days ending yesterday, the daily partitions starting at its first day, the
    medallion run over it in an instance in ``tmp_path/dagster_home``: settings, home and the days."""
    sample.init(sqlite_source.url, seed=7, days=DAYS)  # ends yesterday: today is its exclusive end
    stored = sample.stored_days(sqlite_source.url)
    assert stored is not None
    first, last = stored
    assert last == sample.today_utc() - timedelta(days=1)
    days = [(first + timedelta(days=i)).isoformat() for i in range((last - first).days + 1)]
    assert len(days) == DAYS
    settings = settings_for(tmp_path, sqlite_source, partition_start=first)
    home = dagster_home(tmp_path)
    with DagsterInstance.from_config(str(home)) as instance:
        assert materialize_medallion(settings, instance=instance, log_level="ERROR").success
        assert instance.get_materialized_partitions(GOLD) == set(days)
    return settings, home, days


@pytest.mark.slow(60)
def test_the_backfill_dialogs_default_range_shows_every_day_of_the_sample(
    tmp_path: Path, materialized_days
) -> None:
    settings, home, days = materialized_days
    with (
        running_webserver(tmp_path, settings, home) as webserver,
        browser_tab(f"{webserver}/assets/gold/factstream", tmp_path / "profile") as tab,
    ):
        tab.wait_for(CLICK_MATERIALIZE, bool, 'the page\'s "Materialize…" button to be clicked')
        dialog = tab.wait_for(
            DIALOG,
            lambda d: f"Showing {DAYS} of {DAYS} partitions" in d["text"] and d["settled"],
            f"the backfill dialog showing {DAYS} of {DAYS} partitions",
        )
        shot = tab.call("Page.captureScreenshot", format="png")
    screenshot = tmp_path / "backfill-dialog.png"
    screenshot.write_bytes(base64.b64decode(shot["data"]))

    text = dialog["text"]
    assert "Launch runs to materialize gold / factstream" in text
    assert "Last 90 days" in text  # the default range, unchanged
    assert days[0] in text and days[-1] in text  # the range's ends under its partitions bar
    width, height, pixels = png_pixels(screenshot.read_bytes())
    assert (width, height) == (WIDTH, HEIGHT)
    assert len(set(pixels)) > 16, "the screenshot is not blank"
