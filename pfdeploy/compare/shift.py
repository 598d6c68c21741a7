"""The change common to every compared case (a machine-wide or per-runtime shift) and every
per-case verdict re-taken relative to it (docs/compare.md, "Machine-wide shifts")."""
from __future__ import annotations

import math
from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from ..bench.stats import RatioStats, mann_whitney_p, percentile_interval, round_median_values, tail_intervals
from ..result import Result
from .model import Comparison
from .rule import exact_level, verdict


def stable_seed(seed: int, key: str) -> list[int]:
    # Seeded per case (not per position), so a case's CI does not change when others are added.
    import zlib

    return [int(seed), zlib.crc32(key.encode("utf-8"))]


@dataclass
class Shift:
    """The change common to every compared case (a whole-run shift: the machine, a neighbour's
    load, a shared dependency), estimated as the median over cases of log(ratio)."""

    ratio: float                # exp(median log ratio): 1.10 = every case 10% slower
    ci_low: float
    ci_high: float
    cases: int                  # how many cases it is estimated from
    spread: float               # tau: case-to-case spread of the shift beyond measurement noise (log)
    significant: bool           # the CI excludes 1
    beyond_threshold: bool      # significant and |ratio - 1| >= threshold
    fails_gate: bool            # a common slowdown beyond the threshold (with shift_fails)

    def to_dict(self) -> dict:
        return asdict(self)

    def message(self, threshold: float, backend: str | None = None) -> str:
        pct = (self.ratio - 1) * 100
        ci = f"[{(self.ci_low - 1) * 100:+.1f}%, {(self.ci_high - 1) * 100:+.1f}%]"
        scope = f"{backend} " if backend else ""
        if not self.beyond_threshold:
            return (f"common shift of all {self.cases} {scope}cases {pct:+.1f}% {ci}: within the threshold; per-case "
                    "verdicts are relative to it")
        word = "slower" if self.ratio > 1 else "faster"
        if backend:
            text = (f"{backend} shift: every {backend} case moved {pct:+.1f}% {ci} ({self.cases} cases, {word}): the "
                    f"machine, a neighbour or {backend} itself changed; its per-case verdicts are relative to this "
                    "shift")
        else:
            text = (f"machine-wide shift: every case moved {pct:+.1f}% {ci} ({self.cases} cases, {word}): the "
                    "machine or a shared dependency changed; per-case verdicts below are relative to this shift")
        if self.fails_gate:
            text += (". Timing alone cannot tell a runtime upgrade from a noisy neighbour, so a common slowdown "
                     "beyond the threshold fails the gate: rerun both back to back on a quiet machine")
        return text


MIN_SHIFT_CASES = 4
# a shift per runtime must shrink the spread tau by a quarter and by at least this much (log
# scale, ~1%): below that the runtimes moved together and one shift is the better model
PER_BACKEND_MIN_GAIN = 0.01


def _apply_shift(cmp: Comparison, stats: dict, base_rows: dict[str, Result], head_rows: dict[str, Result]) -> None:
    """Estimate the whole-run shift and re-take every per-case verdict relative to it.

    Model: log r_i = s + d_i + noise_i, s the shift common to all cases, d_i the case's own change.
    s is the median over cases of log r_i; its CI comes from a two-level bootstrap (cases
    resampled, and each case's own bootstrap replicate). A case's relative change is
    log r_i minus the median of the *other* cases (leave-one-out, so a case never hides its own
    change in the shift), with replicates from the same bootstrap. A machine-wide shift is rarely
    uniform (a busy core slows one runtime more than another), so the spread of the relative
    changes beyond their measurement noise, tau, is estimated robustly (the tau that makes the
    median |standardised relative change| that of a normal, 0.6745: one outlying case does not
    move it) and added to every case's relative CI. Verdicts then use the usual rule on the
    relative ratio; Mann-Whitney compares base round medians with head round medians divided by
    the leave-one-out shift."""
    keys = [c.case_key for c in cmp.cases if c.case_key in stats]
    if len(keys) < MIN_SHIFT_CASES:
        if keys:
            cmp.warnings.append(
                f"{len(keys)} compared case(s): with fewer than {MIN_SHIFT_CASES} no machine-wide shift can be "
                "estimated, so each verdict rests on its case's own interval alone"
                + (" (processes, then rounds: it covers a new process's level)" if _hierarchical(stats, keys)
                   else " (rounds of one process: it does not cover a new process's level; measure with "
                        "several processes per case)"))
            cmp.warnings.extend(_few_cases_warning(cmp, len(keys)))
        return
    reps = [np.log(stats[k].replicates) for k in keys]
    width = min(r.size for r in reps)
    L = np.vstack([r[:width] for r in reps])                       # (m, B) log-ratio replicates
    point = np.array([math.log(stats[k].ratio) for k in keys])      # (m,)
    m = len(keys)
    rng = np.random.default_rng(stable_seed(cmp.seed, "shift"))
    s_point, lo, hi = _shift_interval(L, point, np.arange(m), rng, cmp.confidence)
    by_key = {c.case_key: c for c in cmp.cases}
    # Each runtime gets its own common shift when at least two of them have MIN_SHIFT_CASES
    # compared cases: a neighbour slows runtimes unequally (a busy core: ONNX Runtime 3.4x, OpenVINO
    # 1.8x), so one shift for all would leave that difference to every case's verdict.
    backends = [by_key[k].backend for k in keys]
    big = sorted(b for b, n in Counter(backends).items() if n >= MIN_SHIFT_CASES)

    def relative(group):
        # leave-one-out: a case never hides its own change in the shift it is compared with (the
        # median of the other cases of its group, or of all other cases: `_loo_medians`, O(m) per
        # replicate, not a median of m - 1 values for each of the m cases)
        loo_point, loo_reps = _loo_by_group(point, group), _loo_by_group(L, group)
        d, D = point - loo_point, L - loo_reps
        sd = np.maximum(_iqr_sd(D), 1e-9)
        return group, loo_point, d, D, _robust_tau(d, sd)

    chosen = relative([None] * m)
    if len(big) >= 2:
        # a shift per runtime only where it explains the cases better than one shift for all
        # (a smaller spread tau); with runtimes that moved together, the leave-one-out medians
        # of a few cases per runtime would only add noise
        grouped = relative([b if b in big else None for b in backends])
        if grouped[4] < 0.75 * chosen[4] and chosen[4] - grouped[4] > PER_BACKEND_MIN_GAIN:
            chosen = grouped
        grouped = None
    group, loo_point, d, D, tau = chosen
    per_backend = any(g is not None for g in group)
    noise = rng.standard_normal(D.shape) * tau
    cmp.shift = _make_shift(cmp, s_point, lo, hi, m, tau)
    beyond = cmp.shift.beyond_threshold
    cmp.warnings.append(cmp.shift.message(cmp.threshold))
    for b in big if per_backend else ():
        sub = np.array([i for i in range(m) if backends[i] == b])
        cmp.backend_shifts[b] = _make_shift(cmp, *_shift_interval(L, point, sub, rng, cmp.confidence), sub.size, tau)
    if cmp.backend_shifts:
        cmp.warnings.append("per-runtime shifts (each case's verdict is relative to its runtime's): " + "; ".join(
            f"{b} {(sh.ratio - 1) * 100:+.1f}% [{(sh.ci_low - 1) * 100:+.1f}%, {(sh.ci_high - 1) * 100:+.1f}%]"
            for b, sh in cmp.backend_shifts.items()))
        cmp.warnings.extend(sh.message(cmp.threshold, b) for b, sh in cmp.backend_shifts.items()
                            if sh.beyond_threshold and not beyond)
    rel_all = np.exp(d)
    rlo_all, rhi_all = np.empty(m), np.empty(m)
    dfs = np.array([stats[k].df for k in keys])
    exact = exact_level(cmp.case_confidence, cmp.resamples)  # else the many-case regime's parametric tail
    for a in range(0, m, _ROWS):  # bounded memory: the relative replicates of _ROWS cases at a time
        D[a:a + _ROWS] += noise[a:a + _ROWS]
        np.exp(D[a:a + _ROWS], out=D[a:a + _ROWS])
        rlo_all[a:a + _ROWS], rhi_all[a:a + _ROWS] = tail_intervals(D[a:a + _ROWS], rel_all[a:a + _ROWS],
                                                                    cmp.case_confidence, dfs[a:a + _ROWS],
                                                                    parametric=not exact)
    del noise, D, L, chosen
    for i, key in enumerate(keys):
        c, st = by_key[key], stats[key]
        rel, rlo, rhi = float(rel_all[i]), float(rlo_all[i]), float(rhi_all[i])
        base, head = base_rows[key], head_rows[key]
        p = st.p_value
        if st.base_method == st.head_method == "rounds":
            hm = round_median_values(np.asarray(head.samples_ns, float), head.sample_rounds) / math.exp(loo_point[i])
            p = mann_whitney_p(round_median_values(np.asarray(base.samples_ns, float), base.sample_rounds), hm)
        rs = RatioStats(rel, rlo, rhi, p, st.base_median_ns, st.head_median_ns, st.base_method, st.head_method,
                        st.base_units, st.head_units)
        c.rel_ratio, c.rel_ci_low, c.rel_ci_high = rel, rlo, rhi
        c.p_value = p
        v, note = verdict(rs, cmp.threshold, cmp.case_alpha)
        own = cmp.backend_shifts.get(group[i]) if group[i] else None
        if own is not None:
            extra = (f"relative to the {group[i]} shift ({(own.ratio - 1) * 100:+.1f}%)"
                     if (own.beyond_threshold or beyond) else "")
        else:
            extra = f"relative to the common shift ({(cmp.shift.ratio - 1) * 100:+.1f}%)" if beyond else ""
        if "no rounds recorded" in c.note:
            extra = "; ".join(x for x in (extra, "blocks of consecutive samples resampled (no rounds recorded)") if x)
        c.verdict = v
        c.note = "; ".join(x for x in (note, extra) if x)


def _hierarchical(stats: dict, keys: list) -> bool:
    return all(stats[k].base_method == "processes" and stats[k].head_method == "processes" for k in keys)


def _shift_interval(L: np.ndarray, point: np.ndarray, idx: np.ndarray, rng, confidence: float):
    """(s, lo, hi): the common log shift of cases `idx` (median of their log ratios) and its CI
    from the two-level bootstrap (cases resampled, each with its own bootstrap replicate)."""
    width = L.shape[1]
    pick = rng.integers(0, idx.size, size=(width, idx.size))
    reps = np.median(L[idx][pick, np.arange(width)[:, None]], axis=1)
    s = float(np.median(point[idx]))
    lo, hi = percentile_interval(reps, s, confidence)
    return s, lo, hi


def _make_shift(cmp: Comparison, s: float, lo: float, hi: float, cases: int, tau: float) -> Shift:
    sig = lo > 0 or hi < 0
    beyond = sig and abs(math.exp(s) - 1) >= cmp.threshold
    return Shift(ratio=math.exp(s), ci_low=math.exp(lo), ci_high=math.exp(hi), cases=int(cases), spread=float(tau),
                 significant=bool(sig), beyond_threshold=bool(beyond),
                 fails_gate=bool(beyond and s > 0 and cmp.shift_fails))


def _iqr_sd(x: np.ndarray) -> np.ndarray:
    """Robust sd (interquartile range / 1.349) of each row of x."""
    q1, q3 = np.quantile(x, [0.25, 0.75], axis=-1)
    return (q3 - q1) / 1.349


_ROWS = 1024  # cases per chunk of the relative intervals


def _loo_medians(X: np.ndarray) -> np.ndarray:
    """Row i: the median along axis 0 of X without row i (X: (n,) or (n, B), n >= 2), the same
    numbers as np.median(X[others], axis=0), in O(n) per column: removing one value leaves the
    median of the rest at one of three order statistics of all n (which one depends only on
    whether the removed value is at most the lower ones)."""
    k = X.shape[0] - 1                       # values left
    j = (k - 1) // 2 if k % 2 else k // 2 - 1
    kth = [j, j + 1] if k % 2 else [j, j + 1, j + 2]
    s = np.partition(X, kth, axis=0)
    sj, sj1 = s[j], s[j + 1]
    if k % 2:
        return np.where(X <= sj, sj1, sj)
    lower = np.where(X <= sj, sj1, sj)       # order statistic j of the rest
    upper = np.where(X <= sj1, s[j + 2], sj1)  # and j + 1
    return (lower + upper) / 2.0


def _loo_by_group(X: np.ndarray, group: list) -> np.ndarray:
    """Leave-one-out medians (`_loo_medians`) of each row of X among the other rows of its group
    (group None: among all other rows)."""
    out = np.empty_like(X)
    members: dict = {}
    for i, name in enumerate(group):
        members.setdefault(name, []).append(i)
    for name, rows in members.items():
        rows = np.asarray(rows)
        out[rows] = _loo_medians(X)[rows] if name is None else _loo_medians(X[rows])
    return out


def _robust_tau(d: np.ndarray, sd: np.ndarray) -> float:
    """The smallest tau >= 0 with median(|d| / sqrt(sd^2 + tau^2)) <= 0.6745 (bisection)."""
    def med_z(t):
        return float(np.median(np.abs(d) / np.sqrt(sd ** 2 + t ** 2)))

    if med_z(0.0) <= 0.6745:
        return 0.0
    lo, hi = 0.0, float(np.max(np.abs(d))) / 0.6745 + 1e-9
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if med_z(mid) <= 0.6745 else (mid, hi)
    return hi


def _few_cases_warning(cmp: Comparison, n: int) -> list[str]:
    """Too few cases to separate a machine-wide shift from a change: say so when they all moved."""
    ratios = [c.ratio for c in cmp.cases if c.ci_low is not None and c.ratio]
    if ratios and (all(r >= 1 + cmp.threshold for r in ratios) or all(r <= 1 - cmp.threshold for r in ratios)):
        return [f"all {n} compared cases moved the same way (median ratio {float(np.median(ratios)):.2f}); with fewer "
                f"than {MIN_SHIFT_CASES} cases a machine-wide shift cannot be told from a code change: rerun both "
                "back to back before trusting these verdicts"]
    return []


