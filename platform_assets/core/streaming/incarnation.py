"""Which incarnation of a Kafka topic a client is talking to.

Offsets belong to one incarnation of a topic. A topic deleted and created again starts its offsets over;
so does every topic of an embedded broker (librdkafka's mock cluster keeps nothing across restarts). The
identity of an incarnation is:

- on a real broker, the cluster id and the topic id (Kafka's UUID of the topic, new on every creation),
  read with DescribeTopics. A broker that cannot describe topics (an old version, missing ACLs) gives the
  cluster id alone: a recreated topic is then still caught when it is behind the recorded offsets, but
  not once it has grown past them, which docs/streaming.md says;
- on the embedded broker, the mock cluster's id (``mockCluster<hex>``) and a marker topic named with a
  random id, which :func:`mark_embedded` creates when the broker starts. Its topics cannot be described
  (the mock names a controller it does not have), and the cluster id alone is not enough: librdkafka
  derives it from a memory address, which a restart can reuse.

An embedded incarnation may start a new epoch by itself (its predecessor is gone for good, and dev and
demo must just work); a real broker's new incarnation waits for an operator (see :mod:`.position`).

No Dagster import here.
"""

from __future__ import annotations

import logging
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from confluent_kafka import KafkaException, Producer, TopicCollection
from confluent_kafka.admin import AdminClient

from platform_assets.core.audit.values import as_utc
from platform_assets.core.state import StateStore

logger = logging.getLogger(__name__)

EMBEDDED_PREFIX = "embedded:"
# The mock cluster's id, as librdkafka 2.x names it.
_MOCK_CLUSTER_PREFIX = "mockCluster"
# The embedded broker's per-start identity, as a topic name (a topic is all a Kafka client can list).
MARKER_PREFIX = "_embedded_incarnation."
_warned: set[str] = set()


def is_embedded(incarnation: str | None) -> bool:
    """True for an incarnation of the embedded broker, which keeps nothing across restarts."""
    return incarnation is not None and incarnation.startswith(EMBEDDED_PREFIX)


def topic_incarnation(
    conf: Mapping[str, Any], topic: str, cluster_id: str | None, *, timeout: float = 5.0
) -> str | None:
    """The identity of ``topic``'s current incarnation (see the module's notes), or None when the broker
    gives no cluster id and no topic id. ``cluster_id`` comes from the metadata the caller already read.
    """
    if cluster_id is not None and cluster_id.startswith(_MOCK_CLUSTER_PREFIX):
        return f"{EMBEDDED_PREFIX}{cluster_id}:{_marker(conf, timeout)}"
    topic_id = _topic_id(conf, topic, timeout)
    if cluster_id is None and topic_id is None:
        return None
    return f"{cluster_id or '-'}/{topic_id or '-'}"


def mark_embedded(bootstrap: str, timeout: float = 10.0) -> str:
    """Give the embedded broker at ``bootstrap`` its per-start identity (a marker topic); the identity."""
    marker = f"{MARKER_PREFIX}{uuid.uuid4().hex}"
    # The mock cluster creates a topic that a producer's metadata request names.
    Producer({"bootstrap.servers": bootstrap, "log_level": 3}).list_topics(marker, timeout=timeout)
    return marker


def _marker(conf: Mapping[str, Any], timeout: float) -> str:
    """The embedded broker's marker topic; for a mock cluster started without one, its address."""
    cluster = AdminClient(dict(conf)).list_topics(timeout=timeout)
    markers = sorted(t for t in cluster.topics if t.startswith(MARKER_PREFIX))
    if markers:
        return markers[0][len(MARKER_PREFIX) :]
    return ",".join(sorted(f"{b.host}:{b.port}" for b in cluster.brokers.values()))


def _topic_id(conf: Mapping[str, Any], topic: str, timeout: float) -> str | None:
    admin = AdminClient(dict(conf))
    try:
        future = admin.describe_topics(TopicCollection([topic]), request_timeout=timeout)[topic]
        description = future.result(timeout=timeout + 1)
    except (KafkaException, TimeoutError) as exc:
        key = f"{conf.get('bootstrap.servers')}:{topic}"
        if key not in _warned:
            _warned.add(key)
            logger.warning(
                f"topic {topic!r}: the broker did not describe the topic ({exc}); its incarnation is known "
                "by the cluster id only, so a recreated topic is caught only while it is behind the table"
            )
        return None
    topic_id = getattr(description, "topic_id", None)
    return None if topic_id is None else str(topic_id)


# --- an operator's decision ----------------------------------------------------------------------


def accepted_name(app_id: str) -> str:
    return f"{app_id}.accepted_incarnation"


def accepted_incarnation(state: StateStore, app_id: str) -> str | None:
    """The topic incarnation an operator accepted as the start of a new epoch of ``app_id`` (None if none)."""
    entry = state.get(accepted_name(app_id))
    return None if entry is None else entry.value.get("incarnation")


def accept_incarnation(state: StateStore, app_id: str, incarnation: str, now: datetime) -> None:
    """Record that the next plan may start a new epoch on ``incarnation`` (compare-and-set)."""
    name = accepted_name(app_id)
    state.compare_and_set(
        name, state.get(name), {"incarnation": incarnation, "accepted_at": as_utc(now).isoformat()}
    )
