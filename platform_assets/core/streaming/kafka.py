"""Kafka client settings, and an embedded broker for running without one.

The same settings reach Kafka, Redpanda or Event Hubs' Kafka endpoint: ``PLATFORM_KAFKA_BOOTSTRAP``
names the servers, ``PLATFORM_KAFKA_CONFIG`` (a JSON object, secret) adds anything else librdkafka
accepts, e.g. for Event Hubs::

    {"security.protocol": "SASL_SSL", "sasl.mechanisms": "PLAIN",
     "sasl.username": "$ConnectionString", "sasl.password": "Endpoint=sb://..."}
"""

from __future__ import annotations

import json
import os
import socket
from pathlib import Path
from typing import Any

from confluent_kafka import KafkaException, Producer

from platform_assets.core.streaming.client_log import CLIENT_LOG
from platform_assets.core.streaming.incarnation import mark_embedded

CONFIG_SETTING = "PLATFORM_KAFKA_CONFIG"

# No lost and no doubled messages on producer retries. They are defaults, not overrides: a broker that
# cannot do idempotent production can be told so through PLATFORM_KAFKA_CONFIG; the sink dedupes anyway.
_PRODUCER_DEFAULTS: dict[str, Any] = {"enable.idempotence": True, "acks": "all"}


def client_config(bootstrap: str, extra_json: str | None) -> dict[str, Any]:
    """librdkafka settings for ``bootstrap`` with the JSON object ``extra_json`` merged over them.

    A bad ``extra_json`` raises ValueError naming PLATFORM_KAFKA_CONFIG; the message never repeats the
    value, which usually holds a password.
    """
    config: dict[str, Any] = {"bootstrap.servers": bootstrap, "logger": CLIENT_LOG}
    if not extra_json or not extra_json.strip():
        return config
    try:
        extra = json.loads(extra_json)
    except ValueError as exc:
        # The reason and position only, never the document: it holds the SASL password.
        reason = getattr(exc, "msg", "invalid JSON")
        where = f" at line {exc.lineno} column {exc.colno}" if isinstance(exc, json.JSONDecodeError) else ""
        raise ValueError(f"{CONFIG_SETTING} is not valid JSON: {reason}{where}") from None
    if not isinstance(extra, dict):
        raise ValueError(f"{CONFIG_SETTING} must be a JSON object, got a JSON {type(extra).__name__}")
    return config | extra


def producer_config(bootstrap: str, extra_json: str | None) -> dict[str, Any]:
    """:func:`client_config` for a producer: idempotent, every in-sync replica acknowledges."""
    return _PRODUCER_DEFAULTS | client_config(bootstrap, extra_json)


class EmbeddedBroker:
    """A one-broker Kafka cluster inside this process (librdkafka's mock cluster), for dev and tests.

    It lives as long as the context: it keeps nothing across restarts, so whatever was produced to it is
    gone when the ``with`` block (or the process) ends. Topics are created on first use. Use
    :attr:`bootstrap` as ``bootstrap.servers`` of any client in this process or another one.

        with EmbeddedBroker() as broker:
            run_feed(..., producer_config(broker.bootstrap, None), ...)
    """

    def __init__(self, timeout: float = 10.0):
        self._timeout = timeout
        self._owner: Producer | None = None
        self.bootstrap = ""

    def __enter__(self) -> EmbeddedBroker:
        # The cluster belongs to this client; it stops when the client is destroyed, so keep it.
        # log_level 3 hides its start-up notice, which only says that bootstrap.servers is ignored.
        self._owner = Producer({"test.mock.num.brokers": 1, "log_level": 3})
        brokers = self._owner.list_topics(timeout=self._timeout).brokers.values()
        self.bootstrap = ",".join(f"{b.host}:{b.port}" for b in brokers)
        # Its identity for this start: offsets of a restarted broker must never continue old ones.
        mark_embedded(self.bootstrap, self._timeout)
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._owner = None
        self.bootstrap = ""


# -- the embedded broker of `make dev` / `make demo` -------------------------------------------------

# Where the broker process that `make dev` and `make demo` keep running (platform_devkit.kafka_broker)
# publishes its address, under the environment's data folder; it removes the file when it stops.
BROKER_ADDRESS_FILE = Path("kafka") / "bootstrap"
BROKER_PROBE_TIMEOUT = 1.0


def broker_address_file(data_dir: str | os.PathLike[str]) -> Path:
    """``<data_dir>/kafka/bootstrap``: the address file of the data folder's embedded broker."""
    return Path(data_dir) / BROKER_ADDRESS_FILE


def running_broker(data_dir: str | os.PathLike[str], timeout: float = BROKER_PROBE_TIMEOUT) -> str | None:
    """The address of the embedded broker running for ``data_dir``, or None.

    The address is read from :func:`broker_address_file` and used only if a broker there accepts a
    connection and answers a metadata request within ``timeout`` seconds: a file left behind by a killed
    broker may name a port nobody listens on, or one some other program has taken since.
    """
    try:
        address = broker_address_file(data_dir).read_text().strip()
    except OSError:
        return None
    return address if address and _answers(address, timeout) else None


def _answers(address: str, timeout: float) -> bool:
    host, _, port = address.split(",")[0].strip().rpartition(":")
    try:
        with socket.create_connection((host.strip("[]"), int(port)), timeout=timeout):
            pass
    except (OSError, ValueError):
        return False
    # A dead or foreign address is an answer, not an error: keep librdkafka's own logging quiet.
    client = Producer({"bootstrap.servers": address, "log_level": 0})
    try:
        client.list_topics(timeout=timeout)
    except KafkaException:
        return False
    return True
