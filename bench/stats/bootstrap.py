"""The one resampling engine of pfdeploy (docs/method.md, "Statistics").

Samples taken back to back share the machine's state at that moment, and samples of one worker
process share that process's level (memory and thread placement, the neighbours of those
minutes). So nothing here resamples single samples:

- **rounds** (the interleaving rounds the engine records with every sample) are the units;
  samples without rounds are cut into contiguous **blocks** (~n^(1/3) samples each);
- **processes** group the rounds: with two or more processes the bootstrap is two-level
  (processes drawn with replacement, then rounds within each drawn process), so that the
  spread between processes, which a rerun in a new process sees, lands in the interval.

`bootstrap_medians` returns replicates of the median of all samples under either scheme; it never
materialises a replicate (a weighted median over the sorted samples, scanning only the window
where any replicate's median can lie).
"""
from __future__ import annotations

import functools
import math
from typing import Sequence

import numpy as np

BOOTSTRAP_SEED = 0
# bootstrap replicates are processed in chunks so memory stays bounded (chunk x samples cells)
_CHUNK_CELLS = 4_000_000


def rng_of(rng: np.random.Generator | int | Sequence[int] | None) -> np.random.Generator:
    return rng if isinstance(rng, np.random.Generator) else np.random.default_rng(
        BOOTSTRAP_SEED if rng is None else rng)


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


def unit_processes(unit: np.ndarray, n_units: int, procs: Sequence[int] | None) -> np.ndarray | None:
    """The process (0..P-1) of every unit, from the per-sample process labels `procs`; None when
    there are fewer than two processes (then the bootstrap is one-level). A unit (round) that
    holds samples of two processes cannot exist: rounds never span processes."""
    if procs is None or len(procs) != len(unit) or not len(unit):
        return None
    labels, p = np.unique(np.asarray(procs), return_inverse=True)
    if len(labels) < 2:
        return None
    out = np.full(n_units, -1, dtype=np.intp)
    out[unit] = p
    if (out < 0).any():
        raise ValueError("a resampling unit without samples")
    return out


def unit_counts(n_units: int, unit_proc: np.ndarray | None, b: int, rng: np.random.Generator) -> np.ndarray:
    """(b, n_units): how often each unit is drawn in each of b replicates. One level: n_units
    draws with replacement. Two levels: P processes drawn with replacement; a process drawn c
    times contributes c x (its rounds drawn with replacement), i.e. a multinomial of c x n_p draws
    over its n_p rounds."""
    if unit_proc is None:
        return rng.multinomial(n_units, np.full(n_units, 1.0 / n_units), size=b)
    n_proc = int(unit_proc.max()) + 1
    proc_draws = rng.multinomial(n_proc, np.full(n_proc, 1.0 / n_proc), size=b)  # (b, P)
    counts = np.zeros((b, n_units), dtype=np.int64)
    for p in range(n_proc):
        idx = np.flatnonzero(unit_proc == p)
        counts[:, idx] = rng.multinomial(proc_draws[:, p] * idx.size, np.full(idx.size, 1.0 / idx.size))
    return counts


def unit_draws(n_units: int, unit_proc: np.ndarray | None, b: int, rng: np.random.Generator) -> np.ndarray:
    """The same resampling scheme as `unit_counts` (units drawn with replacement; with processes,
    processes first, then as many rounds of each drawn process as it has), drawn as uniform
    integers and counted: (b, n_units). A different random stream from `unit_counts` (so other
    replicates, the same distribution), several times faster for small b: what `compare` uses
    where a family-wise level over many cases rests on a fixed replicate count (`fast=True`)."""
    if unit_proc is None:
        pick = rng.integers(0, n_units, size=(b, n_units))
    else:
        n_proc = int(unit_proc.max()) + 1
        order = np.argsort(unit_proc, kind="stable")               # units grouped by process
        size = np.bincount(unit_proc, minlength=n_proc)
        start = np.concatenate(([0], np.cumsum(size)[:-1]))
        procs = rng.integers(0, n_proc, size=(b, n_proc))          # the processes drawn
        width = int(size.max())
        if int(size.min()) == width:                               # processes of equal rounds: no ragged rows
            pick = order[start[procs][:, :, None] + rng.integers(0, width, size=(b, n_proc, width))]
            rows = np.repeat(np.arange(b), n_proc * width)
            return np.bincount(rows * n_units + pick.reshape(-1), minlength=b * n_units).reshape(b, n_units)
        u = rng.random((b, n_proc, width))                         # a round within each drawn process
        n_p = size[procs][:, :, None]
        slot = (u * n_p).astype(np.intp)
        pick = order[np.minimum(start[procs][:, :, None] + slot, n_units - 1)]
        keep = np.arange(width)[None, None, :] < n_p                # a process of n_p rounds gives n_p draws
        rows = np.broadcast_to(np.arange(b)[:, None, None], pick.shape)[keep]
        return np.bincount(rows * n_units + pick[keep], minlength=b * n_units).reshape(b, n_units)
    rows = np.repeat(np.arange(b), n_units)
    return np.bincount(rows * n_units + pick.reshape(-1), minlength=b * n_units).reshape(b, n_units)


def bootstrap_medians(samples: Sequence[float], rounds: Sequence[int] | None, resamples: int,
                      rng: np.random.Generator | int | None = None,
                      procs: Sequence[int] | None = None, fast: bool = False) -> tuple[np.ndarray, str, int]:
    """Bootstrap distribution of the median of `samples`: rounds (else blocks) resampled, and
    with `procs` naming two or more processes, processes first (two-level).

    Each replicate's median is a weighted median over the sorted samples (weights: how often each
    sample's unit was drawn). Only samples between the smallest lower-middle and the largest
    upper-middle value of any unit can be a replicate's median (the median of a union of
    multisets lies between its parts' medians), so only those are scanned.
    `fast`: the units are drawn by `unit_draws` (same scheme, another random stream).
    Returns (medians[resamples], method, units)."""
    x = np.asarray(samples, dtype=float)
    if x.size == 0:
        raise ValueError("no samples")
    rng = rng_of(rng)
    unit_t, method, n_units = resampling_units(x, rounds)  # per sample, in time order
    unit_proc = unit_processes(unit_t, n_units, procs)
    if unit_proc is not None:
        method = "processes"
    order = np.argsort(x, kind="stable")
    values, unit = x[order], unit_t[order]
    sizes = np.bincount(unit, minlength=n_units)
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
    for start in range(0, resamples, chunk):
        b = min(chunk, resamples - start)
        counts = (unit_draws if fast else unit_counts)(n_units, unit_proc, b, rng)  # (b, units): times drawn
        total = counts @ sizes
        base = counts @ below
        # counts <= each window value, cumulated over the flattened (b, window) array (one cumsum of
        # a 1-d array: several times faster than b row-wise ones); it is sorted, and row r's count
        # below window value t is flat[r, t] - (row r's start), so one searchsorted finds every
        # replicate's median rank
        # In int32 where the chunk's running count fits (it is at most b x samples): numpy gathers and
        # cumulates int32 several times faster than int64 (measured: 0.07 against 0.45 ms for 200 x 231).
        small = b * x.size < 2 ** 31 - 1
        itype = np.int32 if small else np.int64
        flat = np.cumsum(counts.astype(itype, copy=False)[:, wu].reshape(-1), dtype=itype)
        row0 = np.arange(b, dtype=itype) * wv.size
        prefix = (np.concatenate(([0], flat[row0[1:] - 1])) - base).astype(itype)  # flat value at row start - below
        lo_rank = ((total + 1) // 2).astype(itype)             # 1-based order statistics of the median
        hi_rank = (total // 2 + 1).astype(itype)
        lo_idx = np.maximum(np.searchsorted(flat, lo_rank + prefix, "left") - row0, 0)
        hi_idx = np.maximum(np.searchsorted(flat, hi_rank + prefix, "left") - row0, 0)
        medians[start:start + b] = (wv[lo_idx] + wv[hi_idx]) / 2.0
    return medians, method, n_units


def percentile_interval(replicates: np.ndarray, point: float, confidence: float) -> tuple[float, float]:
    """Percentile interval of bootstrap replicates, widened to contain the point estimate (the
    percentile interval of a skewed statistic may, rarely, miss it; "CI above 1" must never
    contradict the ratio shown beside it)."""
    alpha = (1.0 - confidence) / 2.0
    lo, hi = np.quantile(replicates, [alpha, 1.0 - alpha])
    return min(float(lo), point), max(float(hi), point)


# a percentile bound rests on at least this many replicates beyond it; a level further out than the
# replicates reach gets a parametric tail (`tail_intervals`)
TAIL_REPLICATES = 10


def tail_intervals(replicates: np.ndarray, points: np.ndarray | float, confidence: float,
                   df: np.ndarray | float = math.inf, parametric: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """(low, high) per row of `replicates` ((B,) or (m, B), positive ratios), each widened to
    contain its point, as `percentile_interval` row by row while the B replicates reach the level
    (at least TAIL_REPLICATES beyond each bound: then the result is exactly the percentile
    interval).

    Beyond that (a family-wise level over many cases: 1 - 0.05/10,000 needs 4 million replicates
    for 10 beyond each bound), the tail is parametric: on the log scale, the percentile bounds at
    the most extreme level the replicates support (tail TAIL_REPLICATES / B: 99% for 2000) are
    moved away from the replicates' median by the ratio of Student t(df) quantiles of the two
    levels (df = inf: normal). For replicates that are t(df) on the log scale (the hierarchical
    interval's) this is the exact quantile up to Monte Carlo error; each side keeps its own spread,
    so a skewed bootstrap stays skewed. `parametric=False`: always the percentile interval."""
    R = np.asarray(replicates, dtype=float)
    one = R.ndim == 1
    R2 = R[None, :] if one else R
    pts = np.broadcast_to(np.asarray(points, dtype=float), R2.shape[:1])
    B = R2.shape[1]
    tail = (1.0 - confidence) / 2.0
    if not parametric or tail * B >= TAIL_REPLICATES or B < 4 * TAIL_REPLICATES:  # (too few for any tail: as before)
        lo, hi = np.quantile(R2, [tail, 1.0 - tail], axis=1)
    else:
        ref = TAIL_REPLICATES / B
        with np.errstate(divide="ignore", invalid="ignore"):
            q_lo, med, q_hi = np.quantile(np.log(R2), [ref, 0.5, 1.0 - ref], axis=1)
        dfs = np.broadcast_to(np.asarray(df, dtype=float), pts.shape)
        dfs, inv = np.unique(np.where(np.isnan(dfs), math.inf, dfs), return_inverse=True)
        k = np.array([t_ppf(1.0 - tail, d) / t_ppf(1.0 - ref, d) for d in dfs])[inv.reshape(-1)]
        lo, hi = np.exp(med + (q_lo - med) * k), np.exp(med + (q_hi - med) * k)
    lo, hi = np.minimum(lo, pts), np.maximum(hi, pts)
    return (lo[0], hi[0]) if one else (lo, hi)


@functools.lru_cache(maxsize=4096)
def t_ppf(q: float, df: float) -> float:
    """Student t quantile; the normal one for df = inf. scipy's `t.ppf` is `special.stdtrit(df, q)`
    behind ~70 us of argument checking per call (measured: 77 ms for 1,000 calls against 1.4 ms);
    the special function gives the same value to the last bit, and compare asks for one quantile
    per case (their Welch degrees of freedom rarely repeat, so the cache does not help)."""
    from scipy import special
    from scipy.stats import norm

    return float(norm.ppf(q) if not math.isfinite(df) else special.stdtrit(df, q))


def tail_interval(replicates: np.ndarray, point: float, confidence: float, df: float = math.inf) -> tuple[float, float]:
    """`tail_intervals` of one set of replicates: the percentile interval where B replicates reach
    `confidence`, else the parametric tail."""
    lo, hi = tail_intervals(replicates, point, confidence, df)
    return float(lo), float(hi)


def log_sd(replicates: np.ndarray) -> float:
    """Standard deviation of log(replicates), robust (from the interquartile range): the
    bootstrap standard error of a log-scale statistic."""
    reps = replicates[np.isfinite(replicates) & (replicates > 0)]
    if reps.size < 4:
        return float("inf")
    q1, q3 = np.quantile(np.log(reps), [0.25, 0.75])
    return float((q3 - q1) / 1.349)

