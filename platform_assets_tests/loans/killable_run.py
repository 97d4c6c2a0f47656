"""One micro-batch run of the loan stream that stops dead at a chosen point, for the kill test:

    python -m platform_assets_tests.loans.killable_run <landing|silver> <signal file> <dagster home> <batch rows>

The sensor is ticked once and the run it asks for executed, as the daemon would launch it. At the point,
the process writes its pid to the signal file and waits to be killed:

- ``landing``: the batch has been read from Kafka, its dead letters are being kept, bronze's Delta
  commit has not happened;
- ``silver``: bronze has committed the batch, silver's quarantine is written, silver's merge has not
  committed.
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from dagster import DagsterInstance

import platform_assets.core.loans.silver as silver
import platform_assets.lib.micro_batches as micro_batches
from platform_assets.settings import load_settings
from platform_devkit.loans import LoanStreamDriver


def main(point: str, signal_file: str, home: str, batch_rows: str) -> int:
    def stop(*_args, **_kwargs):
        Path(signal_file).write_text(str(os.getpid()))
        time.sleep(600)

    if point == "landing":
        # the bronze step's dead-letter keeper (lib.micro_batches.landed_batch)
        micro_batches.keep_quarantined = stop
    elif point == "silver":
        silver.merge_latest = stop
    else:
        raise SystemExit(f"unknown point {point!r}")
    driver = LoanStreamDriver(
        load_settings(), DagsterInstance.from_config(home), max_batch_rows=int(batch_rows)
    )
    _, requests = driver.tick()
    driver.execute(requests[0])
    return 1  # never reached: the process is killed at the point


if __name__ == "__main__":
    sys.exit(main(*sys.argv[1:]))
