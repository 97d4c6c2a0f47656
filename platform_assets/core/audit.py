"""The audit store: a governance log of every job run, batch or streaming, in any SQLAlchemy database.

The layout follows the seed's Azure SQL metadata tables (``Job_Metadata``, ``Task_Metadata``,
``Process_Parameter_Metadata``, ``Metadata_Logs``) so reports written against it keep working. Every
write is an idempotent upsert keyed by the Dagster run id: Dagster retries steps and sensors re-deliver
events, so a write may arrive twice, late or out of order, and must never duplicate a row or move a
status backwards. The audit database is not the data: when it is down, calls raise
:class:`AuditUnavailable` and the caller logs and carries on.

The schema is versioned in ``Audit_Schema_Version``; :meth:`AuditStore.setup` brings any older layout
to :data:`SCHEMA_VERSION` through :data:`MIGRATIONS`, in place, keeping the rows.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager, suppress
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import mssql, mysql

from platform_assets.core.db import engine_for, redact, utc_now
from platform_assets.core.redaction import MASK, redact_parameters, redact_text

__all__ = ["MASK", "AuditStore", "AuditUnavailable", "redact_parameters", "redact_text"]

SCHEMA_VERSION = 2
# Seconds to wait for a server before giving up: an audit outage must fail fast, not stall the run.
CONNECT_TIMEOUT = 3
# Longest text kept in a Text column (error messages, log messages, parameter values).
MAX_TEXT = 1_000_000

JOB_TYPES = ("Batch", "Streaming")
JOB_STATUSES = ("Queued", "Running", "Completed", "Failed", "Canceled")
TASK_STATUSES = ("Running", "Completed", "Failed", "Skipped")
TRIGGERS = ("manual", "schedule", "sensor", "backfill")
# A status only replaces one of equal or lower rank; terminal statuses share the top rank, so the last
# terminal report wins but a late "Running" never reopens a finished run.
_JOB_RANK = {"Queued": 0, "Running": 1, "Completed": 2, "Failed": 2, "Canceled": 2}
_TASK_RANK = {"Running": 0, "Completed": 1, "Failed": 1, "Skipped": 1}

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


class AuditUnavailable(RuntimeError):
    """The audit database cannot be reached (or is locked); the caller logs and retries later."""


# --- migrations ---------------------------------------------------------------------------------------
#
# Each step brings any earlier layout to its version and is a no-op where the database is already there:
# step 1 creates the *current* tables of a fresh database, so later steps find their work done, and MySQL
# commits DDL implicitly, so a step interrupted half way must be safe to run again.


def _create_tables(conn: sa.Connection) -> None:
    """Version 1: the tables (at their current layout for a fresh database)."""
    metadata.create_all(conn, checkfirst=True)


def _add_lineage_columns(conn: sa.Connection) -> None:
    """Version 2: ``parent_run_id`` (a run started by another run) and ``ui_url`` on Job_Metadata."""
    _add_missing_columns(conn, job_table, ["parent_run_id", "ui_url"])


MIGRATIONS: list[tuple[int, Callable[[sa.Connection], None]]] = [
    (1, _create_tables),
    (2, _add_lineage_columns),
]
assert [v for v, _ in MIGRATIONS] == list(range(1, SCHEMA_VERSION + 1)), "one step per version, in order"


def _add_missing_columns(conn: sa.Connection, table: sa.Table, names: list[str]) -> None:
    """``ALTER TABLE ADD COLUMN`` for each named column of ``table`` the database lacks (nullable only)."""
    present = {column["name"].lower() for column in sa.inspect(conn).get_columns(table.name)}
    preparer = conn.dialect.identifier_preparer
    for name in names:
        if name.lower() in present:
            continue
        column = table.c[name]
        column_type = column.type.compile(dialect=conn.dialect)
        conn.execute(
            sa.text(
                f"ALTER TABLE {preparer.format_table(table)} "
                f"ADD {'' if conn.dialect.name == 'mssql' else 'COLUMN '}"
                f"{preparer.format_column(column)} {column_type}"
            )
        )


def _schema_version(conn: sa.Connection) -> int:
    if not sa.inspect(conn).has_table(version_table.name):
        return 0
    return conn.execute(sa.select(sa.func.max(version_table.c.version))).scalar() or 0


def _stamp(conn: sa.Connection, version: int) -> None:
    conn.execute(version_table.delete())
    conn.execute(version_table.insert().values(version=version, applied_at=utc_now()))


# --- value cleaning -----------------------------------------------------------------------------------



def _utc(value: Any) -> datetime:
    """A naive UTC datetime from a datetime (naive means UTC), epoch seconds or an ISO string."""
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    if isinstance(value, int | float) and not isinstance(value, bool):
        value = datetime.fromtimestamp(value, UTC)
    if not isinstance(value, datetime):
        raise TypeError(f"expected a datetime or epoch seconds, got {value!r}")
    if value.tzinfo is not None:
        value = value.astimezone(UTC).replace(tzinfo=None)
    return value


def _choice(name: str, value: Any, choices: tuple[str, ...]) -> str:
    """``value`` spelt as in ``choices`` (matched without regard to case)."""
    for choice in choices:
        if str(value).lower() == choice.lower():
            return choice
    raise ValueError(f"{name} must be one of {', '.join(choices)}, got {value!r}")


def _key(name: str, value: Any, length: int) -> str:
    """A key column value: keys are never truncated, since a cut key could merge two rows."""
    if value is None:
        raise ValueError(f"{name} is required")
    text = str(value)
    if not text or len(text) > length:
        raise ValueError(f"{name} must have 1 to {length} characters, got {len(text)}")
    return text


_REDACTED_COLUMNS = {"error_message", "streaming_source", "log_message"}


def _clean(
    table: sa.Table, fields: Mapping[str, Any], allowed: set[str], choices: Mapping[str, tuple[str, ...]]
) -> dict[str, Any]:
    """Fields given for ``table`` as column values; None values are dropped (they never overwrite)."""
    unknown = sorted(set(fields) - allowed)
    if unknown:
        raise TypeError(
            f"unknown {table.name} field(s) {', '.join(unknown)}; expected {', '.join(sorted(allowed))}"
        )
    values: dict[str, Any] = {}
    for name, value in fields.items():
        if value is None:
            continue
        column_type = table.c[name].type
        if name in choices:
            value = _choice(name, value, choices[name])
        elif isinstance(column_type, sa.DateTime):
            value = _utc(value)
        elif isinstance(column_type, sa.Integer):  # BigInteger too
            value = int(value)
        elif isinstance(column_type, sa.String):  # Text too
            if name == "partition_key" and isinstance(value, tuple | list) and len(value) == 2:
                value = f"{value[0]}...{value[1]}"  # a partition range
            value = str(value)
            if name in _REDACTED_COLUMNS:
                value = redact_text(value)
            # Descriptive text is cut rather than failing the write (MySQL rejects over-long values).
            value = value[: column_type.length or MAX_TEXT]
        values[name] = value
    return values


def _status_update(column: sa.Column, status: str, rank: Mapping[str, int]) -> sa.ColumnElement:
    """SQL for the new status that keeps the stored one when it ranks higher, decided in the UPDATE itself."""
    higher = [name for name, r in rank.items() if r > rank[status]]
    if not higher:
        return sa.literal(status, sa.String(16))
    return sa.case((column.in_(higher), column), else_=sa.literal(status, sa.String(16)))


def _engine(url: str) -> sa.Engine:
    """The shared engine for ``url``, with a connect timeout for server drivers that lack one."""
    parsed = sa.make_url(url)
    if parsed.get_driver_name() in ("psycopg", "psycopg2", "pymysql", "mysqldb") and (
        "connect_timeout" not in parsed.query
    ):
        parsed = parsed.update_query_dict({"connect_timeout": str(CONNECT_TIMEOUT)})
        url = parsed.render_as_string(hide_password=False)
    return engine_for(url)


# --- the store ----------------------------------------------------------------------------------------

_JOB_FIELDS = {
    "job_name", "job_type", "status", "start_time", "end_time", "error_message", "streaming_source",
    "micro_batch_id", "environment", "partition_key", "trigger", "ui_url", "parent_run_id",
}  # fmt: skip
_TASK_FIELDS = {
    "partition_key", "status", "start_time", "end_time", "rows_read", "rows_written", "delta_version",
    "error_message",
}  # fmt: skip
_JOB_CHOICES = {"job_type": JOB_TYPES, "status": JOB_STATUSES, "trigger": TRIGGERS}
_TASK_CHOICES = {"status": TASK_STATUSES}
_SETUP_ATTEMPTS = 5
_WRITE_ATTEMPTS = 3
_PG_LOCK_KEY = 0x6175_6469_7400  # "audit": serialises concurrent setup() on PostgreSQL


class AuditStore:
    """Idempotent audit writes for job runs, their tasks, parameters and log events.

    Writes run :meth:`setup` once per store first (a no-op read of the version when the schema is
    current), so a store created while the database was down starts working when it is back.
    """

    def __init__(self, url: str):
        self.url = url
        self.engine = _engine(url)
        self._ready = False

    def __repr__(self) -> str:
        return f"AuditStore({self._redacted_url()!r})"

    # -- schema --

    def setup(self) -> int:
        """Create missing tables and migrate an older schema to :data:`SCHEMA_VERSION`; the version.

        Safe to run twice or from several processes at once: PostgreSQL and MySQL serialise it with an
        advisory lock, and a lost race elsewhere (e.g. SQLite's "table already exists") is retried from
        the version the winner left. A database at a newer version than this code is left alone.
        """
        with self._unavailable_as_error():
            for attempt in range(1, _SETUP_ATTEMPTS + 1):
                with self.engine.connect() as conn:  # a dead server fails here, without retries
                    try:
                        version = self._migrate(conn)
                    except sa.exc.DBAPIError as exc:
                        if attempt == _SETUP_ATTEMPTS or exc.connection_invalidated:
                            raise
                    else:
                        self._ready = True
                        return version
                time.sleep(0.05 * attempt)
        raise AssertionError("unreachable")

    def _migrate(self, conn: sa.Connection) -> int:
        locking_mysql = conn.dialect.name in ("mysql", "mariadb")
        lock_name = sa.literal_column("LEFT(CONCAT('platform_audit_setup:', COALESCE(DATABASE(), '')), 64)")
        try:
            with conn.begin():
                if conn.dialect.name == "postgresql":
                    conn.execute(sa.select(sa.func.pg_advisory_xact_lock(_PG_LOCK_KEY)))
                elif locking_mysql:
                    if conn.execute(sa.select(sa.func.get_lock(lock_name, 60))).scalar() != 1:
                        raise AuditUnavailable(
                            f"audit setup on {self._redacted_url()} waited 60 s for another setup"
                        )
                version = _schema_version(conn)
                for target, step in MIGRATIONS:
                    if target > version:
                        step(conn)
                        _stamp(conn, target)
                        version = target
                return version
        finally:
            if locking_mysql:
                with suppress(sa.exc.DBAPIError):
                    conn.execute(sa.select(sa.func.release_lock(lock_name)))
                    conn.commit()

    # -- writes --

    def upsert_job(self, run_id: str, **fields: Any) -> int:
        """Insert or update the run's row; returns its ``job_id``.

        Fields given as None keep the stored value; a status never moves backwards (a late ``Running``
        does not reopen a ``Completed`` run, while a terminal status replaces ``Running``); ``duration``
        is recomputed whenever both times are known.
        """
        run_id = _key("run_id", run_id, 64)
        values = _clean(job_table, fields, _JOB_FIELDS, _JOB_CHOICES)
        with self._unavailable_as_error():
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
            row["duration"] = _duration(values.get("start_time"), values.get("end_time"))
            return conn.execute(job_table.insert().values(row)).inserted_primary_key[0]
        row = conn.execute(
            sa.select(
                job_table.c.job_id, job_table.c.start_time, job_table.c.end_time, job_table.c.duration
            ).where(job_table.c.run_id == run_id)
        ).one()
        duration = _duration(row.start_time, row.end_time)
        if duration is not None and duration != row.duration:
            conn.execute(job_table.update().where(job_table.c.job_id == row.job_id).values(duration=duration))
        return row.job_id

    def upsert_task(self, run_id: str, step_key: str, asset_key: str | None, **fields: Any) -> int:
        """Insert or update one step's row for one asset (same rules as :meth:`upsert_job`); the ``task_id``.

        A step without an asset uses ``asset_key`` "" (keys are NOT NULL so they stay unique). The run's
        job row is created (status ``Running``) if this is the first the audit hears of the run.
        """
        run_id = _key("run_id", run_id, 64)
        step_key = _key("step_key", step_key, 200)
        asset_key = "" if asset_key is None else str(asset_key)
        if len(asset_key) > 300:
            raise ValueError(f"asset_key must have at most 300 characters, got {len(asset_key)}")
        values = _clean(task_table, fields, _TASK_FIELDS, _TASK_CHOICES)
        with self._unavailable_as_error():
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
        return inserted.inserted_primary_key[0]

    def set_parameters(self, run_id: str, params: Mapping[str, object]) -> int:
        """Record the run's parameters (redacted, as strings); the number of rows inserted or changed.

        Missing names are inserted and changed values updated; names absent from ``params`` are kept, so
        parameters may be recorded in several calls.
        """
        run_id = _key("run_id", run_id, 64)
        wanted = redact_parameters(params)
        for name in wanted:
            _key("parameter_name", name, 200)
        wanted = {name: value[:MAX_TEXT] for name, value in wanted.items()}
        if not wanted:
            return 0
        with self._unavailable_as_error():
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
        run_id = _key("run_id", run_id, 64)
        event_key = _key("event_key", event_key, 200)
        values = {
            "run_id": run_id,
            "event_key": event_key,
            "status": None if status is None else str(status)[:32],
            "timestamp": utc_now() if timestamp is None else _utc(timestamp),
            "log_message": None if message is None else redact_text(str(message))[:MAX_TEXT],
        }
        with self._unavailable_as_error():
            self._ensure_setup()
            if self._has_log(run_id, event_key):  # spares the server log a unique-violation error
                return False
            job_id = self._job_id(run_id)
            try:
                with self.engine.begin() as conn:
                    conn.execute(log_table.insert().values(job_id=job_id, **values))
            except sa.exc.IntegrityError:
                if self._has_log(run_id, event_key):
                    return False  # another writer logged it first
                raise
            return True

    # -- reads --

    def has_log(self, run_id: str, event_key: str) -> bool:
        with self._unavailable_as_error():
            self._ensure_setup()
            return self._has_log(run_id, event_key)

    def _has_log(self, run_id: str, event_key: str) -> bool:
        query = sa.select(log_table.c.log_id).where(
            log_table.c.run_id == run_id, log_table.c.event_key == event_key
        )
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
        with self._unavailable_as_error():
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
            except sa.exc.IntegrityError:
                if attempt == _WRITE_ATTEMPTS:
                    raise
        raise AssertionError("unreachable")

    @contextmanager
    def _unavailable_as_error(self) -> Iterator[None]:
        try:
            yield
        except (sa.exc.OperationalError, sa.exc.InterfaceError, sa.exc.TimeoutError) as exc:
            raise AuditUnavailable(self._unavailable_message(exc)) from exc
        except sa.exc.DBAPIError as exc:
            if exc.connection_invalidated:
                raise AuditUnavailable(self._unavailable_message(exc)) from exc
            raise

    def _unavailable_message(self, exc: Exception) -> str:
        cause = getattr(exc, "orig", None) or exc
        detail = redact_text(
            str(cause).strip().splitlines()[0] if str(cause).strip() else type(cause).__name__
        )
        return f"audit database {self._redacted_url()} is unavailable: {detail}"

    def _redacted_url(self) -> str:
        try:
            return redact(self.url)
        except Exception:  # not a URL SQLAlchemy can parse: mask what we recognise
            return redact_text(self.url)


def _duration(start: datetime | None, end: datetime | None) -> float | None:
    if start is None or end is None:
        return None
    return (end - start).total_seconds()
