"""Files and bytes a lake holds, per table: what the soak benchmarks watch grow (or not) with history.

Imported by ``medallion_soak.py`` and ``stream_soak.py`` (run as scripts from this folder). Only the file
system is read: no Delta log is replayed, so measuring costs the same on day 1 and day 365.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

DELTA_LOG = "_delta_log"


@dataclass
class TableFiles:
    """One table folder: a Delta table (``_delta_log`` inside) or a folder of plain files (bronze extracts).

    ``log_commits`` counts the JSON commit files, ``log_checkpoints`` the checkpoint Parquet files; ``log_files``
    and ``log_bytes`` everything in ``_delta_log`` (``_last_checkpoint``, ``.crc`` and temporary files too).
    ``data_files`` and ``data_bytes`` are the files outside the log: Parquet data files (current or no longer
    referenced: the file system cannot tell; vacuum is what removes the latter) and anything else kept there.
    """

    delta: bool
    data_files: int = 0
    data_bytes: int = 0
    log_files: int = 0
    log_bytes: int = 0
    log_commits: int = 0
    log_checkpoints: int = 0
    # From the Delta log (with ``snapshot=True``): the live data files a reader opens, and the commits a
    # reader replays after the newest checkpoint. On-disk counts above also hold replaced files that
    # vacuum may not delete yet and commits the log retention still keeps.
    version: int | None = None
    live_files: int | None = None
    live_bytes: int | None = None
    replayed_commits: int | None = None

    def add(self, other: TableFiles) -> None:
        for name in ("data_files", "data_bytes", "log_files", "log_bytes", "log_commits", "log_checkpoints"):
            setattr(self, name, getattr(self, name) + getattr(other, name))
        for name in ("live_files", "live_bytes", "replayed_commits"):
            if getattr(other, name) is not None:
                setattr(self, name, (getattr(self, name) or 0) + getattr(other, name))


def _walk_files(folder: Path) -> list[os.DirEntry]:
    found: list[os.DirEntry] = []
    stack = [folder]
    while stack:
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    stack.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    found.append(entry)
    return found


def _table_files(folder: Path) -> TableFiles:
    log = folder / DELTA_LOG
    files = TableFiles(delta=log.is_dir())
    for entry in _walk_files(folder):
        size = entry.stat(follow_symlinks=False).st_size
        if files.delta and Path(entry.path).parent == log:
            files.log_files += 1
            files.log_bytes += size
            if entry.name.endswith(".json") and entry.name[:20].isdigit():
                files.log_commits += 1
            elif ".checkpoint." in entry.name and entry.name.endswith(".parquet"):
                files.log_checkpoints += 1
        elif files.delta and DELTA_LOG in Path(entry.path).relative_to(folder).parts:
            files.log_files += 1  # e.g. _delta_log/_commits (staged commits)
            files.log_bytes += size
        else:
            files.data_files += 1
            files.data_bytes += size
    return files


def _snapshot(folder: Path, files: TableFiles) -> None:
    """The live files and the commits replayed after the newest checkpoint, from the Delta log."""
    from deltalake import DeltaTable

    table = DeltaTable(str(folder))
    files.version = table.version()
    adds = table.get_add_actions(flatten=False)
    files.live_files = adds.num_rows
    files.live_bytes = int(sum(adds.column("size_bytes").to_pylist())) if adds.num_rows else 0
    checkpoint = -1
    last = folder / DELTA_LOG / "_last_checkpoint"
    if last.is_file():
        checkpoint = int(json.loads(last.read_text())["version"])
    files.replayed_commits = files.version - checkpoint


def lake_tables(root: Path, *, snapshot: bool = False) -> dict[str, TableFiles]:
    """``{"<layer>/<table>": TableFiles}`` for every table folder two levels under ``root`` (the
    environment's catalog: ``<layer>/<table>``). ``snapshot``: also read each Delta table's log for its
    live files and the commits a reader replays (costs a table load each)."""
    tables: dict[str, TableFiles] = {}
    if not root.is_dir():
        return tables
    for layer in sorted(p for p in root.iterdir() if p.is_dir()):
        for table in sorted(p for p in layer.iterdir() if p.is_dir()):
            files = tables[f"{layer.name}/{table.name}"] = _table_files(table)
            if snapshot and files.delta:
                _snapshot(table, files)
    return tables


def lake_totals(tables: dict[str, TableFiles]) -> dict[str, Any]:
    """Totals over the Delta tables and over the plain folders, and the largest per-table counts."""
    delta, plain = TableFiles(delta=True), TableFiles(delta=False)
    for files in tables.values():
        (delta if files.delta else plain).add(files)
    deltas = {name: f for name, f in tables.items() if f.delta}
    return {
        "delta_tables": len(deltas),
        "data_files": delta.data_files,
        "data_bytes": delta.data_bytes,
        "log_files": delta.log_files,
        "log_bytes": delta.log_bytes,
        "log_commits": delta.log_commits,
        "log_checkpoints": delta.log_checkpoints,
        "live_files": delta.live_files,
        "replayed_commits": delta.replayed_commits,
        "max_replayed_commits": max((f.replayed_commits or 0 for f in deltas.values()), default=0),
        "max_data_files": max((f.data_files for f in deltas.values()), default=0),
        "max_log_files": max((f.log_files for f in deltas.values()), default=0),
        "plain_folders": len(tables) - len(deltas),
        "plain_files": plain.data_files,
        "plain_bytes": plain.data_bytes,
    }


def as_dict(tables: dict[str, TableFiles]) -> dict[str, dict[str, Any]]:
    return {name: asdict(files) for name, files in tables.items()}


def folder_size(path: Path) -> tuple[int, int]:
    """(files, bytes) of everything under ``path`` (a file counts as itself); (0, 0) when missing."""
    if path.is_file():
        return 1, path.stat().st_size
    if not path.is_dir():
        return 0, 0
    entries = _walk_files(path)
    return len(entries), sum(e.stat(follow_symlinks=False).st_size for e in entries)


def sqlite_size(url_or_path: str | Path) -> int:
    """Bytes of a SQLite database with its ``-wal`` and ``-journal`` files (0 when missing)."""
    text = str(url_or_path)
    path = Path(text.split("sqlite:///", 1)[1] if text.startswith("sqlite:///") else text)
    return sum(p.stat().st_size for p in (path, Path(f"{path}-wal"), Path(f"{path}-journal")) if p.is_file())


def age_files(root: Path, seconds: float) -> int:
    """Move the modification time of every file under ``root`` ``seconds`` back; the files moved.

    A soak compresses time: its days pass in seconds, so retention rules that read the storage's clock
    (Delta log clean-up, a full vacuum's judgement of files the log does not reference) would never see a
    file old enough. Moving every file back a day after each simulated day makes that clock follow the
    simulated one. The commits' own timestamps (a removed file's ``deletionTimestamp``) are not moved.
    """
    moved = 0
    for entry in _walk_files(root) if root.is_dir() else []:
        stat = entry.stat(follow_symlinks=False)
        os.utime(entry.path, (stat.st_atime - seconds, stat.st_mtime - seconds))
        moved += 1
    return moved
