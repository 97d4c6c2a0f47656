"""Runs of Dagster's implicit asset jobs (the UI's Materialize button, in-process ``materialize()``) are
recorded under the platform job whose selection covers their assets, Dagster's name kept beside it."""

from __future__ import annotations

import json

import pytest
from dagster import DagsterRunStatus, build_sensor_context, materialize
from dagster._core.definitions.assets.job.asset_job import IMPLICIT_ASSET_JOB_NAME

from platform_assets.core.audit import AuditStore
from platform_assets.definitions import build_definitions
from platform_assets.defs.countries.assets import RAW_KEY, SILVER_KEY
from platform_assets.defs.customers.assets import CUSTOMER_KEY, PRODUCT_KEY
from platform_assets.defs.customers.sensors import product_run_config
from platform_assets.defs.monitoring.audit import audit_tick, audit_trail_sensor
from platform_assets.defs.monitoring.job_names import JobCatalog
from platform_assets.lib.resources import AuditResource, build_resources
from platform_assets_tests.conftest import settings_for
from platform_devkit import sample


@pytest.fixture
def settings(tmp_path, sqlite_source):
    return settings_for(tmp_path, sqlite_source)


@pytest.fixture
def audit(tmp_path) -> AuditResource:
    return AuditResource(audit_url=f"sqlite:///{tmp_path / 'audit.db'}", environment="dev")


def materialize_table(settings, instance, table):
    assets = [a for a in build_definitions(settings).assets if a.key.path[-1] == table]
    result = materialize(assets, resources=build_resources(settings), instance=instance)
    assert result.success
    return result


def test_a_materialize_run_is_recorded_under_the_job_covering_its_assets(settings, instance, audit):
    sample.init(settings.source_url, scale=1, seed=11, days=1)
    result = materialize_table(settings, instance, "dimuser")
    jobs = JobCatalog.from_definitions(build_definitions(settings))
    audit_tick(instance, audit, None, log=lambda _: None, jobs=jobs)
    store = AuditStore(audit.audit_url)
    assert store.job(result.run_id)["job_name"] == "medallion_job"
    parameters = store.parameters(result.run_id)
    assert parameters["dagster_job_name"] == "__ephemeral_asset_job__"
    assert parameters["assets"] == "bronze/dimuser,gold/dimuser,silver/dimuser"


def test_ui_runs_are_named_after_the_smallest_job_selecting_all_their_assets(settings, instance, audit):
    repository = build_definitions(settings).get_repository_def()
    implicit = repository.get_job(IMPLICIT_ASSET_JOB_NAME)

    def ui_run(*keys, run_config=None):
        return instance.create_run_for_job(
            implicit, asset_selection=frozenset(keys), run_config=run_config, status=DagsterRunStatus.SUCCESS
        ).run_id

    customers = ui_run(CUSTOMER_KEY)
    countries = ui_run(RAW_KEY, SILVER_KEY)
    two_jobs = ui_run(
        CUSTOMER_KEY, PRODUCT_KEY, run_config=product_run_config(0)
    )  # no named job selects both
    named = instance.create_run_for_job(
        repository.get_job("product_job"), run_config=product_run_config(0), status=DagsterRunStatus.SUCCESS
    ).run_id
    audit_tick(instance, audit, None, log=lambda _: None, jobs=JobCatalog.from_repository(repository))
    store = AuditStore(audit.audit_url)
    recorded = {
        run_id: (store.job(run_id)["job_name"], store.parameters(run_id)["dagster_job_name"])
        for run_id in (customers, countries, two_jobs, named)
    }
    assert recorded == {
        customers: ("customer_job", "__ASSET_JOB"),
        countries: ("countries_job", "__ASSET_JOB"),
        two_jobs: ("__ASSET_JOB", "__ASSET_JOB"),
        named: ("product_job", "product_job"),
    }


def test_without_the_jobs_a_run_keeps_dagsters_name(settings, instance, audit):
    repository = build_definitions(settings).get_repository_def()
    run = instance.create_run_for_job(
        repository.get_job(IMPLICIT_ASSET_JOB_NAME),
        asset_selection=frozenset({CUSTOMER_KEY}),
        status=DagsterRunStatus.SUCCESS,
    )
    audit_tick(instance, audit, None, log=lambda _: None)
    assert AuditStore(audit.audit_url).job(run.run_id)["job_name"] == "__ASSET_JOB"


def test_the_sensor_names_runs_after_the_jobs_of_its_code_location(settings, instance, audit):
    definitions = build_definitions(settings)
    run = instance.create_run_for_job(
        definitions.get_repository_def().get_job(IMPLICIT_ASSET_JOB_NAME),
        asset_selection=frozenset({CUSTOMER_KEY}),
        status=DagsterRunStatus.SUCCESS,
    )
    context = build_sensor_context(instance=instance, definitions=definitions, resources={"audit": audit})
    audit_trail_sensor(context)
    store = AuditStore(audit.audit_url)
    assert store.job(run.run_id)["job_name"] == "customer_job"
    assert store.parameters(run.run_id)["dagster_job_name"] == "__ASSET_JOB"
    assert json.loads(context.cursor)["audited"].keys() == {run.run_id}
