"""The audit tables (SQLAlchemy Core) and the values their enumerated columns accept."""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql

JOB_TYPES = ("Batch", "Streaming")
JOB_STATUSES = ("Queued", "Running", "Completed", "Failed", "Canceled")
TASK_STATUSES = ("Running", "Completed", "Failed", "Skipped")
TRIGGERS = ("manual", "schedule", "sensor", "backfill", "history")

# Microsecond timestamps on MySQL/MariaDB (plain DATETIME drops them) and DATETIME2 on SQL Server.
Timestamp = (
    sa.DateTime()
    .with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
    .with_variant(mssql.DATETIME2(), "mssql")
)
# MySQL TEXT stops at 64 KB, too short for stack traces and run config.
LongText = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")

metadata = sa.MetaData()

job_table = sa.Table(
    "Job_Metadata",
    metadata,
    sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("job_name", sa.String(200)),
    sa.Column("job_type", sa.String(16)),
    sa.Column("status", sa.String(16)),
    sa.Column("start_time", Timestamp),
    sa.Column("end_time", Timestamp),
    sa.Column("duration", sa.Double, nullable=True),
    sa.Column("error_message", LongText),
    sa.Column("streaming_source", sa.String(300)),
    sa.Column("micro_batch_id", sa.BigInteger),
    sa.Column("environment", sa.String(16)),
    sa.Column("partition_key", sa.String(200)),
    sa.Column("trigger", sa.String(16)),
    sa.Column("ui_url", sa.String(500)),
    sa.Column("parent_run_id", sa.String(64), nullable=True),
    sa.Column("updated_at", Timestamp),
    sa.UniqueConstraint("run_id", name="uq_job_metadata_run_id"),
)

task_table = sa.Table(
    "Task_Metadata",
    metadata,
    sa.Column("task_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "job_id",
        sa.Integer,
        sa.ForeignKey("Job_Metadata.job_id", name="fk_task_metadata_job"),
        nullable=False,
    ),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("step_key", sa.String(200), nullable=False),
    sa.Column("asset_key", sa.String(300), nullable=False),
    sa.Column("partition_key", sa.String(200)),
    sa.Column("status", sa.String(16)),
    sa.Column("start_time", Timestamp),
    sa.Column("end_time", Timestamp),
    sa.Column("rows_read", sa.BigInteger, nullable=True),
    sa.Column("rows_written", sa.BigInteger, nullable=True),
    sa.Column("delta_version", sa.Integer, nullable=True),
    sa.Column("table_name", sa.String(300), nullable=True),  # <env>.<layer>.<table> of a lake asset
    sa.Column("error_message", LongText),
    sa.UniqueConstraint("run_id", "step_key", "asset_key", name="uq_task_metadata_run_step_asset"),
)

parameter_table = sa.Table(
    "Process_Parameter_Metadata",
    metadata,
    sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "job_id",
        sa.Integer,
        sa.ForeignKey("Job_Metadata.job_id", name="fk_parameter_metadata_job"),
        nullable=False,
    ),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("parameter_name", sa.String(200), nullable=False),
    sa.Column("parameter_value", LongText),
    sa.UniqueConstraint("run_id", "parameter_name", name="uq_parameter_metadata_run_name"),
)

log_table = sa.Table(
    "Metadata_Logs",
    metadata,
    sa.Column("log_id", sa.Integer, primary_key=True, autoincrement=True),
    sa.Column(
        "job_id",
        sa.Integer,
        sa.ForeignKey("Job_Metadata.job_id", name="fk_metadata_logs_job"),
        nullable=False,
    ),
    sa.Column("run_id", sa.String(64), nullable=False),
    sa.Column("event_key", sa.String(200), nullable=False),
    sa.Column("status", sa.String(32)),
    sa.Column("timestamp", Timestamp, nullable=False),
    sa.Column("log_message", LongText),
    sa.UniqueConstraint("run_id", "event_key", name="uq_metadata_logs_run_event"),
)

# One row. ``version`` is the key only because some managed MySQL servers refuse tables without one.
version_table = sa.Table(
    "Audit_Schema_Version",
    metadata,
    sa.Column("version", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("applied_at", Timestamp, nullable=False),
)

TABLE_NAMES = (
    "Job_Metadata",
    "Task_Metadata",
    "Process_Parameter_Metadata",
    "Metadata_Logs",
    "Audit_Schema_Version",
)
assert set(TABLE_NAMES) == set(metadata.tables)
