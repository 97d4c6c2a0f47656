"""Kafka clients whose broker is gone log one line per state change, not one per reconnect attempt."""

from __future__ import annotations

import logging
import socket
import subprocess
import sys
import textwrap

from platform_assets.core.streaming.client_log import StateChangeLog, condition

REFUSED = (
    "[thrd:127.0.0.1:9/bootstrap]: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: "
    "Connection refused (after {ms}ms in state CONNECT{suppressed})"
)


def _closed_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def test_clients_at_a_closed_port_log_the_refusal_once():
    """A consumer, a metadata query and a producer, all from client_config, at a closed loopback port for
    about 2 s: librdkafka alone writes some 40 "Connection refused" lines in that time."""
    script = textwrap.dedent(
        f"""
        import logging, time
        from confluent_kafka import Consumer, KafkaException, Producer
        from platform_assets.core.streaming.kafka import client_config, producer_config

        logging.basicConfig(level=logging.INFO, format="LOG %(levelname)s %(message)s")
        address = "127.0.0.1:{_closed_port()}"
        consumer = Consumer(client_config(address, None) | {{"group.id": "g"}})
        consumer.subscribe(["trades"])
        producer = Producer(producer_config(address, None))
        producer.produce("trades", b"x")
        end = time.monotonic() + 2
        while time.monotonic() < end:
            consumer.poll(0.1)
            producer.poll(0)
        try:
            Consumer(client_config(address, None) | {{"group.id": "h"}}).list_topics(timeout=0.5)
        except KafkaException:
            pass
        consumer.close()
        print("done", flush=True)
        """
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout == "done\n", done.stderr[-2000:]
    refused = [line for line in done.stderr.splitlines() if "Connection refused" in line]
    assert 1 <= len(refused) <= 2, done.stderr[-3000:]
    assert refused[0].startswith("LOG ERROR Kafka client FAIL: 127.0.0.1:"), refused


class _Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def test_one_line_per_condition_with_a_reminder_and_changes_at_once(caplog):
    clock = _Clock()
    log = StateChangeLog(logging.getLogger("test.kafka"), reminder=60, clock=clock)
    caplog.set_level(logging.INFO, logger="test.kafka")

    def lines() -> list[str]:
        written = [r.getMessage() for r in caplog.records]
        caplog.clear()
        return written

    for n in range(100):  # 20 a second for 5 s, from several clients
        log.log(
            logging.ERROR,
            "%s [%s] %s",
            "FAIL",
            f"rdkafka#consumer-{n % 3}",
            REFUSED.format(ms=n % 7, suppressed=""),
        )
        clock.now += 0.05
    assert lines() == [
        "Kafka client FAIL: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused"
    ]

    # another condition is a state change: written at once
    log.log(logging.ERROR, "%s [%s] %s", "FAIL", "rdkafka#consumer-1", "1/1 brokers are down")
    assert lines() == ["Kafka client FAIL: 1/1 brokers are down"]

    # the first one still going a minute later: one reminder with what was left out
    clock.now += 60
    log.log(
        logging.ERROR,
        "%s [%s] %s",
        "FAIL",
        "rdkafka#consumer-0",
        REFUSED.format(ms=3, suppressed=", 4 identical error(s) suppressed"),
    )
    assert lines() == [
        "Kafka client FAIL: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused "
        "(99 more in the last 65 s)"
    ]


def test_condition_keeps_what_names_the_problem():
    assert condition("FAIL", REFUSED.format(ms=12, suppressed=", 3 identical error(s) suppressed")) == (
        "FAIL: 127.0.0.1:9/bootstrap: Connect to ipv4#127.0.0.1:9 failed: Connection refused"
    )
    assert condition("SASL", "sasl.password=hunter2 rejected") != condition("SASL", "another")
