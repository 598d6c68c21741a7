"""METHOD section 8's verdict rule on one case's ratio statistics (docs/method.md, "Regression
verdict"), and how many bootstrap replicates a CI level needs."""
from __future__ import annotations

import math

from ..bench.stats import RatioStats
from .model import DEFAULT_ALPHA, DEFAULT_RESAMPLES, DEFAULT_THRESHOLD


def resamples_for(confidence: float, minimum: int = DEFAULT_RESAMPLES, cap: int = 20_000) -> int:
    """Bootstrap replicates for a percentile CI at `confidence`: at least 10 replicates beyond
    each bound (a 99.7% CI needs ~6700), never fewer than `minimum`, at most `cap`."""
    tail = (1.0 - confidence) / 2.0
    return int(min(cap, max(minimum, math.ceil(10.0 / tail))))


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


