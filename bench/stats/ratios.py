"""Ratios of medians with their intervals (docs/method.md, "Comparing"): a model against its
baseline within one run (`speedup`, paired by rotation) and a case against itself across runs
(`ratio_stats`, what `pfdeploy compare` judges).

Both carry the process level. A paired speedup pairs rounds that ran in the same rotation (so the
machine's drift cancels), but each side ran in its own worker process, whose level does not
cancel; with rounds from two or more generations of workers, the speedup's interval is the
hierarchical one (generations, then rounds; t interval with G - 1 degrees of freedom). A ratio
across runs combines each side's hierarchical standard error (log scale) with Welch-Satterthwaite
degrees of freedom. Samples of one process keep the one-level percentile bootstrap.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ...result import Result
from .bootstrap import BOOTSTRAP_SEED, bootstrap_medians, log_sd, percentile_interval, rng_of, tail_interval
from .summary import BOOTSTRAP_RESAMPLES, hierarchical_se, process_count, t_quantile

# fewer shared rounds than this: the ratio is not called paired (no CI from 1 round)
MIN_PAIRED_ROUNDS = 2


def _result(row) -> Result:
    """Transitional: a caller that still hands a plain row (pfdeploy.claims' per-item rows, whose
    samples are divided by the batch) gets it read as a Result without validation; everything
    below reads attributes only."""
    return Result.model_construct(**row) if isinstance(row, dict) else row


def row_procs(row: Result) -> list[int] | None:
    """Per-sample process labels of a stored result: from `process_rounds` (the rounds each of
    its worker processes measured); None for a result of one process (or without rounds)."""
    row = _result(row)
    pr, rounds = row.process_rounds, row.sample_rounds
    if not pr or rounds is None or len(pr) < 2:
        return None
    of = {int(r): i for i, rs in enumerate(pr) for r in rs}
    try:
        return [of[int(r)] for r in rounds]
    except KeyError:
        return None  # damaged or foreign: fall back to one level


def row_rounds(row: Result) -> list[int] | None:
    """The result's round ids when there is one per sample, else None (then nothing is paired)."""
    row = _result(row)
    r = row.sample_rounds
    return r if r is not None and len(r) == len(row.samples_ns or ()) else None


def round_medians(samples: Sequence[float], rounds: Sequence[int]) -> dict[int, float]:
    """{round id: median of that round's samples}."""
    s = np.asarray(samples, dtype=np.float64)
    r = np.asarray(rounds)
    if len(s) != len(r):
        raise ValueError("samples and rounds differ in length")
    return {int(k): float(np.median(s[r == k])) for k in np.unique(r)}


def _round_procs(rounds: Sequence[int], procs: Sequence[int] | None) -> dict[int, int]:
    if procs is None:
        return {}
    return {int(r): int(p) for r, p in zip(rounds, procs)}


def speedup(base_samples_ns: Sequence[int], base_rounds: Sequence[int] | None, model_samples_ns: Sequence[int],
            model_rounds: Sequence[int] | None, confidence: float = 0.95, resamples: int = BOOTSTRAP_RESAMPLES,
            seed: int = BOOTSTRAP_SEED, base_procs: Sequence[int] | None = None,
            model_procs: Sequence[int] | None = None) -> dict | None:
    """Speedup of a model over a baseline: median(base) / median(model), > 1 when the model is
    faster. The one function every table, report and summary uses for model-vs-baseline ratios.

    Paired when the two share at least MIN_PAIRED_ROUNDS round ids (round ids are unique within
    a run, so a shared id means the two ran in the same rotation, back to back): for every shared
    round the ratio of the round medians; the speedup is the median of these ratios. Its CI: with
    the shared rounds spread over two or more generations of worker processes (`base_procs`), the
    hierarchical t interval (generations, then rounds); else a bootstrap over the shared rounds.
    Otherwise unpaired: the ratio of the two medians, each side resampled on its own.

    Returns {"ratio", "ci_low", "ci_high", "paired", "rounds", "processes", "base_units",
    "model_units", "how"}; ci_low/ci_high are None when there is too little data for an
    interval. None when either side has no samples."""
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
            gen = _round_procs(br, base_procs) or _round_procs(mr, model_procs)
            clusters = [gen.get(r, -1) for r in common] if gen else None
            G = len(set(clusters)) if clusters else 1
            reps, _, _ = bootstrap_medians(ratios, common, resamples, seed, clusters if G >= 2 else None)
            if G >= 2:
                half = t_quantile(1 - (1 - confidence) / 2, G - 1) * hierarchical_se(reps, G)
                lo, hi = ratio * math.exp(-half), ratio * math.exp(half)
                how = f"paired, {len(common)} rounds in {G} process generations"
            else:
                lo, hi = percentile_interval(reps, ratio, confidence)
                how = f"paired, {len(common)} rounds"
            return {"ratio": ratio, "ci_low": lo, "ci_high": hi, "paired": True, "rounds": len(common),
                    "processes": G, "base_units": len(a), "model_units": len(b), "how": how}
    if float(np.median(model)) <= 0:
        return None
    rep = ratio_replicates(base, br, model, mr, resamples, seed, num_procs=base_procs, den_procs=model_procs)
    lo = hi = None
    if len(base) >= 2 and len(model) >= 2 and rep["replicates"].size:
        lo, hi = rep["interval"](confidence)
    return {"ratio": rep["ratio"], "ci_low": lo, "ci_high": hi, "paired": False, "rounds": 0,
            "processes": min(rep["num_processes"], rep["den_processes"]),
            "base_units": rep["num_units"], "model_units": rep["den_units"], "how": "unpaired (ratio of medians)"}


def row_speedup(base_row: Result, model_row: Result, confidence: float = 0.95) -> dict | None:
    """`speedup` of two stored results (their samples, rounds and processes)."""
    base_row, model_row = _result(base_row), _result(model_row)
    return speedup(base_row.samples_ns, row_rounds(base_row), model_row.samples_ns,
                   row_rounds(model_row), confidence, base_procs=row_procs(base_row),
                   model_procs=row_procs(model_row))


def paired_ratio(samples_a: Sequence[int], rounds_a: Sequence[int], samples_b: Sequence[int],
                 rounds_b: Sequence[int]) -> dict | None:
    """Ratio median(A)/median(B) from paired rounds only (a thin wrapper of `speedup`): None
    when the two share fewer than MIN_PAIRED_ROUNDS rounds."""
    if len(samples_a) != len(rounds_a) or len(samples_b) != len(rounds_b):
        raise ValueError("samples and rounds differ in length")
    res = speedup(samples_a, rounds_a, samples_b, rounds_b)
    return res if res and res["paired"] else None


def _side_se(meds: np.ndarray, method: str, procs: int, prior: tuple[float, float] | None = None) -> tuple[float, float]:
    """(standard error of log median, degrees of freedom) of one side's bootstrap replicates.

    `prior` = (pooled per-process variance of log medians, its degrees of freedom) of the other
    cases of the same runtime and precision in that run (`pooled_process_variance`): the case's own
    variance is never taken below it, and the t interval then has the pooled degrees of freedom.
    Three processes alone give 2 degrees of freedom (t = 4.3 at 95%, 22 at a Bonferroni 99.8%): a
    variance floor pooled over the run's cases keeps the interval honest (never narrower than the
    runtime's typical process spread) without that penalty."""
    if method != "processes":
        return log_sd(meds), math.inf
    se, df = hierarchical_se(meds, procs), float(procs - 1)
    if prior is not None and prior[1] > df and math.isfinite(se):
        v = max(se * se * procs, prior[0])
        return math.sqrt(v / procs), float(prior[1])
    return se, df


def pooled_process_variance(rows: Sequence[Result], max_df: float = 30.0) -> dict[tuple, tuple[float, float]]:
    """{(backend, precision, device): (pooled variance of log process medians, degrees of freedom)}
    over a run's ok rows of several processes: sum of (P - 1) x process_sd^2 over sum of (P - 1),
    the classic pooled variance (an outlying case raises it: conservative). Degrees of freedom
    capped at `max_df`."""
    acc: dict[tuple, list[float]] = {}
    for row in map(_result, rows):
        sd, P = row.process_sd, row.processes
        if not row.ok or not isinstance(sd, (int, float)) or not isinstance(P, int) or P < 2:
            continue
        a = acc.setdefault((row.backend, row.precision, row.device), [0.0, 0.0])
        a[0] += (P - 1) * sd * sd
        a[1] += P - 1
    return {k: (v / d, min(d, max_df)) for k, (v, d) in acc.items() if d > 0}


def welch_df(se_a: float, df_a: float, se_b: float, df_b: float) -> float:
    """Welch-Satterthwaite degrees of freedom of se_a^2 + se_b^2."""
    num = (se_a ** 2 + se_b ** 2) ** 2
    den = (se_a ** 4 / df_a if math.isfinite(df_a) else 0.0) + (se_b ** 4 / df_b if math.isfinite(df_b) else 0.0)
    return math.inf if den <= 0 else num / den


def ratio_replicates(num: Sequence[float], num_rounds: Sequence[int] | None, den: Sequence[float],
                     den_rounds: Sequence[int] | None, resamples: int = BOOTSTRAP_RESAMPLES,
                     rng: np.random.Generator | int | None = None, num_procs: Sequence[int] | None = None,
                     den_procs: Sequence[int] | None = None, num_prior: tuple[float, float] | None = None,
                     den_prior: tuple[float, float] | None = None, fast: bool = False) -> dict:
    """Unpaired ratio median(num) / median(den) and replicates of it, each side resampled on its
    own (two-level where it has two or more processes). `den` is drawn first, then `num`.

    With a hierarchical side, the interval is a t interval on the log scale (standard errors
    added, Welch-Satterthwaite df) and the replicates are drawn from that t distribution (so that
    a percentile interval of them, e.g. in compare's shift model, is that interval); otherwise the
    replicates are the plain bootstrap ratios and the interval their percentile interval.
    `fast` (compare's many-case regime): units drawn by `bootstrap.unit_draws`, and the percentile
    interval gets the parametric tail of `bootstrap.tail_interval` where the replicates cannot
    reach the level.
    Returns {ratio, replicates (finite only), interval(confidence) -> (lo, hi), se_log, df,
    num_method, den_method, num_units, den_units, num_processes, den_processes, num_median,
    den_median}."""
    a, b = np.asarray(num, dtype=float), np.asarray(den, dtype=float)
    if a.size == 0 or b.size == 0:
        raise ValueError("both sides need samples")
    ma, mb = float(np.median(a)), float(np.median(b))
    if mb <= 0:
        raise ValueError("denominator median is not positive")
    rng = rng_of(rng)
    pb, pa = process_count(den_procs, b.size), process_count(num_procs, a.size)
    bm, b_method, b_units = bootstrap_medians(b, den_rounds, resamples, rng, den_procs, fast=fast)
    am, a_method, a_units = bootstrap_medians(a, num_rounds, resamples, rng, num_procs, fast=fast)
    ratio = ma / mb
    out = {"ratio": ratio, "num_method": a_method, "den_method": b_method, "num_units": a_units,
           "den_units": b_units, "num_processes": pa, "den_processes": pb, "num_median": ma, "den_median": mb}
    if "processes" in (a_method, b_method) and ratio > 0:
        se_a, df_a = _side_se(am, a_method, pa, num_prior)
        se_b, df_b = _side_se(bm, b_method, pb, den_prior)
        se, df = math.hypot(se_a, se_b), welch_df(se_a, df_a, se_b, df_b)
        draws = rng.standard_normal(resamples) if not math.isfinite(df) else rng.standard_t(df, resamples)
        reps = np.exp(math.log(ratio) + se * draws)

        def interval(confidence: float) -> tuple[float, float]:
            half = t_quantile(1 - (1 - confidence) / 2, df) * se
            return ratio * math.exp(-half), ratio * math.exp(half)

        out.update(replicates=reps[np.isfinite(reps)], se_log=se, df=df, interval=interval)
        return out
    with np.errstate(divide="ignore", invalid="ignore"):
        reps = am / bm
    reps = reps[np.isfinite(reps)]
    out.update(replicates=reps, se_log=log_sd(reps), df=math.inf,
               interval=lambda confidence: (tail_interval if fast else percentile_interval)(reps, ratio, confidence))
    return out


def mann_whitney_p(base: Sequence[float], head: Sequence[float]) -> float | None:
    """Two-sided Mann-Whitney U p-value (scipy) of two sets of independent values (round
    medians, or samples when there are no rounds); None when it cannot be computed."""
    from scipy.stats import mannwhitneyu

    a, b = np.asarray(base, dtype=float), np.asarray(head, dtype=float)
    if a.size == 0 or b.size == 0:
        return None
    if np.all(a == a[0]) and np.all(b == b[0]) and a[0] == b[0]:
        return 1.0
    if (a.size > 8 and b.size > 8) and not (np.isnan(a).any() or np.isnan(b).any()):
        p = _mwu_asymptotic_p(b, a)
    else:
        p = float(mannwhitneyu(b, a, alternative="two-sided").pvalue)
    return p if math.isfinite(p) else None


def _mwu_asymptotic_p(x: np.ndarray, y: np.ndarray) -> float:
    """scipy.stats.mannwhitneyu(x, y, alternative="two-sided").pvalue where scipy takes its
    asymptotic branch (both samples larger than 8), step by step as scipy computes it (average
    ranks, tie correction, continuity correction), without its per-call overhead (~1 ms, the
    largest cost of a 10,000-case comparison). Ranks are half-integers and tie counts integers,
    so every sum is exact and the p-value is scipy's to the last bit."""
    from scipy.special import ndtr

    n1, n2 = x.size, y.size
    xy = np.concatenate((x, y))
    j = np.argsort(xy, kind="stable")
    v = xy[j]
    first = np.concatenate(([True], v[:-1] != v[1:]))
    idx = np.flatnonzero(first)
    counts = np.diff(idx, append=v.size)
    avg = (idx + 1) + (counts.astype(float) - 1) / 2
    ranks = np.empty(v.size)
    ranks[j] = np.repeat(avg, counts)
    U1 = float(np.sum(ranks[:n1])) - n1 * (n1 + 1) / 2
    U = max(U1, n1 * n2 - U1)
    t = counts.astype(float)
    n = n1 + n2
    tie_term = float(np.sum(t ** 3 - t))
    sd = math.sqrt(n1 * n2 / 12 * ((n + 1) - tie_term / (n * (n - 1))))
    with np.errstate(divide="ignore", invalid="ignore"):
        z = np.float64(U - n1 * n2 / 2 - 0.5) / np.float64(sd)
    return float(np.clip(ndtr(-z) * 2, 0.0, 1.0))


def round_median_values(x: Sequence[float], rounds: Sequence[int]) -> np.ndarray:
    """The median of each round (ordered by round id), as np.median of each round's samples."""
    r = np.asarray(rounds)
    x = np.asarray(x, dtype=float)
    labels, unit = np.unique(r, return_inverse=True)
    unit = unit.reshape(-1)
    v = x[np.lexsort((x, unit))]                 # by round, sorted within each
    size = np.bincount(unit, minlength=labels.size)
    start = np.concatenate(([0], np.cumsum(size)[:-1]))
    lo, hi = v[start + (size - 1) // 2], v[start + size // 2]
    return np.where(size % 2 == 1, lo, (lo + hi) / 2.0)


@dataclass(frozen=True)
class RatioStats:
    """What the statistics say about one case across two runs: ratio of medians, its CI,
    Mann-Whitney p, and what each side rests on."""

    ratio: float
    ci_low: float
    ci_high: float
    p_value: float | None
    base_median_ns: float
    head_median_ns: float
    base_method: str
    head_method: str
    base_units: int
    head_units: int
    replicates: Any = field(default=None, repr=False, compare=False)  # replicates of r (see ratio_replicates)
    base_processes: int = 1
    head_processes: int = 1
    df: float = math.inf  # degrees of freedom of the log-ratio replicates (t draws; inf: bootstrap ratios)

    @property
    def ci_width(self) -> float:
        return self.ci_high - self.ci_low


def ratio_stats(base: Sequence[float], head: Sequence[float], base_rounds: Sequence[int] | None = None,
                head_rounds: Sequence[int] | None = None, confidence: float = 0.95,
                resamples: int = BOOTSTRAP_RESAMPLES, seed: int | Sequence[int] = BOOTSTRAP_SEED,
                base_procs: Sequence[int] | None = None, head_procs: Sequence[int] | None = None,
                base_prior: tuple[float, float] | None = None,
                head_prior: tuple[float, float] | None = None, fast: bool = False) -> RatioStats:
    """Ratio median(head)/median(base) with its CI (`ratio_replicates`) and the Mann-Whitney
    p-value (on round medians where both sides have rounds). Deterministic for a given seed.
    `fast`: units drawn by `bootstrap.unit_draws` (compare's many-case regime, rule.resamples_for)."""
    b, h = np.asarray(base, dtype=float), np.asarray(head, dtype=float)
    if b.size == 0 or h.size == 0:
        raise ValueError("both runs need samples")
    if float(np.median(b)) <= 0:
        raise ValueError("base median is not positive")
    rep = ratio_replicates(h, head_rounds, b, base_rounds, resamples, np.random.default_rng(seed),
                           num_procs=head_procs, den_procs=base_procs, num_prior=head_prior, den_prior=base_prior,
                           fast=fast)
    lo, hi = rep["interval"](confidence)
    if rep["den_method"] != "blocks" and rep["num_method"] != "blocks":
        p = mann_whitney_p(round_median_values(b, base_rounds), round_median_values(h, head_rounds))
    else:
        p = mann_whitney_p(b, h)
    return RatioStats(rep["ratio"], lo, hi, p, rep["den_median"], rep["num_median"], rep["den_method"],
                      rep["num_method"], rep["den_units"], rep["num_units"], replicates=rep["replicates"],
                      base_processes=rep["den_processes"], head_processes=rep["num_processes"], df=rep["df"])
