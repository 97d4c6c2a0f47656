"""Seed 002's conditional flow: customer count → customer file → exactly one product run with the count."""

from __future__ import annotations

import polars as pl
import pytest
import sqlalchemy as sa
from dagster import build_sensor_context, materialize

from platform_assets.core.audit import AuditStore
from platform_assets.definitions import build_definitions
from platform_assets.defs.customers.assets import CustomerFlowResource, customer_data
from platform_assets.defs.customers.sensors import customer_count_to_product
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.lib.resources import AuditResource, build_resources
from platform_assets.lib.tags import PARENT_RUN_TAG
from platform_assets_tests.conftest import settings_for
from platform_devkit import sample


def setup_source(tmp_path, source, customers):
    settings = settings_for(tmp_path, source, source_schema=source.schema)
    sample.init(source.url, scale=1, seed=5, days=1, schema=source.schema)
    sample.set_customer_count(source.url, customers, seed=5, schema=source.schema)
    return settings


def flow(settings) -> CustomerFlowResource:
    return CustomerFlowResource(
        source_schema=settings.source_schema, customer_threshold=500, product_threshold=600
    )


def run_parent(settings, instance):
    return materialize(
        [customer_data],
        instance=instance,
        raise_on_error=False,
        resources={**build_resources(settings), "customer_flow": flow(settings)},
    )


def evaluate_sensor(settings, instance, cursor=None):
    """One sensor tick, as the daemon runs it; returns the run requests and the new cursor."""
    context = build_sensor_context(
        instance=instance, cursor=cursor, resources={"customer_flow": flow(settings)}
    )
    data = customer_count_to_product.evaluate_tick(context)
    return data.run_requests or [], data.cursor


def parquet_rows(folder) -> int:
    files = sorted(folder.glob("*.parquet")) if folder.exists() else []
    return sum(pl.read_parquet(f).height for f in files)


@pytest.mark.parametrize(
    ("customers", "customer_rows", "product_run"),
    [(400, 0, False), (550, 550, False), (650, 650, True)],
)
def test_counts_decide_files_and_the_product_run(
    tmp_path, sqlite_source, instance, customers, customer_rows, product_run
):
    settings = setup_source(tmp_path, sqlite_source, customers)
    parent = run_parent(settings, instance)
    assert parent.success
    materialization = parent.asset_materializations_for_node("raw__customer_data")[0]
    assert materialization.metadata["customer_count"].value == customers
    assert parquet_rows(settings.table_path("raw", "customer_data")) == customer_rows

    requests, cursor = evaluate_sensor(settings, instance)
    if not product_run:
        assert requests == []
        return
    assert len(requests) == 1
    request = requests[0]
    assert request.run_key == f"product-for-{parent.run_id}"
    assert request.tags[PARENT_RUN_TAG] == parent.run_id
    assert request.run_config["ops"]["raw__product_data"]["config"]["customer_count"] == 650
    # the same parent materialization never starts a second child
    again, _ = evaluate_sensor(settings, instance, cursor)
    assert again == []

    job = build_definitions(settings).resolve_job_def("product_job")
    child = job.execute_in_process(
        run_config=request.run_config,
        tags=request.tags,
        instance=instance,
        resources={"customer_flow": flow(settings)},
    )
    assert child.success
    assert instance.get_run_by_id(child.run_id).tags[PARENT_RUN_TAG] == parent.run_id
    products = sample.sizes(scale=1)["Products"]
    assert parquet_rows(settings.table_path("raw", "product_data")) == products
    # a later tick that sees the same parent again (e.g. a fresh cursor) does not start a second child
    assert evaluate_sensor(settings, instance)[0] == []
    # the link is in the audit tables too
    audit = AuditResource(audit_url=f"sqlite:///{tmp_path / 'audit.db'}", environment="dev")
    audit_tick(instance, audit, None, log=lambda _: None)
    store = AuditStore(audit.audit_url)
    assert store.job(child.run_id)["parent_run_id"] == parent.run_id
    assert store.job(child.run_id)["job_name"] == "product_job"
    assert store.parameters(child.run_id)["ops.raw__product_data.config.customer_count"] == "650"


def test_product_asset_writes_nothing_at_or_below_the_threshold(tmp_path, sqlite_source, instance):
    settings = setup_source(tmp_path, sqlite_source, 650)
    job = build_definitions(settings).resolve_job_def("product_job")
    result = job.execute_in_process(
        run_config={"ops": {"raw__product_data": {"config": {"customer_count": 600}}}},
        instance=instance,
        resources={"customer_flow": flow(settings)},
    )
    assert result.success
    assert parquet_rows(settings.table_path("raw", "product_data")) == 0


def test_an_error_is_a_failed_run_with_the_error(tmp_path, sqlite_source, instance):
    settings = setup_source(tmp_path, sqlite_source, 650)
    engine = sa.create_engine(settings.source_url)
    with engine.begin() as conn:
        conn.execute(sa.text('DROP TABLE "Customers"'))
    engine.dispose()
    result = run_parent(settings, instance)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type_value == "STEP_FAILURE")
    assert "source table Customers does not exist" in str(failure.event_specific_data.error)


def test_flow_on_postgres_schema(tmp_path, postgres_source, instance):
    settings = setup_source(tmp_path, postgres_source, 650)
    parent = run_parent(settings, instance)
    assert parent.success
    assert parquet_rows(settings.table_path("raw", "customer_data")) == 650
