"""Recover a run whose process died while no Dagster daemon was watching.

With ``make dev`` running, the daemon's run monitoring does this by itself (``dagster.yaml``): a run
whose worker process is gone is marked failed, its pool slots are freed and it is retried. A run
started from the CLI (``dagster asset materialize``) while no daemon runs, and killed, stays
``STARTED`` and keeps its tables' pool slots, so later runs of those tables wait. This command marks
it failed (the audit trail and the failure alert follow on the next audit tick) and frees its slots:

    python -m platform_assets.cli.unblock RUN_ID [--force]

It refuses a run whose worker process is still alive on this machine unless ``--force`` is given.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence

from dagster import DagsterEventType, DagsterInstance

from platform_assets.lib.run_launcher import process_alive


def unblock(instance: DagsterInstance, run_id: str, *, force: bool = False) -> str:
    """Mark ``run_id`` failed if it is still in progress with a dead worker, and free its pool slots."""
    run = instance.get_run_by_id(run_id)
    if run is None:
        raise LookupError(f"no run {run_id} in this Dagster instance ({instance.root_directory})")
    done = []
    if not run.is_finished:
        starts = instance.get_records_for_run(run_id, of_type=DagsterEventType.RUN_START, limit=1).records
        entry = starts[0].event_log_entry if starts else None
        pid = entry.dagster_event.pid if entry and entry.dagster_event else None
        if entry is not None and pid is not None and process_alive(pid, entry.timestamp) and not force:
            raise RuntimeError(
                f"run {run_id}'s worker process {pid} is still alive: stop it first, "
                "or pass --force if it belongs to another machine"
            )
        instance.report_run_failed(
            run, f"marked failed by platform_assets.cli.unblock: worker process {pid} is gone"
        )
        done.append(f"run {run_id} ({run.job_name}) marked failed")
    storage = instance.event_log_storage
    held = run_id in storage.get_concurrency_run_ids()
    storage.free_concurrency_slots_for_run(run_id)
    done.append("its pool slots freed" if held else "it held no pool slots")
    return "; ".join(done)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.cli.unblock", description=(__doc__ or "").split("\n\n")[0]
    )
    parser.add_argument("run_id")
    parser.add_argument("--force", action="store_true", help="also when the worker process seems alive")
    args = parser.parse_args(argv)
    try:
        with DagsterInstance.get() as instance:
            print(unblock(instance, args.run_id, force=args.force))
    except (LookupError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
