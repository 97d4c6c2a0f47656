"""Job_Metadata ids follow the order the runs were created, however a pass fetched them."""

from __future__ import annotations

from dagster import RunsFilter, asset, materialize

from platform_assets.core.audit import AuditStore
from platform_assets.defs.monitoring.reconcile import reconcile
from platform_assets_tests.monitoring.test_audit_trail import audit_for


@asset
def tiny() -> int:
    return 1


def test_runs_recorded_in_one_pass_get_ids_in_creation_order(tmp_path, instance):
    run_ids = [materialize([tiny], instance=instance).run_id for _ in range(3)]
    # as the pass over runs in progress sees them: newest first
    newest_first = instance.get_run_records(RunsFilter(run_ids=run_ids))
    assert [r.dagster_run.run_id for r in newest_first] == run_ids[::-1]
    audit = audit_for(f"sqlite:///{tmp_path / 'audit.db'}")
    store = AuditStore(audit.audit_url)
    reconcile(instance, audit, newest_first, store=store)
    ids = [store.job(run_id)["job_id"] for run_id in run_ids]
    assert ids == sorted(ids) and len(set(ids)) == 3
