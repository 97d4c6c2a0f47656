"""Fixtures of the trade stream tests."""

from __future__ import annotations

import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import confluent_kafka
import pytest
import sqlalchemy as sa

from platform_assets.core.sql.engines import engine_for
from platform_assets_tests import kafka_mock
from platform_assets_tests.conftest import POSTGRES_URL, reachable

# the mock cluster and its clients, shared with the other stream tests
bootstrap = kafka_mock.bootstrap
producer = kafka_mock.producer
conf = kafka_mock.conf


@pytest.fixture
def missing_database() -> Iterator[tuple[str, sa.Engine]]:
    if not reachable(POSTGRES_URL):
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    name = f"serving_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    yield name, admin
    url = f"postgresql+psycopg://postgres:s3cret@127.0.0.1:5432/{name}?connect_timeout=3"
    engine_for(url).dispose()
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def serving_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """An empty serving database on each supported backend."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'serving.db'}"
    source = request.getfixturevalue("postgres_source" if request.param == "postgresql" else "mariadb_source")
    if request.param == "postgresql":
        # the fixture's schema first on the search path: the unqualified tables are created there
        return f"{source.url}?options=-csearch_path%3D{source.schema}"
    return source.url


# -- a mock Kafka cluster per test module, and fresh topics on it ---------------------------------------


@pytest.fixture
def consumer(conf: dict) -> Iterator[confluent_kafka.Consumer]:
    c = confluent_kafka.Consumer({**conf, "group.id": "planner"})
    yield c
    c.close()


@pytest.fixture
def topic(producer: confluent_kafka.Producer) -> str:
    """A fresh auto-created topic (the mock gives it 4 partitions), still empty."""
    name = f"trades-{uuid.uuid4().hex[:8]}"
    deadline = time.monotonic() + 10
    while not producer.list_topics(name, timeout=5).topics[name].partitions:
        assert time.monotonic() < deadline, f"topic {name} was not created"
        time.sleep(0.05)
    assert len(producer.list_topics(name, timeout=5).topics[name].partitions) >= 3
    return name
