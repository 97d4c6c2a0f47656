"""The loan application stream end to end through the real job and sensor, on librdkafka's mock cluster:
events produced by the dev kit's producer land once each in bronze (poison in the dead-letter table),
silver holds the latest valid event of every application, the expectations are asset checks, and every
micro-batch run is audited as the contract says."""

from __future__ import annotations

import math
from dataclasses import replace
from datetime import UTC, datetime
from decimal import Decimal

import polars as pl
import pytest
from dagster import RunsFilter

from platform_assets.core.audit import AuditStore
from platform_assets.core.lake import delta
from platform_assets.core.loans.events import STATUSES, LoanEvent
from platform_assets.core.state import StateStore
from platform_assets.core.streaming import planning
from platform_assets.core.streaming.incarnation import accept_incarnation
from platform_assets.core.streaming.kafka import EmbeddedBroker
from platform_assets.defs.loans import sensors
from platform_assets.defs.loans.sensors import JOB
from platform_assets.defs.monitoring.audit import audit_tick
from platform_assets.lib.micro_batches import broker_address
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import MICRO_BATCH_TAG, PARAMETER_TAG_PREFIX, STOPPED_TAG, STREAMING_SOURCE_TAG
from platform_assets_tests.conftest import settings_for
from platform_devkit.loans import LoanStreamDriver, make_events, produce

TOPIC = "loanApplications"


@pytest.fixture
def stream(tmp_path, sqlite_source):
    """Settings of a fresh broker (so a fresh topic), lake and audit database."""
    with EmbeddedBroker() as broker:
        yield replace(settings_for(tmp_path, sqlite_source), kafka_bootstrap=broker.bootstrap)


def expected_silver(events: list[LoanEvent]) -> dict[str, tuple[str, Decimal]]:
    """Per application, its valid event (amount > 0, a known status) with the latest event time; on a tie
    the one produced later."""
    latest: dict[str, tuple] = {}
    for produced, e in enumerate(events):
        amount = Decimal(e.amount)
        if amount <= 0 or e.status not in STATUSES:
            continue
        if e.application_id not in latest or (e.event_time, produced) > latest[e.application_id][0]:
            latest[e.application_id] = ((e.event_time, produced), e.status, amount)
    return {app: (status, amount) for app, (_, status, amount) in latest.items()}


def bronze_events(settings) -> pl.DataFrame:
    return pl.read_delta(str(settings.table_path("bronze", "loan_applications")))


def test_a_window_lands_once_folds_to_the_latest_event_and_is_audited(stream, instance):
    produced = make_events(80, poison_every=15)
    driver = LoanStreamDriver(stream, instance, max_batch_rows=50)
    conf = driver.resources["loan_stream"].producer_conf()
    total = produce(conf, TOPIC, produced.messages)
    assert total == len(produced.events) + produced.poison and produced.poison >= 5

    runs = driver.drain()
    assert runs and all(r.success for r in runs)
    micro = [r for r in runs if MICRO_BATCH_TAG in r.dagster_run.tags]
    assert len(micro) == math.ceil(total / 50)
    assert [int(r.dagster_run.tags[MICRO_BATCH_TAG]) for r in micro] == list(range(len(micro)))

    bronze = bronze_events(stream)
    assert bronze.height == len(produced.events)  # every valid message once
    assert bronze.select("kafka_partition", "kafka_offset").n_unique() == bronze.height
    landed = sorted(bronze.select("application_id", "status", "amount", "event_time").iter_rows())
    sent = sorted((e.application_id, e.status, e.amount, e.event_time) for e in produced.events)
    assert landed == sent
    dead = pl.read_delta(str(stream.table_path("bronze", "loan_applications_quarantine")))
    assert dead.height == produced.poison
    assert dead.select("kafka_partition", "kafka_offset").n_unique() == produced.poison

    silver = pl.read_delta(str(stream.table_path("silver", "loan_applications")))
    assert silver["application_id"].n_unique() == silver.height == produced.applications
    got = {r["application_id"]: (r["status"], r["amount"]) for r in silver.iter_rows(named=True)}
    assert got == expected_silver(produced.events)
    invalid = [e for e in produced.events if Decimal(e.amount) <= 0 or e.status not in STATUSES]
    assert invalid and pl.read_delta(
        str(stream.table_path("silver", "loan_applications_quarantine"))
    ).height == len(invalid)
    failed = {}
    invalid_ids = {e.application_id for e in invalid}
    reconciled = []
    for run in runs:
        for check in run.get_asset_check_evaluations():
            if check.check_name == "reconciliation":  # bronze's: offsets = rows + dead letters
                reconciled.append((check.passed, check.metadata["offsets_in_range"].value))
                continue
            failed[check.check_name] = failed.get(check.check_name, 0) + check.metadata["rows_failed"].value
            if not check.passed:  # which events, by id and position, and where they went
                keys = check.metadata["failing_keys"].value
                assert keys.startswith("application_id, micro_batch_id, kafka_partition, kafka_offset: (")
                assert {k.split(", ")[0] for k in keys.split(": ", 1)[1][1:-1].split("), (")} <= invalid_ids
                assert check.metadata["quarantine_table"].value.endswith(
                    ".silver.loan_applications_quarantine"
                )
    assert failed == {
        "amount_positive": sum(Decimal(e.amount) <= 0 for e in produced.events),
        "known_status": sum(e.status not in STATUSES for e in produced.events),
    }
    assert len(reconciled) == len(micro) and all(passed for passed, _ in reconciled)
    assert sum(offsets for _, offsets in reconciled) == total

    # the audit trail: one Streaming job row per micro-batch run, its parameters and status changes
    _, cursor = audit_tick(instance, build_resources(stream)["audit"], None, log=lambda _: None)
    store = AuditStore(stream.audit_url)
    broker = stream.kafka_bootstrap
    sizes = []
    for run in micro:
        run_id = run.dagster_run.run_id
        job = store.job(run_id)
        assert (job["job_name"], job["job_type"], job["status"], job["streaming_source"]) == (
            JOB,
            "Streaming",
            "Completed",
            f"Kafka:{TOPIC}",
        )
        assert job["micro_batch_id"] == int(run.dagster_run.tags[MICRO_BATCH_TAG])
        params = store.parameters(run_id)
        assert (params["Kafka_Topic"], params["Kafka_Broker"]) == (TOPIC, broker)
        sizes.append(int(params["Batch_Size"]))
        statuses = [row["status"] for row in store.logs(run_id)]
        assert statuses[0] in ("Starting", "Running") and statuses[-1] == "Completed"
        assert {t["asset_key"] for t in store.tasks(run_id)} == {
            "bronze/loan_applications",
            "silver/loan_applications",
        }
    assert sum(sizes) == total


def test_a_replayed_window_adds_nothing_and_the_sensor_says_caught_up(stream, instance):
    produced = make_events(20, poison_every=0)
    driver = LoanStreamDriver(stream, instance)
    produce(driver.resources["loan_stream"].producer_conf(), TOPIC, produced.messages)
    assert all(r.success for r in driver.drain())
    silver_path = str(stream.table_path("silver", "loan_applications"))
    before = pl.read_delta(silver_path).sort("application_id")
    # the same batch run again by hand (what a retry of a landed batch does): nothing lands twice
    (run,) = instance.get_runs(RunsFilter(job_name=JOB), limit=1)
    again = driver.defs.resolve_job_def(JOB).execute_in_process(
        run_config=run.run_config, instance=instance, raise_on_error=False
    )
    assert again.success
    assert again.asset_materializations_for_node("bronze__loan_applications")[0].metadata["skipped"].value
    # nothing landed or merged, yet each asset page still shows its table: version, rows and columns
    for node, layer in (("bronze__loan_applications", "bronze"), ("silver__loan_applications", "silver")):
        meta = again.asset_materializations_for_node(node)[0].metadata
        path = str(stream.table_path(layer, "loan_applications"))
        assert meta["table_version"].value == delta.version(path), layer
        assert meta["dagster/row_count"].value == pl.read_delta(path).height > 0, layer
        assert [c.name for c in meta["dagster/column_schema"].schema.columns] == pl.read_delta(path).columns
    assert bronze_events(stream).height == len(produced.events)
    assert pl.read_delta(silver_path).sort("application_id").equals(before)
    result, requests = driver.tick()
    assert not requests and result.skip_reason.skip_message.startswith("caught up")


def test_the_sensor_waits_out_the_allowed_latency_of_the_declaration(stream, instance, monkeypatch):
    now = [1_000.0]
    monkeypatch.setattr(sensors, "clock", lambda: now[0])
    driver = LoanStreamDriver(stream, instance, allowed_latency=None)  # streams.yaml: 5 s
    result, requests = driver.tick()
    assert not requests and result.skip_reason.skip_message.startswith("nothing landed yet")
    produced = make_events(5, poison_every=0)
    produce(driver.resources["loan_stream"].producer_conf(), TOPIC, produced.messages)
    for moved in (0.0, 3.0):
        now[0] += moved
        result, requests = driver.tick()
        assert not requests and "waiting up to 5 s" in result.skip_reason.skip_message
    now[0] += 2.0
    _, (request,) = driver.tick()
    assert request.run_key == f"{TOPIC}:0:0"
    assert request.tags[PARAMETER_TAG_PREFIX + "Batch_Size"] == str(len(produced.messages))
    assert driver.execute(request).success
    result, requests = driver.tick()
    assert not requests and result.skip_reason.skip_message.startswith("caught up")


def test_the_audit_names_brokers_by_host_and_port_only():
    assert broker_address("127.0.0.1:9092") == "127.0.0.1:9092"
    assert broker_address("SASL_SSL://$ConnectionString:s3cret@ns.servicebus.windows.net:9093, b2:9093") == (
        "ns.servicebus.windows.net:9093,b2:9093"
    )


def test_a_manual_run_plans_its_batch_itself(stream, instance):
    produced = make_events(10, poison_every=4)
    driver = LoanStreamDriver(stream, instance)
    produce(driver.resources["loan_stream"].producer_conf(), TOPIC, produced.messages)
    run = driver.defs.resolve_job_def(JOB).execute_in_process(instance=instance, raise_on_error=False)
    assert run.success
    assert run.dagster_run.tags[STREAMING_SOURCE_TAG] == f"Kafka:{TOPIC}"  # audited as a Streaming run too
    landed = run.asset_materializations_for_node("bronze__loan_applications")[0].metadata
    assert (landed["micro_batch_id"].value, landed["batch_size"].value) == (0, len(produced.messages))
    assert landed["rows_written"].value == len(produced.events)
    assert landed["quarantined"].value == produced.poison
    silver = pl.read_delta(str(stream.table_path("silver", "loan_applications")))
    assert silver.height == produced.applications


def test_a_recreated_topic_on_a_real_broker_fails_one_run_and_then_waits(stream, instance, monkeypatch):
    """The loan topic deleted and created again on a real broker (a new topic id): landing stops until an
    operator accepts the new incarnation. One run fails loudly (its failure alerts once, like any failed
    run), later ticks only skip; once accepted, the new messages land in a new epoch."""
    which = {"id": "cluster-1/topic-a"}
    monkeypatch.setattr(planning, "topic_incarnation", lambda *a, **k: which["id"])
    first = make_events(10, poison_every=0)
    driver = LoanStreamDriver(stream, instance)
    produce(driver.resources["loan_stream"].producer_conf(), TOPIC, first.messages)
    assert all(r.success for r in driver.drain())

    which["id"] = "cluster-1/topic-b"  # another broker stands in for the recreated topic
    with EmbeddedBroker() as broker:
        recreated = replace(stream, kafka_bootstrap=broker.bootstrap)
        driver = LoanStreamDriver(recreated, instance, cursor=driver.cursor)
        second = make_events(6, poison_every=0, prefix="APP-B-")
        produce(driver.resources["loan_stream"].producer_conf(), TOPIC, second.messages)

        _, (request,) = driver.tick()
        assert request.tags[STOPPED_TAG] == "cluster-1/topic-b"
        failed = driver.execute(request)
        assert not failed.success
        assert any("python -m platform_assets.cli.new_epoch" in str(e) for e in failed.all_events)
        for _ in range(2):  # later ticks wait: no second failing run, so no second alert
            result, again = driver.tick()
            assert again == [] and "landing stopped" in str(result)
        assert bronze_events(stream).height == len(first.messages)  # nothing landed meanwhile

        accept_incarnation(
            StateStore(stream.state_url, stream.env),
            driver.resources["loan_stream"].app_id,
            "cluster-1/topic-b",
            datetime.now(UTC),
        )
        assert all(r.success for r in driver.drain())
    bronze = bronze_events(stream)
    assert bronze.filter(pl.col("kafka_epoch") == 0).height == len(first.messages)
    assert bronze.filter(pl.col("kafka_epoch") == 1).height == len(second.messages)
