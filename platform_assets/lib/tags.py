"""Run tags and run configuration shared by several domains."""

# Tags the platform sets on runs (shown in the UI, recorded in the audit tables).
JOB_TYPE_TAG = "platform/job_type"
STREAMING_SOURCE_TAG = "platform/streaming_source"
MICRO_BATCH_TAG = "platform/micro_batch_id"
# A run tag ``platform/parameter.<Name>`` is recorded as the audit parameter ``<Name>`` (e.g. Kafka_Topic)
PARAMETER_TAG_PREFIX = "platform/parameter."
PARENT_RUN_TAG = "platform/parent_run_id"
AUDIT_JOB_ID_TAG = "platform/audit_job_id"
ALERTS_SENT_TAG = "platform/alerts_sent"  # JSON list of the run's delivered alert keys
ALERT_PENDING_TAG = "platform/alert_pending"  # "true" while one of the run's alerts waits for the webhook
LOW_VOLUME_TAG = "platform/low_volume"  # JSON list of the low-volume windows a run recorded (alerts due)
# JSON list of the stream events a run recorded that alert once (a new epoch and what it lost upstream)
STREAM_ALERTS_TAG = "platform/stream_alerts"
# Set on the one run that fails loudly when a real broker's topic turned out to be a new incarnation
STOPPED_TAG = "platform/stream_stopped"

# Dagster's run tags for a partition range executed as one run (what a single-run backfill sets).
ASSET_PARTITION_RANGE_START_TAG = "dagster/asset_partition_range_start"
ASSET_PARTITION_RANGE_END_TAG = "dagster/asset_partition_range_end"


def range_tags(first: str, last: str) -> dict[str, str]:
    """Tags that make one run cover the partitions ``first`` … ``last`` (inclusive)."""
    return {ASSET_PARTITION_RANGE_START_TAG: first, ASSET_PARTITION_RANGE_END_TAG: last}


def console_log_level(level: str) -> dict:
    """Run configuration for the console logger of an in-process run (the demo prints INFO, not DEBUG)."""
    return {"loggers": {"console": {"config": {"log_level": level}}}}
