"""`make dev` / `make demo` under platform_devkit.dev: SIGTERM or SIGINT stops the command's whole process
group and then the Kafka broker; either one ending stops the other. Real processes throughout."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
import urllib.request
from datetime import date
from pathlib import Path

import pytest

from platform_assets_tests.processes import BIN, descendants, wait_for
from platform_devkit import sample

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


# The command of `--offline --sample-partitions`: writes the settings it was given and what each stand-in
# answered on loopback (never through a proxy), then ends.
PROBE = textwrap.dedent(
    """
    import json, os, sys, urllib.request
    from websockets.sync.client import connect
    names = ("PLATFORM_TRADES_WS_URL", "PLATFORM_TRADES_LOOKUP_URL", "PLATFORM_COUNTRY_API_URL",
             "PLATFORM_PARTITION_START")
    out = {name: os.environ.get(name, "") for name in names}
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    with direct.open(out["PLATFORM_TRADES_LOOKUP_URL"], timeout=10) as answer:
        out["symbols"] = sorted(s["symbol"] for s in json.load(answer)["symbols"])
    with direct.open(out["PLATFORM_COUNTRY_API_URL"] + "/name/india", timeout=10) as answer:
        out["country"] = sorted(c["name"]["common"] for c in json.load(answer))
    with connect(out["PLATFORM_TRADES_WS_URL"], open_timeout=10, proxy=None) as ws:
        out["frames"] = [json.loads(ws.recv(timeout=10)) for _ in range(3)]
    with open(sys.argv[1], "w") as handle:
        json.dump(out, handle)
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


def test_offline_serves_the_stand_ins_on_loopback_and_partitions_start_at_the_sample(tmp_path):
    """`make dev OFFLINE=1`: the command gets the stand-ins' loopback addresses, and each answers there;
    the daily partitions start at the sample source's first day."""
    source = f"sqlite:///{tmp_path / 'source.db'}"
    sample.init(source, days=2, end=date(2026, 3, 1))
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "dev.yaml").write_text(f"source_url: {source}\n")
    env = {
        **_env(),
        "PLATFORM_CONFIG_DIR": str(tmp_path / "config"),
        "PLATFORM_DATA_DIR": str(tmp_path / "data"),
    }
    for name in ("PLATFORM_PARTITION_START", "PLATFORM_ENV", "PLATFORM_SOURCE_URL"):
        env.pop(name, None)
    out = tmp_path / "probe.json"
    taken = socket.socket()  # the feed stand-in's own port taken (another make dev): it takes a free one
    with contextlib.suppress(OSError):  # already taken by someone else: just as good
        taken.bind(("127.0.0.1", 8766))
        taken.listen()
    with taken:
        finished = subprocess.run(
            [sys.executable, "-m", "platform_devkit.dev", "--kafka-dir", str(tmp_path / "kafka"), "--offline",
             "--sample-partitions", "--", sys.executable, "-c", PROBE, str(out)],
            env=env, capture_output=True, text=True, timeout=120,
        )  # fmt: skip
    assert finished.returncode == 0, finished.stderr[-3000:]
    probe = json.loads(out.read_text())
    assert probe["PLATFORM_PARTITION_START"] == "2026-02-27"
    for name in ("PLATFORM_TRADES_WS_URL", "PLATFORM_TRADES_LOOKUP_URL", "PLATFORM_COUNTRY_API_URL"):
        assert probe[name].split("://", 1)[1].startswith("127.0.0.1:"), probe[name]
        assert f"offline: {name}={probe[name]}" in finished.stderr
    assert not probe["PLATFORM_TRADES_WS_URL"].endswith(":8766")
    assert probe["symbols"] == ["BNBUSDT", "BTCUSDT", "ETHUSDT", "LUNAUSDT", "SOLUSDT"]
    assert "India" in probe["country"]
    # the feed's ack, then trades of the stand-in's symbols
    assert probe["frames"][0] == {"result": None, "id": 1}
    assert [frame["s"] for frame in probe["frames"][1:]] == ["BTCUSDT", "ETHUSDT"]
    assert "daily partitions start at 2026-02-27, the sample's first day" in finished.stderr


def test_make_dev_offline_asks_for_the_stand_ins_and_only_then(tmp_path):
    def dry_run(*extra: str) -> str:
        env = {**_env(), "PLATFORM_DATA_DIR": str(tmp_path / "data")}
        env.pop("DAGSTER_HOME", None)
        return subprocess.run(
            ["make", "-n", "-o", ".venv/.installed", "dev", f"BIN={BIN}", *extra],
            cwd=REPO, env=env, capture_output=True, text=True, timeout=60, check=True,
        ).stdout  # fmt: skip

    assert "--sample-partitions --offline --" in dry_run("OFFLINE=1")
    plain = dry_run()
    assert "--sample-partitions" in plain and "--sample-partitions --offline" not in plain
