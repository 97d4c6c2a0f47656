"""The trade feed: read the websocket trade stream and produce every trade to a Kafka topic.

One call of :func:`run_feed` is one ingestion window. It keeps the websocket open for the window,
reconnecting with capped exponential backoff whenever the connection fails or drops, and ends when the
window is over or ``max_trades`` trades are produced. It never filters duplicates: after a reconnect the
feed may resend trades, and the sink dedupes on ``(symbol, trade_id)``. A malformed frame is counted and
logged, never fatal. Before returning it flushes the producer and reports what could not be delivered.

A feed that cannot be reached at all as the window starts (a wrong URL, no network) is not retried for the
whole window: after ``connect_attempts`` failed attempts it raises :class:`FeedUnreachable`, one line naming
the setting and the offline option. Once a connection worked, a drop is retried until the window ends.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Protocol

import websockets
from confluent_kafka import KafkaError, Message, Producer
from websockets.exceptions import InvalidURI, WebSocketException
from websockets.uri import parse_uri

from platform_assets.core.errors import MalformedFrame, SourceError
from platform_assets.core.redaction import redact_text
from platform_assets.core.trades.messages import Trade, parse_frame, to_kafka
from platform_assets.core.trades.trade_rules import trade_problem

# Individual problems logged per window before only counting them; a feed that changed its format would
# otherwise write one warning per frame.
_LOGGED_PROBLEMS = 10
_POLL_EVERY = 0.2  # seconds between producer polls, which run the delivery callbacks
_BUFFER_FULL_WAIT = 0.1
WS_URL_SETTING = "PLATFORM_TRADES_WS_URL"
# what to do without the internet: the dev kit serves the feed, its lookup and the countries API locally
OFFLINE_OPTION = "offline, `make dev OFFLINE=1` serves local stand-ins instead"
CONNECT_ATTEMPTS = 4  # attempts at the window's first connection before it fails (about 4 s of backoff)


class FeedUnreachable(SourceError, ConnectionError):
    """The trade feed could not be connected to even once as the window started (name resolution,
    refused, timed out): the URL is wrong or the network is away. The feed already made its attempts with
    backoff, so not retryable as a step; the next window (the schedule's, or one started by hand) tries
    again. Raised by :func:`run_feed`, handled by its callers (the feed asset, the feed command)."""

    def __init__(self, url: str, attempts: int, reason: str):
        self.url = url  # redacted
        self.attempts = attempts
        self.reason = reason
        super().__init__(
            f"the trade feed {WS_URL_SETTING}={url} cannot be reached ({reason}) after {attempts} "
            f"attempt(s): check the setting and the network; {OFFLINE_OPTION}"
        )

    def __reduce__(self):  # the message is built from the fields: rebuild it from them
        return type(self), (self.url, self.attempts, self.reason)

    def details(self) -> dict[str, Any]:
        return {"setting": WS_URL_SETTING, "attempts": self.attempts}


class Log(Protocol):
    """What the feed needs of a logger; a ``logging.Logger`` and Dagster's ``context.log`` both fit."""

    def info(self, msg: str) -> Any: ...

    def warning(self, msg: str) -> Any: ...

    def error(self, msg: str) -> Any: ...


@dataclass(frozen=True)
class Backoff:
    """Wait before reconnect attempt n (1, 2, ...): ``initial * factor**(n-1)``, at most ``maximum``."""

    initial: float = 0.5
    maximum: float = 10.0
    factor: float = 2.0

    def delay(self, failures: int) -> float:
        return min(self.maximum, self.initial * self.factor ** max(0, failures - 1))


@dataclass
class FeedReport:
    """What one ingestion window did. ``lost`` > 0 means some trades may not be on the topic."""

    topic: str
    window_start: datetime
    window_end: datetime | None = None
    stopped_by: str = ""  # "window" or "max_trades"
    trades_produced: int = 0
    non_trade_frames: int = 0
    malformed_frames: int = 0
    # Trades produced although they break the trade rules (a price of "1_000", a time out of range):
    # landing dead-letters them with their offset and raw value, so nothing is dropped before the topic.
    invalid_trades: int = 0
    connections: int = 0  # websocket connections opened
    reconnects: int = 0  # connection attempts after a failure or a drop
    delivery_errors: int = 0
    unflushed: int = 0

    @property
    def lost(self) -> int:
        return self.delivery_errors + self.unflushed

    def summary(self) -> str:
        return (
            f"{self.trades_produced} trades produced to {self.topic!r}, {self.non_trade_frames} other frames, "
            f"{self.malformed_frames} malformed, {self.invalid_trades} invalid trades, "
            f"{self.connections} connections, {self.reconnects} reconnects, "
            f"{self.delivery_errors} delivery errors, {self.unflushed} unflushed"
        )


@dataclass
class _Feed:
    ws_url: str
    producer: Producer
    report: FeedReport
    max_trades: int | None
    log: Log
    backoff: Backoff
    progress_every: float
    connect_attempts: int | None = CONNECT_ATTEMPTS
    _problems_logged: int = 0
    _last_progress: tuple[float, int] = field(default_factory=lambda: (time.monotonic(), 0))

    async def run(self, seconds: float) -> None:
        housekeeping = asyncio.create_task(self._housekeeping())
        try:
            async with asyncio.timeout(seconds):
                await self._connect_loop()
                self.report.stopped_by = "max_trades"
        except TimeoutError:
            # Connection-level timeouts are handled inside the loop, so this is the window ending.
            self.report.stopped_by = "window"
        finally:
            housekeeping.cancel()

    async def _connect_loop(self) -> None:
        url = redact_text(self.ws_url)
        failures = 0
        while True:
            try:
                # close_timeout is short: a closing handshake must not eat into the next window.
                async with websockets.connect(self.ws_url, open_timeout=10, close_timeout=1) as ws:
                    self.report.connections += 1
                    self.log.info(f"trade feed connected to {url}")
                    async for frame in ws:
                        failures = 0  # the connection works: the next drop starts the backoff afresh
                        if self._handle(frame):
                            return
                    reason = "the feed closed the connection"
            except (OSError, TimeoutError, WebSocketException) as exc:
                reason = redact_text(f"{type(exc).__name__}: {exc}")
            failures += 1
            if self.report.connections == 0 and self.connect_attempts and failures >= self.connect_attempts:
                raise FeedUnreachable(url, failures, reason)
            delay = self.backoff.delay(failures)
            self.log.warning(f"trade feed {url}: {reason}; reconnecting in {delay:.1f} s")
            await asyncio.sleep(delay)
            self.report.reconnects += 1

    def _handle(self, frame: str | bytes) -> bool:
        """Produce the trade in ``frame``, if any; True once ``max_trades`` trades are produced."""
        try:
            trade = parse_frame(frame)
        except MalformedFrame as exc:
            self.report.malformed_frames += 1
            self._problem(f"trade feed: skipped a malformed frame: {exc}")
            return False
        if trade is None:
            self.report.non_trade_frames += 1
            return False
        self._check(trade)
        key, value = to_kafka(trade)
        while True:
            try:
                self.producer.produce(self.report.topic, key=key, value=value, on_delivery=self._delivered)
                break
            except BufferError:
                # The local queue is full (broker slow or away): wait for deliveries rather than drop.
                self.producer.poll(_BUFFER_FULL_WAIT)
        self.report.trades_produced += 1
        self.producer.poll(0)
        return self.max_trades is not None and self.report.trades_produced >= self.max_trades

    def _check(self, trade: Trade) -> None:
        """Count and log a trade that breaks the trade rules; it is produced all the same."""
        problem = trade_problem(
            symbol=trade.symbol,
            trade_id=trade.trade_id,
            price=trade.price,
            quantity=trade.quantity,
            trade_time_ms=trade.trade_time_ms,
            received_ms=int(time.time() * 1000),
        )
        if problem is not None:
            self.report.invalid_trades += 1
            self._problem(
                f"trade feed: trade {trade.symbol} {trade.trade_id} is invalid ({problem}); produced all "
                "the same, landing dead-letters it"
            )

    def _delivered(self, err: KafkaError | None, msg: Message) -> None:
        if err is not None:
            self.report.delivery_errors += 1
            self._problem(f"trade feed: a trade was not delivered to {self.report.topic!r}: {err.str()}")

    def _problem(self, message: str) -> None:
        self._problems_logged += 1
        if self._problems_logged <= _LOGGED_PROBLEMS:
            self.log.warning(message)
        if self._problems_logged == _LOGGED_PROBLEMS:
            self.log.warning(
                "trade feed: further malformed frames, invalid trades and delivery errors are counted, "
                "not logged"
            )

    async def _housekeeping(self) -> None:
        """Serve delivery reports even while no frame arrives, and log progress now and then."""
        while True:
            await asyncio.sleep(_POLL_EVERY)
            self.producer.poll(0)
            self._maybe_log_progress()

    def _maybe_log_progress(self) -> None:
        since, produced_then = self._last_progress
        now = time.monotonic()
        if now - since < self.progress_every:
            return
        produced = self.report.trades_produced
        rate = (produced - produced_then) / (now - since)
        self.log.info(
            f"trade feed: {produced} trades ({rate:.1f}/s), {self.report.reconnects} reconnects, "
            f"{self.report.malformed_frames} malformed, {self.report.delivery_errors} delivery errors"
        )
        self._last_progress = (now, produced)


def _error_logger(log: Log) -> Callable[[KafkaError], None]:
    """librdkafka's client-level errors (brokers down, authentication), each logged once in a row."""
    last: list[str] = [""]

    def on_error(err: KafkaError) -> None:
        text = redact_text(err.str())
        if text != last[0]:
            log.warning(f"trade feed: Kafka client: {text}")
            last[0] = text

    return on_error


def run_feed(
    ws_url: str,
    producer_conf: dict[str, Any],
    topic: str,
    *,
    seconds: float,
    max_trades: int | None,
    log: Log,
    backoff: Backoff = Backoff(),
    progress_every: float = 10.0,
    flush_timeout: float = 30.0,
    connect_attempts: int | None = CONNECT_ATTEMPTS,
) -> FeedReport:
    """Read ``ws_url`` for ``seconds`` (or until ``max_trades`` trades) and produce every trade to
    ``topic``, keyed by symbol. A feed never reached after ``connect_attempts`` attempts raises
    :class:`FeedUnreachable` (None: it is retried until the window ends, as every later drop is).

    ``producer_conf`` comes from :func:`platform_assets.core.streaming.kafka.producer_config`.
    """
    if seconds <= 0:
        raise ValueError(f"seconds must be positive, got {seconds}")
    if max_trades is not None and max_trades < 1:
        raise ValueError(f"max_trades must be at least 1, got {max_trades}")
    try:
        parse_uri(ws_url)
    except InvalidURI:
        # A wrong URL never starts working: fail now instead of retrying it for the whole window.
        raise ValueError(f"not a websocket URL (ws:// or wss://): {redact_text(ws_url)}") from None

    producer = Producer({"error_cb": _error_logger(log), **producer_conf})
    report = FeedReport(topic=topic, window_start=datetime.now(UTC))
    feed = _Feed(ws_url, producer, report, max_trades, log, backoff, progress_every, connect_attempts)
    try:
        asyncio.run(feed.run(seconds))
    finally:
        # Even when interrupted, hand what was read to Kafka before going.
        report.unflushed = producer.flush(flush_timeout)
        report.window_end = datetime.now(UTC)
    message = f"trade feed window ended ({report.stopped_by or 'interrupted'}): {report.summary()}"
    if report.lost:
        log.error(message)
    else:
        log.info(message)
    return report
