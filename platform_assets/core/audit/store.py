"""AuditStore: idempotent writes and plain reads of the audit tables, keyed by the Dagster run id.

A write may arrive twice, late or out of order (Dagster retries steps, sensors re-deliver events), so
every write is an upsert that never duplicates a row and never moves a status backwards.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import suppress
from typing import Any

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from platform_assets.core.audit.connection import (
    AuditUnavailable,
    audit_engine,
    redacted_url,
    unavailable_as_error,
)
from platform_assets.core.audit.migrations import upgrade
from platform_assets.core.audit.tables import (
    JOB_STATUSES,
    JOB_TYPES,
    TASK_STATUSES,
    TRIGGERS,
    job_table,
    log_table,
    metadata,
    parameter_table,
    task_table,
)
from platform_assets.core.audit.values import (
    MAX_TEXT,
    as_utc,
    checked_key,
    clean_fields,
    duration_seconds,
)
from platform_assets.core.redaction import redact_parameters, redact_text
from platform_assets.core.sql.drift import table_drift
from platform_assets.core.sql.engines import utc_now

# A status only replaces one of equal or lower rank; terminal statuses share the top rank, so the last
# terminal report wins but a late "Running" never reopens a finished run.
_JOB_RANK = {"Queued": 0, "Running": 1, "Completed": 2, "Failed": 2, "Canceled": 2}
_TASK_RANK = {"Running": 0, "Completed": 1, "Failed": 1, "Skipped": 1}

_JOB_FIELDS = {
    "job_name", "job_type", "status", "start_time", "end_time", "error_message", "streaming_source",
    "micro_batch_id", "environment", "partition_key", "trigger", "ui_url", "parent_run_id",
}  # fmt: skip
_TASK_FIELDS = {
    "partition_key", "status", "start_time", "end_time", "rows_read", "rows_written", "delta_version",
    "error_message", "table_name",
}  # fmt: skip
_JOB_CHOICES = {"job_type": JOB_TYPES, "status": JOB_STATUSES, "trigger": TRIGGERS}
_TASK_CHOICES = {"status": TASK_STATUSES}
_SETUP_ATTEMPTS = 5
_WRITE_ATTEMPTS = 3
_PG_LOCK_KEY = 0x6175_6469_7400  # "audit": serialises concurrent setup() on PostgreSQL


def _inserted_id(result: sa.CursorResult) -> int:
    """The generated key of the one row an INSERT wrote."""
    key = result.inserted_primary_key
    if key is None:  # only a statement other than a single-row INSERT has none
        raise RuntimeError("the INSERT reported no generated key")
    return key[0]


class AuditStore:
    """Idempotent audit writes for job runs, their tasks, parameters and log events.

    Writes run :meth:`setup` once per store first (a no-op read of the version when the schema is
    current), so a store created while the database was down starts working when it is back.
    """

    def __init__(self, url: str):
        self.url = url
        self.engine = audit_engine(url)
        self._ready = False

    def __repr__(self) -> str:
        return f"AuditStore({redacted_url(self.url)!r})"

    # -- schema --

    def setup(self) -> int:
        """Create missing tables and migrate an older schema to the current version; the version.

        Safe to run twice or from several processes at once: PostgreSQL and MySQL serialise it with an
        advisory lock, and a lost race elsewhere (e.g. SQLite's "table already exists") is retried from
        the version the winner left. A database at a newer version than this code is left alone.
        """
        with unavailable_as_error(self.url):
            for attempt in range(1, _SETUP_ATTEMPTS + 1):
                with self.engine.connect() as conn:  # a dead server fails here, without retries
                    try:
                        version = self._upgrade_locked(conn)
                    except sa_exc.DBAPIError as exc:
                        if attempt == _SETUP_ATTEMPTS or exc.connection_invalidated:
                            raise
                    else:
                        self._ready = True
                        return version
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def drift(self) -> dict[str, list[str]]:
        """How the audit tables differ from their declaration (empty: as declared), e.g. a column dropped
        by hand after the migrations ran; they are never changed here."""
        with unavailable_as_error(self.url):
            return table_drift(self.engine, metadata.sorted_tables)

    def _upgrade_locked(self, conn: sa.Connection) -> int:
        locking_mysql = conn.dialect.name in ("mysql", "mariadb")
        lock_name = sa.literal_column("LEFT(CONCAT('platform_audit_setup:', COALESCE(DATABASE(), '')), 64)")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
                elif locking_mysql:
                    if conn.execute(sa.select(sa.func.get_lock(lock_name, 60))).scalar() != 1:
                        raise AuditUnavailable(
                            f"audit setup on {redacted_url(self.url)} waited 60 s for another setup"
                        )
                return upgrade(conn)
        finally:
            if locking_mysql:
                with suppress(sa_exc.DBAPIError):
                    conn.execute(sa.select(sa.func.release_lock(lock_name)))
                    conn.commit()

    # -- writes --

    def upsert_job(self, run_id: str, **fields: Any) -> int:
        """Insert or update the run's row; returns its ``job_id``.

        Fields given as None keep the stored value; a status never moves backwards (a late ``Running``
        does not reopen a ``Completed`` run, while a terminal status replaces ``Running``); ``duration``
        is recomputed whenever both times are known.
        """
        run_id = checked_key("run_id", run_id, 64)
        values = clean_fields(job_table, fields, _JOB_FIELDS, _JOB_CHOICES)
        with unavailable_as_error(self.url):
            self._ensure_setup()
            return self._retry_conflicts(lambda conn: self._upsert_job(conn, run_id, values))

    def _upsert_job(self, conn: sa.Connection, run_id: str, values: dict[str, Any]) -> int:
        # Update first: the UPDATE takes the row (or SQLite's database) write lock, so the read of the
        # times that follows sees what this transaction will commit against.
        assignments = dict(values, updated_at=utc_now())
        if "status" in values:
            assignments["status"] = _status_update(job_table.c.status, values["status"], _JOB_RANK)
        matched = conn.execute(
            job_table.update().where(job_table.c.run_id == run_id).values(assignments)
        ).rowcount
        if not matched:
            row = dict(values, run_id=run_id, updated_at=assignments["updated_at"])
            row["duration"] = duration_seconds(values.get("start_time"), values.get("end_time"))
            return _inserted_id(conn.execute(job_table.insert().values(row)))
        row = conn.execute(
            sa.select(
                job_table.c.job_id, job_table.c.start_time, job_table.c.end_time, job_table.c.duration
            ).where(job_table.c.run_id == run_id)
        ).one()
        duration = duration_seconds(row.start_time, row.end_time)
        if duration is not None and duration != row.duration:
            conn.execute(job_table.update().where(job_table.c.job_id == row.job_id).values(duration=duration))
        return row.job_id

    def upsert_task(self, run_id: str, step_key: str, asset_key: str | None, **fields: Any) -> int:
        """Insert or update one step's row for one asset (same rules as :meth:`upsert_job`); the ``task_id``.

        A step without an asset uses ``asset_key`` "" (keys are NOT NULL so they stay unique). The run's
        job row is created (status ``Running``) if this is the first the audit hears of the run.
        """
        run_id = checked_key("run_id", run_id, 64)
        step_key = checked_key("step_key", step_key, 200)
        asset_key = "" if asset_key is None else str(asset_key)
        if len(asset_key) > 300:
            raise ValueError(f"asset_key must have at most 300 characters, got {len(asset_key)}")
        values = clean_fields(task_table, fields, _TASK_FIELDS, _TASK_CHOICES)
        with unavailable_as_error(self.url):
            self._ensure_setup()
            job_id = self._job_id(run_id)
            return self._retry_conflicts(
                lambda conn: self._upsert_task(conn, job_id, run_id, step_key, asset_key, values)
            )

    def _upsert_task(
        self,
        conn: sa.Connection,
        job_id: int,
        run_id: str,
        step_key: str,
        asset_key: str,
        values: dict[str, Any],
    ) -> int:
        where = (
            task_table.c.run_id == run_id,
            task_table.c.step_key == step_key,
            task_table.c.asset_key == asset_key,
        )
        assignments = dict(values)
        if "status" in values:
            assignments["status"] = _status_update(task_table.c.status, values["status"], _TASK_RANK)
        if assignments:
            conn.execute(task_table.update().where(*where).values(assignments))
        task_id = conn.execute(sa.select(task_table.c.task_id).where(*where)).scalar()
        if task_id is not None:
            return task_id
        inserted = conn.execute(
            task_table.insert().values(
                job_id=job_id, run_id=run_id, step_key=step_key, asset_key=asset_key, **values
            )
        )
        return _inserted_id(inserted)

    def set_parameters(self, run_id: str, params: Mapping[str, object]) -> int:
        """Record the run's parameters (redacted, as strings); the number of rows inserted or changed.

        Missing names are inserted and changed values updated; names absent from ``params`` are kept, so
        parameters may be recorded in several calls.
        """
        run_id = checked_key("run_id", run_id, 64)
        wanted = redact_parameters(params)
        for name in wanted:
            checked_key("parameter_name", name, 200)
        wanted = {name: value[:MAX_TEXT] for name, value in wanted.items()}
        if not wanted:
            return 0
        with unavailable_as_error(self.url):
            self._ensure_setup()
            job_id = self._job_id(run_id)
            return self._retry_conflicts(lambda conn: self._set_parameters(conn, job_id, run_id, wanted))

    def _set_parameters(self, conn: sa.Connection, job_id: int, run_id: str, wanted: dict[str, str]) -> int:
        stored = dict(
            conn.execute(
                sa.select(parameter_table.c.parameter_name, parameter_table.c.parameter_value).where(
                    parameter_table.c.run_id == run_id
                )
            ).all()
        )
        missing = [name for name in wanted if name not in stored]
        changed = [name for name in wanted if name in stored and stored[name] != wanted[name]]
        if missing:
            conn.execute(
                parameter_table.insert(),
                [
                    {
                        "job_id": job_id,
                        "run_id": run_id,
                        "parameter_name": name,
                        "parameter_value": wanted[name],
                    }
                    for name in missing
                ],
            )
        for name in changed:
            conn.execute(
                parameter_table.update()
                .where(parameter_table.c.run_id == run_id, parameter_table.c.parameter_name == name)
                .values(parameter_value=wanted[name])
            )
        return len(missing) + len(changed)

    def log(
        self,
        run_id: str,
        event_key: str,
        status: str | None,
        timestamp: Any = None,
        message: str | None = None,
    ) -> bool:
        """Record one event unless ``(run_id, event_key)`` is already logged; True when this call wrote it.

        ``event_key`` names the event (e.g. ``"started"``, ``"step:load_x:success"``), so a re-delivered
        event is dropped. ``timestamp`` defaults to now; the message is redacted.
        """
        run_id = checked_key("run_id", run_id, 64)
        event_key = checked_key("event_key", event_key, 200)
        values = {
            "run_id": run_id,
            "event_key": event_key,
            "status": None if status is None else str(status)[:32],
            "timestamp": utc_now() if timestamp is None else as_utc(timestamp),
            "log_message": None if message is None else redact_text(str(message))[:MAX_TEXT],
        }
        with unavailable_as_error(self.url):
            self._ensure_setup()
            if self._has_log(run_id, event_key):  # spares the server log a unique-violation error
                return False
            job_id = self._job_id(run_id)
            try:
                with self.engine.begin() as conn:
                    conn.execute(log_table.insert().values(job_id=job_id, **values))
            except sa_exc.IntegrityError:
                if self._has_log(run_id, event_key):
                    return False  # another writer logged it first
                raise
            return True

    # -- reads --

    def has_log(self, run_id: str, event_key: str) -> bool:
        with unavailable_as_error(self.url):
            self._ensure_setup()
            return self._has_log(run_id, event_key)

    def _has_log(self, run_id: str, event_key: str) -> bool:
        query = sa.select(log_table.c.log_id).where(
            log_table.c.run_id == run_id, log_table.c.event_key == event_key
        )
        with self.engine.connect() as conn:
            return conn.execute(query.limit(1)).first() is not None

    def has_log_anywhere(self, event_key: str, status: str) -> bool:
        """Whether any run has a ``Metadata_Logs`` row with ``event_key`` and ``status``."""
        query = sa.select(log_table.c.log_id).where(
            log_table.c.event_key == event_key, log_table.c.status == status
        )
        with unavailable_as_error(self.url):
            self._ensure_setup()
            with self.engine.connect() as conn:
                return conn.execute(query.limit(1)).first() is not None

    def job(self, run_id: str) -> dict[str, Any] | None:
        rows = self._read(sa.select(job_table).where(job_table.c.run_id == run_id))
        return rows[0] if rows else None

    def tasks(self, run_id: str) -> list[dict[str, Any]]:
        return self._read(
            sa.select(task_table).where(task_table.c.run_id == run_id).order_by(task_table.c.task_id)
        )

    def parameters(self, run_id: str) -> dict[str, str]:
        query = (
            sa.select(parameter_table)
            .where(parameter_table.c.run_id == run_id)
            .order_by(parameter_table.c.parameter_name)
        )
        return {row["parameter_name"]: row["parameter_value"] for row in self._read(query)}

    def runs_with_log_status(self, status: str) -> list[str]:
        """Run ids that have a ``Metadata_Logs`` row with ``status`` (e.g. alerts not delivered yet)."""
        query = sa.select(log_table.c.run_id).where(log_table.c.status == status).distinct()
        return sorted(row["run_id"] for row in self._read(query))

    def logs(self, run_id: str) -> list[dict[str, Any]]:
        query = (
            sa.select(log_table)
            .where(log_table.c.run_id == run_id)
            .order_by(log_table.c.timestamp, log_table.c.log_id)
        )
        return self._read(query)

    # -- helpers --

    def _read(self, query: sa.Select) -> list[dict[str, Any]]:
        with unavailable_as_error(self.url):
            self._ensure_setup()
            with self.engine.connect() as conn:
                return [dict(row._mapping) for row in conn.execute(query)]

    def _ensure_setup(self) -> None:
        if not self._ready:
            self.setup()

    def _job_id(self, run_id: str) -> int:
        """The run's ``job_id``, creating a minimal ``Running`` row for a run not yet recorded."""
        with self.engine.connect() as conn:
            job_id = conn.execute(sa.select(job_table.c.job_id).where(job_table.c.run_id == run_id)).scalar()
        if job_id is not None:
            return job_id
        return self._retry_conflicts(lambda conn: self._upsert_job(conn, run_id, {"status": "Running"}))

    def _retry_conflicts(self, write: Callable[[sa.Connection], Any]) -> Any:
        """Run ``write`` in a transaction, again if a concurrent insert of the same key beat it."""
        for attempt in range(1, _WRITE_ATTEMPTS + 1):
            try:
                with self.engine.begin() as conn:
                    return write(conn)
            except sa_exc.IntegrityError:
                if attempt == _WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")


def _status_update(column: sa.Column, status: str, rank: Mapping[str, int]) -> sa.ColumnElement:
    """SQL for the new status that keeps the stored one when it ranks higher, decided in the UPDATE itself."""
    higher = [name for name, r in rank.items() if r > rank[status]]
    if not higher:
        return sa.literal(status, sa.String(16))
    return sa.case((column.in_(higher), column), else_=sa.literal(status, sa.String(16)))
