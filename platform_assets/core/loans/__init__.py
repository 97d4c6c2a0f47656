"""Seed 000's loan application stream after landing: the message shape and silver (latest event per
application, expectations, quarantine). Bronze is the generic Kafka landing. No Dagster import here."""
