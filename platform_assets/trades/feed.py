"""Run one trade ingestion window from the command line: websocket trade feed -> Kafka topic.

    python -m platform_assets.trades.feed [--seconds N] [--max-trades N]

Settings (environment): PLATFORM_TRADES_WS_URL, PLATFORM_KAFKA_BOOTSTRAP, PLATFORM_KAFKA_CONFIG (secret),
PLATFORM_TRADES_TOPIC. Without PLATFORM_KAFKA_BOOTSTRAP the trades go to an embedded broker that lives
only as long as this command, which is useful to try the feed, not to keep its data.
The exit status is 1 when some trades may not have reached the topic.
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys

from platform_assets.core.trades.feed import run_feed
from platform_assets.core.trades.kafka import EmbeddedBroker, producer_config
from platform_assets.settings import SettingsError, load_settings

DEFAULT_SECONDS = 86_400.0

log = logging.getLogger("platform_assets.trades.feed")


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise argparse.ArgumentTypeError(f"must be positive, got {value}")
    return value


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.trades.feed", description=__doc__.splitlines()[0]
    )
    parser.add_argument("--seconds", type=_positive_float, default=DEFAULT_SECONDS, help="window length")
    parser.add_argument("--max-trades", type=_positive_int, default=None, help="stop after N trades")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")

    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    ws_url, topic = settings.trades_ws_url, settings.trades_topic
    bootstrap, extra = settings.kafka_bootstrap, settings.kafka_config

    with contextlib.ExitStack() as stack:
        if bootstrap:
            try:
                conf = producer_config(bootstrap, extra)
            except ValueError as exc:
                parser.error(str(exc))
        else:
            broker = stack.enter_context(EmbeddedBroker())
            log.warning(
                f"PLATFORM_KAFKA_BOOTSTRAP is not set: producing to an embedded broker at {broker.bootstrap}, "
                "whose messages are gone when this command ends"
                + ("; PLATFORM_KAFKA_CONFIG is ignored" if extra else "")
            )
            conf = producer_config(broker.bootstrap, None)
        report = run_feed(ws_url, conf, topic, seconds=args.seconds, max_trades=args.max_trades, log=log)
    return 1 if report.lost else 0


if __name__ == "__main__":
    sys.exit(main())
