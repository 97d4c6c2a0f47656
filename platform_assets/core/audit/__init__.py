"""The audit store: a governance log of every job run, batch or streaming, in any SQLAlchemy database.

The layout follows the seed's Azure SQL metadata tables (``Job_Metadata``, ``Task_Metadata``,
``Process_Parameter_Metadata``, ``Metadata_Logs``) so reports written against it keep working. Every
write is an idempotent upsert keyed by the Dagster run id: Dagster retries steps and sensors re-deliver
events, so a write may arrive twice, late or out of order, and must never duplicate a row or move a
status backwards. The audit database is not the data: when it is down, calls raise
:class:`AuditUnavailable` and the caller logs and carries on.

The package, one job per module:

* :mod:`.tables`: the tables and the values their columns accept;
* :mod:`.migrations`: the schema versions and the steps between them;
* :mod:`.values`: caller values turned into column values (types, truncation, redaction);
* :mod:`.connection`: the engine, and database failures turned into :class:`AuditUnavailable`;
* :mod:`.store`: :class:`AuditStore`, the reads and idempotent writes.
"""

from platform_assets.core.audit.connection import AuditUnavailable
from platform_assets.core.audit.migrations import MIGRATIONS, SCHEMA_VERSION
from platform_assets.core.audit.store import AuditStore
from platform_assets.core.audit.tables import (
    JOB_STATUSES,
    JOB_TYPES,
    TABLE_NAMES,
    TASK_STATUSES,
    TRIGGERS,
)
from platform_assets.core.redaction import MASK, redact_parameters, redact_text

__all__ = [
    "JOB_STATUSES",
    "JOB_TYPES",
    "MASK",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "TABLE_NAMES",
    "TASK_STATUSES",
    "TRIGGERS",
    "AuditStore",
    "AuditUnavailable",
    "redact_parameters",
    "redact_text",
]
