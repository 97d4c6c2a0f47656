"""Table maintenance: compaction, checkpoints, log clean-up and vacuum of the lake's Delta tables, so a
platform that runs for a year keeps its file count, its log and its storage bounded.

What grows without it:

- **files**: every micro-batch, merge and append adds at least one data file (``bronze/trades`` one per
  micro-batch, thousands a day), and a reader opens every file of the table;
- **the log**: one JSON file per commit. delta-rs writes a checkpoint every 100 commits only, so a table
  committed to a few times a day replays weeks of JSON on every open, and nothing deletes old entries
  unless a checkpoint and the log retention allow it;
- **storage**: files a merge or a compaction replaced stay on disk until a vacuum deletes them, and the
  change data files of merges (``_change_data/``) are never part of the table's state: only a *full*
  vacuum removes them.

:func:`maintain` runs, on one table: the policy's table properties (log and deleted-file retention, so
the table itself declares them to any engine), compaction (or Z-ordering), a vacuum, a checkpoint and log
clean-up, and reports files, bytes, small files and log files before and after.

Correctness rules, each pinned by a test:

1. Compaction rewrites, it never changes data: its add/remove actions carry ``dataChange=false``, which
   the change data feed skips (gold reads silver through it) and which the trade stream's silver does not
   see (it reads bronze by ``micro_batch_id``).
2. A landing stream's position (next offsets, epoch, incarnation) lives in the commit info of its newest
   landing commit (:mod:`platform_assets.core.streaming.position`). Maintenance commits push that commit down
   the log, and log clean-up eventually deletes its JSON. So when the newest commit of such a table no
   longer carries the position, maintenance writes one more commit that copies it (the table properties
   again, with the position keys as commit info). That commit is refused if anything committed since the
   position was read (``max_commit_retries=0``), so a copy is never placed above a newer landing commit.
   Why not on the compaction commit itself: delta-rs rebases OPTIMIZE and VACUUM commits over concurrent
   commits whatever ``max_commit_retries`` says, so a copy taken before a landing commit could land above
   it, and the next plan would read the old position and land the batch twice. App transactions are never
   given to a vacuum either: its closing commit records them again after a concurrent landing commit,
   which moves the transaction version back.
3. Vacuum never deletes what a reader may still need: the retention never drops below a floor,
   :data:`SNAPSHOT_FLOOR_HOURS` for every table (a reader holds a snapshot for at most a run) and
   :data:`CHANGE_FEED_FLOOR_HOURS` for a table whose change data feed is read by version range (gold reads
   silver from the version it last consumed, however long ago that was).
4. App transactions (the exactly-once proof of landing) are kept by checkpoints and are not touched by
   clean-up or vacuum: no maintenance commit records one.

No Dagster import here.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

import polars as pl
from deltalake import CommitProperties, DeltaTable
from deltalake.exceptions import CommitFailedError

from platform_assets.core.errors import ConfigError, LakeError, NotADeltaTableError
from platform_assets.core.lake.locations import location
from platform_assets.core.streaming.position import (
    BATCH_KEY,
    EPOCH_KEY,
    EPOCHS_KEY,
    HISTORY_DEPTH,
    INCARNATION_KEY,
    NEXT_OFFSETS_KEY,
    TOPIC_KEY,
)

logger = logging.getLogger(__name__)

KIB = 1024
MIB = 1024 * KIB
GIB = 1024 * MIB
# Compaction's target. A year of the busiest table (bronze/trades, a few GB) stays at tens of files, while
# a bin of this size is what one compaction task holds in memory (two tasks on a two-core machine).
DEFAULT_TARGET_FILE_SIZE = 128 * MIB
# Below this, compaction itself would write files too small to be worth opening one by one.
MIN_TARGET_FILE_SIZE = 1 * MIB
# A file below a quarter of the target counts as small in the reports (the files compaction exists for).
SMALL_FILE_DIVISOR = 4

# The floor of every table: a reader keeps the snapshot it opened for at most a run (silver's enrichment of
# a backlog, a Spark read of a day), and a full vacuum must never delete a file a writer has written but
# not committed yet. A day covers both with a wide margin.
SNAPSHOT_FLOOR_HOURS = 24
# The floor of a table whose change data feed is read by version range: gold reads silver's feed from the
# version it last consumed. The daily run keeps that a day behind; a week lets gold fail for a week and
# still catch up by itself (a dimension cannot fall back to re-reading; a FactStream day reads the whole
# day again when its feed no longer reaches back).
CHANGE_FEED_FLOOR_HOURS = 7 * 24
DEFAULT_VACUUM_RETENTION_HOURS = 7 * 24  # Delta's own default for deleted files
DEFAULT_LOG_RETENTION_DAYS = 30  # Delta's own default: time travel and the change feed need the commits

# Attempts of a maintenance commit that loses to concurrent writers before the run gives up on the table.
COMMIT_ATTEMPTS = 5

# The commit-info keys of a landing stream's position, copied as they are.
POSITION_KEYS = (TOPIC_KEY, BATCH_KEY, NEXT_OFFSETS_KEY, EPOCH_KEY, EPOCHS_KEY, INCARNATION_KEY)
LOG_RETENTION_PROPERTY = "delta.logRetentionDuration"
FILE_RETENTION_PROPERTY = "delta.deletedFileRetentionDuration"

# The fields of a ``maintenance:`` block (tables.yaml).
POLICY_FIELDS = ("target_file_size", "z_order", "vacuum_retention_hours", "log_retention_days", "checkpoint")
_SIZE = re.compile(r"^\s*(\d+)\s*(B|KiB|MiB|GiB)?\s*$")
_UNITS = {None: 1, "B": 1, "KiB": KIB, "MiB": MIB, "GiB": GIB}


class MaintenanceConflict(LakeError, RuntimeError):
    """A maintenance commit kept losing to concurrent writers; nothing of the table was lost, the next run
    tries again. Retryable. Raised only by this module, so it lives here."""

    retryable = True


def _whole(name: str, value: Any, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigError(f"maintenance.{name} must be a whole number of at least {minimum}, got {value!r}")
    return value


@dataclass(frozen=True)
class MaintenancePolicy:
    """How one table is maintained.

    ``target_file_size``: compaction's target, in bytes. ``z_order``: columns to Z-order by instead of a
    plain compaction (rewrites every file of the table on each run: only for tables read by ranges of these
    columns). ``vacuum_retention_hours``: how long replaced files stay on disk (time travel and the change
    feed reach back this far). ``log_retention_days``: how long commits stay in the log (the change feed and
    time travel need them too, so never shorter than the vacuum retention). ``checkpoint``: write a
    checkpoint on each run. ``retention_floor_hours``: the least retention the table's readers need
    (:data:`SNAPSHOT_FLOOR_HOURS`, or :data:`CHANGE_FEED_FLOOR_HOURS` for a table read through its feed).
    """

    target_file_size: int = DEFAULT_TARGET_FILE_SIZE
    z_order: tuple[str, ...] = ()
    vacuum_retention_hours: int = DEFAULT_VACUUM_RETENTION_HOURS
    log_retention_days: int = DEFAULT_LOG_RETENTION_DAYS
    checkpoint: bool = True
    retention_floor_hours: int = SNAPSHOT_FLOOR_HOURS

    def __post_init__(self) -> None:
        _whole("target_file_size", self.target_file_size, MIN_TARGET_FILE_SIZE)
        _whole("retention_floor_hours", self.retention_floor_hours, SNAPSHOT_FLOOR_HOURS)
        _whole("vacuum_retention_hours", self.vacuum_retention_hours, 0)
        _whole("log_retention_days", self.log_retention_days, 1)
        if not isinstance(self.checkpoint, bool):
            raise ConfigError(f"maintenance.checkpoint must be true or false, got {self.checkpoint!r}")
        if self.vacuum_retention_hours < self.retention_floor_hours:
            raise ConfigError(
                f"maintenance.vacuum_retention_hours: {self.vacuum_retention_hours} is below the floor of "
                f"{self.retention_floor_hours} hours: {_floor_reason(self.retention_floor_hours)}"
            )
        if self.log_retention_days * 24 < self.vacuum_retention_hours:
            raise ConfigError(
                f"maintenance.log_retention_days: {self.log_retention_days} day(s) is shorter than the vacuum "
                f"retention ({self.vacuum_retention_hours} hours): a reader of the versions vacuum keeps needs "
                "their commits too"
            )
        columns = tuple(self.z_order) if isinstance(self.z_order, list | tuple) else (self.z_order,)
        if not all(isinstance(c, str) and c for c in columns) or len(set(columns)) != len(columns):
            raise ConfigError(f"maintenance.z_order must list distinct column names, got {self.z_order!r}")
        object.__setattr__(self, "z_order", columns)

    @property
    def small_file_size(self) -> int:
        """Files below this many bytes count as small."""
        return self.target_file_size // SMALL_FILE_DIVISOR

    def table_properties(self) -> dict[str, str]:
        """The retention properties the table declares, so every engine (a Spark VACUUM too) honours them."""
        return {
            LOG_RETENTION_PROPERTY: f"interval {self.log_retention_days} days",
            FILE_RETENTION_PROPERTY: f"interval {self.vacuum_retention_hours} hours",
        }


def _floor_reason(floor_hours: int) -> str:
    if floor_hours >= CHANGE_FEED_FLOOR_HOURS:
        return (
            "gold reads this table's change data feed from the version it last consumed, and a vacuum "
            "that removed those files leaves it unable to catch up"
        )
    return "a reader keeps the snapshot it opened for up to a run, and must find its files"


# Every table the platform writes, unless its declaration says otherwise (the trade stream's tables).
DEFAULT_POLICY = MaintenancePolicy()
# The medallion's silver and gold tables: gold reads silver's change data feed by version range.
CHANGE_FEED_POLICY = MaintenancePolicy(retention_floor_hours=CHANGE_FEED_FLOOR_HOURS)


def parse_size(value: Any) -> int:
    """A size in bytes: a whole number, or text such as ``64 MiB`` (B, KiB, MiB, GiB)."""
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    match = _SIZE.match(value) if isinstance(value, str) else None
    if match is None:
        raise ConfigError(
            f"maintenance.target_file_size must be bytes or a size like '64 MiB' (B, KiB, MiB, GiB), got {value!r}"
        )
    return int(match.group(1)) * _UNITS[match.group(2)]


def policy_from_mapping(
    block: Mapping[str, Any] | None, base: MaintenancePolicy = DEFAULT_POLICY
) -> MaintenancePolicy:
    """The policy a ``maintenance:`` block declares, over ``base`` (its defaults and its floor). Raises
    :class:`ConfigError` naming the field (``maintenance.<field>: ...``)."""
    if block is None:
        return base
    if not isinstance(block, Mapping):
        raise ConfigError(f"maintenance: expected a mapping of {', '.join(POLICY_FIELDS)}, got {block!r}")
    unknown = sorted(set(block) - set(POLICY_FIELDS))
    if unknown:
        raise ConfigError(f"maintenance: unknown field(s) {unknown} (known: {', '.join(POLICY_FIELDS)})")
    values = {**asdict(base), **block}
    values["target_file_size"] = parse_size(values["target_file_size"])
    z_order = values["z_order"]
    values["z_order"] = tuple(z_order) if isinstance(z_order, list | tuple) else (z_order,) if z_order else ()
    return MaintenancePolicy(**values)


# --- what a table holds ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class FileStats:
    files: int
    bytes: int
    small_files: int


def file_stats(table: DeltaTable, small_below: int) -> FileStats:
    """The table's live data files (its current version): count, bytes and files below ``small_below``."""
    sizes = pl.DataFrame(table.get_add_actions(flatten=True)).get_column("size_bytes")
    return FileStats(sizes.len(), int(sizes.sum() or 0), int((sizes < small_below).sum()))


def log_file_count(table_uri: str) -> int:
    """Files in the table's ``_delta_log`` (commits, checkpoints, ``_last_checkpoint``)."""
    return sum(1 for _ in (location(table_uri) / "_delta_log").iterdir())


def _position_info(history: list[dict[str, Any]]) -> dict[str, str] | None:
    """The position keys of the newest commit in ``history`` that records a landing stream's position."""
    for commit in history:
        if NEXT_OFFSETS_KEY in commit:
            return {key: commit[key] for key in POSITION_KEYS if key in commit}
    return None


# --- the run --------------------------------------------------------------------------------------------


@dataclass
class MaintenanceReport:
    """What one :func:`maintain` run did to one table."""

    table_uri: str
    version_before: int
    version_after: int = 0
    files_before: int = 0
    files_after: int = 0
    bytes_before: int = 0
    bytes_after: int = 0
    small_files_before: int = 0
    small_files_after: int = 0
    files_compacted: int = 0  # files compaction replaced
    files_written: int = 0  # files compaction wrote
    vacuumed_files: int = 0
    log_files_before: int = 0
    log_files_after: int = 0
    checkpoint_version: int | None = None
    compaction_attempts: int = 0  # more than 1: compaction lost to a concurrent commit and ran again
    properties_set: bool = False  # the retention properties were (re)declared on the table
    position_carried: bool = False  # a commit copying the landing stream's position was written
    z_ordered: bool = False
    notes: list[str] = field(default_factory=list)

    def metrics(self) -> dict[str, int]:
        """The numbers worth plotting over time."""
        return {
            "files_before": self.files_before,
            "files_after": self.files_after,
            "bytes_before": self.bytes_before,
            "bytes_after": self.bytes_after,
            "small_files_before": self.small_files_before,
            "small_files_after": self.small_files_after,
            "files_compacted": self.files_compacted,
            "vacuumed_files": self.vacuumed_files,
            "log_files_before": self.log_files_before,
            "log_files": self.log_files_after,
            "delta_version": self.version_after,
        }

    def summary(self) -> str:
        return (
            f"{self.table_uri}: files {self.files_before} -> {self.files_after} "
            f"({self.small_files_before} -> {self.small_files_after} small), bytes {self.bytes_before} -> "
            f"{self.bytes_after}, {self.vacuumed_files} file(s) vacuumed, log files {self.log_files_before} "
            f"-> {self.log_files_after}, version {self.version_before} -> {self.version_after}"
            + (f"; {'; '.join(self.notes)}" if self.notes else "")
        )


def _open(table_uri: str, storage_options: dict[str, str] | None) -> DeltaTable:
    if not DeltaTable.is_deltatable(table_uri, storage_options=storage_options):
        raise NotADeltaTableError(f"{table_uri!r} is not a Delta table: nothing to maintain")
    return DeltaTable(table_uri, storage_options=storage_options)


def check_z_order(table: DeltaTable, policy: MaintenancePolicy, table_uri: str) -> None:
    """Raise :class:`ConfigError` when a Z-order column is not a column of the table, or partitions it."""
    if not policy.z_order:
        return
    columns = [f.name for f in table.schema().fields]
    missing = [c for c in policy.z_order if c not in columns]
    if missing:
        raise ConfigError(
            f"{table_uri}: maintenance.z_order column(s) {missing} are not columns of the table "
            f"(it has {', '.join(columns)})"
        )
    partitions = [c for c in policy.z_order if c in table.metadata().partition_columns]
    if partitions:
        raise ConfigError(
            f"{table_uri}: maintenance.z_order column(s) {partitions} partition the table: each file holds "
            "one value of them, so there is nothing to order; list other columns"
        )


def maintain(
    table_uri: str,
    policy: MaintenancePolicy = DEFAULT_POLICY,
    storage_options: dict[str, str] | None = None,
    *,
    log: Any = None,
) -> MaintenanceReport:
    """Maintain one Delta table under ``policy``: declare its retention, compact (or Z-order) its small
    files, vacuum what its retention lets go, carry a landing stream's position forward, write a checkpoint
    and clean up the expired log. Raises :class:`NotADeltaTableError` when there is no table,
    :class:`ConfigError` for a Z-order column the table does not have, :class:`MaintenanceConflict` when
    commits keep losing to concurrent writers.
    """
    log = log or logger
    table = _open(table_uri, storage_options)
    check_z_order(table, policy, table_uri)
    before = file_stats(table, policy.small_file_size)
    report = MaintenanceReport(
        table_uri,
        table.version(),
        files_before=before.files,
        bytes_before=before.bytes,
        small_files_before=before.small_files,
        log_files_before=log_file_count(table_uri),
        z_ordered=bool(policy.z_order),
    )
    report.properties_set = _declare_properties(table_uri, policy, storage_options, log)
    _compact(table_uri, policy, storage_options, log, report)
    report.vacuumed_files = _vacuum(table_uri, policy, storage_options, log)
    report.position_carried = _carry_position(table_uri, policy, storage_options, log)
    if report.position_carried:
        report.notes.append("stream position carried to the newest commit")
    table = DeltaTable(table_uri, storage_options=storage_options)
    if policy.checkpoint:
        table.create_checkpoint()
        report.checkpoint_version = table.version()
    # After the checkpoint: clean-up only deletes commits a checkpoint older than the retention covers.
    table.cleanup_metadata()
    after = file_stats(table, policy.small_file_size)
    report.version_after = table.version()
    report.files_after, report.bytes_after, report.small_files_after = (
        after.files,
        after.bytes,
        after.small_files,
    )
    report.log_files_after = log_file_count(table_uri)
    return report


def _attempts(what: str, table_uri: str):
    """Attempt numbers (1..COMMIT_ATTEMPTS) of a commit that may lose to concurrent writers; once they are
    used up, :class:`MaintenanceConflict`."""
    yield from range(1, COMMIT_ATTEMPTS + 1)
    raise MaintenanceConflict(
        f"{table_uri}: {what} lost to concurrent commits {COMMIT_ATTEMPTS} times; nothing was lost, the next "
        "maintenance run tries again (a table's writers and its maintenance share one concurrency pool)"
    )


def _lost(what: str, table_uri: str, attempt: int, exc: Exception, log: Any) -> None:
    reason = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
    log.warning(
        f"{table_uri}: {what} lost to a concurrent commit ({reason}); attempt {attempt} of {COMMIT_ATTEMPTS}, "
        "trying again on the new version"
    )


def _properties_commit(table: DeltaTable, policy: MaintenancePolicy, position: dict[str, str] | None) -> None:
    """Commit the policy's table properties. With a stream ``position``: as a copy of it, refused if
    anything committed since ``table`` was read (so never placed above a newer landing commit)."""
    properties = (
        CommitProperties(custom_metadata=position, max_commit_retries=0) if position is not None else None
    )
    table.alter.set_table_properties(policy.table_properties(), commit_properties=properties)


def _consistent_history(table: DeltaTable) -> list[dict[str, Any]] | None:
    """The newest commits, when they end at the version ``table`` is loaded at (None: it moved on since)."""
    history = table.history(limit=HISTORY_DEPTH)
    if history and history[0]["version"] != table.version():
        return None  # delta-rs lists the newest commits whatever version the object is loaded at
    return history


def _declare_properties(
    table_uri: str, policy: MaintenancePolicy, storage_options: dict[str, str] | None, log: Any
) -> bool:
    """Set the retention properties when the table does not declare the policy's yet; True when set."""
    for attempt in _attempts("setting the retention properties", table_uri):
        table = DeltaTable(table_uri, storage_options=storage_options)
        configuration = table.metadata().configuration
        if all(configuration.get(k) == v for k, v in policy.table_properties().items()):
            return False
        history = _consistent_history(table)
        if history is None:
            continue
        try:
            _properties_commit(table, policy, _position_info(history))
        except CommitFailedError as exc:
            _lost("setting the retention properties", table_uri, attempt, exc, log)
            continue
        log.info(f"{table_uri}: retention declared: {policy.table_properties()}")
        return True
    return False  # unreachable: _attempts raises


def _compact(
    table_uri: str,
    policy: MaintenancePolicy,
    storage_options: dict[str, str] | None,
    log: Any,
    report: MaintenanceReport,
) -> None:
    """Compact (or Z-order) the table, again on the new version when a concurrent commit conflicts."""
    what = "Z-ordering" if policy.z_order else "compaction"
    for attempt in _attempts(what, table_uri):
        report.compaction_attempts = attempt
        table = DeltaTable(table_uri, storage_options=storage_options)
        try:
            metrics = run_optimize(table, policy)
        except CommitFailedError as exc:
            _lost(what, table_uri, attempt, exc, log)
            continue
        report.files_compacted = int(metrics.get("numFilesRemoved", 0))
        report.files_written = int(metrics.get("numFilesAdded", 0))
        if attempt > 1:
            report.notes.append(f"{what} ran {attempt} times: it lost to concurrent commits before")
        return


def run_optimize(table: DeltaTable, policy: MaintenancePolicy) -> dict[str, Any]:
    """delta-rs's compaction (or Z-ordering) of ``table`` as loaded; its commit marks every file
    ``dataChange=false``."""
    if policy.z_order:
        return table.optimize.z_order(policy.z_order, target_size=policy.target_file_size)
    return table.optimize.compact(target_size=policy.target_file_size)


def _vacuum(
    table_uri: str, policy: MaintenancePolicy, storage_options: dict[str, str] | None, log: Any
) -> int:
    """Delete the files the retention lets go; the number deleted.

    A full vacuum: besides the files compaction and merges replaced, it deletes the change data files of
    merges (``_change_data/``, never part of the table's state) and files of writes that never committed,
    once older than the retention. The retention is the one the table declares (set just before), and
    delta-rs checks it again (``enforce_retention_duration``).
    """
    for attempt in _attempts("vacuum", table_uri):
        table = DeltaTable(table_uri, storage_options=storage_options)
        try:
            removed = table.vacuum(
                retention_hours=policy.vacuum_retention_hours,
                dry_run=False,
                enforce_retention_duration=True,
                full=True,
            )
        except CommitFailedError as exc:  # vacuum's own commits (start, end) lost: it runs again
            _lost("vacuum", table_uri, attempt, exc, log)
            continue
        return len(removed)
    return 0  # unreachable: _attempts raises


def _carry_position(
    table_uri: str, policy: MaintenancePolicy, storage_options: dict[str, str] | None, log: Any
) -> bool:
    """For a landing stream's table: when its newest commit does not record the stream's position, copy
    the newest recorded position into a new commit. True when a copy was committed.

    The copy is committed on top of exactly the version it was read from (no automatic retries); a landing
    commit in between makes it fail, and the next attempt finds that landing commit on top: nothing to do.
    """
    for attempt in _attempts("carrying the stream position", table_uri):
        table = DeltaTable(table_uri, storage_options=storage_options)
        history = _consistent_history(table)
        if history is None:
            continue
        if not history or NEXT_OFFSETS_KEY in history[0]:
            return False  # not a stream's table, or its newest commit already says where it stands
        position = _position_info(history)
        if position is None:
            return False
        try:
            _properties_commit(table, policy, position)
        except CommitFailedError as exc:
            _lost("carrying the stream position", table_uri, attempt, exc, log)
            continue
        log.info(
            f"{table_uri}: stream position of micro-batch {position.get(BATCH_KEY)} carried to version "
            f"{table.version()}"
        )
        return True
    return False  # unreachable: _attempts raises
