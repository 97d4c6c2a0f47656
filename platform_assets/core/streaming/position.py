"""Where a Kafka → Delta landing stream stands, read from the Delta log (never from the data).

Every landing commit carries, in its commit info, the stream's position after it: the next offset per
partition, the topic incarnation it read, the epoch number and the short list of epochs so far. The
newest landing commit therefore says everything the next plan needs; nothing scans the table.

An *epoch* is the span of landing from one topic incarnation. Offsets only mean something within one
incarnation: when a topic is deleted and created again, or an embedded broker (which keeps nothing)
restarts, offsets start over at 0, and continuing from the old offsets would skip the new topic's first
messages. So a new incarnation is never read from old offsets: it starts a new epoch, whose offsets start
at the new topic's first offset, and every bronze row carries its epoch (``kafka_epoch``).

No Dagster import here.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from deltalake import DeltaTable

# Commit-info keys of a landing commit.
NEXT_OFFSETS_KEY = "kafka.next_offsets"
TOPIC_KEY = "kafka.topic"
BATCH_KEY = "kafka.micro_batch_id"
INCARNATION_KEY = "kafka.incarnation"
EPOCH_KEY = "kafka.epoch"
EPOCHS_KEY = "kafka.epochs"
# Where the batch's ranges started, per partition (the reconciliation's offsets of a batch that starts an
# epoch or a partition: the topic's first offset there need not be 0). Commits before it: 0.
BATCH_START_KEY = "kafka.batch_start"
# How many recent commits to search for the newest landing commit; other writers (optimize, vacuum)
# commit rarely.
HISTORY_DEPTH = 50
# Epochs kept in the commit info (the bronze rows keep their epoch number for ever): a broker restart a
# day for a year stays a small JSON document.
EPOCHS_KEPT = 400


@dataclass(frozen=True)
class Epoch:
    """One topic incarnation's span of landing.

    ``lost_upstream``: per partition, the messages the previous epoch's incarnation held that were never
    landed before it vanished (at least: what the platform last saw of it).
    """

    number: int
    incarnation: str | None
    first_batch: int
    started_at: str
    lost_upstream: Mapping[int, int] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "number": self.number,
            "incarnation": self.incarnation,
            "first_batch": self.first_batch,
            "started_at": self.started_at,
            "lost_upstream": {str(p): n for p, n in sorted(self.lost_upstream.items())},
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Epoch:
        return cls(
            int(data["number"]),
            data.get("incarnation"),
            int(data["first_batch"]),
            str(data.get("started_at", "")),
            {int(p): int(n) for p, n in (data.get("lost_upstream") or {}).items()},
        )

    @property
    def lost(self) -> int:
        return sum(self.lost_upstream.values())


@dataclass(frozen=True)
class StreamPosition:
    """What a landing stream has landed so far, as its newest landing commit records it.

    ``next_offsets`` belong to the current epoch's incarnation. A table written before epochs existed
    reads as epoch 0 of an unknown incarnation (None).
    """

    next_offsets: Mapping[int, int] = field(default_factory=dict)
    epoch: int = 0
    incarnation: str | None = None
    epochs: tuple[Epoch, ...] = ()
    found: bool = False  # a landing commit was found

    def epoch_of(self, incarnation: str | None) -> Epoch | None:
        """The epoch that read ``incarnation`` (the latest one, should it have been read twice)."""
        for epoch in reversed(self.epochs):
            if epoch.incarnation == incarnation:
                return epoch
        return None

    def commit_info(self, topic: str, batch_id: int) -> dict[str, str]:
        """The commit info that records this position in a landing commit of ``batch_id``."""
        info = {
            TOPIC_KEY: topic,
            BATCH_KEY: str(batch_id),
            NEXT_OFFSETS_KEY: json.dumps({str(p): n for p, n in sorted(self.next_offsets.items())}),
            EPOCH_KEY: str(self.epoch),
            EPOCHS_KEY: json.dumps([e.to_dict() for e in self.epochs[-EPOCHS_KEPT:]]),
        }
        if self.incarnation is not None:
            info[INCARNATION_KEY] = self.incarnation
        return info


def position_from_commit(commit: Mapping[str, Any]) -> StreamPosition | None:
    """The position a commit's info records, or None when it is not a landing commit."""
    recorded = commit.get(NEXT_OFFSETS_KEY)
    if recorded is None:
        return None
    epochs = tuple(Epoch.from_dict(e) for e in json.loads(commit.get(EPOCHS_KEY) or "[]"))
    return StreamPosition(
        next_offsets={int(p): int(n) for p, n in json.loads(recorded).items()},
        epoch=int(commit.get(EPOCH_KEY) or 0),
        incarnation=commit.get(INCARNATION_KEY),
        epochs=epochs,
        found=True,
    )


def read_position(table: DeltaTable | None, *, batch_id: int | None = None) -> StreamPosition:
    """The position recorded by the newest landing commit of ``table``, or by the landing commit of
    micro-batch ``batch_id`` (the position right after that batch); an empty position for a missing
    table or when no such commit is found.

    Reads the newest commits of the log only (the ones since batch ``batch_id``). ``table`` must be
    loaded at its latest version: delta-rs returns the newest commits from ``history`` whatever version
    a table object is loaded at, so an older state is looked up by batch id, not by version.
    """
    if table is None:
        return StreamPosition()
    depth = HISTORY_DEPTH
    while True:
        newest_batch = None
        history = table.history(limit=depth)
        for commit in history:
            position = position_from_commit(commit)
            if position is None:
                continue
            batch = int(commit.get(BATCH_KEY, -1))
            if batch_id is None or batch == batch_id:
                return position
            newest_batch = batch if newest_batch is None else newest_batch
            if batch < batch_id:
                return StreamPosition()  # that batch landed no commit of its own (never landed)
        if len(history) < depth or newest_batch is None:
            return StreamPosition()
        # Every landing commit is one batch; other writers add a few commits between them. (Only a search
        # for one batch gets here: the newest landing commit was returned in the loop.)
        assert batch_id is not None
        depth = max(depth * 2, 2 * (newest_batch - batch_id) + HISTORY_DEPTH)
