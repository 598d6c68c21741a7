"""Statistics of one case's latency samples (docs/method.md, "Statistics per case").

Samples are integer nanoseconds; results are milliseconds (the store's row is in ms).

The CI of the median is the bootstrap's (bench/stats/bootstrap.py): with samples from two or more
worker processes it is **hierarchical**: the median's standard error on the log scale comes from
the two-level bootstrap (processes, then rounds within a process), corrected for the few
processes it rests on (x sqrt(P / (P - 1)): a bootstrap over P clusters sees (P - 1) / P of their
variance), and the interval is a Student t interval with P - 1 degrees of freedom around the
median of all samples. With P = 3 processes, t = 4.30 rather than 1.96: an interval from three
process levels claims no more than three levels can tell. Samples of one process (rows written
before several processes per case existed) keep the one-level percentile interval over rounds and
say so (`ci_method` "rounds" or "blocks", `processes` 1).

A percentile is None when there are fewer samples than MLPerf LoadGen's rule asks for
(`PERCENTILE_MIN_SAMPLES`): never invented from a handful of samples.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from ..config import PERCENTILE_MIN_SAMPLES
from .bootstrap import BOOTSTRAP_SEED, bootstrap_medians, t_ppf

BOOTSTRAP_RESAMPLES = 2000
STOP_RESAMPLES = 1000  # the stopping rule's bootstrap (evaluated after every round)
CV_WARN = 0.05


@dataclass(frozen=True)
class Summary:
    n: int
    min_ms: float | None
    p50_ms: float | None
    p50_ci_low_ms: float | None
    p50_ci_high_ms: float | None
    p90_ms: float | None
    p95_ms: float | None
    p99_ms: float | None
    max_ms: float | None
    mean_ms: float | None
    std_ms: float | None
    cv: float | None
    ci_method: str | None = None  # "processes" | "rounds" | "blocks": what the CI's bootstrap resampled
    ci_units: int | None = None  # how many rounds (blocks)
    processes: int | None = None  # how many worker processes the samples come from
    process_sd: float | None = None  # spread between the processes' medians (sd of their logs)
    ci_df: int | None = None  # degrees of freedom of the t interval (processes - 1); None: percentile CI

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def ci_halfwidth_rel(self) -> float | None:
        """Half-width of the median's CI relative to the median."""
        if self.p50_ms in (None, 0) or self.p50_ci_low_ms is None:
            return None
        return (self.p50_ci_high_ms - self.p50_ci_low_ms) / 2 / self.p50_ms


def percentile_or_none(x: np.ndarray, q: int) -> float | None:
    """The q-th percentile (linear interpolation) or None with too few samples for it."""
    need = PERCENTILE_MIN_SAMPLES.get(q, 1)
    if len(x) < need or len(x) == 0:
        return None
    return float(np.percentile(x, q))


def t_quantile(q: float, df: float) -> float:
    """Student t quantile; the normal one for df = inf (`bootstrap.t_ppf`, cached)."""
    return t_ppf(q, df)


def process_count(procs: Sequence[int] | None, n: int) -> int:
    return len(set(procs)) if procs is not None and len(procs) == n and n else 1


def process_sd(samples: Sequence[float], procs: Sequence[int] | None) -> float | None:
    """Spread between processes: the standard deviation of the log of each process's median
    (0.05 ~ processes differ by 5%); None with fewer than two processes."""
    x = np.asarray(samples, dtype=float)
    if process_count(procs, len(x)) < 2:
        return None
    p = np.asarray(procs)
    meds = np.array([np.median(x[p == k]) for k in np.unique(p)])
    if (meds <= 0).any():
        return None
    return float(np.std(np.log(meds), ddof=1))


def hierarchical_se(replicates: np.ndarray, processes: int) -> float:
    """Standard error of a log-scale statistic from its two-level bootstrap replicates, corrected
    for the P processes it rests on (sqrt(P / (P - 1)))."""
    reps = replicates[np.isfinite(replicates) & (replicates > 0)]
    if reps.size < 4 or processes < 2:
        return float("inf")
    return float(np.std(np.log(reps), ddof=1)) * math.sqrt(processes / (processes - 1))


def median_ci(samples: Sequence[float], rounds: Sequence[int] | None = None, confidence: float = 0.95,
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
              procs: Sequence[int] | None = None) -> dict | None:
    """CI of the median, seeded (the same samples give the same CI):
    {low, high, method, units, processes, df, se_log}. Two or more processes (`procs`, one label
    per sample): the hierarchical t interval of the module doc; else the percentile interval of
    the round (block) bootstrap. None with fewer than 2 samples."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 2:
        return None
    meds, method, units = bootstrap_medians(x, rounds, resamples, seed, procs)
    med = float(np.median(x))
    P = process_count(procs, len(x))
    if method == "processes" and med > 0:
        se = hierarchical_se(meds, P)
        half = t_quantile(1 - (1 - confidence) / 2, P - 1) * se
        return {"low": med * math.exp(-half), "high": med * math.exp(half), "method": method, "units": units,
                "processes": P, "df": P - 1, "se_log": se}
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(meds, [alpha, 1 - alpha])
    from .bootstrap import log_sd

    return {"low": min(float(lo), med), "high": max(float(hi), med), "method": method, "units": units,
            "processes": 1, "df": None, "se_log": log_sd(meds)}


def bootstrap_median_ci(samples: Sequence[float], confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED, rounds: Sequence[int] | None = None,
                        procs: Sequence[int] | None = None) -> tuple[float, float] | None:
    """(low, high) of `median_ci`: None with fewer than 2 samples."""
    ci = median_ci(samples, rounds, confidence, resamples, seed, procs)
    return None if ci is None else (ci["low"], ci["high"])


def summarize(samples_ns: Sequence[int], rounds: Sequence[int] | None = None, seed: int = BOOTSTRAP_SEED,
              procs: Sequence[int] | None = None) -> Summary:
    """Statistics of latency samples given in nanoseconds, in milliseconds; the CI of the median
    is hierarchical with `procs` (two or more processes), else it resamples rounds (blocks)."""
    x = np.asarray(samples_ns, dtype=np.float64) / 1e6
    n = int(len(x))
    if n == 0:
        return Summary(0, *([None] * 11))
    ci = median_ci(x, rounds, seed=seed, procs=procs)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else None
    return Summary(
        n=n, min_ms=float(x.min()), p50_ms=float(np.median(x)),
        p50_ci_low_ms=ci["low"] if ci else None, p50_ci_high_ms=ci["high"] if ci else None,
        p90_ms=percentile_or_none(x, 90), p95_ms=percentile_or_none(x, 95), p99_ms=percentile_or_none(x, 99),
        max_ms=float(x.max()), mean_ms=mean, std_ms=std,
        cv=(std / mean) if (std is not None and mean > 0) else None,
        ci_method=ci["method"] if ci else None, ci_units=ci["units"] if ci else None,
        processes=process_count(procs, n), process_sd=process_sd(x, procs),
        ci_df=ci["df"] if ci else None,
    )


def ci_halfwidth_rel(samples_ns: Sequence[int], rounds: Sequence[int] | None = None,
                     resamples: int = STOP_RESAMPLES, seed: int = BOOTSTRAP_SEED,
                     procs: Sequence[int] | None = None) -> float | None:
    """Relative half-width of the median's 95% CI (the stopping rule's test), hierarchical with
    two or more processes."""
    x = np.asarray(samples_ns, dtype=np.float64)
    ci = median_ci(x, rounds, resamples=resamples, seed=seed, procs=procs)
    med = float(np.median(x)) if len(x) else 0.0
    if ci is None or med <= 0:
        return None
    return (ci["high"] - ci["low"]) / 2 / med
