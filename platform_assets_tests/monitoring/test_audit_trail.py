"""The audit trail and alerts, end to end: real runs, a real HTTP receiver, real audit databases."""

from __future__ import annotations

import uuid
from datetime import date

import pytest
import sqlalchemy as sa
from dagster import (
    AssetKey,
    DagsterRunStatus,
    Failure,
    asset,
    define_asset_job,
    materialize,
)
from dagster._core.definitions.definitions_class import Definitions

from platform_assets.core.audit import AuditStore
from platform_assets.definitions import build_definitions
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.lib.resources import AuditResource, build_resources
from platform_assets.lib.tags import AUDIT_JOB_ID_TAG
from platform_assets_tests.conftest import POSTGRES_URL, reachable, settings_for
from platform_assets_tests.medallion.helpers import execute, source_table
from platform_assets_tests.receiver import Receiver
from platform_devkit import sample


@pytest.fixture
def spotify(tmp_path, sqlite_source):
    settings = settings_for(tmp_path, sqlite_source)
    sample.init(sqlite_source.url, scale=1, seed=11, days=1, end=date(2025, 1, 2))
    return settings


def audit_for(url: str, webhook: str | None = None) -> AuditResource:
    return AuditResource(
        audit_url=url, environment="dev", ui_url="http://127.0.0.1:3000", alert_webhook_url=webhook
    )


def table_assets(settings, table):
    return [a for a in build_definitions(settings).assets if a.key.path[-1] == table]


def run(settings, instance, table, **kwargs):
    return materialize(
        table_assets(settings, table),
        resources=build_resources(settings),
        instance=instance,
        raise_on_error=False,
        **kwargs,
    )


def tick(instance, audit, cursor=None, **kwargs):
    return audit_tick(instance, audit, cursor, log=lambda _: None, **kwargs)


@pytest.fixture(params=["sqlite", "postgresql", "mariadb"])
def audit_url(request, tmp_path):
    """An empty audit database on each supported backend."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'audit.db'}"
        return
    source = request.getfixturevalue("postgres_source" if request.param == "postgresql" else "mariadb_source")
    if request.param == "postgresql":
        yield f"{POSTGRES_URL}?options=-csearch_path%3D{source.schema}"
    else:
        yield source.url


def test_successful_run_leaves_complete_rows_in_all_four_tables(audit_url, spotify, instance):
    audit = audit_for(audit_url)
    result = run(spotify, instance, "dimuser", tags={"requested_by": "tests"})
    assert result.success
    report, cursor = tick(instance, audit)
    assert report.runs == 1 and cursor is not None
    store = AuditStore(audit.audit_url)
    job = store.job(result.run_id)
    assert job["status"] == "Completed" and job["job_type"] == "Batch"
    assert job["environment"] == "dev" and job["trigger"] == "manual"
    assert job["start_time"] <= job["end_time"] and job["duration"] >= 0
    assert job["ui_url"] == f"http://127.0.0.1:3000/runs/{result.run_id}"
    assert job["error_message"] is None
    tasks = {t["asset_key"]: t for t in store.tasks(result.run_id)}
    assert set(tasks) == {"bronze/dimuser", "silver/dimuser", "gold/dimuser"}
    assert {t["status"] for t in tasks.values()} == {"Completed"}
    assert tasks["bronze/dimuser"]["rows_read"] == 50
    assert tasks["silver/dimuser"]["rows_written"] == 50
    assert tasks["gold/dimuser"]["delta_version"] == 0
    assert store.parameters(result.run_id)["tag.requested_by"] == "tests"
    assert store.parameters(result.run_id)["assets"] == "bronze/dimuser,gold/dimuser,silver/dimuser"
    statuses = [entry["status"] for entry in store.logs(result.run_id)]
    assert statuses[0] in ("Starting", "Running") and statuses[-1] == "Completed"
    # the same facts in Dagster: the run carries its audit job id
    assert instance.get_run_by_id(result.run_id).tags[AUDIT_JOB_ID_TAG] == str(job["job_id"])
    # a second pass (a retried write) duplicates nothing
    tick(instance, audit)
    assert len(store.tasks(result.run_id)) == 3
    assert [e["status"] for e in store.logs(result.run_id)] == statuses


def test_failing_run_is_recorded_with_its_error_and_alerted_once(tmp_path, spotify, instance):
    audit_url = f"sqlite:///{tmp_path / 'audit.db'}"
    execute(spotify, sa.text('DROP TABLE "DimArtist"'))  # the source table disappears
    result = run(spotify, instance, "dimartist")
    assert not result.success
    with Receiver() as receiver:
        audit = audit_for(audit_url, receiver.url)
        report, cursor = tick(instance, audit)
        tick(instance, audit)  # a second pass must not alert again
        tick(instance, audit, cursor=None)
    store = AuditStore(audit_url)
    job = store.job(result.run_id)
    assert job["status"] == "Failed"
    assert "source table DimArtist does not exist" in job["error_message"]
    tasks = {t["asset_key"]: t for t in store.tasks(result.run_id)}
    assert tasks["bronze/dimartist"]["status"] == "Failed"
    assert "does not exist" in tasks["bronze/dimartist"]["error_message"]
    assert len(receiver.bodies) == 1
    alert = receiver.bodies[0]
    assert alert["run_id"] == result.run_id and alert["pipeline_id"] == result.run_id
    assert alert["pipeline_name"] == job["job_name"] and alert["environment"] == "dev"
    assert alert["failed_assets"] == ["bronze/dimartist"]
    assert "does not exist" in alert["error"]
    assert alert["ui_url"].endswith(result.run_id)


def test_failed_blocking_check_alerts(tmp_path, spotify, instance):
    dates = source_table(spotify, None, "DimDate")
    execute(
        spotify,
        dates.insert().values(
            date_key=20991301, date=date(2099, 12, 1), day=1, month=13, year=2099, weekday="Friday"
        ),
    )
    result = run(spotify, instance, "dimdate")
    assert not result.success
    with Receiver() as receiver:
        tick(instance, audit_for(f"sqlite:///{tmp_path / 'audit.db'}", receiver.url))
    kinds = sorted(b["alert"] for b in receiver.bodies)
    assert kinds == ["asset_check_failed", "run_failed"]
    check_alert = next(b for b in receiver.bodies if b["alert"] == "asset_check_failed")
    assert check_alert["check"] == "valid_month" and check_alert["failed_assets"] == ["silver/dimdate"]


def test_killed_and_canceled_runs_are_reconciled(tmp_path, instance):
    @asset
    def slow():
        return 1

    job = Definitions(assets=[slow], jobs=[define_asset_job("slow_job")]).resolve_job_def("slow_job")
    audit = audit_for(f"sqlite:///{tmp_path / 'audit.db'}")
    killed = instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
    canceled = instance.create_run_for_job(job, status=DagsterRunStatus.STARTED)
    _, cursor = tick(instance, audit)
    store = AuditStore(audit.audit_url)
    assert store.job(killed.run_id)["status"] == "Running"  # in progress shows Running
    # the process dies; Dagster's run monitoring marks the run failed; a user cancels the other
    instance.report_run_failed(instance.get_run_by_id(killed.run_id), "run worker process died")
    instance.report_run_canceled(instance.get_run_by_id(canceled.run_id))
    tick(instance, audit, cursor)
    assert store.job(killed.run_id)["status"] == "Failed"
    assert "process died" in store.job(killed.run_id)["error_message"]
    assert store.job(canceled.run_id)["status"] == "Canceled"
    assert store.job(canceled.run_id)["end_time"] is not None


def test_a_running_run_shows_running_while_it_happens(tmp_path, instance):
    audit = audit_for(f"sqlite:///{tmp_path / 'audit.db'}")
    seen = {}

    @asset
    def observed(context):
        tick(context.instance, audit)
        seen["status"] = AuditStore(audit.audit_url).job(context.run_id)["status"]
        return 1

    assert materialize([observed], instance=instance).success
    assert seen["status"] == "Running"


def test_a_burst_of_failures_is_fully_recorded_and_alerted(tmp_path, instance):
    @asset
    def flaky():
        raise Failure("upstream API answered 500")

    results = [materialize([flaky], instance=instance, raise_on_error=False) for _ in range(12)]
    with Receiver() as receiver:
        report, _ = tick(
            instance, audit_for(f"sqlite:///{tmp_path / 'audit.db'}", receiver.url), batch_size=5
        )
    store = AuditStore(f"sqlite:///{tmp_path / 'audit.db'}")
    assert report.runs == 12
    assert all(store.job(r.run_id)["status"] == "Failed" for r in results)
    assert sorted(b["run_id"] for b in receiver.bodies) == sorted(r.run_id for r in results)


def test_audit_database_down_then_back(tmp_path, spotify, instance):
    if not reachable(POSTGRES_URL):
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")
    database = f"audit_{uuid.uuid4().hex[:8]}"
    audit = audit_for(f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}?connect_timeout=3")
    result = run(spotify, instance, "dimuser")
    assert result.success  # the data run does not depend on the audit database
    with pytest.raises(Exception, match=database):
        tick(instance, audit)  # loud failure; the cursor is not advanced
    admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    try:
        report, _ = tick(instance, audit)
        assert report.runs == 1
        store = AuditStore(audit.audit_url)
        assert store.job(result.run_id)["status"] == "Completed"
        assert len(store.tasks(result.run_id)) == 3
        store.engine.dispose()
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
        admin.dispose()


def test_secrets_never_reach_process_parameters(tmp_path, spotify, instance):
    secret_url = "postgresql://loader:s3cr3t-pw@db.internal/source"
    result = run(
        spotify,
        instance,
        "dimuser",
        tags={
            "source_url": secret_url,
            "api_token": "tok-123456",
            "alert_webhook": "http://127.0.0.1/hook?sig=abcdef",
        },
    )
    audit = audit_for(f"sqlite:///{tmp_path / 'audit.db'}")
    tick(instance, audit)
    params = AuditStore(audit.audit_url).parameters(result.run_id)
    dumped = " ".join(params.values())
    for secret in ("s3cr3t-pw", "tok-123456", "abcdef"):
        assert secret not in dumped
    assert params["tag.api_token"] == "***"
    assert "loader" in params["tag.source_url"]


def test_partition_range_and_trigger_are_recorded(tmp_path, spotify, instance):
    from datetime import date

    from platform_devkit.medallion import day_range_tags

    assets = table_assets(spotify, "factstream")
    tags = {**day_range_tags(date(2025, 1, 1), date(2025, 1, 2)), "dagster/backfill": "abcd"}
    result = materialize(assets, resources=build_resources(spotify), instance=instance, tags=tags)
    audit = audit_for(f"sqlite:///{tmp_path / 'audit.db'}")
    tick(instance, audit)
    store = AuditStore(audit.audit_url)
    job = store.job(result.run_id)
    assert job["partition_key"] == "2025-01-01...2025-01-02" and job["trigger"] == "backfill"
    tasks = {t["asset_key"]: t for t in store.tasks(result.run_id)}
    assert AssetKey(["gold", "factstream"]).to_user_string() in tasks
    # each step wrote one materialization per day; its row holds the range it covered, not the last day
    written = {m.partition for m in result.asset_materializations_for_node("gold__factstream")}
    assert written == {"2025-01-01", "2025-01-02"}
    assert {asset: t["partition_key"] for asset, t in tasks.items()} == {
        "bronze/factstream": "2025-01-01...2025-01-02",
        "silver/factstream": "2025-01-01...2025-01-02",
        "gold/factstream": "2025-01-01...2025-01-02",
    }
    # ...and the row counts of the whole step: the sum of the days'
    per_day = [
        m.metadata["rows_written"].value for m in result.asset_materializations_for_node("gold__factstream")
    ]
    assert (
        sorted(per_day)[0] == 0 and tasks["gold/factstream"]["rows_written"] == sum(per_day) > 0
    )  # one day is empty


def test_an_undelivered_alert_waits_and_is_sent_once_the_webhook_is_back(tmp_path, instance):
    @asset
    def broken():
        raise Failure("boom")

    result = materialize([broken], instance=instance, raise_on_error=False)
    audit_url = f"sqlite:///{tmp_path / 'audit.db'}"
    down = AuditResource(
        audit_url=audit_url, environment="dev", alert_webhook_url="http://127.0.0.1:1/hook", alert_attempts=1
    )
    report, cursor = tick(instance, down)
    store = AuditStore(audit_url)
    assert report.alert_errors and report.alerts_sent == 0
    assert store.job(result.run_id)["status"] == "Failed"  # the audit rows do not wait for the alert
    assert "AlertPending" in [e["status"] for e in store.logs(result.run_id)]
    with Receiver() as receiver:
        up = audit_for(audit_url, receiver.url)
        report, cursor = tick(instance, up, cursor)  # the run itself has not changed since
        tick(instance, up, cursor)
    assert [b["run_id"] for b in receiver.bodies] == [result.run_id]
    assert report.alerts_sent == 1


def test_the_webhook_url_never_reaches_rows_errors_or_logs(tmp_path, instance):
    @asset
    def broken():
        raise Failure("boom")

    result = materialize([broken], instance=instance, raise_on_error=False)
    audit_url = f"sqlite:///{tmp_path / 'audit.db'}"
    secret = "http://u:p4ssw0rd@127.0.0.1:1/hooks/T0SECRETTOKEN?token=QueryTok"  # user info, path, query
    audit = AuditResource(audit_url=audit_url, environment="dev", alert_webhook_url=secret, alert_attempts=1)
    lines: list[str] = []
    report, _ = audit_tick(instance, audit, None, log=lines.append)
    assert report.alert_errors == [
        f"{result.run_id} run_failed: the webhook (PLATFORM_ALERT_WEBHOOK_URL) is "
        "unreachable after 1 attempt(s): connection failed (Connection refused)"
    ]
    engine = sa.create_engine(audit_url)
    with engine.connect() as conn:
        rows = [
            str(tuple(r))
            for table in ("Job_Metadata", "Task_Metadata", "Process_Parameter_Metadata", "Metadata_Logs")
            for r in conn.execute(sa.text(f"SELECT * FROM {table}"))
        ]
    engine.dispose()
    assert any("AlertPending" in r for r in rows)
    everything = "\n".join([*rows, *lines, *report.alert_errors])
    for part in ("p4ssw0rd", "T0SECRETTOKEN", "QueryTok", "/hooks", "token="):
        assert part not in everything


def test_alerts_do_not_wait_for_the_audit_database(tmp_path, instance):
    if not reachable(POSTGRES_URL):
        pytest.skip("PostgreSQL not reachable on 127.0.0.1:5432")

    @asset
    def broken():
        raise Failure("boom")

    result = materialize([broken], instance=instance, raise_on_error=False)
    database = f"audit_{uuid.uuid4().hex[:8]}"
    with Receiver() as receiver:
        audit = audit_for(
            f"postgresql+psycopg://postgres@127.0.0.1:5432/{database}?connect_timeout=3", receiver.url
        )
        lines: list[str] = []
        with pytest.raises(Exception, match=database):
            audit_tick(
                instance, audit, None, log=lines.append
            )  # the audit database is missing: the tick fails...
        assert [b["run_id"] for b in receiver.bodies] == [result.run_id]  # ...but the alert went out
        assert "1 sent" in lines[-1]
        with pytest.raises(Exception, match=database):
            tick(instance, audit)  # a second tick during the outage does not alert again
        assert len(receiver.bodies) == 1
        admin = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
        with admin.connect() as conn:
            conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        try:
            report, _ = tick(instance, audit)  # the database is back: the rows are written, no new alert
            assert report.runs >= 1 and report.alerts_sent == 0 and len(receiver.bodies) == 1
            store = AuditStore(audit.audit_url)
            assert store.job(result.run_id)["status"] == "Failed"
            alerted = [e for e in store.logs(result.run_id) if e["status"] == "Alerted"]
            assert [e["event_key"] for e in alerted] == ["ALERT:run_failed"]
            store.engine.dispose()
        finally:
            with admin.connect() as conn:
                conn.execute(sa.text(f'DROP DATABASE "{database}" WITH (FORCE)'))
            admin.dispose()
