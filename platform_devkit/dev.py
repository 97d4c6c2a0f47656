"""``make dev`` and ``make demo``: a command (``dagster dev``, the demo) with a Kafka broker beside it, both
stopped cleanly however the pair is stopped::

    python -m platform_devkit.dev --kafka-dir data/kafka -- dagster dev -w workspace.yaml

Unless ``PLATFORM_KAFKA_BOOTSTRAP`` names a broker, or the address file in ``--kafka-dir`` names a live one
(a second ``make dev`` shares the first one's), the embedded broker (:mod:`platform_devkit.kafka_broker`)
starts first and the command gets its address in ``PLATFORM_KAFKA_BOOTSTRAP``.

Broker and command each run in a process group of their own, so a signal reaches them only through this
process, in order:

- SIGTERM (a service manager stopping ``make dev``; make passes it on), SIGINT (Ctrl+C) or SIGHUP: the
  command's whole group gets SIGINT, as Ctrl+C gives it (``dagster dev`` then stops its webserver, daemon,
  code servers and runs), and ``--grace`` seconds later SIGKILL if anything of it is left; only then is
  the broker stopped, so no client outlives it and retries a closed port;
- the command ends by itself (the demo is done, ``dagster dev`` failed): the broker is stopped and its
  exit status is this process's;
- the broker ends while the command runs: the command is stopped as above, exit status 1.

A stop by signal that ends every process exits 0.

Two more things ``make dev`` asks of it:

- ``--sample-partitions``: unless ``PLATFORM_PARTITION_START`` is set (in the environment or the
  environment's config file), the daily partitions start at the sample source's first day
  (:func:`platform_devkit.sample.sample_partition_start`), so the UI's partitions are the sample's days;
- ``--offline`` (``make dev OFFLINE=1``): the trade feed, its symbol lookup and the REST Countries API are
  served by the local stand-ins on 127.0.0.1 (ports 8766, 8767 and 8765, or free ones when those are
  taken), in this process, and the command gets their addresses in
  ``PLATFORM_TRADES_WS_URL``, ``PLATFORM_TRADES_LOOKUP_URL`` and ``PLATFORM_COUNTRY_API_URL``: the whole
  trade stream and the countries pull run from the UI with no internet. They stop with the command.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from types import FrameType
from typing import TypeVar

from platform_devkit.kafka_broker import is_live

BOOTSTRAP_SETTING = "PLATFORM_KAFKA_BOOTSTRAP"
PARTITION_START_SETTING = "PLATFORM_PARTITION_START"
WS_URL_SETTING = "PLATFORM_TRADES_WS_URL"
LOOKUP_URL_SETTING = "PLATFORM_TRADES_LOOKUP_URL"
COUNTRY_API_SETTING = "PLATFORM_COUNTRY_API_URL"
# The trade feed stand-in of `make dev OFFLINE=1`: 10 trades a second for about 80 minutes of open feed
# windows (it sends only while a window is connected), then a quiet market. Live: new trade ids and
# send-time stamps, so a window adds trades after the demo's and an earlier session's.
OFFLINE_TRADES = 50_000
# The stand-ins' ports when free (their commands' defaults), so their addresses are the documented ones
STANDIN_PORTS = {WS_URL_SETTING: 8766, LOOKUP_URL_SETTING: 8767, COUNTRY_API_SETTING: 8765}
T = TypeVar("T")
OFFLINE_TRADE_INTERVAL = 0.1
GRACE_SECONDS = 30.0  # what the command gets to shut down (dagster dev waits up to 60 s on each service)
BROKER_GRACE_SECONDS = 10.0
BROKER_READY_SECONDS = 30.0
_POLL = 0.1
_STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)


def _say(message: str) -> None:
    # never in the way of stopping: a closed stderr (the terminal or the pipe gone) must not raise
    with contextlib.suppress(OSError, ValueError):
        print(f"dev: {message}", file=sys.stderr, flush=True)


class _Signals:
    """The first stop signal received, recorded by a handler that does nothing else."""

    def __init__(self) -> None:
        self.received: int | None = None

    def install(self) -> None:
        for signum in _STOP_SIGNALS:
            signal.signal(signum, self._handle)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self.received is None:
            self.received = signum


def _start(command: Sequence[str], env: dict[str, str] | None = None) -> subprocess.Popen:
    # a session of its own: no terminal signal reaches it except through us
    return subprocess.Popen(list(command), env=env, start_new_session=True)


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _signal_group(pgid: int, signum: int) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)


def stop_group(process: subprocess.Popen, signum: int, grace: float) -> int:
    """Send ``signum`` to ``process``'s group, wait ``grace`` seconds for the leader, then SIGKILL the group;
    whatever of the group outlived its leader gets SIGTERM, then SIGKILL. The leader's exit status."""
    pgid = process.pid  # the group leader: started with a session of its own
    if process.poll() is None:
        _signal_group(pgid, signum)
        try:
            process.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            _say(f"pid {process.pid} did not stop within {grace:g} s: killing its process group")
            _signal_group(pgid, signal.SIGKILL)
            process.wait()
    if _group_alive(pgid):  # children the leader left behind
        _signal_group(pgid, signal.SIGTERM)
        deadline = time.monotonic() + min(grace, 5.0)
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(_POLL)
        _signal_group(pgid, signal.SIGKILL)
    return process.returncode


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def _broker_command(kafka_dir: Path, topic: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "platform_devkit.kafka_broker",
        "--address-file",
        str(kafka_dir / "bootstrap"),
        "--pid-file",
        str(kafka_dir / "pid"),
        "--topic",
        topic,
    ]


def _await_broker(broker: subprocess.Popen, kafka_dir: Path, signals: _Signals, timeout: float) -> str | None:
    """The address once ``broker`` published it (its pid file names it, then the address file); the
    address of the live broker it found instead; None when it failed or a stop signal came first."""
    deadline = time.monotonic() + timeout
    while signals.received is None and time.monotonic() < deadline:
        if _read(kafka_dir / "pid") == str(broker.pid):
            address = _read(kafka_dir / "bootstrap")
            if address:
                return address
        if broker.poll() is not None:
            address = _read(kafka_dir / "bootstrap")  # it found a live broker and left it the work
            return address if broker.returncode == 0 and address and is_live(address) else None
        time.sleep(_POLL)
    if signals.received is None:
        _say(f"the Kafka broker published no address within {timeout:g} s")
    return None


def sample_partitions(env: dict[str, str]) -> None:
    """Start the daily partitions at the sample's first day (``env`` gets ``PLATFORM_PARTITION_START``)
    unless a start is set; a source without the sample leaves the default."""
    try:
        from platform_devkit.sample import sample_partition_start

        start = sample_partition_start(env)
    except Exception as exc:  # noqa: BLE001 - an unreadable source must not keep the UI from starting
        _say(f"the sample's first day could not be read ({type(exc).__name__}): {PARTITION_START_SETTING} "
             "keeps its default")  # fmt: skip
        return
    if start is not None:
        env[PARTITION_START_SETTING] = start.isoformat()
        _say(
            f"daily partitions start at {start.isoformat()}, the sample's first day ({PARTITION_START_SETTING})"
        )


def _on_port(start: Callable[[int], T], preferred: int) -> T:
    """``start(preferred)``; when that port is taken (a stand-in of another ``make dev``), ``start(0)``: a
    free port, which the command is given all the same."""
    try:
        return start(preferred)
    except (OSError, RuntimeError):
        return start(0)


@contextlib.contextmanager
def offline_standins(env: dict[str, str]) -> Iterator[None]:
    """The trade feed, symbol lookup and REST Countries stand-ins on 127.0.0.1 (:data:`STANDIN_PORTS`, or free
    ports when those are taken), with ``env`` pointing the settings at them, for as long as the block runs."""
    from platform_devkit import countries_standin
    from platform_devkit.trades_lookup_standin import TradesLookupStandin
    from platform_devkit.trades_standin import TradesStandin

    with contextlib.ExitStack() as stack:
        feed = _on_port(
            lambda port: stack.enter_context(
                TradesStandin(OFFLINE_TRADES, interval=OFFLINE_TRADE_INTERVAL, port=port, live=True)
            ),
            STANDIN_PORTS[WS_URL_SETTING],
        )
        lookup = _on_port(
            lambda port: stack.enter_context(TradesLookupStandin(port=port)),
            STANDIN_PORTS[LOOKUP_URL_SETTING],
        )
        server, countries_url = _on_port(
            lambda port: countries_standin.serve(port=port), STANDIN_PORTS[COUNTRY_API_SETTING]
        )
        stack.callback(server.server_close)
        stack.callback(server.shutdown)
        for setting, url in ((WS_URL_SETTING, feed.url), (LOOKUP_URL_SETTING, lookup.url),
                             (COUNTRY_API_SETTING, countries_url)):  # fmt: skip
            env[setting] = url
            _say(f"offline: {setting}={url} (a local stand-in)")
        yield


def run(
    command: Sequence[str],
    kafka_dir: Path,
    topic: str,
    grace: float = GRACE_SECONDS,
    ready_timeout: float = BROKER_READY_SECONDS,
    *,
    offline: bool = False,
    partitions_from_sample: bool = False,
) -> int:
    """Start the broker (when needed) and ``command``; supervise both until one ends or a stop signal.
    ``offline``: the stand-ins serve the trade feed, its lookup and the countries API (see the module);
    ``partitions_from_sample``: the daily partitions start at the sample's first day unless set."""
    env = dict(os.environ)
    if partitions_from_sample:
        sample_partitions(env)
    with contextlib.ExitStack() as stack:
        if offline:
            try:
                stack.enter_context(offline_standins(env))
            except (OSError, RuntimeError) as exc:
                _say(f"the offline stand-ins could not start: {exc}")
                return 1
        return _supervise(command, kafka_dir, topic, env, grace, ready_timeout)


def _supervise(
    command: Sequence[str],
    kafka_dir: Path,
    topic: str,
    env: dict[str, str],
    grace: float,
    ready_timeout: float,
) -> int:
    signals = _Signals()
    signals.install()
    broker: subprocess.Popen | None = None
    existing = _read(kafka_dir / "bootstrap")
    if env.get(BOOTSTRAP_SETTING):
        _say(f"using the Kafka broker at {env[BOOTSTRAP_SETTING]} ({BOOTSTRAP_SETTING})")
    elif existing and is_live(existing):
        _say(f"using the running Kafka broker at {existing} (from {kafka_dir / 'bootstrap'})")
        env[BOOTSTRAP_SETTING] = existing
    else:
        broker = _start(_broker_command(kafka_dir, topic))
        address = _await_broker(broker, kafka_dir, signals, ready_timeout)
        if broker.poll() is not None:  # it handed over to a live broker, or failed
            broker = None if address else broker
        if address is None:
            if broker is not None:
                stop_group(broker, signal.SIGTERM, BROKER_GRACE_SECONDS)
            return 0 if signals.received is not None else 1
        env[BOOTSTRAP_SETTING] = address

    process = _start(command, env)
    status = 0
    try:
        while signals.received is None:
            if process.poll() is not None:
                status = process.returncode
                break
            if broker is not None and broker.poll() is not None:
                _say(f"the Kafka broker ended (exit status {broker.returncode}): stopping {command[0]}")
                status = 1
                break
            time.sleep(_POLL)
    finally:
        if signals.received is not None:
            _say(f"{signal.Signals(signals.received).name}: stopping {command[0]}, then the Kafka broker")
        stop_group(process, signal.SIGINT, grace)
        if broker is not None:
            stop_group(broker, signal.SIGTERM, BROKER_GRACE_SECONDS)
    return status


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_devkit.dev",
        description="Run a command beside a Kafka broker; stop both cleanly on SIGTERM, SIGINT or SIGHUP.",
    )
    parser.add_argument(
        "--kafka-dir", type=Path, required=True, help="the broker's address and pid files go here"
    )
    parser.add_argument(
        "--topic",
        default=os.environ.get("PLATFORM_TRADES_TOPIC") or "trades",
        help="topic created up front (default: PLATFORM_TRADES_TOPIC, or trades)",
    )
    parser.add_argument(
        "--grace",
        type=float,
        default=GRACE_SECONDS,
        help=f"seconds the command gets to stop before it is killed (default {GRACE_SECONDS:g})",
    )
    parser.add_argument(
        "--offline",
        action="store_true",
        help="serve the trade feed, its symbol lookup and the countries API from local stand-ins on 127.0.0.1",
    )
    parser.add_argument(
        "--sample-partitions",
        action="store_true",
        help=f"start the daily partitions at the sample's first day, unless {PARTITION_START_SETTING} is set",
    )
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (after --)")
    return run(
        command,
        args.kafka_dir,
        args.topic,
        args.grace,
        offline=args.offline,
        partitions_from_sample=args.sample_partitions,
    )


if __name__ == "__main__":
    sys.exit(main())
