"""A failed check in the Dagster UI, as a browser draws it: headless Chromium opens the asset's checks
page on a webserver over the instance the run was recorded in, and the failing rows' keys are on it."""

from __future__ import annotations

from html.parser import HTMLParser
from pathlib import Path

import pytest
from dagster import DagsterInstance, materialize

from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets_tests.medallion.helpers import insert_bad_dates
from platform_assets_tests.medallion.test_medallion import build
from platform_assets_tests.trades.test_dashboard import chromium, png_pixels
from platform_assets_tests.webserver import dagster_home, running_webserver

BAD_DATES = {20991399: 13, 20990001: 0}  # date_key -> month: both break valid_month (1..12)


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


@pytest.fixture
def failed_check(tmp_path: Path, sqlite_source):
    """The medallion's dimdate run once with two rows breaking its fail rule, recorded in an instance in
    ``tmp_path/dagster_home``; returns the settings and that home."""
    settings = build(tmp_path, sqlite_source, days=1)
    insert_bad_dates(settings, BAD_DATES)
    home = dagster_home(tmp_path)
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
    with running_webserver(tmp_path, settings, home) as url:
        yield url


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
