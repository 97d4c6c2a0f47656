"""A failed check in the Dagster UI, as a browser draws it: headless Chromium opens the asset's checks
page on a webserver over the instance the run was recorded in, and the failing rows' keys are on it."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from datetime import datetime
from html.parser import HTMLParser
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets_tests.medallion.helpers import execute, source_table
from platform_assets_tests.medallion.test_medallion import build
from platform_assets_tests.trades.test_dashboard import chromium, png_pixels

BAD_DATES = {20991399: 13, 20990001: 0}  # date_key -> month: both break valid_month (1..12)

DEFINITIONS = """\
from pathlib import Path

from platform_assets.definitions import build_definitions
from platform_assets.settings import Settings

defs = build_definitions(
    Settings(data_dir=Path({data_dir!r}), source_url={source_url!r}, tables_file=Path({tables_file!r}))
)
"""


class _Text(HTMLParser):
    def __init__(self) -> None:
        super().__init__()
        self.parts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list) -> None:
        self._hidden += tag in ("script", "style")

    def handle_endtag(self, tag: str) -> None:
        self._hidden -= tag in ("script", "style")

    def handle_data(self, data: str) -> None:
        if data.strip() and not self._hidden:
            self.parts.append(" ".join(data.split()))


def visible_text(html: str) -> str:
    """The text a reader sees on a page (no scripts or styles), one space between elements."""
    parser = _Text()
    parser.feed(html)
    return " ".join(parser.parts)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.fixture
def failed_check(tmp_path: Path, sqlite_source):
    """The medallion's dimdate run once with two rows breaking its fail rule, recorded in an instance in
    ``tmp_path/dagster_home``; returns the settings and that home."""
    settings = build(tmp_path, sqlite_source, days=1)
    dates = source_table(settings, None, "DimDate")
    for key, month in BAD_DATES.items():
        execute(
            settings,
            dates.insert().values(
                date_key=key,
                date=datetime(2099, 12, 31).date(),
                day=31,
                month=month,
                year=2099,
                weekday="Thu",
            ),
        )
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(
        "telemetry:\n  enabled: false\nnux:\n  enabled: false\n"
    )  # no welcome dialog
    with DagsterInstance.from_config(str(home)) as instance:
        assets = [a for a in build_definitions(settings).assets if a.key.path[-1] == "dimdate"]
        result = materialize(
            assets, resources=build_resources(settings), instance=instance, raise_on_error=False
        )
    assert not result.success  # valid_month is a fail rule: the step stops
    return settings, home


@pytest.fixture
def webserver(tmp_path: Path, failed_check):
    """``dagster-webserver`` on loopback over the failed run's instance, with the project's definitions."""
    settings, home = failed_check
    definitions = tmp_path / "definitions.py"
    definitions.write_text(
        DEFINITIONS.format(
            data_dir=str(settings.data_dir),
            source_url=settings.source_url,
            tables_file=str(settings.tables_file),
        )
    )
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    command = [Path(sys.executable).with_name("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    server = subprocess.Popen(
        [*map(str, command), "-f", str(definitions)],
        env=env,
        cwd=tmp_path,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        deadline = time.monotonic() + 120
        while not serving(port):
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                pytest.fail(f"the webserver did not start:\n{server.communicate()[0][-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()


@pytest.mark.slow(60)
def test_chromium_shows_the_failing_keys_on_the_checks_page(tmp_path: Path, webserver) -> None:
    page = f"{webserver}/assets/silver/dimdate?view=checks&checkDetail=valid_month"
    browse = ("--virtual-time-budget=30000",)
    dom = chromium(*browse, "--dump-dom", page, profile=tmp_path / "profile").stdout
    screenshot = tmp_path / "check.png"
    chromium(*browse, f"--screenshot={screenshot}", page, profile=tmp_path / "profile")

    text = visible_text(dom)
    assert "This is a blocking asset check." in text and "Join the Dagster community" not in text
    # the latest execution's metadata, as the page lists it: each name followed by its value
    shown = text.split(" failing_keys ", 1)[1].split(" failing_rows ", 1)[0]
    assert shown.startswith("date_key: ") and sorted(shown.removeprefix("date_key: ").split(", ")) == sorted(
        str(key) for key in BAD_DATES
    )
    assert " rows_failed 2 " in text
    width, height, pixels = png_pixels(screenshot.read_bytes())
    assert (width, height) == (1280, 1600)
    assert len(set(pixels)) > 16, "the screenshot is not blank"
