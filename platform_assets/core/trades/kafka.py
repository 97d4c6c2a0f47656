"""Moved to :mod:`platform_assets.core.streaming.kafka` (every stream's Kafka clients); this name stays
until its last importers switch."""

from platform_assets.core.streaming.kafka import (
    EmbeddedBroker,
    broker_address_file,
    client_config,
    producer_config,
    running_broker,
)

__all__ = ["EmbeddedBroker", "broker_address_file", "client_config", "producer_config", "running_broker"]
