"""Statistics of one case's latency samples (METHOD.md section 4) and paired-round ratios
(section 5). Samples are integer nanoseconds; results are milliseconds (units chosen here only
because the store's row is in ms).

A percentile is None when there are fewer samples than MLPerf LoadGen's rule asks for
(`PERCENTILE_MIN_SAMPLES`): never invented from a handful of samples.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from .config import PERCENTILE_MIN_SAMPLES

BOOTSTRAP_RESAMPLES = 2000
BOOTSTRAP_SEED = 0
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


def bootstrap_median_ci(samples: Sequence[float], confidence: float = 0.95,
                        resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> tuple[float, float] | None:
    """Percentile-bootstrap CI of the median, seeded (the same samples give the same CI).
    None with fewer than 2 samples."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 2:
        return None
    meds = _bootstrap_medians(x, resamples, np.random.default_rng(seed))
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(meds, [alpha, 1 - alpha])
    return float(lo), float(hi)


def _bootstrap_medians(x: np.ndarray, resamples: int, rng: np.random.Generator) -> np.ndarray:
    """Medians of `resamples` bootstrap resamples of `x`, drawn from `rng`."""
    # resample in chunks so a long run (10^5 samples) does not allocate gigabytes
    meds = np.empty(resamples)
    chunk = max(1, int(2e7 // len(x)))
    for start in range(0, resamples, chunk):
        k = min(chunk, resamples - start)
        idx = rng.integers(0, len(x), size=(k, len(x)))
        meds[start:start + k] = np.median(x[idx], axis=1)
    return meds


def summarize(samples_ns: Sequence[int], seed: int = BOOTSTRAP_SEED) -> Summary:
    """Statistics of latency samples given in nanoseconds, in milliseconds."""
    x = np.asarray(samples_ns, dtype=np.float64) / 1e6
    n = int(len(x))
    if n == 0:
        return Summary(0, *([None] * 11))
    ci = bootstrap_median_ci(x, seed=seed)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else None
    return Summary(
        n=n, min_ms=float(x.min()), p50_ms=float(np.median(x)),
        p50_ci_low_ms=ci[0] if ci else None, p50_ci_high_ms=ci[1] if ci else None,
        p90_ms=percentile_or_none(x, 90), p95_ms=percentile_or_none(x, 95), p99_ms=percentile_or_none(x, 99),
        max_ms=float(x.max()), mean_ms=mean, std_ms=std,
        cv=(std / mean) if (std is not None and mean > 0) else None,
    )


def ci_halfwidth_rel(samples_ns: Sequence[int], resamples: int = 1000, seed: int = BOOTSTRAP_SEED) -> float | None:
    """Relative half-width of the bootstrap 95% CI of the median (the stopping rule's test)."""
    x = np.asarray(samples_ns, dtype=np.float64)
    ci = bootstrap_median_ci(x, resamples=resamples, seed=seed)
    med = float(np.median(x)) if len(x) else 0.0
    if ci is None or med <= 0:
        return None
    return (ci[1] - ci[0]) / 2 / med


def paired_ratio(samples_a: Sequence[int], rounds_a: Sequence[int], samples_b: Sequence[int],
                 rounds_b: Sequence[int]) -> dict | None:
    """Ratio median(A)/median(B) from paired rounds (METHOD.md section 5): for every round index
    both cases ran, the ratio of their round medians; the result is the median of those ratios
    with a seeded bootstrap 95% CI over rounds. None when the cases share no round."""
    a = _round_medians(samples_a, rounds_a)
    b = _round_medians(samples_b, rounds_b)
    common = sorted(set(a) & set(b))
    if not common:
        return None
    ratios = np.array([a[r] / b[r] for r in common])
    ci = bootstrap_median_ci(ratios) if len(ratios) >= 2 else None
    return {"ratio": float(np.median(ratios)), "ci_low": ci[0] if ci else None,
            "ci_high": ci[1] if ci else None, "rounds": len(common)}


def _round_medians(samples: Sequence[int], rounds: Sequence[int]) -> dict[int, float]:
    s = np.asarray(samples, dtype=np.float64)
    r = np.asarray(rounds)
    if len(s) != len(r):
        raise ValueError("samples and rounds differ in length")
    return {int(k): float(np.median(s[r == k])) for k in np.unique(r)}


def speedup(base_samples_ns: Sequence[int], base_rounds: Sequence[int] | None, model_samples_ns: Sequence[int],
            model_rounds: Sequence[int] | None) -> dict | None:
    """How much faster a model is than a baseline: median(baseline) / median(model), so **above
    1 the model is faster** (the orientation of every speedup pfdeploy shows).

    Paired (METHOD.md section 5) when both cases carry round ids and share at least two rounds:
    `paired_ratio`'s median of per-round ratios with its bootstrap CI over rounds. Otherwise the
    unpaired ratio of the two medians, with a seeded percentile-bootstrap 95% CI that resamples
    each case's samples independently (wider: it cannot cancel the machine's drift).

    Returns {"ratio", "ci_low", "ci_high", "paired": bool, "rounds": int (shared rounds; 0 when
    unpaired)}, ci_* None when there is too little data for an interval; None when either side
    has no samples; ValueError when round ids are given but differ in length from the samples."""
    if not len(base_samples_ns) or not len(model_samples_ns):
        return None
    for samples, rounds in ((base_samples_ns, base_rounds), (model_samples_ns, model_rounds)):
        if rounds is not None and len(rounds) and len(rounds) != len(samples):
            raise ValueError("samples and rounds differ in length")
    if base_rounds is not None and model_rounds is not None and len(base_rounds) and len(model_rounds):
        res = paired_ratio(base_samples_ns, base_rounds, model_samples_ns, model_rounds)
        if res is not None and res["rounds"] >= 2:
            return {**res, "paired": True}
    b = np.asarray(base_samples_ns, dtype=np.float64)
    m = np.asarray(model_samples_ns, dtype=np.float64)
    mb, mm = float(np.median(b)), float(np.median(m))
    if mm <= 0:
        return None
    lo = hi = None
    if len(b) >= 2 and len(m) >= 2:
        rng = np.random.default_rng(BOOTSTRAP_SEED)
        ratios = _bootstrap_medians(b, BOOTSTRAP_RESAMPLES, rng) / _bootstrap_medians(m, BOOTSTRAP_RESAMPLES, rng)
        lo, hi = (float(v) for v in np.quantile(ratios, [0.025, 0.975]))
    return {"ratio": mb / mm, "ci_low": lo, "ci_high": hi, "paired": False, "rounds": 0}
