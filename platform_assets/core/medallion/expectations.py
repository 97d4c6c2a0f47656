"""Data-quality expectations in the DLT vocabulary: ``warn`` keeps the row, ``drop`` removes it (it is
quarantined with the rule's name, never silently lost), ``fail`` stops the update."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import polars as pl

from platform_assets.core.medallion.config import Expectation

RULE_COLUMN = "_rule"


@dataclass(frozen=True)
class RuleResult:
    expectation: Expectation
    total: int
    failed: int

    @property
    def passed(self) -> bool:
        return self.failed == 0

    @property
    def name(self) -> str:
        return self.expectation.name


@dataclass
class QualityOutcome:
    kept: pl.DataFrame
    quarantined: pl.DataFrame
    results: list[RuleResult]

    @property
    def blocked(self) -> bool:
        """A ``fail`` rule was violated: nothing of this batch may be written."""
        return any(r.expectation.action == "fail" and not r.passed for r in self.results)

    def failures(self, action: str) -> list[RuleResult]:
        return [r for r in self.results if r.expectation.action == action and not r.passed]


def apply_expectations(frame: pl.DataFrame, expectations: Sequence[Expectation]) -> QualityOutcome:
    """Evaluate every rule once over the batch (vectorised) and split kept and quarantined rows.

    A rule whose expression evaluates to NULL for a row counts as violated by that row.
    """
    flags = [f"__ok_{i}" for i in range(len(expectations))]
    scored = frame.with_columns(
        [e.predicate().alias(flag) for e, flag in zip(expectations, flags, strict=True)]
    )
    results = [
        RuleResult(e, frame.height, int(scored.height - scored.get_column(flag).sum()))
        for e, flag in zip(expectations, flags, strict=True)
    ]
    drop_flags = [(e, f) for e, f in zip(expectations, flags, strict=True) if e.action == "drop"]
    if drop_flags:
        failed_rules = pl.concat_str(
            [pl.when(~pl.col(f)).then(pl.lit(e.name)) for e, f in drop_flags],
            separator=",",
            ignore_nulls=True,
        )
        keep = pl.all_horizontal([pl.col(f) for _, f in drop_flags])
    else:
        failed_rules, keep = pl.lit(None, dtype=pl.String), pl.lit(True)
    if all(r.passed for r in results if r.expectation.action == "drop"):  # nothing to split off: no copy
        nothing = frame.head(0).with_columns(pl.lit(None, pl.String).alias(RULE_COLUMN))
        return QualityOutcome(kept=frame, quarantined=nothing, results=results)
    kept = scored.filter(keep).drop(flags)
    quarantined = scored.filter(~keep).with_columns(failed_rules.alias(RULE_COLUMN)).drop(flags)
    return QualityOutcome(kept=kept, quarantined=quarantined, results=results)


def combine(results: list[list[RuleResult]]) -> list[RuleResult]:
    """Sum the results of the same rules over several batches (e.g. the days of a range run)."""
    totals: dict[str, RuleResult] = {}
    for batch in results:
        for r in batch:
            seen = totals.get(r.name)
            totals[r.name] = (
                r if seen is None else RuleResult(r.expectation, seen.total + r.total, seen.failed + r.failed)
            )
    return list(totals.values())
