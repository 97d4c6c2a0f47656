"""Process_Parameter_Metadata holds what a run was launched with, not Dagster's internal plumbing."""

from __future__ import annotations

from platform_assets.core.audit import AuditStore
from platform_assets.defs.monitoring.facts import parameters
from platform_assets.lib.tags import PARAMETER_TAG_PREFIX
from platform_assets_tests.monitoring.test_audit_trail import audit_for, run, spotify, tick  # noqa: F401

# What a run launched from the UI by a sensor of a code server carries besides the user's own tags.
DAGSTER_PLUMBING = {
    ".dagster/grpc_info": '{"host": "localhost", "socket": "/tmp/tmpa1b2c3/dagster.sock"}',
    ".dagster/run_worker": "abc",
    "dagster/tick": "41",
    "dagster/run_key": "bronze_dimuser:2025-01-01",
    "dagster/from_ui": "true",
    "dagster/will_retry": "false",
}


def test_parameters_keep_user_tags_and_dagster_tags_that_describe_the_request():
    tags = {
        **DAGSTER_PLUMBING,
        "requested_by": "ops",
        "dagster/partition": "2025-01-01",
        "dagster/partition/region": "eu",
        "dagster/backfill": "abcd",
        "dagster/sensor_name": "medallion_landing_sensor",
        "dagster/max_retries": "2",
        "platform/job_type": "Streaming",
        f"{PARAMETER_TAG_PREFIX}Kafka_Topic": "trades",
    }
    params = parameters({"ops": {"bronze__dimuser": {"config": {"from_date": "2025-01-01"}}}}, tags)
    assert params == {
        "ops.bronze__dimuser.config.from_date": "2025-01-01",
        "tag.requested_by": "ops",
        "tag.dagster/partition": "2025-01-01",
        "tag.dagster/partition/region": "eu",
        "tag.dagster/backfill": "abcd",
        "tag.dagster/sensor_name": "medallion_landing_sensor",
        "tag.dagster/max_retries": "2",
        "tag.platform/job_type": "Streaming",
        f"tag.{PARAMETER_TAG_PREFIX}Kafka_Topic": "trades",
        "Kafka_Topic": "trades",
    }


def test_a_real_run_audits_its_user_tags_without_dagsters_internal_ones(tmp_path, spotify, instance):  # noqa: F811
    audit = audit_for(f"sqlite:///{tmp_path / 'audit.db'}")
    result = run(spotify, instance, "dimuser", tags={**DAGSTER_PLUMBING, "requested_by": "tests"})
    assert result.success
    # Dagster kept the tags on the run: the audit is what leaves them out
    assert instance.get_run_by_id(result.run_id).tags[".dagster/grpc_info"].startswith("{")
    tick(instance, audit)
    params = AuditStore(audit.audit_url).parameters(result.run_id)
    assert params["tag.requested_by"] == "tests"
    assert params["assets"] == "bronze/dimuser,gold/dimuser,silver/dimuser"
    leaked = [name for name in params if "dagster/" in name]
    assert not leaked, leaked
    assert not any("dagster.sock" in str(value) for value in params.values())
