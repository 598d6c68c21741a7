"""METHOD section 8's verdict rule on one case's ratio statistics (docs/method.md, "Regression
verdict"), and how many bootstrap replicates a CI level needs."""
from __future__ import annotations

import math

from ..bench.stats import TAIL_REPLICATES, RatioStats
from .model import DEFAULT_ALPHA, DEFAULT_RESAMPLES, DEFAULT_THRESHOLD


EXACT_RESAMPLES_CAP = 20_000  # beyond this many replicates the family-wise tail is parametric
# replicates per case where it is: they only estimate each side's spread (a standard error to ~5%)
# and the 90% percentile interval (10 beyond each bound) that the parametric tail stretches
# (`bench.stats.tail_intervals`)
MANY_CASES_RESAMPLES = 200


def exact_level(confidence: float, minimum: int = DEFAULT_RESAMPLES, cap: int | None = None) -> bool:
    """Whether a percentile CI at `confidence` can rest on its own replicates (TAIL_REPLICATES
    beyond each bound within `cap` replicates): at 95% family-wise, Bonferroni over up to 50
    cases. Beyond that, the many-case regime of `resamples_for`."""
    cap = EXACT_RESAMPLES_CAP if cap is None else cap
    return math.ceil(TAIL_REPLICATES / ((1.0 - confidence) / 2.0)) <= max(cap, minimum)


def resamples_for(confidence: float, minimum: int = DEFAULT_RESAMPLES, cap: int | None = None) -> int:
    """Bootstrap replicates for a percentile CI at `confidence`: at least TAIL_REPLICATES (10)
    beyond each bound (a 99.7% CI needs ~6700), never fewer than `minimum`.

    A level that would need more than `cap` (EXACT_RESAMPLES_CAP) replicates, i.e. a Bonferroni
    level over more than 50 cases at 95% (10,000 cases: 4 million), is the many-case regime: a
    fixed MANY_CASES_RESAMPLES (or `minimum`, if smaller) replicates per case, whose percentile
    bounds at 95% the parametric tail of `bench.stats.tail_intervals` stretches to the level (the
    ratio of t quantiles; docs/compare.md, "Many cases"), so the work per case stays fixed however
    many cases share the family-wise 95%."""
    tail = (1.0 - confidence) / 2.0
    need = math.ceil(TAIL_REPLICATES / tail)
    if exact_level(confidence, minimum, cap):
        return int(max(minimum, need))
    return int(min(minimum, MANY_CASES_RESAMPLES))


def verdict(stats: RatioStats, threshold: float = DEFAULT_THRESHOLD, alpha: float = DEFAULT_ALPHA) -> tuple[str, str]:
    """docs/method.md section 8's rule. Returns (verdict, note)."""
    r, lo, hi, p = stats.ratio, stats.ci_low, stats.ci_high, stats.p_value
    called = None
    if lo > 1.0 and r >= 1.0 + threshold:
        called = "regression"
    elif hi < 1.0 and r <= 1.0 - threshold:
        called = "improvement"
    if called:
        if p is not None and p >= alpha:
            return "inconclusive", f"CI calls a {called} but Mann-Whitney does not (p={p:.2g})"
        return called, ""
    if stats.ci_width > threshold:
        return "inconclusive", f"CI width {stats.ci_width * 100:.1f}% > threshold {threshold * 100:g}%"
    return "unchanged", ""


