"""Make a Delta table look as if it had been written days ago, so retention rules (vacuum, log clean-up)
can be tested without waiting for them.

delta-rs decides with two clocks: the commits' own timestamps in the log (a removed file's
``deletionTimestamp`` says when vacuum may delete it) and the storage's modification times (log clean-up,
and a full vacuum's judgement of files the log does not reference, such as ``_change_data/``). Both are
moved back by the same amount.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

DAY_MS = 24 * 3600 * 1000


def age_files(table: str | Path, days: float) -> None:
    """Move the modification time of every file of the table (data, change data, log) ``days`` back."""
    shift = days * 24 * 3600
    for root, _dirs, files in os.walk(table):
        for name in files:
            path = os.path.join(root, name)
            stat = os.stat(path)
            os.utime(path, (stat.st_atime - shift, stat.st_mtime - shift))


def age_commits(table: str | Path, days: float) -> None:
    """Move the timestamps recorded in every commit of the log ``days`` back (commit time, removal time,
    file modification time). Only for a table without a checkpoint: a checkpoint's copy of them would win."""
    log = Path(table) / "_delta_log"
    assert not list(log.glob("*.checkpoint.parquet")), "age the commits before any checkpoint is written"
    shift = int(days * DAY_MS)
    for commit in sorted(log.glob("*.json")):
        stat = commit.stat()
        actions = [json.loads(line) for line in commit.read_text().splitlines() if line.strip()]
        for action in actions:
            for kind, key in (
                ("commitInfo", "timestamp"),
                ("remove", "deletionTimestamp"),
                ("add", "modificationTime"),
            ):
                if kind in action and action[kind].get(key) is not None:
                    action[kind][key] -= shift
        commit.write_text("".join(json.dumps(a) + "\n" for a in actions))
        os.utime(commit, (stat.st_atime, stat.st_mtime))


def age_table(table: str | Path, days: float) -> None:
    """The table as if every commit and file of it were ``days`` older."""
    age_commits(table, days)
    age_files(table, days)


def now_ms() -> int:
    return int(time.time() * 1000)
