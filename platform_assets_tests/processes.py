"""Waiting on and killing real processes (a daemon, run workers) in tests."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Mapping
from pathlib import Path

import yaml

SHIPPED_DAGSTER_YAML = Path(__file__).parents[1] / "dagster.yaml"
BIN = Path(sys.executable).parent


def wait_for(what: str, condition, timeout: float = 120, every: float = 0.5):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        children.setdefault(int(fields[1]), []).append(int(stat.parent.name))
    found, todo = [], [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def materialize_command(selection: str) -> list:
    """``dagster asset materialize`` of ``selection`` against the code location, as a user runs it."""
    return [
        BIN / "dagster",
        "asset",
        "materialize",
        "-m",
        "platform_assets.definitions",
        "--select",
        selection,
    ]


def dagster_home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME with the shipped dagster.yaml (run monitoring polled every second, the run queue
    every second instead of every 5) and its storage created, as `make dev` does before the daemon and
    the CLI both open it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load(SHIPPED_DAGSTER_YAML.read_text())
    config["run_monitoring"].update(poll_interval_seconds=1, free_slots_after_run_end_seconds=1)
    # the coordinator the shipped `concurrency` settings already imply; only how often it dequeues differs
    config["run_coordinator"] = {
        "module": "dagster._core.run_coordinator",
        "class": "QueuedRunCoordinator",
        "config": {"dequeue_interval_seconds": 1},
    }
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    env = {**os.environ, "DAGSTER_HOME": str(home)}
    subprocess.run([BIN / "dagster", "instance", "migrate"], env=env, check=True, capture_output=True)
    return home


@contextlib.contextmanager
def running_daemon(env: Mapping[str, str], cwd: Path) -> Iterator[subprocess.Popen]:
    """``dagster-daemon run`` on the code location, logging to ``cwd/daemon.log``; stopped on exit."""
    daemon = subprocess.Popen(
        [BIN / "dagster-daemon", "run", "-m", "platform_assets.definitions"],
        env=dict(env),
        cwd=cwd,
        stdout=(cwd / "daemon.log").open("w"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        yield daemon
    finally:
        os.killpg(daemon.pid, signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(daemon.pid, signal.SIGKILL)
