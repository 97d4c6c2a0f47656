"""Reactive trade ingestion (seeds 003 and 000): the feed command today; the Dagster domain (feed job,
micro-batch sensor, enrichment, metrics) builds on ``platform_assets.core.trades``."""
