"""librdkafka's client logs, one line per state change instead of one per reconnect attempt.

A Kafka client whose broker is gone retries the connection every few dozen milliseconds and logs each
failure: a consumer writes some 20 "Connect to ... failed: Connection refused" lines a second. Given as
the clients' ``logger`` (:func:`platform_assets.core.streaming.kafka.client_config` does), :data:`CLIENT_LOG`
writes a condition once when it starts, in Python's logging (logger ``platform_assets.kafka``), and then
at most once every :data:`REMINDER_SECONDS` while it lasts, with the number of repeats left out. A
condition is one message with what varies between repeats removed (the client's name, the thread, the
milliseconds and suppression counts librdkafka appends), so the clients of one process share it: when
the broker comes back or fails another way, the new message is a new condition and is logged at once.
Messages are redacted like every other log line.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable

from platform_assets.core.redaction import redact_text

LOGGER_NAME = "platform_assets.kafka"
REMINDER_SECONDS = 60.0

_THREAD = re.compile(r"^\[thrd:[^\]]*\]:\s*")
_AFTER = re.compile(r"\s*\(after \d+ms in state [A-Z_]+(?:, \d+ identical error\(s\) suppressed)?\)")
_SUPPRESSED = re.compile(r"\s*\(?\d+ identical error\(s\) suppressed\)?")


def condition(facility: str, message: str) -> str:
    """What stays the same between repeats of one message: the facility and the message without the
    thread prefix and the timings and counts librdkafka appends."""
    text = _SUPPRESSED.sub("", _AFTER.sub("", _THREAD.sub("", message.strip())))
    return f"{facility}: {text}"


class StateChangeLog:
    """A librdkafka ``logger`` (confluent-kafka calls :meth:`log` as on a :class:`logging.Logger`) that
    passes each condition on once when it starts and once per ``reminder`` seconds while it lasts."""

    def __init__(
        self,
        logger: logging.Logger | None = None,
        reminder: float = REMINDER_SECONDS,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.logger = logger or logging.getLogger(LOGGER_NAME)
        self.reminder = reminder
        self._clock = clock
        self._lock = threading.Lock()  # librdkafka calls in from its own threads
        self._seen: dict[str, tuple[float, int]] = {}  # condition -> (when last written, repeats since)

    def log(self, level: int, msg: str, *args: object) -> None:
        """confluent-kafka calls ``log(level, "%s [%s] %s", facility, client name, message)``."""
        if len(args) == 3 and msg == "%s [%s] %s":
            facility, _client, message = (str(a) for a in args)
        else:
            facility, message = "", (msg % args if args else msg)
        key = condition(facility, message)
        now = self._clock()
        with self._lock:
            written, repeats = self._seen.get(key, (None, 0))
            if written is not None and now - written < self.reminder:
                self._seen[key] = (written, repeats + 1)
                return
            self._seen[key] = (now, 0)
            self._forget(now)
        again = (
            f" ({repeats} more in the last {now - written:.0f} s)" if written is not None and repeats else ""
        )
        self.logger.log(level, "Kafka client %s%s", redact_text(key), again)

    def _forget(self, now: float) -> None:
        """Drop conditions not seen for a while: one that comes back later is a new state."""
        stale = [k for k, (written, _) in self._seen.items() if now - written >= 2 * self.reminder]
        for key in stale:
            del self._seen[key]


# The one instance of the process: every client shares it, so a condition is written once per process.
CLIENT_LOG = StateChangeLog()
