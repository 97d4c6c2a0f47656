"""Generic exactly-once Kafka → Delta streams, each declared in ``streams.yaml``.

- :mod:`.declaration`: :class:`StreamDeclaration` (topic, key, typed value columns, rules, tables, app id,
  batching knobs) and the loader of ``streams.yaml``;
- :mod:`.planning`: the next micro-batch (offset ranges, epoch, topic incarnation) and what a table holds;
- :mod:`.reading`: a planned range read from Kafka into a message frame;
- :mod:`.decoding`: the stream's decoder (JSON by default) and its rules: bronze rows and dead letters;
- :mod:`.landing`: :func:`land_batch`, one Delta commit per batch carrying its app transaction;
- :mod:`.dead_letters`: the dead-letter table;
- :mod:`.position`, :mod:`.incarnation`: where a stream stands and which topic incarnation it reads.

No Dagster import here.
"""

from platform_assets.core.errors import (
    BatchOrderError,
    BatchReadTimeout,
    NewIncarnationError,
    OffsetsAheadError,
)
from platform_assets.core.streaming.dead_letters import DEAD_LETTER_SCHEMA, keep_quarantined
from platform_assets.core.streaming.declaration import (
    EPOCH_COLUMN,
    Column,
    Rule,
    StreamDeclaration,
    load_streams,
    parse_streams,
    stream_declaration,
)
from platform_assets.core.streaming.decoding import (
    Decoder,
    QuarantinedMessage,
    decode_batch,
    decode_json,
    encode_json,
)
from platform_assets.core.streaming.landing import LandingResult, commit_offsets, land_batch
from platform_assets.core.streaming.planning import (
    BatchPlan,
    OffsetRange,
    bronze_offsets,
    high_watermarks,
    lost_upstream,
    metadata_consumer,
    next_batch_id,
    plan_batch,
    plan_next,
    stream_position,
    topic_end,
)
from platform_assets.core.streaming.position import Epoch, StreamPosition, read_position
from platform_assets.core.streaming.reading import MESSAGE_SCHEMA, messages_frame

__all__ = [
    "DEAD_LETTER_SCHEMA",
    "EPOCH_COLUMN",
    "MESSAGE_SCHEMA",
    "BatchOrderError",
    "BatchPlan",
    "BatchReadTimeout",
    "Column",
    "Decoder",
    "Epoch",
    "LandingResult",
    "NewIncarnationError",
    "OffsetRange",
    "OffsetsAheadError",
    "QuarantinedMessage",
    "Rule",
    "StreamDeclaration",
    "StreamPosition",
    "bronze_offsets",
    "commit_offsets",
    "decode_batch",
    "decode_json",
    "encode_json",
    "high_watermarks",
    "keep_quarantined",
    "land_batch",
    "load_streams",
    "lost_upstream",
    "messages_frame",
    "metadata_consumer",
    "next_batch_id",
    "parse_streams",
    "plan_batch",
    "plan_next",
    "read_position",
    "stream_position",
    "stream_declaration",
    "topic_end",
]
