"""`make dev` / `make demo` under platform_devkit.dev: SIGTERM or SIGINT stops the command's whole process
group and then the Kafka broker; either one ending stops the other. Real processes throughout."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from pathlib import Path

import pytest

from platform_assets_tests.processes import BIN, descendants, wait_for

REPO = Path(__file__).parents[2]

# The stand-in command: starts a grandchild, writes its own pid, the grandchild's and the broker address
# it was given, then waits to be stopped.
COMMAND = textwrap.dedent(
    """
    import os, subprocess, sys, time
    grandchild = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(600)"])
    with open(sys.argv[1] + ".tmp", "w") as out:
        out.write(f"{os.getpid()} {grandchild.pid} {os.environ.get('PLATFORM_KAFKA_BOOTSTRAP', '')}")
    os.replace(sys.argv[1] + ".tmp", sys.argv[1])
    seconds = float(sys.argv[2])
    time.sleep(seconds)
    sys.exit(int(sys.argv[3]))
    """
)


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env.pop("PLATFORM_KAFKA_BOOTSTRAP", None)
    return env


def _supervise(
    tmp_path: Path, seconds: float = 600, status: int = 0
) -> tuple[subprocess.Popen, list[int], str]:
    """The supervisor with the stand-in command; its process, every pid below it, the broker address."""
    ready = tmp_path / "ready"
    supervisor = subprocess.Popen(
        [sys.executable, "-m", "platform_devkit.dev", "--kafka-dir", str(tmp_path / "kafka"), "--grace", "10",
         "--", sys.executable, "-c", COMMAND, str(ready), str(seconds), str(status)],
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    STARTED.append(supervisor)
    wait_for("the command to start", ready.exists, timeout=60, every=0.1)
    command, grandchild, address = ready.read_text().split()
    pids = descendants(supervisor.pid)
    assert {int(command), int(grandchild)} <= set(pids)
    assert address == (tmp_path / "kafka" / "bootstrap").read_text()  # the broker it started
    return supervisor, pids, address


STARTED: list[subprocess.Popen] = []


@pytest.fixture(autouse=True)
def _nothing_left_running():
    """A test that fails half way still stops what it started (the supervisor stops its children)."""
    yield
    while STARTED:
        supervisor = STARTED.pop()
        if supervisor.poll() is None:
            supervisor.terminate()
            try:
                supervisor.communicate(timeout=30)
            except subprocess.TimeoutExpired:
                supervisor.kill()
                supervisor.communicate()


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_command_its_children_and_the_broker(tmp_path, signum):
    supervisor, pids, address = _supervise(tmp_path)
    broker = int((tmp_path / "kafka" / "pid").read_text())
    assert broker in pids and len(pids) == 3  # broker, command, grandchild

    supervisor.send_signal(signum)
    output, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 0, output
    assert [pid for pid in pids if _alive(pid)] == [], output
    # the broker stopped cleanly (it removes its address file), after the command
    assert not (tmp_path / "kafka" / "bootstrap").exists()
    assert f"{signal.Signals(signum).name}: stopping" in output


def test_a_closed_output_does_not_keep_it_from_stopping_everything(tmp_path):
    """Its terminal (here: the pipe it writes to) gone before the signal: still every process ends."""
    supervisor, pids, _ = _supervise(tmp_path)
    supervisor.stdout.close()
    supervisor.send_signal(signal.SIGTERM)
    supervisor.wait(timeout=30)
    assert [pid for pid in pids if _alive(pid)] == []


def test_the_command_ending_stops_the_broker_with_its_status(tmp_path):
    supervisor, pids, _ = _supervise(tmp_path, seconds=1, status=3)
    output, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 3, output
    assert [pid for pid in pids if _alive(pid)] == [], output


def test_the_broker_ending_stops_the_command(tmp_path):
    supervisor, pids, _ = _supervise(tmp_path)
    os.kill(int((tmp_path / "kafka" / "pid").read_text()), signal.SIGKILL)
    output, _ = supervisor.communicate(timeout=30)
    assert supervisor.returncode == 1, output
    assert "the Kafka broker ended" in output
    assert [pid for pid in pids if _alive(pid)] == [], output


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _serving(port: int) -> bool:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/server_info", timeout=1) as answer:
            return answer.status == 200
    except OSError:
        return False


@pytest.mark.slow(90)
def test_make_dev_stops_cleanly_when_make_alone_gets_sigterm(tmp_path):
    """As a service manager stops it: SIGTERM to make only. dagster dev (webserver, daemon, code servers)
    and the broker all end; before, make's shell kept waiting on dagster dev, and the broker it had
    started could go first."""
    port = _free_port()
    env = {**_env(), "PLATFORM_DATA_DIR": str(tmp_path / "data")}
    env.pop("DAGSTER_HOME", None)
    make = subprocess.Popen(
        ["make", "-s", "-o", ".venv/.installed", "dev", f"PORT={port}", f"BIN={BIN}"],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        wait_for("the webserver", lambda: _serving(port) or make.poll() is not None, timeout=120)
        assert make.poll() is None, make.communicate()[0][-3000:]
        wait_for("the broker", (tmp_path / "data" / "kafka" / "bootstrap").exists, timeout=30)
        pids = descendants(make.pid)
        assert len(pids) >= 4  # the supervisor, the broker, dagster dev, its webserver and daemon
        make.send_signal(signal.SIGTERM)
        output, _ = make.communicate(timeout=90)
        deadline = time.monotonic() + 10
        while any(_alive(pid) for pid in pids) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert [pid for pid in pids if _alive(pid)] == [], output[-3000:]
        assert "SIGTERM: stopping" in output
        assert not (tmp_path / "data" / "kafka" / "bootstrap").exists()
        # the top-level dagster.yaml, installed into the environment's Dagster home, configured the
        # instance, and Dagster did not warn that it sees an unused dagster.yaml in its working folder
        assert (tmp_path / "data" / "dagster_home" / "dagster.yaml").read_text() == (
            REPO / "dagster.yaml"
        ).read_text()
        assert (tmp_path / "data" / "dagster_home" / "history" / "runs.db").exists()
        assert "will not be used to configure Dagster" not in output, output[-3000:]
    finally:
        if make.poll() is None:
            for pid in descendants(make.pid):
                try:
                    os.killpg(pid, signal.SIGKILL)
                except (ProcessLookupError, PermissionError):
                    pass
            make.kill()
            make.wait()
