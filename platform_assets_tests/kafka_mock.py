"""A mock Kafka cluster per test module (librdkafka's ``test.mock.num.brokers``) and clients of it: the
fixtures the stream tests share; a test folder's conftest imports the ones it uses."""

from __future__ import annotations

from collections.abc import Iterator

import confluent_kafka
import pytest

KAFKA_QUIET = {"log_level": 3}


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
