"""The audit store on SQLite, PostgreSQL and MariaDB: setup and migration, idempotent upserts, redaction.

PostgreSQL runs each test in a fresh schema selected through the URL (``options=-csearch_path%3D<schema>``,
which psycopg hands to the server as a startup option). That keeps the store's only configuration the
URL, as in production, whereas ``schema_translate_map`` would need an engine option the store does not
take and a schema argument on every reflection call of the migrations. MariaDB gets a fresh database.
"""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta, timezone

import pytest
import sqlalchemy as sa

from platform_assets.cli import audit_setup
from platform_assets.core.audit import (
    SCHEMA_VERSION,
    TABLE_NAMES,
    AuditStore,
    AuditUnavailable,
    redact_parameters,
    redact_text,
)
from platform_assets_tests.conftest import MARIADB_URL, POSTGRES_URL, reachable

RUN = "8f6a2c1e-0b7d-4f7e-9d7a-2c3b4d5e6f70"
T0 = datetime(2024, 3, 1, 6, 0, 0, 250000)


@pytest.fixture(scope="module")
def servers() -> dict[str, bool]:
    return {"postgresql": reachable(POSTGRES_URL), "mariadb": reachable(MARIADB_URL)}


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def url(request: pytest.FixtureRequest, tmp_path, servers) -> Iterator[str]:
    """An empty audit database on each backend."""
    backend = request.param
    if backend == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    if not servers[backend]:
        pytest.skip(f"{backend} not reachable at {POSTGRES_URL if backend == 'postgresql' else MARIADB_URL}")
    name = f"audit_{uuid.uuid4().hex[:10]}"
    admin = sa.create_engine(POSTGRES_URL if backend == "postgresql" else MARIADB_URL)
    with admin.begin() as conn:
        conn.execute(sa.schema.CreateSchema(name))
    if backend == "postgresql":
        url = f"{POSTGRES_URL}?options=-csearch_path%3D{name}"
    else:
        url = f"{MARIADB_URL}{name}"
    yield url
    AuditStore(url).engine.dispose()  # the shared engine: no idle connection may hold the schema
    with admin.begin() as conn:
        conn.execute(sa.schema.DropSchema(name, cascade=backend == "postgresql"))
    admin.dispose()


@pytest.fixture
def store(url) -> AuditStore:
    store = AuditStore(url)
    store.setup()
    return store


def _rows(url: str, table: str, column: str) -> list[tuple]:
    """Raw rows of one column, read past the store's helpers."""
    with AuditStore(url).engine.connect() as conn:
        return [tuple(row) for row in conn.execute(sa.select(sa.column(column)).select_from(sa.table(table)))]


def _version_rows(url: str) -> list[tuple]:
    return _rows(url, "Audit_Schema_Version", "version")


# --- setup and migration ---


def test_setup_creates_tables_and_version(url):
    assert AuditStore(url).setup() == SCHEMA_VERSION == 3
    engine = AuditStore(url).engine
    assert set(TABLE_NAMES) <= set(sa.inspect(engine).get_table_names())
    columns = {c["name"] for c in sa.inspect(engine).get_columns("Job_Metadata")}
    assert {"run_id", "parent_run_id", "ui_url", "duration", "trigger", "updated_at"} <= columns
    assert _version_rows(url) == [(3,)]


def test_setup_twice(url):
    assert AuditStore(url).setup() == 3
    assert AuditStore(url).setup() == 3
    assert _version_rows(url) == [(3,)]


def test_concurrent_setup_on_empty_database(url):
    results, errors = [], []

    def run():
        try:
            results.append(AuditStore(url).setup())
        except Exception as exc:  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert errors == [] and results == [SCHEMA_VERSION] * 4
    assert _version_rows(url) == [(3,)]


def test_migration_from_version_1_keeps_rows(url):
    # The version-1 layout, by hand: Job_Metadata without parent_run_id and ui_url.
    old = sa.MetaData()
    jobs = sa.Table(
        "Job_Metadata", old,
        sa.Column("job_id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("run_id", sa.String(64), nullable=False, unique=True),
        sa.Column("job_name", sa.String(200)),
        sa.Column("job_type", sa.String(16)),
        sa.Column("status", sa.String(16)),
        sa.Column("start_time", sa.DateTime),
        sa.Column("end_time", sa.DateTime),
        sa.Column("duration", sa.Float),
        sa.Column("error_message", sa.Text),
        sa.Column("streaming_source", sa.String(300)),
        sa.Column("micro_batch_id", sa.BigInteger),
        sa.Column("environment", sa.String(16)),
        sa.Column("partition_key", sa.String(200)),
        sa.Column("trigger", sa.String(16)),
        sa.Column("updated_at", sa.DateTime),
    )  # fmt: skip
    for name, columns in {
        "Task_Metadata": ["step_key", "asset_key"],
        "Process_Parameter_Metadata": ["parameter_name"],
        "Metadata_Logs": ["event_key"],
    }.items():
        sa.Table(
            name,
            old,
            sa.Column("id", sa.Integer, primary_key=True),
            sa.Column("job_id", sa.Integer, sa.ForeignKey("Job_Metadata.job_id")),
            sa.Column("run_id", sa.String(64)),
            *[sa.Column(c, sa.String(200)) for c in columns],
        )
    versions = sa.Table(
        "Audit_Schema_Version",
        old,
        sa.Column("version", sa.Integer, primary_key=True),
        sa.Column("applied_at", sa.DateTime),
    )
    engine = AuditStore(url).engine
    with engine.begin() as conn:
        old.create_all(conn)
        conn.execute(versions.insert().values(version=1, applied_at=T0))
        conn.execute(
            jobs.insert().values(
                run_id="old-run",
                job_name="bronze_users",
                status="Completed",
                start_time=T0,
                end_time=T0 + timedelta(seconds=5),
                duration=5.0,
            )
        )

    assert AuditStore(url).setup() == 3

    columns = {c["name"] for c in sa.inspect(engine).get_columns("Job_Metadata")}
    assert {"parent_run_id", "ui_url"} <= columns
    assert "table_name" in {c["name"] for c in sa.inspect(engine).get_columns("Task_Metadata")}
    assert _version_rows(url) == [(3,)]
    store = AuditStore(url)
    row = store.job("old-run")
    assert row["job_name"] == "bronze_users" and row["status"] == "Completed" and row["duration"] == 5.0
    assert row["parent_run_id"] is None and row["ui_url"] is None
    store.upsert_job("old-run", parent_run_id="parent", ui_url="http://dagster/runs/old-run")
    assert store.job("old-run")["parent_run_id"] == "parent"
    assert AuditStore(url).setup() == 3  # and again: nothing left to do


def test_newer_database_is_left_alone(tmp_path):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    AuditStore(url).setup()
    with AuditStore(url).engine.begin() as conn:
        conn.execute(sa.table("Audit_Schema_Version", sa.column("version")).update().values(version=7))
    assert AuditStore(url).setup() == 7


# --- jobs ---


def test_upsert_job_is_idempotent(store):
    fields = dict(
        job_name="bronze_users",
        job_type="Batch",
        status="Running",
        start_time=T0,
        environment="dev",
        partition_key="2024-03-01",
        trigger="schedule",
    )
    first = store.upsert_job(RUN, **fields)
    assert store.upsert_job(RUN, **fields) == first
    assert _rows(store.url, "Job_Metadata", "run_id") == [(RUN,)]
    job = store.job(RUN)
    assert job["job_id"] == first and job["status"] == "Running" and job["start_time"] == T0
    assert job["trigger"] == "schedule" and job["duration"] is None and job["updated_at"] is not None


def test_status_never_goes_backwards(store):
    store.upsert_job(RUN, status="Queued")
    store.upsert_job(RUN, status="Running")
    assert store.job(RUN)["status"] == "Running"
    store.upsert_job(RUN, status="Queued")  # late
    assert store.job(RUN)["status"] == "Running"
    store.upsert_job(RUN, status="Completed", end_time=T0)
    store.upsert_job(RUN, status="Running", micro_batch_id=7)  # a late write still records its other fields
    job = store.job(RUN)
    assert job["status"] == "Completed" and job["micro_batch_id"] == 7
    store.upsert_job(RUN, status="Failed", error_message="boom")  # the last terminal report wins
    assert store.job(RUN)["status"] == "Failed"


def test_duration_from_separate_writes(store):
    store.upsert_job(RUN, status="Running", start_time=T0)
    assert store.job(RUN)["duration"] is None
    # Aware and epoch times are stored as naive UTC.
    store.upsert_job(
        RUN,
        status="Completed",
        end_time=(T0 + timedelta(seconds=90.5)).replace(tzinfo=UTC).astimezone(timezone(timedelta(hours=2))),
    )
    job = store.job(RUN)
    assert job["end_time"] == T0 + timedelta(seconds=90.5)
    assert job["duration"] == pytest.approx(90.5)
    store.upsert_job(
        "other", start_time=T0.replace(tzinfo=UTC).timestamp(), end_time=T0 + timedelta(minutes=2)
    )
    assert store.job("other")["duration"] == pytest.approx(120)


def test_none_does_not_overwrite(store):
    store.upsert_job(
        RUN,
        job_name="silver_users",
        job_type="Streaming",
        streaming_source="kafka://broker/users",
        ui_url="http://localhost:3000/runs/x",
    )
    store.upsert_job(
        RUN, job_name=None, streaming_source=None, ui_url=None, status="Running", micro_batch_id=3
    )
    job = store.job(RUN)
    assert job["job_name"] == "silver_users" and job["job_type"] == "Streaming"
    assert job["streaming_source"] == "kafka://broker/users" and job["micro_batch_id"] == 3


def test_job_values_are_checked(store):
    with pytest.raises(ValueError, match="status must be one of"):
        store.upsert_job(RUN, status="Done")
    with pytest.raises(TypeError, match="unknown Job_Metadata field"):
        store.upsert_job(RUN, colour="red")
    store.upsert_job(
        RUN,
        status="completed",
        job_type="batch",
        trigger="Backfill",
        partition_key=("2024-01-01", "2024-01-31"),
        error_message="failed on postgresql://etl:hunter2@db/x",
    )
    job = store.job(RUN)
    assert (job["status"], job["job_type"], job["trigger"]) == ("Completed", "Batch", "backfill")
    assert job["partition_key"] == "2024-01-01...2024-01-31"
    assert "hunter2" not in job["error_message"] and "etl:***@db" in job["error_message"]


def test_concurrent_upserts_make_one_row(store):
    def write(i: int) -> None:
        store.upsert_job(RUN, status="Running" if i % 2 else "Completed", job_name="j")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert store.job(RUN)["status"] == "Completed"
    assert _rows(store.url, "Job_Metadata", "run_id") == [(RUN,)]


# --- tasks ---


def test_tasks_unique_per_step_and_asset(store):
    first = store.upsert_task(RUN, "bronze_users", "bronze/users", status="Running", start_time=T0)
    assert store.job(RUN)["status"] == "Running"  # the job row is created for the task
    assert store.upsert_task(RUN, "bronze_users", "bronze/users", status="Running", start_time=T0) == first
    store.upsert_task(
        RUN,
        "bronze_users",
        "bronze/users",
        status="Completed",
        end_time=T0,
        rows_read=1_000_000_000_000,
        rows_written=5,
        delta_version=3,
    )
    store.upsert_task(RUN, "bronze_users", "bronze/users", status="Running", rows_read=None)  # late
    store.upsert_task(RUN, "bronze_users", "bronze/users_history", status="Skipped")
    store.upsert_task(RUN, "check_users", None, status="Failed", error_message="token=abc expired")
    tasks = store.tasks(RUN)
    assert [(t["step_key"], t["asset_key"], t["status"]) for t in tasks] == [
        ("bronze_users", "bronze/users", "Completed"),
        ("bronze_users", "bronze/users_history", "Skipped"),
        ("check_users", "", "Failed"),
    ]
    assert tasks[0]["task_id"] == first and tasks[0]["rows_read"] == 1_000_000_000_000
    assert (tasks[0]["rows_written"], tasks[0]["delta_version"]) == (5, 3)
    assert tasks[2]["error_message"] == "token=*** expired"
    assert {t["job_id"] for t in tasks} == {store.job(RUN)["job_id"]}
    store.upsert_job(RUN, status="Completed")
    assert store.job(RUN)["status"] == "Completed"


# --- parameters ---


def test_parameters_are_redacted_and_idempotent(store):
    params = {
        "source_url": "postgresql+psycopg://etl:S3cret@db.internal:5432/sales",
        "alert_webhook_url": "https://hooks.slack.com/services/T000/B000/XXXX",
        "notify": "https://hooks.slack.com/services/T000/B000/XXXX",
        "country_api_url": "https://restcountries.com/v3.1?token=abc123",
        "api_token": "abc123",
        "batch_size": 100000,
        "tables": ["users", "orders"],
    }
    assert store.set_parameters(RUN, params) == 7
    assert store.set_parameters(RUN, params) == 0  # a retry writes nothing
    stored = store.parameters(RUN)
    assert stored == {
        "source_url": "postgresql+psycopg://etl:***@db.internal:5432/sales",
        "alert_webhook_url": "***",
        "notify": "https://hooks.slack.com/***",
        "country_api_url": "https://restcountries.com/v3.1?token=***",
        "api_token": "***",
        "batch_size": "100000",
        "tables": '["users", "orders"]',
    }
    assert "S3cret" not in str(stored) and "abc123" not in str(stored)
    assert store.set_parameters(RUN, {"batch_size": 50, "env": "dev"}) == 2
    assert store.parameters(RUN)["batch_size"] == "50" and len(store.parameters(RUN)) == 8


def test_redact_parameters():
    redacted = redact_parameters({
        "DB_PASSWORD": "x", "passwd": "x", "Secret": "x", "apiKey": "x", "api_key": "x", "credentials": "x",
        "Authorization": "Bearer abc",
        "plain": "https://user:pw@host.example/path?a=1&sig=zz%3D&key=k1",
        "not_sqlalchemy": "https://user:p@ss@host/x",
        "user_only": "https://user@host/x?partition=1",
        "odbc": "Server=tcp:x.database.windows.net;Uid=me;Pwd={se;cret};Encrypt=yes",
        "config": {"db": {"password": "x", "url": "mysql+pymysql://root:pw@h/db"}, "n": 3},
        "none": None, "flag": True, "ratio": 0.5, "header": "Authorization: Bearer eyJ.abc.def",
    })  # fmt: skip
    for name in ("DB_PASSWORD", "passwd", "Secret", "apiKey", "api_key", "credentials", "Authorization"):
        assert redacted[name] == "***"
    assert redacted["plain"] == "https://user:***@host.example/path?a=1&sig=***&key=***"
    assert redacted["not_sqlalchemy"] == "https://user:***@host/x"
    assert redacted["user_only"] == "https://user@host/x?partition=1"
    assert redacted["odbc"] == "Server=tcp:x.database.windows.net;Uid=me;Pwd=***;Encrypt=yes"
    assert redacted["config"] == '{"db": {"password": "***", "url": "mysql+pymysql://root:***@h/db"}, "n": 3}'
    assert (redacted["none"], redacted["flag"], redacted["ratio"]) == ("null", "true", "0.5")
    assert redacted["header"] == "Authorization: Bearer ***"
    assert redact_text("not a url: ://@:") == "not a url: ://@:"


# --- logs ---


def test_log_dedup_on_event_key(store):
    assert store.log(RUN, "started", "Running", T0 + timedelta(seconds=1), "run started") is True
    assert store.log(RUN, "started", "Running", T0 + timedelta(seconds=1), "run started") is False
    assert store.has_log(RUN, "started") and not store.has_log(RUN, "finished")
    assert store.log(RUN, "queued", "Queued", T0, "queued by schedule") is True
    assert store.log(RUN, "finished", "Completed", T0 + timedelta(seconds=1), "sig=abc") is True
    logs = store.logs(RUN)
    assert [entry["event_key"] for entry in logs] == ["queued", "started", "finished"]
    assert logs[0]["timestamp"] == T0 and logs[2]["log_message"] == "sig=***"
    assert store.job(RUN)["status"] == "Running"  # a log for an unknown run creates its job row


# --- outages ---


@pytest.mark.parametrize("dead", [
    "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/x",
    "mysql+pymysql://root:hunter2@127.0.0.1:1/x",
])  # fmt: skip
def test_dead_database_raises_audit_unavailable_quickly(dead):
    store = AuditStore(dead)
    assert int(store.engine.url.query["connect_timeout"]) <= 3
    started = time.monotonic()
    with pytest.raises(AuditUnavailable, match=r"127\.0\.0\.1:1/x is unavailable") as caught:
        store.upsert_job(RUN, status="Running")
    assert time.monotonic() - started < 3
    assert "hunter2" not in str(caught.value) and ":***@" in str(caught.value)
    assert caught.value.__cause__ is not None  # the driver error, for the caller's log
    with pytest.raises(AuditUnavailable):
        store.log(RUN, "started", "Running", T0, "x")
    assert isinstance(caught.value, RuntimeError)


# --- CLI ---


def test_cli_runs_setup(tmp_path, capsys, monkeypatch):
    url = f"sqlite:///{tmp_path / 'audit.db'}"
    assert audit_setup.main(["--url", url]) == 0
    out = capsys.readouterr().out
    assert f"audit schema version {SCHEMA_VERSION}" in out and all(name in out for name in TABLE_NAMES)
    monkeypatch.setenv("PLATFORM_AUDIT_URL", "postgresql+psycopg://postgres:hunter2@127.0.0.1:1/x")
    assert audit_setup.main([]) == 1
    assert "hunter2" not in capsys.readouterr().err
