"""Run one trade ingestion window from the command line: websocket trade feed -> Kafka topic.

    python -m platform_assets.cli.trades_feed [--seconds N] [--max-trades N]

It is one ingestion window, as a run of ``trades_feed_job`` is: as it starts, the symbol lookup is pulled
into ``raw/trade_symbols`` (an API that fails is one warning; the window goes on), and once it ends the
window is recorded in the Dagster instance as a materialization of ``kafka/trades`` with the job's metadata
(:mod:`platform_assets.defs.trades.windows`), so it gets its own ``Ingestion_Metrics`` row and alert.

Settings (environment): PLATFORM_TRADES_WS_URL, PLATFORM_TRADES_LOOKUP_URL, PLATFORM_KAFKA_BOOTSTRAP,
PLATFORM_KAFKA_CONFIG (secret), PLATFORM_TRADES_TOPIC, PLATFORM_DATA_DIR; DAGSTER_HOME (default
``<data_dir>/dagster_home``, as ``make dev`` uses). Without PLATFORM_KAFKA_BOOTSTRAP the trades go to the
embedded broker that ``make dev`` or ``make demo`` runs (its address is in ``<data_dir>/kafka/bootstrap``);
with none running, to a broker that lives only as long as this command, which is useful to try the feed,
not to keep its data (that window is not recorded).
The exit status is 1 when some trades may not have reached the topic, or the window could not be recorded;
2 when the settings are unusable or the feed cannot be reached at all (one line naming the setting; offline,
``make dev OFFLINE=1`` serves local stand-ins of the feed and its lookup).
"""

from __future__ import annotations

import argparse
import contextlib
import logging
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from dagster import DagsterError, DagsterInstance

from platform_assets.core.streaming.kafka import (
    EmbeddedBroker,
    broker_address_file,
    client_config,
    producer_config,
    running_broker,
)
from platform_assets.core.trades.feed import FeedReport, FeedUnreachable, run_feed
from platform_assets.defs.trades.resources import trade_resources
from platform_assets.defs.trades.windows import open_instance, record_window, refresh_lookup
from platform_assets.settings import Settings, SettingsError, load_settings

DEFAULT_SECONDS = 86_400.0

log = logging.getLogger("platform_assets.cli.trades_feed")


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


@dataclass(frozen=True)
class Broker:
    """Where the window's trades go: the producer's and the client's settings, and whether the broker
    outlives this command (only then is the window recorded)."""

    producer: dict[str, Any]
    client: dict[str, Any]
    shared: bool


def main(argv: list[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    _quiet_logs()
    try:
        settings = load_settings()
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    with contextlib.ExitStack() as stack:
        if settings.kafka_bootstrap:
            try:
                broker = _configured_broker(settings.kafka_bootstrap, settings.kafka_config)
            except ValueError as exc:  # PLATFORM_KAFKA_CONFIG unusable
                parser.error(str(exc))
        else:
            broker = _embedded_broker(settings, stack)
        try:
            instance = stack.enter_context(open_instance(settings.data_dir, log))
        except (DagsterError, OSError) as exc:
            print(f"error: no Dagster instance to record the window in: {exc}", file=sys.stderr)
            return 2
        try:
            report = _window(instance, settings, broker, args.seconds, args.max_trades)
        except FeedUnreachable as exc:  # one line, not a traceback: the setting and the offline option
            print(f"error: {exc}", file=sys.stderr)
            return 2
        return _record(instance, report, broker, settings.trades_topic)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m platform_assets.cli.trades_feed", description=(__doc__ or "").splitlines()[0]
    )
    parser.add_argument("--seconds", type=_positive_float, default=DEFAULT_SECONDS, help="window length")
    parser.add_argument("--max-trades", type=_positive_int, default=None, help="stop after N trades")
    return parser


def _quiet_logs() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    # urllib3 logs every retry of the lookup as a warning of its own: the refresh's one line says it all
    logging.getLogger("urllib3").setLevel(logging.ERROR)
    # a Dagster home used for the first time creates its storage: alembic's notes about it are noise here
    logging.getLogger("alembic").setLevel(logging.WARNING)


def _configured_broker(bootstrap: str, extra: str | None) -> Broker:
    """PLATFORM_KAFKA_BOOTSTRAP's broker with PLATFORM_KAFKA_CONFIG (a ValueError when that is unusable)."""
    return Broker(producer_config(bootstrap, extra), client_config(bootstrap, extra), shared=True)


def _embedded_broker(settings: Settings, stack: contextlib.ExitStack) -> Broker:
    """The embedded broker ``make dev`` runs, else one that lives as long as ``stack`` (not shared: the
    window is not recorded)."""
    ignored = "; PLATFORM_KAFKA_CONFIG is ignored" if settings.kafka_config else ""
    address = running_broker(settings.data_dir)
    shared = bool(address)
    if address:
        log.info(
            f"PLATFORM_KAFKA_BOOTSTRAP is not set: producing to the embedded broker running at {address} "
            f"(from {broker_address_file(settings.data_dir)}){ignored}"
        )
    else:
        address = stack.enter_context(EmbeddedBroker()).bootstrap
        log.warning(
            f"PLATFORM_KAFKA_BOOTSTRAP is not set and no embedded broker is running (no live address in "
            f"{broker_address_file(settings.data_dir)}): producing to an embedded broker at {address}, "
            f"whose messages are gone when this command ends, so the window is not recorded{ignored}"
        )
    return Broker(producer_config(address, None), client_config(address, None), shared=shared)


def _window(
    instance: DagsterInstance, settings: Settings, broker: Broker, seconds: float, max_trades: int | None
) -> FeedReport:
    """The feed window, with the lookup refreshed as it starts, beside the feed (as the job's two steps
    run): a slow or unreachable lookup API does not delay the window, and its failure is one warning."""
    stream = trade_resources(settings)["trade_stream"]
    with ThreadPoolExecutor(1, thread_name_prefix="trade-lookup") as pool:
        lookup = pool.submit(
            refresh_lookup,
            instance,
            settings.trades_lookup_url,
            settings.table_path("raw", "trade_symbols"),
            timeout=stream.lookup_timeout,
            attempts=stream.lookup_attempts,
            log=log,
        )
        report = run_feed(
            settings.trades_ws_url,
            broker.producer,
            settings.trades_topic,
            seconds=seconds,
            max_trades=max_trades,
            log=log,
        )
    if lookup.exception() is not None:
        log.warning(f"the symbol lookup was not refreshed: {lookup.exception()}")
    return report


def _record(instance: DagsterInstance, report: FeedReport, broker: Broker, topic: str) -> int:
    """Record the window in the instance when its trades all reached a shared broker; the exit status."""
    if report.lost:
        log.error(
            "the window is not recorded, as a failed trades_feed_job run records none: its trades count "
            "in the next window"
        )
        return 1
    if not broker.shared:
        return 0
    try:
        end_offsets = record_window(instance, report, broker.client)
    except Exception as exc:
        log.error(f"the trades are on topic {topic!r}, but the window could not be recorded: {exc}")
        return 1
    log.info(
        f"window recorded as a materialization of kafka/trades: {report.trades_produced} trade(s), "
        f"end offsets {dict(sorted(end_offsets.items()))}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
