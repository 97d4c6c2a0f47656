"""The loan application stream's resource: the broker, the topic and the stream's declaration."""

from __future__ import annotations

from typing import Any

from dagster import ConfigurableResource

from platform_assets.core.errors import ConfigurationError
from platform_assets.core.loans.events import DEFAULT_TOPIC, TABLE
from platform_assets.core.streaming import StreamDeclaration, stream_declaration
from platform_assets.core.streaming.kafka import client_config, producer_config
from platform_assets.lib.micro_batches import broker_address
from platform_assets.lib.resources import secret
from platform_assets.settings import Settings


class LoanStreamResource(ConfigurableResource):
    """Where loan application events come from (the Kafka topic) and how they are batched."""

    kafka_bootstrap: str | None = None
    """Bootstrap servers; none means no broker is running (``make dev`` and ``make demo`` start one)."""
    kafka_config: str | None = None
    """Extra librdkafka settings as a JSON object (SASL credentials...): a secret."""
    topic: str = DEFAULT_TOPIC
    stream: str = TABLE
    """The stream's declaration in streams.yaml (columns, rules, tables, batching)."""
    max_batch_rows: int | None = None
    """The most messages one micro-batch lands; none: the declaration's ``max_batch_rows``."""
    allowed_latency: float | None = None
    """Seconds a pending message may wait before a micro-batch starts for it; none: the declaration's."""
    read_timeout: float = 60.0
    """Seconds a micro-batch run waits for the broker to deliver its planned offsets."""

    def declaration(self) -> StreamDeclaration:
        return stream_declaration(self.stream)

    @property
    def batch_cap(self) -> int:
        return self.max_batch_rows or self.declaration().max_batch_rows

    @property
    def app_id(self) -> str:
        """The landing's app transaction id for the topic landed from (streams.yaml's ``app_id``)."""
        return self.declaration().app_id_for(self.topic)

    @property
    def broker(self) -> str:
        """The bootstrap servers as ``host:port`` only (what the audit records)."""
        return broker_address(self.kafka_bootstrap or "")

    def client_conf(self) -> dict[str, Any]:
        if not self.kafka_bootstrap:
            raise ConfigurationError(
                "PLATFORM_KAFKA_BOOTSTRAP is not set: point it at a Kafka broker, or run `make dev` / "
                "`make demo`, which start an embedded one"
            )
        return client_config(self.kafka_bootstrap, self.kafka_config)

    def producer_conf(self) -> dict[str, Any]:
        return producer_config(self.client_conf()["bootstrap.servers"], self.kafka_config)


def loan_resources(
    settings: Settings, *, max_batch_rows: int | None = None, allowed_latency: float | None = None
) -> dict[str, ConfigurableResource]:
    """The stream's resource from the settings; ``max_batch_rows`` and ``allowed_latency`` override the
    declaration's batching (the demo and tests land small batches at once)."""
    return {
        "loan_stream": LoanStreamResource(
            kafka_bootstrap=settings.kafka_bootstrap,
            kafka_config=secret(settings, "kafka_config"),
            topic=settings.loan_topic,  # PLATFORM_LOAN_TOPIC (streams.yaml's topic is its default)
            max_batch_rows=max_batch_rows,
            allowed_latency=allowed_latency,
        )
    }
