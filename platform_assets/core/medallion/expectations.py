"""Data-quality expectations in the DLT vocabulary: ``warn`` keeps the row, ``drop`` removes it (it is
quarantined with the rule's name, never silently lost), ``fail`` stops the update.

A violated rule keeps a sample of the rows that broke it (at most :data:`SAMPLE_ROWS`: the table's keys and
the columns the rule reads), for the check that reports it; values of secret-named columns are masked
before they leave here, and text values have credentials masked (:mod:`platform_assets.core.redaction`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import polars as pl

from platform_assets.core.medallion.config import Expectation
from platform_assets.core.redaction import MASK, is_secret_name, redact_text

RULE_COLUMN = "_rule"
SAMPLE_ROWS = 20  # failing rows a rule keeps to show


@dataclass(frozen=True)
class RuleResult:
    expectation: Expectation
    total: int
    failed: int
    # Up to SAMPLE_ROWS failing rows (keys, then the columns the rule reads), secrets masked; None when the
    # rule passed or the engine kept none (Spark counts only).
    sample: pl.DataFrame | None = field(default=None, compare=False, repr=False)
    sample_keys: tuple[str, ...] = field(default=(), compare=False)  # the sample's key columns

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


def rule_columns(expectation: Expectation) -> list[str]:
    """The columns a rule's expression reads, in the order they appear."""
    return list(dict.fromkeys(expectation.predicate().meta.root_names()))


def masked(frame: pl.DataFrame) -> pl.DataFrame:
    """``frame`` with the values of secret-named columns replaced by ``***`` and credentials in text
    values (URL passwords, ``password=...``, bearer tokens) masked."""
    return frame.with_columns(
        [
            pl.lit(MASK).alias(name)
            if is_secret_name(name)
            else pl.col(name).map_elements(redact_text, return_dtype=pl.String)
            for name, dtype in frame.schema.items()
            if is_secret_name(name) or dtype == pl.String
        ]
    )


def failing_sample(
    scored: pl.DataFrame, flag: str, expectation: Expectation, keys: Sequence[str] = ()
) -> pl.DataFrame:
    """The first :data:`SAMPLE_ROWS` rows of ``scored`` whose ``flag`` is false: the keys and the
    columns the rule reads (those present), masked."""
    columns = [c for c in dict.fromkeys([*keys, *rule_columns(expectation)]) if c in scored.columns]
    return masked(scored.filter(~pl.col(flag)).head(SAMPLE_ROWS).select(columns))


def apply_expectations(
    frame: pl.DataFrame, expectations: Sequence[Expectation], keys: Sequence[str] = ()
) -> QualityOutcome:
    """Evaluate every rule once over the batch (vectorised) and split kept and quarantined rows.

    A rule whose expression evaluates to NULL for a row counts as violated by that row. A violated rule
    keeps a sample of its failing rows (``keys`` and the columns it reads; see :func:`failing_sample`).
    """
    flags = [f"__ok_{i}" for i in range(len(expectations))]
    scored = frame.with_columns(
        [e.predicate().alias(flag) for e, flag in zip(expectations, flags, strict=True)]
    )
    results = []
    for e, flag in zip(expectations, flags, strict=True):
        failed = int(scored.height - scored.get_column(flag).sum())
        sample = failing_sample(scored, flag, e, keys) if failed else None
        shown = tuple(k for k in keys if k in frame.columns)
        results.append(RuleResult(e, frame.height, failed, sample, shown if failed else ()))
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
    """Sum the results of the same rules over several batches (e.g. the days of a range run); the
    samples are joined in batch order and cut at :data:`SAMPLE_ROWS`."""
    totals: dict[str, RuleResult] = {}
    for batch in results:
        for r in batch:
            seen = totals.get(r.name)
            if seen is None:
                totals[r.name] = r
                continue
            samples = [s for s in (seen.sample, r.sample) if s is not None]
            sample = pl.concat(samples, how="diagonal_relaxed").head(SAMPLE_ROWS) if samples else None
            totals[r.name] = RuleResult(
                r.expectation,
                seen.total + r.total,
                seen.failed + r.failed,
                sample,
                seen.sample_keys or r.sample_keys,
            )
    return list(totals.values())
