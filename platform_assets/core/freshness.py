"""How fresh each asset must be, and when a stale or recovered asset alerts. No Dagster import here.

A :class:`Freshness` is the time an asset may go without an update before it is stale (``fail_after``),
and optionally a shorter time after which it is late but not yet stale (``warn_after``): the two windows
of Dagster's ``FreshnessPolicy.time_window``, which :mod:`platform_assets.lib.freshness` builds from it.
A :class:`Deadline` is the other kind Dagster knows (``FreshnessPolicy.cron``): the asset must be updated
within ``lower_bound`` before each tick of a cron schedule ("between 08:00 and 09:00 every day").

Defaults come per layer and per asset (:func:`default_freshness`); a table of ``tables.yaml`` and a
stream of ``streams.yaml`` override them with a ``freshness:`` field (:func:`parse_freshness`).

Alerts are decided here, from the last update of each asset, its policy and ``now``
(:func:`freshness_alerts`): an asset that turns stale alerts once (``"alert": "stale"``), and once more
when it is updated again (``"alert": "fresh"``). What was last said per asset is the caller's state (the
sensor's cursor); an alert that could not be delivered leaves it unchanged, so it is retried.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

# Dagster evaluates freshness to the minute: shorter windows are refused there.
MINIMUM = timedelta(minutes=1)
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd])\s*$")
_UNITS = {"s": "seconds", "m": "minutes", "h": "hours", "d": "days"}

State = Literal["fresh", "stale", "unknown"]
# Five fields of minutes, hours, days of month, months and days of week; Dagster checks the rest when the
# policy is built (platform_assets.lib.freshness), this only catches a value that is no cron at all.
_CRON = re.compile(r"^\s*(\S+\s+){4}\S+\s*$")


@dataclass(frozen=True)
class Freshness:
    """An asset is stale once ``fail_after`` has passed since its last update; late (Dagster's WARN)
    after ``warn_after``."""

    fail_after: timedelta
    warn_after: timedelta | None = None

    def __post_init__(self) -> None:
        if self.fail_after < MINIMUM:
            raise ValueError(f"fail after {describe(self.fail_after)} is shorter than a minute")
        if self.warn_after is not None:
            if self.warn_after < MINIMUM:
                raise ValueError(f"warn after {describe(self.warn_after)} is shorter than a minute")
            if self.warn_after >= self.fail_after:
                raise ValueError(
                    f"warn ({describe(self.warn_after)}) must be shorter than fail ({describe(self.fail_after)})"
                )

    def state(self, last_update: datetime | None, now: datetime) -> State:
        """``unknown`` for an asset never updated (nothing to judge, as in Dagster), else stale once
        ``fail_after`` has passed since ``last_update``."""
        if last_update is None:
            return "unknown"
        return "stale" if now - last_update >= self.fail_after else "fresh"


@dataclass(frozen=True)
class Deadline:
    """An asset must be updated within ``lower_bound`` before each tick of ``cron`` (in ``timezone``).

    Judged as Dagster judges its cron policy: at any moment, against the last tick that has passed (the
    caller computes it: the core parses no cron); stale when the last update is older than that tick less
    ``lower_bound``, until the next update. An update before the window (too early) does not count."""

    cron: str
    lower_bound: timedelta
    timezone: str = "UTC"

    def __post_init__(self) -> None:
        if not _CRON.match(self.cron):
            raise ValueError(f"{self.cron!r} is not a cron schedule such as '0 9 * * *'")
        if self.lower_bound < MINIMUM:
            raise ValueError(f"within {describe(self.lower_bound)} is shorter than a minute")

    def state(self, last_update: datetime | None, last_tick: datetime | None) -> State:
        """``unknown`` for an asset never updated (or before the schedule's first tick), else stale when
        ``last_update`` is before ``last_tick - lower_bound``."""
        if last_update is None or last_tick is None:
            return "unknown"
        return "stale" if last_update < last_tick - self.lower_bound else "fresh"


FreshnessRule = Freshness | Deadline
"""Either kind of freshness an asset may declare."""


def describe(lag: timedelta) -> str:
    """``26h``, ``90m``, ``45s``, ``2d``: the largest whole unit."""
    seconds = int(lag.total_seconds())
    for unit, size in (("d", 86_400), ("h", 3_600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def _problem(what: str, text: str) -> ValueError:
    """``<what>: <text>``; just the text when the caller names the field itself (``what`` empty)."""
    return ValueError(f"{what}: {text}" if what else text)


def _duration(value: Any, what: str) -> timedelta:
    if isinstance(value, bool) or not isinstance(value, str | int):
        raise _problem(what, f"{value!r} is not a duration such as 10m, 13h or 2d")
    if isinstance(value, int):  # seconds
        return timedelta(seconds=value)
    match = _DURATION.match(value)
    if not match:
        raise _problem(what, f"{value!r} is not a duration such as 10m, 13h or 2d")
    amount, unit = match.groups()
    return timedelta(**{_UNITS[unit]: int(amount)})


def _deadline(value: Mapping[str, Any], what: str) -> Deadline:
    unknown = sorted(set(value) - {"cron", "within", "timezone"})
    if unknown:
        raise _problem(what, f"unknown field(s) {unknown} (cron, within, timezone)")
    if "within" not in value:
        raise _problem(what, "needs 'within' (how long before each tick of the cron the update is due)")
    cron, timezone = value["cron"], value.get("timezone", "UTC")
    if not isinstance(cron, str) or not isinstance(timezone, str):
        raise _problem(what, "cron and timezone are text, such as '0 9 * * *' and 'Europe/Berlin'")
    try:
        return Deadline(cron, _duration(value["within"], f"{what}.within".lstrip(".")), timezone)
    except ValueError as exc:
        raise _problem(what, str(exc)) from None


def parse_freshness(value: Any, what: str = "freshness") -> FreshnessRule | None:
    """A ``freshness:`` field: a duration (``26h``: stale after it), ``{fail: 26h, warn: 20h}``, or a
    deadline ``{cron: '0 9 * * *', within: 1h, timezone: Europe/Berlin}``; None when absent. Raises
    ValueError naming ``what``."""
    if value is None:
        return None
    if isinstance(value, Freshness | Deadline):
        return value
    if isinstance(value, Mapping) and "cron" in value:
        return _deadline(value, what)
    if isinstance(value, Mapping):
        unknown = sorted(set(value) - {"fail", "warn"})
        if unknown:
            raise _problem(what, f"unknown field(s) {unknown} (fail, warn; or cron, within, timezone)")
        if "fail" not in value:
            raise _problem(what, "needs 'fail' (how long the asset may go without an update)")
        fail = _duration(value["fail"], f"{what}.fail".lstrip("."))
        warn = None if value.get("warn") is None else _duration(value["warn"], f"{what}.warn".lstrip("."))
    else:
        fail, warn = _duration(value, what), None
    try:
        return Freshness(fail, warn)
    except ValueError as exc:
        raise _problem(what, str(exc)) from None


# ------------------------------------------------------------------------------------------------
# Defaults. The medallion runs daily (medallion_daily, 02:00): 26 h is a day and the run's own length.
# The streams land in micro-batches: minutes. Countries refresh twice a day: 13 h.

DAILY = Freshness(timedelta(hours=26), timedelta(hours=25))
STREAMING = Freshness(timedelta(minutes=10), timedelta(minutes=5))
TWICE_DAILY = Freshness(timedelta(hours=13), timedelta(hours=12))

# Per asset, before the per-layer rule.
ASSET_DEFAULTS: dict[str, Freshness] = {
    "raw/countries": TWICE_DAILY,
    "silver/countries": TWICE_DAILY,
    "kafka/trades": DAILY,  # one materialization per daily feed window
    "raw/trade_symbols": DAILY,
    "bronze/trades": STREAMING,
    "silver/trades_enriched": STREAMING,
    "bronze/loan_applications": STREAMING,
    "silver/loan_applications": STREAMING,
    "reports/daily_plays_per_track": DAILY,
}
# Per layer, for the lake tables of the daily medallion (the ``medallion`` group).
LAYER_DEFAULTS: dict[str, Freshness] = {"bronze": DAILY, "silver": DAILY, "gold": DAILY}


def default_freshness(asset: str, group: str | None) -> Freshness | None:
    """The platform's default for ``asset`` (``layer/name``) in ``group``; None: no freshness expected
    (an asset updated only on demand, such as the customer and product extracts)."""
    if asset in ASSET_DEFAULTS:
        return ASSET_DEFAULTS[asset]
    layer = asset.split("/", 1)[0]
    if group == "medallion" and layer in LAYER_DEFAULTS:
        return LAYER_DEFAULTS[layer]
    return None


# ------------------------------------------------------------------------------------------------
# Alerts


@dataclass(frozen=True)
class Observation:
    """What is known of one asset at ``now``: its policy and its last update (and, for a
    :class:`Deadline`, the last tick of its cron at ``now``, which the caller computes)."""

    asset: str
    policy: FreshnessRule
    last_update: datetime | None
    last_tick: datetime | None = None

    def state(self, now: datetime) -> State:
        if isinstance(self.policy, Deadline):
            return self.policy.state(self.last_update, self.last_tick)
        return self.policy.state(self.last_update, now)

    def allowed(self) -> dict[str, Any]:
        """What the payload says the asset was allowed: a lag, or a deadline and its window."""
        if isinstance(self.policy, Deadline):
            tick = self.last_tick
            return {
                "deadline": _iso(tick),
                "deadline_cron": self.policy.cron,
                "deadline_timezone": self.policy.timezone,
                "window_start": None if tick is None else _iso(tick - self.policy.lower_bound),
            }
        return {
            "allowed_lag": describe(self.policy.fail_after),
            "allowed_lag_seconds": int(self.policy.fail_after.total_seconds()),
        }


@dataclass(frozen=True)
class FreshnessAlert:
    asset: str
    state: State  # the state it announces: stale or fresh
    payload: dict[str, Any]


def _iso(moment: datetime | None) -> str | None:
    return None if moment is None else moment.astimezone(UTC).isoformat()


def freshness_alerts(
    observations: list[Observation], said: Mapping[str, str], now: datetime, **context: Any
) -> tuple[list[FreshnessAlert], dict[str, str]]:
    """The alerts due at ``now`` and the state to remember per asset.

    ``said`` is what was last announced per asset (``stale`` or ``fresh``). An asset alerts ``stale``
    when it is stale and was not said to be; ``fresh`` when it was said stale and is fresh again. An
    asset seen fresh for the first time is remembered without an alert; one never updated is not judged.
    ``context`` (environment, UI link) goes into every payload. The returned state holds the transitions
    as if every alert was delivered: the caller keeps an asset's old state when its alert was not.
    """
    alerts: list[FreshnessAlert] = []
    observed = {seen.asset for seen in observations}
    # an asset that no longer has a policy (or no longer exists) is forgotten
    state = {asset: value for asset, value in said.items() if asset in observed}
    for seen in observations:
        current = seen.state(now)
        before = said.get(seen.asset)
        if current == "unknown":
            continue
        state[seen.asset] = current
        if current == before or (current == "fresh" and before is None):
            continue
        lag = now - seen.last_update if seen.last_update else None
        alerts.append(
            FreshnessAlert(
                seen.asset,
                current,
                {
                    **context,
                    "alert": current,
                    "asset": seen.asset,
                    "last_update": _iso(seen.last_update),
                    "lag_seconds": None if lag is None else int(lag.total_seconds()),
                    **seen.allowed(),
                    "checked_at": _iso(now),
                },
            )
        )
    return alerts, state
