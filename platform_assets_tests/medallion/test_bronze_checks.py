"""The bronze asset's ``source_schema`` and ``reconciliation`` checks as Dagster records them, and the
reconciliation in the audit trail (Process_Parameter_Metadata), through real runs."""

from __future__ import annotations

import dataclasses
from datetime import date

import sqlalchemy as sa
from dagster import AssetCheckSeverity, AssetKey, AssetsDefinition, DagsterInstance, materialize

from platform_assets.core.audit import AuditStore
from platform_assets.core.medallion import extract as extract_module
from platform_assets.core.medallion.config import load_tables
from platform_assets.definitions import build_definitions
from platform_assets.lib.resources import build_resources
from platform_assets_tests.conftest import tables_file_for
from platform_assets_tests.medallion.helpers import execute, source_frame
from platform_assets_tests.medallion.test_medallion import build
from platform_assets_tests.monitoring.test_audit_trail import audit_for, tick
from platform_devkit.medallion import materialize_medallion

BRONZE_FACTS = AssetKey(["bronze", "factstream"])
BRONZE_USERS = AssetKey(["bronze", "dimuser"])


def evaluations(result, key: AssetKey, name: str):
    return [e for e in result.get_asset_check_evaluations() if e.asset_key == key and e.check_name == name]


def values(evaluation) -> dict:
    return {k: v.value for k, v in evaluation.metadata.items()}


def bronze_of(settings, key: AssetKey, instance, **kwargs):
    assets = [
        a
        for a in build_definitions(settings).assets or ()
        if isinstance(a, AssetsDefinition) and key in a.keys
    ]
    return materialize(
        assets, resources=build_resources(settings), instance=instance, raise_on_error=False, **kwargs
    )


def test_a_range_run_reconciles_each_day_and_the_audit_records_it(tmp_path, sqlite_source):
    settings = build(tmp_path, sqlite_source, days=2)
    source = source_frame(settings, None, "FactStream")
    per_day = {
        d.isoformat(): n for d, n in source.group_by(source["stream_timestamp"].dt.date()).len().rows()
    }
    days = sorted(per_day)
    assert len(days) == 2
    instance = DagsterInstance.ephemeral()
    run = materialize_medallion(
        settings, instance=instance, days=(date.fromisoformat(days[0]), date.fromisoformat(days[1]))
    )
    assert run.success
    ranged = run.results[-1]
    checks = {str(e.partition): e for e in evaluations(ranged, BRONZE_FACTS, "reconciliation")}
    assert sorted(checks) == days  # one result per day, on its partition
    for day, following in ((days[0], days[1]), (days[1], None)):
        facts = values(checks[day])
        assert checks[day].passed and checks[day].severity == AssetCheckSeverity.ERROR
        assert facts["source_rows"] == facts["bronze_rows"] == per_day[day] > 0
        assert facts["difference"] == 0
        assert facts["window"].startswith(f"[{day}T00:00:00+00:00, ")
        if following is not None:
            assert facts["window"] == f"[{day}T00:00:00+00:00, {following}T00:00:00+00:00)"
    [schema] = evaluations(ranged, BRONZE_FACTS, "source_schema")  # the source's columns: once per run
    assert schema.passed and schema.partition is None
    assert values(schema)["baseline"].startswith("recorded")
    # the dimensions' run: one result each, for the whole table
    [users] = evaluations(run.results[0], BRONZE_USERS, "reconciliation")
    assert values(users)["source_rows"] == values(users)["bronze_rows"] == 50

    audit = audit_for(f"sqlite:///{tmp_path / 'audit.db'}")
    tick(instance, audit)
    store = AuditStore(audit.audit_url)
    params = store.parameters(ranged.run_id)
    for day in days:
        prefix = f"reconciliation.bronze/factstream[{day}]"
        assert params[f"{prefix}.source_rows"] == str(per_day[day])
        assert params[f"{prefix}.bronze_rows"] == str(per_day[day])
        assert params[f"{prefix}.difference"] == "0"
        assert params[f"{prefix}.passed"] == "true"
        assert params[f"{prefix}.window"].startswith(f"[{day}T00:00:00")
    dims = store.parameters(run.results[0].run_id)
    assert dims["reconciliation.bronze/dimuser.source_rows"] == "50"
    assert dims["reconciliation.bronze/dimuser.bronze_rows"] == "50"


def test_rows_lost_between_the_read_and_the_file_fail_the_check(tmp_path, sqlite_source, monkeypatch):
    settings = dataclasses.replace(build(tmp_path, sqlite_source), batch_size=8)
    write = extract_module._ParquetFiles.write
    seen: list[int] = []

    def losing_the_second_batch(self, path, batch):
        seen.append(batch.num_rows)
        if len(seen) != 2:
            write(self, path, batch)

    monkeypatch.setattr(extract_module._ParquetFiles, "write", losing_the_second_batch)
    instance = DagsterInstance.ephemeral()
    result = bronze_of(settings, BRONZE_USERS, instance)
    assert result.success  # not blocking: what landed is sound, the check says what is missing
    [check] = evaluations(result, BRONZE_USERS, "reconciliation")
    facts = values(check)
    assert not check.passed and check.severity == AssetCheckSeverity.ERROR
    assert (facts["source_rows"], facts["bronze_rows"], facts["difference"]) == (50, 50 - seen[1], seen[1])
    audit = audit_for(f"sqlite:///{tmp_path / 'audit.db'}")
    tick(instance, audit)
    params = AuditStore(audit.audit_url).parameters(result.run_id)
    assert params["reconciliation.bronze/dimuser.difference"] == str(seen[1])
    assert params["reconciliation.bronze/dimuser.passed"] == "false"


def on_schema_change(tmp_path, settings, rule: str):
    def edit(document):
        next(t for t in document["tables"] if t["table"] == "DimUser")["on_schema_change"] = rule

    return dataclasses.replace(settings, tables_file=tables_file_for(tmp_path, None, edit))


def test_a_warned_schema_change_fails_the_check_with_warn_and_lists_the_columns(tmp_path, sqlite_source):
    settings = on_schema_change(tmp_path, build(tmp_path, sqlite_source), "warn")
    instance = DagsterInstance.ephemeral()
    assert bronze_of(settings, BRONZE_USERS, instance).success
    execute(settings, sa.text('ALTER TABLE "DimUser" ADD COLUMN nickname VARCHAR(40)'))
    execute(settings, sa.text('ALTER TABLE "DimUser" DROP COLUMN country'))
    result = bronze_of(settings, BRONZE_USERS, instance)
    assert result.success  # warn: the rows are read
    [check] = evaluations(result, BRONZE_USERS, "source_schema")
    assert not check.passed and check.severity == AssetCheckSeverity.WARN
    facts = values(check)
    assert facts["added"] == ["nickname VARCHAR(40)"] and facts["dropped"] == ["country VARCHAR(60)"]
    assert facts["retyped"] == [] and facts["on_schema_change"] == "warn"
    assert check.description == "added: nickname VARCHAR(40); dropped: country VARCHAR(60)"
    # the next run compares with this one's columns
    [again] = evaluations(bronze_of(settings, BRONZE_USERS, instance), BRONZE_USERS, "source_schema")
    assert again.passed and values(again)["changed"] is False


def test_a_blocked_schema_change_fails_the_step_until_a_run_accepts_it(tmp_path, sqlite_source):
    settings = on_schema_change(tmp_path, build(tmp_path, sqlite_source), "block")
    users = next(t for t in load_tables(settings.tables_file) if t.table == "DimUser")
    assert users.on_schema_change == "block"
    instance = DagsterInstance.ephemeral()
    assert bronze_of(settings, BRONZE_USERS, instance).success
    execute(settings, sa.text('ALTER TABLE "DimUser" ADD COLUMN nickname VARCHAR(40)'))
    blocked = bronze_of(settings, BRONZE_USERS, instance)
    assert not blocked.success
    [failure] = [e for e in blocked.all_events if e.is_step_failure]
    error, failed = failure.step_failure_data.error, failure.step_failure_data.user_failure_data
    assert error is not None and failed is not None
    message = error.message
    assert "DimUser: the source table's columns changed since the last successful run" in message
    assert "added: nickname VARCHAR(40)" in message
    assert failed.metadata["added"].value == ["nickname VARCHAR(40)"]
    assert len([e for e in blocked.all_events if e.event_type_value == "STEP_UP_FOR_RETRY"]) == 0

    accept = {"ops": {"bronze__dimuser": {"config": {"accept_schema_change": True}}}}
    accepted = bronze_of(settings, BRONZE_USERS, instance, run_config=accept)
    assert accepted.success
    [check] = evaluations(accepted, BRONZE_USERS, "source_schema")
    assert check.passed and values(check)["accepted"] is True
    assert values(check)["added"] == ["nickname VARCHAR(40)"]
    assert bronze_of(settings, BRONZE_USERS, instance).success  # the accepted columns are the baseline
