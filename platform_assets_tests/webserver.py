"""``dagster-webserver`` on loopback over a test's instance and the project's definitions, for the tests
that look at the Dagster UI in headless Chromium."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from platform_assets.settings import Settings

DEFINITIONS = """\
from datetime import date
from pathlib import Path

from platform_assets.definitions import build_definitions
from platform_assets.settings import Settings

defs = build_definitions(
    Settings(
        data_dir=Path({data_dir!r}),
        source_url={source_url!r},
        tables_file=Path({tables_file!r}),
        partition_start=date.fromisoformat({partition_start!r}),
    )
)
"""


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


def dagster_home(tmp_path: Path) -> Path:
    """An empty ``DAGSTER_HOME`` in ``tmp_path/dagster_home`` whose UI opens with no welcome dialog."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\nnux:\n  enabled: false\n")
    return home


@contextmanager
def running_webserver(tmp_path: Path, settings: Settings, home: Path) -> Iterator[str]:
    """``dagster-webserver`` over the instance in ``home`` with the project's definitions built from
    ``settings``; yields its base URL and stops it on exit."""
    definitions = tmp_path / "definitions.py"
    definitions.write_text(
        DEFINITIONS.format(
            data_dir=str(settings.data_dir),
            source_url=settings.source_url,
            tables_file=str(settings.tables_file),
            partition_start=settings.partition_start.isoformat(),
        )
    )
    port = free_port()
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    command = [Path(sys.executable).with_name("dagster-webserver"), "-h", "127.0.0.1", "-p", str(port)]
    log = tmp_path / "webserver.log"  # a file, not a pipe: a long run's output never blocks the server
    with log.open("w") as output:
        server = subprocess.Popen(
            [*map(str, command), "-f", str(definitions)],
            env=env,
            cwd=tmp_path,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 120
        while not serving(port):
            if server.poll() is not None or time.monotonic() > deadline:
                server.kill()
                server.wait()
                pytest.fail(f"the webserver did not start:\n{log.read_text()[-3000:]}")
            time.sleep(0.5)
        yield f"http://127.0.0.1:{port}"
    finally:
        server.terminate()
        try:
            server.wait(timeout=30)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait()
