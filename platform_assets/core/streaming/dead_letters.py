"""The dead-letter table of a stream: every message landing refused, with its reason, kept for inspection.

A micro-batch hands its dead letters over before its Delta commit (see
:func:`~platform_assets.core.streaming.landing.land_batch`), so a retried batch hands them over again:
:func:`keep_quarantined` merges them on (partition, offset, batch id), which adds nothing twice, and keeps
a new epoch's offsets (which start over) apart from old ones.

No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import polars as pl
from deltalake import DeltaTable

from platform_assets.core.lake import delta
from platform_assets.core.streaming.decoding import QuarantinedMessage

DEAD_LETTER_SCHEMA = pl.Schema(
    {
        "kafka_partition": pl.Int32,
        "kafka_offset": pl.Int64,
        "micro_batch_id": pl.Int64,
        "reason": pl.String,
        "message_key": pl.Binary,
        "message_value": pl.Binary,
        "quarantined_at": delta.TIMESTAMP,
    }
)
ROW_KEY = ("kafka_partition", "kafka_offset", "micro_batch_id")
_ON = " AND ".join(f"t.{k} = s.{k}" for k in ROW_KEY)


def keep_quarantined(
    table_uri: str, batch_id: int, messages: Sequence[QuarantinedMessage], now: datetime
) -> int:
    """Merge the dead letters of micro-batch ``batch_id`` into the dead-letter table (created on first
    use); the table version after the merge."""
    frame = pl.DataFrame(
        [
            {
                "kafka_partition": m.partition,
                "kafka_offset": m.offset,
                "micro_batch_id": batch_id,
                "reason": m.reason,
                "message_key": m.key,
                "message_value": m.value,
                "quarantined_at": now,
            }
            for m in messages
        ],
        schema=DEAD_LETTER_SCHEMA,
    )
    return insert_new(table_uri, frame)


def insert_new(table_uri: str, frame: pl.DataFrame) -> int:
    """Insert the rows of ``frame`` whose message position (:data:`ROW_KEY`) is not in the table (created
    on first use), so rows handed over again (a retried batch) are added once; the table version after
    it. A side table of any stream keyed by its messages' positions can keep its rows this way."""
    frame = frame.unique(list(ROW_KEY), keep="first", maintain_order=True)
    if not delta.table_exists(table_uri):
        try:
            return delta.create(table_uri, frame)
        except Exception:
            if not delta.table_exists(table_uri):
                raise
            # another run created it first: merge into theirs
    table = DeltaTable(table_uri)
    table.merge(
        frame.to_arrow(), _ON, source_alias="s", target_alias="t"
    ).when_not_matched_insert_all().execute()
    return table.version()
