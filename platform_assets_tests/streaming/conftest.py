"""Fixtures of the generic stream tests: librdkafka's mock cluster, a fresh topic, a tiny JSON stream."""

from __future__ import annotations

import time
import uuid

import confluent_kafka
import pytest

from platform_assets.core.streaming import StreamDeclaration, parse_streams
from platform_assets_tests import kafka_mock

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


# the mock cluster and its clients, shared with the other stream tests
bootstrap = kafka_mock.bootstrap
producer = kafka_mock.producer
conf = kafka_mock.conf


@pytest.fixture
def meters() -> StreamDeclaration:
    return parse_streams(METERS_YAML, "meters.yaml")["meters"]


@pytest.fixture
def topic(producer: confluent_kafka.Producer) -> str:
    """A fresh auto-created topic (the mock gives it 4 partitions), still empty."""
    name = f"meters-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 10
    while not producer.list_topics(name, timeout=5).topics[name].partitions:
        assert time.monotonic() < deadline, f"topic {name} was not created"
        time.sleep(0.05)
    return name
