"""A Kafka broker of its own process for ``make dev``, ``make demo`` and tests: librdkafka's mock cluster.

:class:`~platform_assets.core.streaming.kafka.EmbeddedBroker` lives inside one process and dies with it. The
Dagster webserver, the daemon, each run worker and the feed are separate processes, so they need a broker
that outlives every one of them: this process holds one and publishes its address in a file::

    python -m platform_devkit.kafka_broker --address-file data/kafka/bootstrap --topic trades &
    export PLATFORM_KAFKA_BOOTSTRAP=$(python -m platform_devkit.kafka_broker \\
        --address-file data/kafka/bootstrap --print-address)

The address file appears (atomically) only once the broker answers a metadata request, and is removed
when SIGTERM, SIGHUP or SIGINT stops the broker (SIGINT only if it was not ignored at start: a broker
started with ``&`` by a script outlives Ctrl+C, and the script stops it). A start whose address file already names a live broker
prints that address and exits without starting a second one, so ``make dev`` twice shares one broker.
Everything produced to the broker is in memory and gone when it stops.

What the mock cluster (librdkafka 2.x) does not do, and how this module copes:

- It has no CreateTopics handler, and its metadata names controller 0 while its only broker is 1, so
  ``AdminClient.create_topics`` waits for a controller until it times out. Topics are created instead by
  asking for their metadata: the mock creates any topic a metadata or produce request names.
- Such a topic gets the mock's default of 4 partitions (replication factor 1). Choosing another count
  needs the C function ``rd_kafka_mock_topic_create``, which confluent-kafka does not wrap;
  ``--partitions N`` reaches it through ctypes in the librdkafka that confluent-kafka loads
  (:class:`NativeMockCluster`). A topic created later by a client still gets 4.
- A consumer group's first rebalance waits 3 s (the mock's group initial rebalance delay), so a
  subscribing consumer sees nothing for 3 s; tests that need speed assign partitions instead.
"""

from __future__ import annotations

import argparse
import contextlib
import ctypes
import ctypes.util
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from types import FrameType

import confluent_kafka
from confluent_kafka import KafkaException, Producer

from platform_assets.core.streaming.incarnation import mark_embedded
from platform_assets.core.streaming.kafka import EmbeddedBroker

MOCK_DEFAULT_PARTITIONS = 4  # librdkafka's mock cluster: defaults.partition_cnt
LIVE_TIMEOUT = 1.0  # how long an existing broker gets to prove it is alive
# Probing clients expect failures (a dead address is an answer, not an error): keep librdkafka quiet.
_QUIET = {"log_level": 0}


# -- probing and reading an address ---------------------------------------------------------------


def _host_port(address: str) -> tuple[str, int]:
    first = address.split(",")[0].strip()
    host, _, port = first.rpartition(":")
    return host.strip("[]"), int(port)


def _connectable(address: str, timeout: float) -> bool:
    try:
        with socket.create_connection(_host_port(address), timeout=timeout):
            return True
    except (OSError, ValueError):
        return False


def is_live(address: str, timeout: float = LIVE_TIMEOUT) -> bool:
    """True when a Kafka broker at ``address`` accepts a connection and answers metadata within ``timeout``.

    The metadata request matters: an address file left by a killed broker may name a port that some other
    program has taken since.
    """
    if not address or not _connectable(address, timeout):
        return False
    client = Producer({"bootstrap.servers": address, **_QUIET})
    try:
        client.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True


def _read(path: Path) -> str:
    try:
        return path.read_text().strip()
    except OSError:
        return ""


def read_address(path: str | os.PathLike[str], timeout: float = 30.0) -> str:
    """The bootstrap address in ``path`` once it names a broker that accepts connections.

    Waits up to ``timeout`` seconds, so it can be called right after starting the broker in the
    background. A file naming a dead broker (left by a killed one) counts as not there yet: the starting
    broker replaces it. Raises TimeoutError when no live address shows up in time.
    """
    path = Path(path)
    deadline = time.monotonic() + timeout
    while True:
        address = _read(path)
        # Only connectability: the broker writes the file after it answered metadata.
        if address and _connectable(address, min(LIVE_TIMEOUT, max(0.05, deadline - time.monotonic()))):
            return address
        if time.monotonic() >= deadline:
            state = f"names {address}, which does not answer" if address else "does not exist or is empty"
            raise TimeoutError(f"no Kafka broker address within {timeout:g} s: {path} {state}")
        time.sleep(0.05)


# -- the clusters ---------------------------------------------------------------------------------


def _librdkafka() -> ctypes.CDLL:
    """The librdkafka that confluent-kafka uses: bundled in its wheels, else the system's."""
    package = Path(confluent_kafka.__file__).parent
    bundled = sorted(
        [
            *package.parent.glob("confluent_kafka.libs/librdkafka*.so*"),  # Linux wheels
            *package.glob(".dylibs/librdkafka*.dylib"),  # macOS wheels
            *package.glob("librdkafka*"),
        ]
    )
    name = str(bundled[0]) if bundled else ctypes.util.find_library("rdkafka")
    if not name:
        raise RuntimeError("cannot find librdkafka (needed for --partitions)")
    lib = ctypes.CDLL(name)
    c_void, c_char, c_int = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int
    signatures = {
        "rd_kafka_conf_new": ([], c_void),
        "rd_kafka_conf_set": ([c_void, c_char, c_char, c_char, ctypes.c_size_t], c_int),
        "rd_kafka_conf_destroy": ([c_void], None),
        "rd_kafka_new": ([c_int, c_void, c_char, ctypes.c_size_t], c_void),
        "rd_kafka_destroy": ([c_void], None),
        "rd_kafka_handle_mock_cluster": ([c_void], c_void),
        "rd_kafka_mock_cluster_bootstraps": ([c_void], c_char),
        "rd_kafka_mock_topic_create": ([c_void, c_char, c_int, c_int], c_int),
        "rd_kafka_err2str": ([c_int], c_char),
    }
    try:
        for function, (argtypes, restype) in signatures.items():
            getattr(lib, function).argtypes = argtypes
            getattr(lib, function).restype = restype
    except AttributeError as exc:
        raise RuntimeError(f"{name} has no mock cluster API (needed for --partitions): {exc}") from None
    return lib


class NativeMockCluster:
    """The same one-broker mock cluster as EmbeddedBroker, made through librdkafka's C API (ctypes).

    It exists for the one thing the Python client cannot do: :meth:`create_topic` with a chosen number of
    partitions (``rd_kafka_mock_topic_create``).
    """

    _PRODUCER = 0  # rd_kafka_type_t RD_KAFKA_PRODUCER
    _TOPIC_ALREADY_EXISTS = 36

    def __init__(self) -> None:
        self._lib: ctypes.CDLL | None = None
        self._rk: int | None = None
        self._mock: int | None = None
        self.bootstrap = ""

    def __enter__(self) -> NativeMockCluster:
        lib = self._lib = _librdkafka()
        errstr = ctypes.create_string_buffer(512)
        conf = lib.rd_kafka_conf_new()
        for key, value in {"test.mock.num.brokers": "1", "log_level": "3"}.items():
            if lib.rd_kafka_conf_set(conf, key.encode(), value.encode(), errstr, len(errstr)) != 0:
                lib.rd_kafka_conf_destroy(conf)
                raise RuntimeError(f"librdkafka refused {key}={value}: {errstr.value.decode()}")
        self._rk = lib.rd_kafka_new(self._PRODUCER, conf, errstr, len(errstr))  # owns conf from here
        if not self._rk:
            raise RuntimeError(f"librdkafka could not start a mock cluster: {errstr.value.decode()}")
        self._mock = lib.rd_kafka_handle_mock_cluster(self._rk)
        self.bootstrap = lib.rd_kafka_mock_cluster_bootstraps(self._mock).decode()
        return self

    def create_topic(self, name: str, partitions: int) -> None:
        """Create ``name`` with ``partitions`` partitions; an existing topic keeps its count."""
        assert self._lib is not None and self._mock is not None, "use inside the with block"
        err = self._lib.rd_kafka_mock_topic_create(self._mock, name.encode(), partitions, 1)
        if err not in (0, self._TOPIC_ALREADY_EXISTS):
            raise RuntimeError(f"cannot create topic {name!r}: {self._lib.rd_kafka_err2str(err).decode()}")

    def __exit__(self, *exc_info: object) -> None:
        if self._lib is not None and self._rk:
            self._lib.rd_kafka_destroy(self._rk)  # stops the mock cluster with its owner
        self._rk = self._mock = None
        self.bootstrap = ""


def await_topics(bootstrap: str, topics: Sequence[str], timeout: float = 10.0) -> dict[str, int]:
    """Ask a fresh client for the metadata of ``topics`` until each has partitions; ``{topic: count}``.

    A fresh client over TCP, not the cluster's owner, so success also proves that other processes can
    reach the address. On the mock cluster the request creates missing topics.
    """
    client = Producer({"bootstrap.servers": bootstrap, **_QUIET})
    deadline = time.monotonic() + timeout
    counts: dict[str, int] = {}
    problem = "no answer"
    while True:
        try:
            for topic in topics:
                if topic not in counts:
                    metadata = client.list_topics(topic, timeout=max(0.1, deadline - time.monotonic()))
                    found = metadata.topics.get(topic)
                    if found is not None and found.error is None and found.partitions:
                        counts[topic] = len(found.partitions)
                    else:
                        problem = f"topic {topic!r}: {found.error if found is not None else 'not listed'}"
            if len(counts) == len(topics):
                # Even with no topics, the loop only ends once a metadata request was answered.
                client.list_topics(timeout=max(0.1, deadline - time.monotonic()))
                return counts
        except KafkaException as exc:
            problem = str(exc.args[0] if exc.args else exc)
        if time.monotonic() >= deadline:
            raise RuntimeError(f"the broker at {bootstrap} did not answer within {timeout:g} s: {problem}")
        time.sleep(0.05)


# -- the process ----------------------------------------------------------------------------------


def _write_atomically(path: Path, text: str) -> None:
    """Readers see no file or the whole text, never a part of it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_text(text)
    os.replace(temporary, path)


def _remove_if_holds(path: Path | None, text: str) -> None:
    """Remove ``path`` unless it now belongs to another broker (it holds something else)."""
    if path is not None and _read(path) == text:
        with contextlib.suppress(OSError):
            path.unlink()


def _stop_on_signals(stop: threading.Event) -> None:
    def handler(signum: int, frame: FrameType | None) -> None:
        stop.set()

    for signum in (signal.SIGTERM, signal.SIGHUP, signal.SIGINT):
        # Started with `&` by a non-interactive shell, SIGINT arrives ignored: then Ctrl+C is meant for
        # the foreground command (dagster dev), which may still need the broker while it shuts down;
        # whoever started this process stops it with SIGTERM.
        if signal.getsignal(signum) is not signal.SIG_IGN:
            signal.signal(signum, handler)


def run(
    address_file: Path,
    pid_file: Path | None = None,
    topics: Sequence[str] = (),
    partitions: int | None = None,
    ready_timeout: float = 10.0,
) -> int:
    """Serve until a stop signal, or reuse a live broker named by ``address_file``; the exit status."""
    existing = _read(address_file)
    if existing and is_live(existing):
        print(f"kafka broker already running at {existing} (from {address_file})", flush=True)
        return 0
    stop = threading.Event()
    _stop_on_signals(stop)
    with contextlib.ExitStack() as stack:
        if partitions is None:
            # The project's own embedded broker; topics get the mock's default partition count.
            bootstrap = stack.enter_context(EmbeddedBroker(ready_timeout)).bootstrap
        else:
            native = stack.enter_context(NativeMockCluster())
            for topic in topics:
                native.create_topic(topic, partitions)
            bootstrap = native.bootstrap
            mark_embedded(bootstrap, ready_timeout)  # EmbeddedBroker does this itself
        counts = await_topics(bootstrap, topics, ready_timeout)
        pid = str(os.getpid())
        if pid_file is not None:
            _write_atomically(pid_file, pid)
        _write_atomically(address_file, bootstrap)  # last: it tells the others we are ready
        described = ", ".join(f"{topic} ({count} partitions)" for topic, count in counts.items())
        print(
            f"kafka broker (librdkafka mock cluster, in memory) at {bootstrap}, pid {pid}"
            f"{', topics ' + described if described else ''}; SIGTERM stops it",
            flush=True,
        )
        try:
            while not stop.wait(1.0):
                pass
        finally:
            _remove_if_holds(address_file, bootstrap)
            _remove_if_holds(pid_file, pid)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_devkit.kafka_broker", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--address-file", type=Path, required=True, help="where the bootstrap address goes")
    parser.add_argument("--pid-file", type=Path, default=None, help="where this process's id goes")
    parser.add_argument(
        "--topic", dest="topics", action="append", default=[], help="a topic to create up front (repeatable)"
    )
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help=f"partitions of each --topic (default: the mock cluster's {MOCK_DEFAULT_PARTITIONS})",
    )
    parser.add_argument(
        "--print-address",
        action="store_true",
        help="start nothing: wait for the address file to name a live broker and print the address",
    )
    parser.add_argument("--timeout", type=float, default=30.0, help="seconds --print-address waits")
    args = parser.parse_args(argv)
    if args.partitions is not None and args.partitions < 1:
        parser.error("--partitions must be at least 1")
    if args.print_address:
        try:
            print(read_address(args.address_file, args.timeout))
        except TimeoutError as exc:
            print(exc, file=sys.stderr)
            return 1
        return 0
    try:
        return run(args.address_file, args.pid_file, args.topics, args.partitions)
    except (RuntimeError, KafkaException) as exc:
        print(f"kafka broker could not start: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
