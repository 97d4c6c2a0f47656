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
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

from platform_devkit.kafka_broker import is_live

BOOTSTRAP_SETTING = "PLATFORM_KAFKA_BOOTSTRAP"
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


def run(
    command: Sequence[str],
    kafka_dir: Path,
    topic: str,
    grace: float = GRACE_SECONDS,
    ready_timeout: float = BROKER_READY_SECONDS,
) -> int:
    """Start the broker (when needed) and ``command``; supervise both until one ends or a stop signal."""
    signals = _Signals()
    signals.install()
    env = dict(os.environ)
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
    parser.add_argument("command", nargs=argparse.REMAINDER, help="-- then the command and its arguments")
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("no command given (after --)")
    return run(command, args.kafka_dir, args.topic, args.grace)


if __name__ == "__main__":
    sys.exit(main())
