"""Statistics of one case's latency samples (METHOD.md section 4) and model-vs-baseline ratios
(section 5). Samples are integer nanoseconds; results are milliseconds (units chosen here only
because the store's row is in ms).

One bootstrap for everything (`bootstrap_medians`): samples taken back to back share the
machine's state at that moment, so they are not independent. The bootstrap therefore resamples
**whole rounds** (the interleaving rounds the engine records with every sample) or, for samples
without rounds, contiguous **blocks** of consecutive samples (a non-overlapping block bootstrap,
block length ~ n^(1/3)). The stored CI of the median, the stopping rule, the speedups
(`speedup`) and `pfdeploy compare` all use it, so a CI here promises what a rerun delivers.

A percentile is None when there are fewer samples than MLPerf LoadGen's rule asks for
(`PERCENTILE_MIN_SAMPLES`): never invented from a handful of samples.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Sequence

import numpy as np

from .config import PERCENTILE_MIN_SAMPLES

BOOTSTRAP_RESAMPLES = 2000
STOP_RESAMPLES = 1000  # the stopping rule's bootstrap (evaluated after every round)
BOOTSTRAP_SEED = 0
CV_WARN = 0.05
# fewer shared rounds than this: the ratio is not called paired (no CI from 1 round)
MIN_PAIRED_ROUNDS = 2
# bootstrap replicates are processed in chunks so memory stays bounded (chunk x samples cells)
_CHUNK_CELLS = 4_000_000


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
    ci_method: str | None = None  # "rounds" | "blocks": the units the CI's bootstrap resampled
    ci_units: int | None = None  # how many of them

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


# ------------------------------------------------------------------------------ the bootstrap
def block_length(n: int) -> int:
    """Block length of the non-overlapping block bootstrap for n samples without rounds:
    ~n^(1/3) (the usual rate for a block bootstrap of a smooth statistic), at least 1."""
    return max(1, int(round(n ** (1.0 / 3.0))))


def resampling_units(samples: Sequence[float], rounds: Sequence[int] | None = None) -> tuple[np.ndarray, str, int]:
    """The resampling unit of every sample (in the given, i.e. time, order): its round when
    `rounds` names at least two distinct rounds, else its block of consecutive samples.
    Returns (unit index per sample, method "rounds" | "blocks", number of units)."""
    n = len(samples)
    if rounds is not None and len(rounds) == n and n:
        labels, unit = np.unique(np.asarray(rounds), return_inverse=True)
        if len(labels) >= 2:
            return unit.astype(np.intp), "rounds", len(labels)
    size = block_length(n)
    unit = np.arange(n, dtype=np.intp) // size
    return unit, "blocks", int(unit[-1]) + 1 if n else 0


def bootstrap_medians(samples: Sequence[float], rounds: Sequence[int] | None, resamples: int,
                      rng: np.random.Generator | int | None = None) -> tuple[np.ndarray, str, int]:
    """Bootstrap distribution of the median of `samples` (round-aware, see the module doc).

    Each replicate draws as many units (rounds, else blocks) as there are, with replacement, and
    takes the median of all samples of the drawn units, computed as a weighted median over the
    sorted samples (no replicate is materialised). Only samples between the smallest lower-middle
    and the largest upper-middle value of any unit can be a replicate's median, so only those are
    scanned: the cost falls as a case converges. Returns (medians[resamples], method, units)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(BOOTSTRAP_SEED if rng is None else rng)
    unit_t, method, n_units = resampling_units(x, rounds)  # per sample, in time order
    order = np.argsort(x, kind="stable")
    values, unit = x[order], unit_t[order]
    sizes = np.bincount(unit, minlength=n_units)
    # the window that holds every possible replicate median (proof in docs/bench.md): from the
    # smallest lower-middle to the largest upper-middle value of any unit
    grouped = x[np.lexsort((x, unit_t))]  # by unit, sorted within each
    starts = np.concatenate(([0], np.cumsum(sizes)[:-1]))
    lo_mid = grouped[starts + (sizes - 1) // 2]
    hi_mid = grouped[starts + sizes // 2]
    start_i = int(np.searchsorted(values, lo_mid.min(), "left"))
    stop_i = int(np.searchsorted(values, hi_mid.max(), "right"))
    below = np.bincount(unit[:start_i], minlength=n_units).astype(np.int64)
    wv, wu = values[start_i:stop_i], unit[start_i:stop_i]
    medians = np.empty(resamples)
    chunk = max(1, min(resamples, _CHUNK_CELLS // max(1, wv.size)))
    p = np.full(n_units, 1.0 / n_units)
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        counts = rng.multinomial(n_units, p, size=b)          # (b, units): times each unit drawn
        total = counts @ sizes
        base = counts @ below
        cum = base[:, None] + np.cumsum(counts[:, wu], axis=1)  # (b, window) counts <= each value
        lo_rank = (total + 1) // 2                             # 1-based order statistics of the median
        hi_rank = total // 2 + 1
        lo_idx = (cum < lo_rank[:, None]).sum(axis=1)
        hi_idx = (cum < hi_rank[:, None]).sum(axis=1)
        medians[start:start + b] = (wv[lo_idx] + wv[hi_idx]) / 2.0
    return medians, method, n_units


def median_ci(samples: Sequence[float], rounds: Sequence[int] | None = None, confidence: float = 0.95,
              resamples: int = BOOTSTRAP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> dict | None:
    """Round-aware percentile-bootstrap CI of the median, seeded (the same samples give the same
    CI): {low, high, method, units}. None with fewer than 2 samples."""
    x = np.asarray(samples, dtype=np.float64)
    if len(x) < 2:
        return None
    meds, method, units = bootstrap_medians(x, rounds, resamples, seed)
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(meds, [alpha, 1 - alpha])
    med = float(np.median(x))
    return {"low": min(float(lo), med), "high": max(float(hi), med), "method": method, "units": units}


def bootstrap_median_ci(samples: Sequence[float], confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
                        seed: int = BOOTSTRAP_SEED, rounds: Sequence[int] | None = None) -> tuple[float, float] | None:
    """(low, high) of `median_ci`: None with fewer than 2 samples."""
    ci = median_ci(samples, rounds, confidence, resamples, seed)
    return None if ci is None else (ci["low"], ci["high"])


def summarize(samples_ns: Sequence[int], rounds: Sequence[int] | None = None, seed: int = BOOTSTRAP_SEED) -> Summary:
    """Statistics of latency samples given in nanoseconds, in milliseconds; the CI of the median
    resamples rounds (or blocks of consecutive samples when `rounds` is not given)."""
    x = np.asarray(samples_ns, dtype=np.float64) / 1e6
    n = int(len(x))
    if n == 0:
        return Summary(0, *([None] * 11))
    ci = median_ci(x, rounds, seed=seed)
    mean = float(x.mean())
    std = float(x.std(ddof=1)) if n > 1 else None
    return Summary(
        n=n, min_ms=float(x.min()), p50_ms=float(np.median(x)),
        p50_ci_low_ms=ci["low"] if ci else None, p50_ci_high_ms=ci["high"] if ci else None,
        p90_ms=percentile_or_none(x, 90), p95_ms=percentile_or_none(x, 95), p99_ms=percentile_or_none(x, 99),
        max_ms=float(x.max()), mean_ms=mean, std_ms=std,
        cv=(std / mean) if (std is not None and mean > 0) else None,
        ci_method=ci["method"] if ci else None, ci_units=ci["units"] if ci else None,
    )


def ci_halfwidth_rel(samples_ns: Sequence[int], rounds: Sequence[int] | None = None,
                     resamples: int = STOP_RESAMPLES, seed: int = BOOTSTRAP_SEED) -> float | None:
    """Relative half-width of the round-aware bootstrap 95% CI of the median (the stopping
    rule's test)."""
    x = np.asarray(samples_ns, dtype=np.float64)
    ci = median_ci(x, rounds, resamples=resamples, seed=seed)
    med = float(np.median(x)) if len(x) else 0.0
    if ci is None or med <= 0:
        return None
    return (ci["high"] - ci["low"]) / 2 / med


# ------------------------------------------------------------------------------ ratios
def ratio_replicates(num: Sequence[float], num_rounds: Sequence[int] | None, den: Sequence[float],
                     den_rounds: Sequence[int] | None, resamples: int = BOOTSTRAP_RESAMPLES,
                     rng: np.random.Generator | int | None = None) -> dict:
    """Unpaired ratio median(num) / median(den) and its bootstrap replicates, each side
    resampled independently by rounds (or blocks). `den` is drawn first, then `num`.
    Returns {ratio, replicates (finite only), num_method, den_method, num_units, den_units}."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("both sides need samples")
    ma, mb = float(np.median(a)), float(np.median(b))
    if mb <= 0:
        raise ValueError("denominator median is not positive")
    if not isinstance(rng, np.random.Generator):
        rng = np.random.default_rng(BOOTSTRAP_SEED if rng is None else rng)
    bm, b_method, b_units = bootstrap_medians(b, den_rounds, resamples, rng)
    am, a_method, a_units = bootstrap_medians(a, num_rounds, resamples, rng)
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = am / bm
    return {"ratio": ma / mb, "replicates": reps[np.isfinite(reps)], "num_method": a_method, "den_method": b_method,
            "num_units": a_units, "den_units": b_units, "num_median": ma, "den_median": mb}


def percentile_interval(replicates: np.ndarray, point: float, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, widened to contain the point estimate (the
    percentile interval of a skewed statistic may, rarely, miss it; "CI above 1" must never
    contradict the ratio shown beside it)."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(replicates, [alpha, 1.0 - alpha])
    return min(float(lo), point), max(float(hi), point)


def round_medians(samples: Sequence[float], rounds: Sequence[int]) -> dict[int, float]:
    """{round id: median of that round's samples}."""
    s = np.asarray(samples, dtype=np.float64)
    r = np.asarray(rounds)
    if len(s) != len(r):
        raise ValueError("samples and rounds differ in length")
    return {int(k): float(np.median(s[r == k])) for k in np.unique(r)}


def speedup(base_samples_ns: Sequence[int], base_rounds: Sequence[int] | None, model_samples_ns: Sequence[int],
            model_rounds: Sequence[int] | None, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
            seed: int = BOOTSTRAP_SEED) -> dict | None:
    """Speedup of a model over a baseline: median(base) / median(model), > 1 when the model is
    faster. The one function every table, report and summary uses for model-vs-baseline ratios.

    Paired when the two share at least MIN_PAIRED_ROUNDS round ids (round ids are unique within
    a run, so a shared id means the two ran in the same rotation, back to back): for every shared
    round the ratio of the round medians; the speedup is the median of these ratios, its CI a
    seeded bootstrap over the shared rounds. Otherwise unpaired: the ratio of the two medians,
    its CI from independent round-aware (block) bootstraps of each side.

    Returns {"ratio", "ci_low", "ci_high", "paired": bool, "rounds": shared rounds used (0 when
    unpaired), "base_units", "model_units", "how": a label for tables}; ci_low/ci_high are None
    when there is too little data for an interval. None when either side has no samples."""
    if base_samples_ns is None or model_samples_ns is None or len(base_samples_ns) == 0 or len(model_samples_ns) == 0:
        return None
    base = np.asarray(base_samples_ns, dtype=np.float64)
    model = np.asarray(model_samples_ns, dtype=np.float64)
    br = base_rounds if base_rounds is not None and len(base_rounds) == len(base) else None
    mr = model_rounds if model_rounds is not None and len(model_rounds) == len(model) else None
    if (base_rounds is not None and len(base_rounds) and br is None) or (
            model_rounds is not None and len(model_rounds) and mr is None):
        raise ValueError("samples and rounds differ in length")
    if br is not None and mr is not None:
        a, b = round_medians(base, br), round_medians(model, mr)
        common = sorted(set(a) & set(b))
        if len(common) >= MIN_PAIRED_ROUNDS:
            ratios = np.array([a[r] / b[r] for r in common])
            ratio = float(np.median(ratios))
            reps, _, _ = bootstrap_medians(ratios, common, resamples, seed)
            lo, hi = percentile_interval(reps, ratio, confidence)
            return {"ratio": ratio, "ci_low": lo, "ci_high": hi, "paired": True, "rounds": len(common),
                    "base_units": len(a), "model_units": len(b), "how": f"paired, {len(common)} rounds"}
    if float(np.median(model)) <= 0:
        return None
    rep = ratio_replicates(base, br, model, mr, resamples, seed)
    lo = hi = None
    if len(base) >= 2 and len(model) >= 2 and rep["replicates"].size:
        lo, hi = percentile_interval(rep["replicates"], rep["ratio"], confidence)
    return {"ratio": rep["ratio"], "ci_low": lo, "ci_high": hi, "paired": False, "rounds": 0,
            "base_units": rep["num_units"], "model_units": rep["den_units"], "how": "unpaired (ratio of medians)"}


def paired_ratio(samples_a: Sequence[int], rounds_a: Sequence[int], samples_b: Sequence[int],
                 rounds_b: Sequence[int]) -> dict | None:
    """Ratio median(A)/median(B) from paired rounds only (a thin wrapper of `speedup`): None
    when the two share fewer than MIN_PAIRED_ROUNDS rounds."""
    if len(samples_a) != len(rounds_a) or len(samples_b) != len(rounds_b):
        raise ValueError("samples and rounds differ in length")
    res = speedup(samples_a, rounds_a, samples_b, rounds_b)
    return res if res and res["paired"] else None


def log_ratio_sd(replicates: np.ndarray) -> float:
    """Standard deviation of log(replicates) (robust: from the interquartile range)."""
    if replicates.size < 4:
        return math.inf
    q1, q3 = np.quantile(np.log(replicates), [0.25, 0.75])
    return float((q3 - q1) / 1.349)
