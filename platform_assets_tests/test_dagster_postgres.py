"""The team deployment's instance (deploy/dagster.postgres.yaml): runs, event logs and sensor ticks of the
CLI and of a real daemon land in PostgreSQL, not in SQLite files under DAGSTER_HOME."""

from __future__ import annotations

import os
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
import yaml
from dagster import DagsterEventType, DagsterInstance, DagsterRunStatus
from dagster._core.scheduler.instigation import InstigatorType

from platform_assets.defs.monitoring.audit import SENSOR_NAME
from platform_assets_tests.conftest import POSTGRES_URL, reachable, settings_for
from platform_assets_tests.processes import BIN, materialize_command, running_daemon, wait_for
from platform_devkit import sample

POSTGRES_YAML = Path(__file__).parents[1] / "deploy" / "dagster.postgres.yaml"
# every outside address the code location knows, pointed at a closed local port: should a schedule come
# due while the daemon runs, it fails on 127.0.0.1 instead of reaching the internet
NOWHERE = {
    "PLATFORM_COUNTRY_API_URL": "http://127.0.0.1:9",
    "PLATFORM_TRADES_WS_URL": "ws://127.0.0.1:9",
    "PLATFORM_TRADES_LOOKUP_URL": "http://127.0.0.1:9",
}


@pytest.fixture
def dagster_pg_url() -> Iterator[str]:
    """A fresh PostgreSQL database for the instance, dropped after; its URL names psycopg2, as the shipped
    file asks (SQLAlchemy 2.1 would open a plain postgresql:// with psycopg 3, which dagster-postgres's
    event log cannot write through)."""
    if not reachable(POSTGRES_URL):
        pytest.fail(
            "PostgreSQL not reachable on 127.0.0.1:5432 (needed for the dagster-postgres instance); start it "
            "with 'pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start'",
            pytrace=False,
        )
    database = f"dagster_{uuid.uuid4().hex}"
    server = sa.create_engine(POSTGRES_URL, isolation_level="AUTOCOMMIT")
    with server.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
    try:
        yield f"postgresql+psycopg2://postgres@127.0.0.1:5432/{database}"
    finally:
        with server.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
        server.dispose()


def postgres_home(tmp_path: Path, env: dict[str, str]) -> Path:
    """A DAGSTER_HOME with deploy/dagster.postgres.yaml (run monitoring polled every second), migrated."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    config = yaml.safe_load(POSTGRES_YAML.read_text())
    assert config["storage"] == {"postgres": {"postgres_url": {"env": "DAGSTER_PG_URL"}}}
    config["run_monitoring"].update(poll_interval_seconds=1, free_slots_after_run_end_seconds=1)
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    migrate = subprocess.run(
        [BIN / "dagster", "instance", "migrate"],
        env={**env, "DAGSTER_HOME": str(home)},
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert migrate.returncode == 0, migrate.stderr[-3000:]
    return home


@pytest.mark.slow(20)
def test_runs_events_and_sensor_ticks_are_stored_in_postgres(
    tmp_path, sqlite_source, dagster_pg_url, monkeypatch
):
    settings = settings_for(tmp_path, sqlite_source)
    sample.init(sqlite_source.url, scale=1, seed=3, days=1)
    env = {
        **os.environ,
        **NOWHERE,
        "DAGSTER_PG_URL": dagster_pg_url,
        "PLATFORM_DATA_DIR": str(settings.data_dir),
        "PLATFORM_SOURCE_URL": sqlite_source.url,
        "PLATFORM_TABLES_FILE": str(settings.tables_file),
    }
    env.pop("PLATFORM_KAFKA_BOOTSTRAP", None)  # the trades sensor then skips without a broker
    home = postgres_home(tmp_path, env)
    env["DAGSTER_HOME"] = str(home)
    monkeypatch.setenv("DAGSTER_PG_URL", dagster_pg_url)  # the instance opened below reads it too
    pg = sa.create_engine(dagster_pg_url)

    def sql(query: str, **params):
        with pg.connect() as conn:
            return conn.execute(sa.text(query), params).all()

    instance = DagsterInstance.from_config(str(home))
    try:
        with running_daemon(env, tmp_path):  # loads the code location while the CLI run goes on
            done = subprocess.run(
                materialize_command("bronze/dimartist"),
                env=env,
                cwd=tmp_path,
                capture_output=True,
                text=True,
                timeout=180,
            )
            assert done.returncode == 0, done.stderr[-3000:]

            [run] = instance.get_runs()
            assert run.status == DagsterRunStatus.SUCCESS
            [materialization] = instance.get_records_for_run(
                run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION
            ).records
            assert materialization.asset_key.to_user_string() == "bronze/dimartist"
            assert sql("SELECT status FROM runs WHERE run_id = :r", r=run.run_id) == [("SUCCESS",)]
            assert sql(
                "SELECT asset_key FROM event_logs WHERE run_id = :r AND dagster_event_type = :t",
                r=run.run_id,
                t="ASSET_MATERIALIZATION",
            ) == [('["bronze", "dimartist"]',)]

            def audit_ticks():
                for state in instance.all_instigator_state(instigator_type=InstigatorType.SENSOR):
                    if state.instigator_name == SENSOR_NAME:
                        return instance.get_ticks(state.instigator_origin_id, state.selector_id)
                return None

            [*_, tick] = wait_for(f"a tick of the {SENSOR_NAME} sensor", audit_ticks, timeout=90)
        assert sql("SELECT count(*) FROM job_ticks WHERE selector_id = :s", s=tick.selector_id)[0][0] >= 1
        assert sql(
            "SELECT count(*) FROM instigators WHERE selector_id = :s AND instigator_type = 'SENSOR'",
            s=tick.selector_id,
        ) == [(1,)]
    finally:
        instance.dispose()
        pg.dispose()
    # nothing of the instance's history went to SQLite files under DAGSTER_HOME
    assert not (home / "history").exists() and not (home / "schedules").exists()
    assert not [p for p in home.rglob("*") if p.suffix == ".db" or p.name.endswith((".db-wal", ".db-shm"))]
