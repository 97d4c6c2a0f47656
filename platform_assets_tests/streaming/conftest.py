"""Fixtures of the generic stream tests: librdkafka's mock cluster, a fresh topic, a tiny JSON stream."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator

import confluent_kafka
import pytest

from platform_assets.core.streaming import StreamDeclaration, parse_streams

KAFKA_QUIET = {"log_level": 3}

# A stream that is not trades: plain JSON values with two typed columns, a key and one rule.
METERS_YAML = """\
streams:
  - name: meters
    topic: meters
    key: meter
    columns:
      - {name: meter, type: string}
      - {name: reading, type: decimal}
    dedupe_key: [meter]
    rules:
      - {column: meter, check: not_empty}
    bronze_table: bronze/meters
    dead_letter_table: bronze/meters_quarantine
    app_id: bronze_meters
    max_batch_rows: 50
"""


@pytest.fixture
def meters() -> StreamDeclaration:
    return parse_streams(METERS_YAML, "meters.yaml")["meters"]


@pytest.fixture(scope="module")
def bootstrap() -> Iterator[str]:
    # The mock cluster lives as long as this producer does.
    mock = confluent_kafka.Producer({"test.mock.num.brokers": 1, **KAFKA_QUIET})
    yield ",".join(f"{b.host}:{b.port}" for b in mock.list_topics(timeout=10).brokers.values())
    del mock


@pytest.fixture(scope="module")
def producer(bootstrap: str) -> Iterator[confluent_kafka.Producer]:
    p = confluent_kafka.Producer(
        {"bootstrap.servers": bootstrap, "topic.metadata.refresh.interval.ms": 200, **KAFKA_QUIET}
    )
    yield p
    p.close()


@pytest.fixture
def conf(bootstrap: str) -> dict:
    return {"bootstrap.servers": bootstrap, **KAFKA_QUIET}


@pytest.fixture
def topic(producer: confluent_kafka.Producer) -> str:
    """A fresh auto-created topic (the mock gives it 4 partitions), still empty."""
    name = f"meters-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 10
    while not producer.list_topics(name, timeout=5).topics[name].partitions:
        assert time.monotonic() < deadline, f"topic {name} was not created"
        time.sleep(0.05)
    return name
