"""Reactive trade ingestion: websocket feed to Kafka, symbol lookup, enrichment, serving upserts
and ingestion metrics."""
