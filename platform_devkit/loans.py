"""An offline producer of loan application events, and the loan stream driven in process.

:func:`make_events` writes realistic traffic for the topic ``loanApplications``: each application is
submitted and then changes status (approved, rejected or withdrawn, an approval sometimes withdrawn
later), events of many applications interleave, some of an application's events are produced after a
later one (out of order), a few break silver's expectations (a negative amount, a status nobody knows),
and some messages are poison the landing must dead-letter (not JSON, a field missing, an amount with a
comma, a time that is not one). :func:`produce` sends them to a broker (the embedded one of ``make dev``
or ``make demo``, or any ``PLATFORM_KAFKA_BOOTSTRAP``).

:class:`LoanStreamDriver` ticks the sensor ``loan_applications_micro_batches`` and executes each run it
requests, as the daemon would; :func:`run_window_offline` is what ``make demo`` runs::

    python -m platform_devkit.loans produce --applications 50   # into the running broker (make dev)
"""

from __future__ import annotations

import argparse
import contextlib
import random
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from confluent_kafka import Producer
from dagster import (
    DagsterInstance,
    Definitions,
    ExecuteInProcessResult,
)

from platform_assets.core.lake import delta
from platform_assets.core.loans.events import TABLE, LoanEvent
from platform_assets.core.streaming.kafka import EmbeddedBroker, running_broker
from platform_assets.defs.loans.definitions import build_loan_definitions
from platform_assets.defs.loans.resources import loan_resources
from platform_assets.defs.loans.sensors import JOB, SENSOR_NAME
from platform_assets.lib.resources import build_resources
from platform_assets.lib.tags import MICRO_BATCH_TAG
from platform_assets.settings import Settings, load_settings
from platform_devkit.sensor_driver import SensorDriver

Message = tuple[bytes | None, bytes]
START = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
# Messages the landing must dead-letter, one of each kind in turn.
POISON: tuple[bytes, ...] = (
    b"{not json",
    b'["a", "list"]',
    b'{"application_id": "APP-X", "applicant_id": "CUS-X", "amount": "10.00", "currency": "USD", '
    b'"status": "submitted"}',  # no event_time
    b'{"application_id": "APP-X", "applicant_id": "CUS-X", "amount": "12,50", "currency": "USD", '
    b'"status": "submitted", "event_time": "2026-12-07T09:00:00+00:00"}',
    b'{"application_id": "APP-X", "applicant_id": "CUS-X", "amount": "12.50", "currency": "USD", '
    b'"status": "submitted", "event_time": "yesterday"}',
)


@dataclass(frozen=True)
class Produced:
    """What :func:`make_events` made: the messages in production order, the events among them (silver's
    input, expectations not applied) and how many are poison."""

    messages: list[Message]
    events: list[LoanEvent]
    poison: int
    applications: int


def _lifecycle(rng: random.Random, index: int, start: datetime, prefix: str) -> list[LoanEvent]:
    """One application's events: submitted, then a decision or a withdrawal, sometimes more."""
    app, applicant = f"{prefix}{index:06d}", f"CUS-{rng.randrange(1, 10_000):05d}"
    cents = rng.randrange(1_000_00, 250_000_00)
    amount = f"{cents // 100}.{cents % 100:02d}"
    when = start + timedelta(seconds=index * 7 + rng.randrange(0, 5))
    events = [LoanEvent(app, applicant, amount, "submitted", when)]
    roll = rng.random()
    decision = "approved" if roll < 0.55 else "rejected" if roll < 0.85 else "withdrawn"
    when += timedelta(minutes=rng.randrange(1, 90), microseconds=rng.randrange(1_000_000))
    events.append(LoanEvent(app, applicant, amount, decision, when))
    if decision == "approved" and rng.random() < 0.15:
        events.append(
            LoanEvent(app, applicant, amount, "withdrawn", when + timedelta(hours=rng.randrange(1, 48)))
        )
    if index % 17 == 5:  # a status silver does not know: quarantined, the application keeps its state
        events.append(LoanEvent(app, applicant, amount, "on_hold", when + timedelta(seconds=30)))
    if index % 23 == 7:  # an update with a negative amount: quarantined too
        events.append(
            LoanEvent(app, applicant, f"-{amount}", events[-1].status, when + timedelta(seconds=45))
        )
    return events


def make_events(
    applications: int, *, seed: int = 0, start: datetime = START, poison_every: int = 25, prefix: str = "APP-"
) -> Produced:
    """Events of ``applications`` applications, interleaved in event-time order; every 7th application's
    last two events are produced in reverse order, and one poison message follows every ``poison_every``
    events (0: none). Application ids are ``prefix`` and a number. The same arguments always give the
    same messages."""
    rng = random.Random(seed)
    lives = [_lifecycle(rng, i, start, prefix) for i in range(applications)]
    for i, life in enumerate(lives):
        if i % 7 == 3 and len(life) >= 2:
            life[-2], life[-1] = life[-1], life[-2]  # produced out of order (same key: same partition)
    # Interleave by event time, keeping each application's own production order.
    order = sorted(
        (max(e.event_time for e in life[: k + 1]), i, k)
        for i, life in enumerate(lives)
        for k in range(len(life))
    )
    events = [lives[i][k] for _, i, k in order]
    messages: list[Message] = []
    poison = 0
    for n, event in enumerate(events, start=1):
        messages.append((event.key(), event.value()))
        if poison_every and n % poison_every == 0:
            messages.append((b"APP-X", POISON[poison % len(POISON)]))
            poison += 1
    return Produced(messages, events, poison, applications)


def produce(conf: dict[str, Any], topic: str, messages: Iterable[Message], *, timeout: float = 30.0) -> int:
    """Send ``messages`` to ``topic`` (idempotent producer, every replica acknowledges); the number
    delivered. Raises when any was not."""
    producer = Producer(conf)
    failures: list[str] = []

    def delivered(error, _message) -> None:
        if error is not None:
            failures.append(str(error))

    sent = 0
    for key, value in messages:
        producer.produce(topic, value=value, key=key, on_delivery=delivered)
        producer.poll(0)
        sent += 1
    left = producer.flush(timeout)
    if left or failures:
        raise RuntimeError(
            f"{left + len(failures)} of {sent} message(s) not delivered to {topic!r}: {failures[:3]}"
        )
    return sent


@dataclass
class LoanStreamDriver(SensorDriver):
    """The loan stream's job and sensor for ``settings``, run in process against ``instance``.

    ``max_batch_rows`` and ``allowed_latency`` override the stream declaration's for the sensor.
    """

    sensor_name = SENSOR_NAME
    job_name = JOB
    stream_name = "the loan stream"

    settings: Settings
    instance: DagsterInstance
    max_batch_rows: int | None = None
    allowed_latency: float | None = 0.0
    run_config: dict = field(default_factory=dict)  # merged into every run (e.g. log levels)
    cursor: str | None = None

    def __post_init__(self) -> None:
        self.defs = Definitions.merge(
            build_loan_definitions(
                self.settings, max_batch_rows=self.max_batch_rows, allowed_latency=self.allowed_latency
            ),
            Definitions(resources=build_resources(self.settings)),
        )
        self.resources: dict[str, Any] = dict(self.defs.resources or {})


@dataclass(frozen=True)
class LoanWindowSummary:
    produced: Produced
    topic: str
    runs: list[ExecuteInProcessResult]
    micro_batches: int
    bronze_rows: int
    dead_letters: int
    silver_rows: int
    quarantined: int

    @property
    def success(self) -> bool:
        return bool(self.runs) and all(r.success for r in self.runs)


def _rows(path: str) -> int:
    return delta.row_count(path) if delta.table_exists(path) else 0


def with_broker(settings: Settings, bootstrap: str) -> Settings:
    return replace(settings, kafka_bootstrap=bootstrap)


def run_window_offline(
    settings: Settings,
    instance: DagsterInstance,
    applications: int = 120,
    max_batch_rows: int = 100,
    run_config: dict | None = None,
) -> LoanWindowSummary:
    """Produce one short window of loan application events (several status changes per application,
    some out of order, some invalid, some poison), then every micro-batch run the sensor asks for. Without
    ``PLATFORM_KAFKA_BOOTSTRAP`` an embedded broker lives for the call (each call a new incarnation,
    which the stream lands as a new epoch)."""
    with contextlib.ExitStack() as stack:
        if not settings.kafka_bootstrap:
            settings = with_broker(settings, stack.enter_context(EmbeddedBroker()).bootstrap)
        driver = LoanStreamDriver(
            settings, instance, max_batch_rows=max_batch_rows, run_config=run_config or {}
        )
        stream = driver.resources["loan_stream"]
        produced = make_events(applications)
        produce(stream.producer_conf(), stream.topic, produced.messages)
        runs = driver.drain()
    path = settings.table_path
    return LoanWindowSummary(
        produced=produced,
        topic=stream.topic,
        runs=runs,
        micro_batches=sum(1 for r in runs if MICRO_BATCH_TAG in r.dagster_run.tags),
        bronze_rows=_rows(str(path("bronze", TABLE))),
        dead_letters=_rows(str(path("bronze", f"{TABLE}_quarantine"))),
        silver_rows=_rows(str(path("silver", TABLE))),
        quarantined=_rows(str(path("silver", f"{TABLE}_quarantine"))),
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m platform_devkit.loans",
        description="Produce realistic loan application events to the loan topic (PLATFORM_KAFKA_BOOTSTRAP, "
        "else the embedded broker `make dev` runs); the sensor loan_applications_micro_batches lands them.",
    )
    parser.add_argument("command", choices=["produce"])
    parser.add_argument("--applications", type=int, default=50)
    parser.add_argument("--seed", type=int, default=None, help="default: a new one each time")
    args = parser.parse_args(argv)
    settings = load_settings()
    bootstrap = settings.kafka_bootstrap or running_broker(settings.data_dir)
    if not bootstrap:
        print("error: no broker: set PLATFORM_KAFKA_BOOTSTRAP or start `make dev`", file=sys.stderr)
        return 2
    stream = loan_resources(with_broker(settings, bootstrap))["loan_stream"]
    seed = args.seed if args.seed is not None else random.randrange(1 << 30)
    now = datetime.now(UTC).replace(microsecond=0)
    # ids of their own per call, so a second call adds applications rather than updating the first's
    produced = make_events(args.applications, seed=seed, start=now, prefix=f"APP-{now:%Y%m%d%H%M%S}-")
    sent = produce(stream.producer_conf(), stream.topic, produced.messages)
    print(
        f"{sent} message(s) to topic {stream.topic!r} at {bootstrap}: {len(produced.events)} event(s) of "
        f"{produced.applications} application(s), {produced.poison} poison"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
