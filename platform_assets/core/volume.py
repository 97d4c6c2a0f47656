"""Volume anomalies: is the number of rows a run brought normal for its table? No Dagster import here.

A run is judged against the rows the table's earlier runs brought (its *history*, newest first), with
statistics that a few odd runs cannot drag: the median and the median absolute deviation (MAD). The
band of normal runs is the wider of two:

- a factor around the median: ``[median / factor, median * factor]`` (a drop to a fifth or a spike to
  five times the usual, with the default factor 5), and
- the history's own spread: ``median ± 3.5 · 1.4826 · MAD`` (1.4826 · MAD estimates the standard
  deviation of normally distributed counts; 3.5 is Iglewicz and Hoaglin's cut-off for outliers), so a
  table whose runs swing widely is not warned about its usual swings.

A steady history (MAD 0, e.g. a full reload of a fixed-size table) leaves the factor's band: the MAD
alone would call a single row more an anomaly.

Runs that brought nothing (a watermark table with nothing new, a landing zone with no new file) are
no measure of the table's volume: the statistics are taken over the runs that brought rows. An empty
run is normal when one of the runs in the history was empty too, and a drop when none was: a table whose
runs always brought rows has a lower bound of at least one row.

Fewer runs of history than ``min_history`` (with rows, for the statistics) leave the run *not judged*: it
passes, and says so (``not judged: 3 of 5 runs``). A fixed ``floor`` is judged without any history: a run
with fewer rows warns. The trade stream's low-volume threshold is such a policy (no history, a floor).

The *score* is where the run lies in the band: 0 at the median, 1 at the bound on its side (lower for a
drop, upper for a spike), above 1 outside. Anomalies only ever warn; they never block a run.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, get_args

# 1.4826 · MAD estimates the standard deviation of normally distributed values.
MAD_TO_SIGMA = 1.4826
# How many such deviations from the median still count as normal (Iglewicz and Hoaglin's cut-off).
SPREAD = 3.5

Drops = Literal["any", "empty"]
DROPS: tuple[str, ...] = get_args(Drops)


@dataclass(frozen=True)
class VolumePolicy:
    """How a table's volume is judged: over its last ``history`` runs, once at least ``min_history`` of
    them are known, warning beyond ``factor`` (or the history's spread); ``floor``: fewer rows always
    warn, with or without history; ``drops``: ``any`` (a run far below the median warns) or ``empty``
    (only a run that brought nothing warns as a drop: for a table whose rows per run follow how often it
    is run, such as a watermark table launched by hand between its daily runs)."""

    history: int = 30
    min_history: int = 5
    factor: float = 5.0
    floor: int | None = None
    drops: Drops = "any"

    def __post_init__(self) -> None:
        if isinstance(self.history, bool) or not isinstance(self.history, int) or self.history < 0:
            raise ValueError(f"history must be a whole number of runs, 0 or more, got {self.history!r}")
        if (
            isinstance(self.min_history, bool)
            or not isinstance(self.min_history, int)
            or self.min_history < 0
        ):
            raise ValueError(
                f"min_history must be a whole number of runs, 0 or more, got {self.min_history!r}"
            )
        if self.min_history > self.history:
            raise ValueError(f"min_history ({self.min_history}) cannot be more than history ({self.history})")
        if (
            isinstance(self.factor, bool)
            or not isinstance(self.factor, int | float)
            or not math.isfinite(self.factor)
            or self.factor <= 1
        ):
            raise ValueError(f"factor must be a number above 1, got {self.factor!r}")
        if self.floor is not None and (
            isinstance(self.floor, bool) or not isinstance(self.floor, int) or self.floor < 0
        ):
            raise ValueError(f"floor must be a whole number of rows, 0 or more, got {self.floor!r}")
        if self.drops not in DROPS:
            raise ValueError(f"drops must be one of {', '.join(DROPS)}, got {self.drops!r}")

    @classmethod
    def fixed_floor(cls, floor: int) -> VolumePolicy:
        """No history, only a floor: a run with fewer than ``floor`` rows warns (the trade stream's
        low-volume threshold)."""
        return cls(history=0, min_history=0, floor=floor)


DEFAULT_POLICY = VolumePolicy()


@dataclass(frozen=True)
class VolumeVerdict:
    """What :func:`judge_volume` found. ``judged`` False: too little history (and no floor); the run
    passes. ``median``, ``mad``, ``lower``, ``upper`` and ``score`` are None when the history was not
    used (not judged, or judged by the floor alone)."""

    rows: int
    judged: bool
    passed: bool
    history_runs: int  # runs of history looked at (empty ones included)
    reason: str
    median: float | None = None
    mad: float | None = None
    lower: float | None = None
    upper: float | None = None
    score: float | None = None
    floor: int | None = None
    empty_runs: int = 0  # runs of the history that brought nothing

    @property
    def direction(self) -> str | None:
        """``drop`` or ``spike`` for a run that warned; None otherwise."""
        if self.passed:
            return None
        if self.floor is not None and self.rows < self.floor:
            return "drop"
        return "spike" if self.median is not None and self.rows > self.median else "drop"


def judge_volume(rows: int, history: Sequence[int], policy: VolumePolicy = DEFAULT_POLICY) -> VolumeVerdict:
    """Judge ``rows`` (what this run brought) against ``history`` (what earlier runs brought, newest
    first; only the first ``policy.history`` are used)."""
    if rows < 0:
        raise ValueError(f"rows must be 0 or more, got {rows}")
    runs = [int(h) for h in history[: policy.history]] if policy.history else []
    if any(h < 0 for h in runs):
        raise ValueError(f"history holds a negative count: {runs}")
    below_floor = policy.floor is not None and rows < policy.floor
    floor_text = f"{rows:,} row(s), below the floor of {policy.floor:,}" if below_floor else ""
    base = {"rows": rows, "history_runs": len(runs), "floor": policy.floor}

    def floor_only(why: str) -> VolumeVerdict:
        if policy.floor is None:
            return VolumeVerdict(**base, judged=False, passed=True, reason=why)
        if below_floor:
            return VolumeVerdict(**base, judged=True, passed=False, reason=floor_text)
        return VolumeVerdict(
            **base,
            judged=True,
            passed=True,
            reason=f"{rows:,} row(s), at or above the floor of {policy.floor:,}",
        )

    if policy.history == 0:
        return floor_only("not judged: no history is kept")
    if len(runs) < max(policy.min_history, 1):
        return floor_only(f"not judged: {len(runs)} of {max(policy.min_history, 1)} runs")
    filled = [h for h in runs if h > 0]
    empty = len(runs) - len(filled)
    base["empty_runs"] = empty
    if rows == 0 and empty:
        verdict = floor_only("")
        if verdict.passed:  # a table that sometimes brings nothing: an empty run is one of those
            return VolumeVerdict(
                **base,
                judged=True,
                passed=True,
                score=0.0,
                reason=f"an empty run, as {empty} of the last {len(runs)} were",
            )
        return verdict
    if len(filled) < max(policy.min_history, 1):
        return floor_only(f"not judged: {len(filled)} of {max(policy.min_history, 1)} runs with rows")

    median = float(statistics.median(filled))
    mad = float(statistics.median(abs(h - median) for h in filled))
    sigma = MAD_TO_SIGMA * mad
    upper = max(median * policy.factor, median + SPREAD * sigma)
    lower = max(0.0, min(median / policy.factor, median - SPREAD * sigma))
    if policy.drops == "empty":
        lower = 0.0
    if not empty:  # runs of this table always brought rows: an empty one is a drop
        lower = max(lower, 1.0)
    lower = min(lower, median)
    score = _score(rows, median, lower, upper)
    outside = rows < lower or rows > upper
    passed = not outside and not below_floor
    band = f"[{_number(lower)}, {_number(upper)}]"
    stats = f"median {_number(median)} of {len(filled)} run(s) with rows, MAD {_number(mad)}"
    if below_floor:
        reason = f"{floor_text}; {stats}"
    elif rows > upper:
        reason = f"spike: {rows:,} row(s), above {_number(upper)} ({stats}, normal {band})"
    elif rows < lower:
        what = "no rows, and none of the last runs was empty" if rows == 0 else f"{rows:,} row(s)"
        reason = f"drop: {what}, below {_number(lower)} ({stats}, normal {band})"
    else:
        reason = f"{rows:,} row(s) within {band} ({stats})"
    return VolumeVerdict(
        **base,
        judged=True,
        passed=passed,
        reason=reason,
        median=median,
        mad=mad,
        lower=lower,
        upper=upper,
        score=score,
    )


def below_floor(rows: int, floor: int) -> bool:
    """A run with fewer than ``floor`` rows (the trade stream's low-volume rule: no history, a floor)."""
    return not judge_volume(rows, (), VolumePolicy.fixed_floor(floor)).passed


def _score(rows: int, median: float, lower: float, upper: float) -> float:
    """0 at the median, 1 at the bound on the run's side, beyond 1 outside the band. The median is at
    least one row (the statistics are over runs with rows), so the upper side is never empty; the lower
    side is when the median is the one row a table that is never empty must bring: it is taken as half a
    row wide, so an empty run scores 2, not infinity (a number the UI can plot)."""
    if rows >= median:
        return (rows - median) / (upper - median)
    return (median - rows) / max(median - lower, 0.5)


def _number(value: float) -> str:
    return f"{value:,.0f}" if value == int(value) or abs(value) >= 100 else f"{value:,.1f}"


def parse_volume(value: Any, what: str = "volume") -> VolumePolicy | None:
    """A ``volume:`` block of tables.yaml (``{history: 30, min_history: 5, factor: 5, floor: 100,
    drops: any}``, every field optional, over the defaults); None when absent. Raises ValueError naming
    ``what`` and the field."""
    if value is None:
        return None
    if isinstance(value, VolumePolicy):
        return value
    if not isinstance(value, Mapping):
        raise ValueError(f"{what}: expected a mapping such as {{factor: 5, min_history: 5}}, got {value!r}")
    known = ("history", "min_history", "factor", "floor", "drops")
    unknown = sorted(str(k) for k in set(value) - set(known))
    if unknown:
        raise ValueError(f"{what}: unknown field(s) {unknown} ({', '.join(known)})")
    fields = {**DEFAULT_POLICY.__dict__, **value}
    try:
        return VolumePolicy(**fields)
    except ValueError as exc:
        raise ValueError(f"{what}.{exc}") from None
