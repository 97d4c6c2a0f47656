"""Resources of the trade stream: the Kafka topic with its feed and lookup, and the serving database."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from dagster import ConfigurableResource

from platform_assets.core.errors import ConfigurationError
from platform_assets.core.streaming.kafka import client_config, producer_config
from platform_assets.core.trades.landing import TRADES
from platform_assets.core.trades.serving import ServingStore
from platform_assets.lib.resources import secret
from platform_assets.settings import Settings


class KafkaNotConfigured(ConfigurationError, RuntimeError):
    """No broker to talk to: the stream cannot run. Not retryable: set PLATFORM_KAFKA_BOOTSTRAP (or start
    the embedded broker). Raised only by this resource, so it lives beside it."""


class TradeStreamResource(ConfigurableResource):
    """Where trades come from (websocket), go through (Kafka topic) and are looked up (REST)."""

    kafka_bootstrap: str | None = None
    """Bootstrap servers; none means the embedded broker is not running (``make dev`` starts one)."""
    kafka_config: str | None = None
    """Extra librdkafka settings as a JSON object (SASL credentials...): a secret."""
    topic: str = "trades"
    ws_url: str
    lookup_url: str
    lookup_timeout: float = 10.0
    lookup_attempts: int = 4
    max_batch_rows: int = 100_000
    """The most messages one micro-batch lands (bounds a run's memory when it catches up)."""
    allowed_latency_seconds: int = 30
    """How long a pending message may wait before a micro-batch starts for it (0: at once). A batch also
    starts as soon as ``max_batch_rows`` messages are pending."""
    read_timeout: float = 60.0
    """Seconds a micro-batch run waits for the broker to deliver its planned offsets."""

    @property
    def app_id(self) -> str:
        """The identity of the landing stream in the bronze table's app transactions: the declaration's
        (streams.yaml's ``app_id``) for the topic landed from."""
        return TRADES.app_id_for(self.topic)

    @property
    def streaming_source(self) -> str:
        return f"Kafka:{self.topic}"

    def _bootstrap(self) -> str:
        if not self.kafka_bootstrap:
            raise KafkaNotConfigured(
                "PLATFORM_KAFKA_BOOTSTRAP is not set: point it at a Kafka broker, or run `make dev` / "
                "`make demo`, which start an embedded one"
            )
        return self.kafka_bootstrap

    def client_conf(self) -> dict[str, Any]:
        return client_config(self._bootstrap(), self.kafka_config)

    def producer_conf(self) -> dict[str, Any]:
        return producer_config(self._bootstrap(), self.kafka_config)


class ServingResource(ConfigurableResource):
    """The serving database (``Enriched_Trades``, ``Ingestion_Metrics``) and the low-volume threshold."""

    url: str
    min_ingested_rows: int = 1
    dashboard_dir: str
    """A local folder: the dashboard page, regenerated after every enrichment run."""

    def store(self) -> ServingStore:
        return ServingStore(self.url)

    def dashboard_path(self) -> Path:
        return Path(self.dashboard_dir)


def trade_resources(settings: Settings) -> dict[str, ConfigurableResource]:
    return {
        "trade_stream": TradeStreamResource(
            kafka_bootstrap=settings.kafka_bootstrap,
            kafka_config=secret(settings, "kafka_config"),
            topic=settings.trades_topic,
            ws_url=settings.trades_ws_url,
            lookup_url=settings.trades_lookup_url,
            max_batch_rows=settings.trades_max_batch_rows,
            allowed_latency_seconds=settings.trades_allowed_latency,
        ),
        "serving": ServingResource(
            url=secret(settings, "serving_url"),
            min_ingested_rows=settings.min_ingested_rows,
            dashboard_dir=str(settings.data_dir / "dashboard" / settings.env),
        ),
    }
