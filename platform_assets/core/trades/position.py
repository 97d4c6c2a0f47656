"""Moved to :mod:`platform_assets.core.streaming.position` (every stream has a position, not only trades);
the old import path keeps working."""

from platform_assets.core.streaming.position import (
    BATCH_KEY,
    EPOCH_KEY,
    EPOCHS_KEPT,
    EPOCHS_KEY,
    HISTORY_DEPTH,
    INCARNATION_KEY,
    NEXT_OFFSETS_KEY,
    TOPIC_KEY,
    Epoch,
    StreamPosition,
    position_from_commit,
    read_position,
)

__all__ = [
    "BATCH_KEY",
    "EPOCHS_KEPT",
    "EPOCHS_KEY",
    "EPOCH_KEY",
    "HISTORY_DEPTH",
    "INCARNATION_KEY",
    "NEXT_OFFSETS_KEY",
    "TOPIC_KEY",
    "Epoch",
    "StreamPosition",
    "position_from_commit",
    "read_position",
]
