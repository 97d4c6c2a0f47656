"""Start a new epoch of the trade stream on purpose, after a real broker's topic was recreated.

    python -m platform_assets.cli.new_epoch [--yes]        (or: make new-epoch)

Landing stops when the topic turns out to be a new incarnation of the one bronze landed from (its offsets
start over, so continuing from the recorded ones would skip its first messages). This command looks up
the topic's current incarnation, says what was landed from the old one, and records that the next
micro-batch may start a new epoch on it, from its first offset. What the old incarnation held beyond the
landed offsets is counted as lost upstream when that epoch starts. Without ``--yes`` it only reports.
Exit status: 0 accepted (or nothing to do), 1 not accepted, 2 bad settings or no broker.
"""

from __future__ import annotations

import argparse
import sys
from datetime import UTC, datetime

from confluent_kafka import KafkaException

from platform_assets.core.state import StateStore
from platform_assets.core.streaming import stream_position, topic_end
from platform_assets.core.streaming.incarnation import accept_incarnation
from platform_assets.core.streaming.kafka import client_config
from platform_assets.defs.trades.resources import trade_resources
from platform_assets.settings import SettingsError, load_settings


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.cli.new_epoch", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--yes", action="store_true", help="accept the topic's current incarnation")
    args = parser.parse_args(argv)
    try:
        settings = load_settings()
        if not settings.kafka_bootstrap:
            raise SettingsError("PLATFORM_KAFKA_BOOTSTRAP is not set: no broker to look at")
        conf = client_config(settings.kafka_bootstrap, settings.kafka_config)
    except (SettingsError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    topic = settings.trades_topic
    try:
        incarnation, ends = topic_end(conf, topic)
    except KafkaException as exc:
        print(f"error: the broker did not answer: {exc}", file=sys.stderr)
        return 2
    position = stream_position(str(settings.table_path("bronze", "trades")))
    print(f"topic {topic!r} now: incarnation {incarnation}, end offsets {ends}")
    print(
        f"bronze/trades: epoch {position.epoch}, incarnation {position.incarnation}, "
        f"next offsets {dict(position.next_offsets)}"
    )
    if incarnation is None:
        print(
            "error: the topic does not exist (or the broker names no incarnation): nothing to accept",
            file=sys.stderr,
        )
        return 1
    if incarnation == position.incarnation:
        print("the topic is the incarnation bronze lands from: nothing to do")
        return 0
    if not args.yes:
        print("not accepted: run again with --yes to start a new epoch from the topic's first offset")
        return 1
    state = StateStore(settings.state_url, settings.env)
    app_id = trade_resources(settings)["trade_stream"].app_id
    accept_incarnation(state, app_id, incarnation, datetime.now(UTC))
    print(f"accepted: the next micro-batch starts epoch {position.epoch + 1} on incarnation {incarnation}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
