"""The housekeeping part of the code location: ``prune_run_history_job`` and its daily schedule.

The job deletes finished runs older than PLATFORM_RUN_RETENTION_DAYS (default 7; 0 keeps every run) of
the trade stream's micro-batch job, or of every job with PLATFORM_RUN_RETENTION_SCOPE=all, as
:mod:`platform_assets.core.run_retention` decides, and reports what it deleted and kept as metadata.
The audit tables are not touched: they are the long-term record of every run.
"""

# No `from __future__ import annotations`: Dagster inspects the op's real `config` annotation.
from dagster import (
    Config,
    DefaultScheduleStatus,
    Definitions,
    MetadataValue,
    OpExecutionContext,
    Output,
    RunRequest,
    ScheduleEvaluationContext,
    SkipReason,
    definitions,
    job,
    op,
    schedule,
)
from pydantic import Field

from platform_assets.core.run_retention import RetentionPolicy
from platform_assets.defs.housekeeping.run_history import PruneReport, audited_until, prune_run_history
from platform_assets.defs.trades.sensors import MICRO_BATCH_JOB
from platform_assets.lib.active_settings import active_settings
from platform_assets.lib.tags import ALERT_PENDING_TAG, MICRO_BATCH_TAG, STREAMING_SOURCE_TAG
from platform_assets.settings import Settings

PRUNE_JOB = "prune_run_history_job"
PRUNE_SCHEDULE = "prune_run_history_daily"
# After the medallion's nightly run (02:00 UTC), when the history is quiet but for the stream.
PRUNE_CRON = "30 3 * * *"


def retention_policy(settings: Settings) -> RetentionPolicy:
    return RetentionPolicy(
        days=settings.run_retention_days,
        scope=settings.run_retention_scope,
        stream_job=MICRO_BATCH_JOB,
        stream_tag=STREAMING_SOURCE_TAG,
        batch_tag=MICRO_BATCH_TAG,
        pending_alert_tag=ALERT_PENDING_TAG,
    )


class PruneConfig(Config):
    dry_run: bool = Field(default=False, description="Count the runs that would be deleted; delete none.")


def report_metadata(report: PruneReport, policy: RetentionPolicy) -> dict:
    bound = report.deletable_before
    return {
        "retention_days": MetadataValue.int(policy.days),
        "scope": policy.scope,
        "dry_run": MetadataValue.bool(report.dry_run),
        "deletable_before": MetadataValue.timestamp(bound) if bound else "nothing is deletable",
        "runs_examined": MetadataValue.int(report.examined),
        "runs_deleted": MetadataValue.int(report.deleted),
        "event_log_files_removed": MetadataValue.int(report.files_removed),
        "runs_kept": MetadataValue.json(dict(sorted(report.kept.items()))),
    }


def build_housekeeping_definitions(settings: Settings) -> Definitions:
    policy = retention_policy(settings)

    @op(
        name="prune_run_history",
        description="Deletes finished runs past their retention (record, tags, event log, captured logs).",
    )
    def prune_run_history_op(context: OpExecutionContext, config: PruneConfig) -> Output[None]:
        report = prune_run_history(
            context.instance,
            policy,
            audited=audited_until(context.instance),
            dry_run=config.dry_run,
            log=context.log.info,
        )
        context.log.info(report.summary())
        return Output(None, metadata=report_metadata(report, policy))

    @job(
        name=PRUNE_JOB,
        description=f"Deletes finished runs older than {policy.days} day(s) "
        f"({'the trade stream' if policy.scope == 'stream' else 'every job'}'s) from Dagster's run "
        "history, once the audit trail holds them; never an unfinished run, the newest run of a job or "
        "the run of an asset's latest event.",
    )
    def prune_run_history_job():
        prune_run_history_op()

    @schedule(
        name=PRUNE_SCHEDULE,
        job=prune_run_history_job,
        cron_schedule=PRUNE_CRON,
        execution_timezone="UTC",
        default_status=DefaultScheduleStatus.RUNNING,
        description="Every day at 03:30 UTC: prune the run history (PLATFORM_RUN_RETENTION_DAYS).",
    )
    def prune_run_history_daily(context: ScheduleEvaluationContext):
        if policy.keeps_everything:
            return SkipReason("PLATFORM_RUN_RETENTION_DAYS is 0: the run history is kept for ever")
        return RunRequest()

    return Definitions(jobs=[prune_run_history_job], schedules=[prune_run_history_daily])


@definitions
def defs() -> Definitions:
    """This folder's part of the code location, as ``load_from_defs_folder`` takes it: built from the
    settings of the load in progress (:mod:`platform_assets.lib.active_settings`)."""
    return build_housekeeping_definitions(active_settings())
