"""Statistics against known distributions (no timing involved)."""
from __future__ import annotations

import numpy as np
import pytest

from pfdeploy.bench.config import PERCENTILE_MIN_SAMPLES
from pfdeploy.bench.stats import bootstrap_median_ci, ci_halfwidth_rel, paired_ratio, speedup, summarize


def test_normal_distribution_statistics():
    rng = np.random.default_rng(1)
    ns = (rng.normal(10.0, 1.0, 20000) * 1e6).astype(np.int64)  # 10 ms +- 1 ms
    s = summarize(ns)
    assert s.n == 20000
    assert s.p50_ms == pytest.approx(10.0, abs=0.03)
    assert s.p90_ms == pytest.approx(10.0 + 1.2816, abs=0.05)
    assert s.p95_ms == pytest.approx(10.0 + 1.6449, abs=0.06)
    assert s.p99_ms == pytest.approx(10.0 + 2.3263, abs=0.1)
    assert s.mean_ms == pytest.approx(10.0, abs=0.03)
    assert s.std_ms == pytest.approx(1.0, abs=0.03)
    assert s.cv == pytest.approx(0.1, abs=0.004)
    assert s.p50_ci_low_ms < 10.0 < s.p50_ci_high_ms or abs(s.p50_ms - 10) < 0.03
    assert s.p50_ci_low_ms <= s.p50_ms <= s.p50_ci_high_ms
    assert s.min_ms == pytest.approx(ns.min() / 1e6) and s.max_ms == pytest.approx(ns.max() / 1e6)


def test_exponential_median_and_tail():
    rng = np.random.default_rng(2)
    ns = (rng.exponential(5.0, 50000) * 1e6).astype(np.int64)
    s = summarize(ns)
    assert s.p50_ms == pytest.approx(5.0 * np.log(2), rel=0.02)
    assert s.p99_ms == pytest.approx(5.0 * np.log(100), rel=0.03)


@pytest.mark.parametrize("q", [90, 95, 99])
def test_percentile_missing_below_loadgen_minimum(q):
    need = PERCENTILE_MIN_SAMPLES[q]
    assert (need, q) in ((64, 90), (131, 95), (662, 99))
    few = summarize(list(range(1, need)))
    enough = summarize(list(range(1, need + 1)))
    assert getattr(few, f"p{q}_ms") is None
    assert getattr(enough, f"p{q}_ms") is not None
    assert few.p50_ms is not None


def test_empty_and_single_sample():
    e = summarize([])
    assert e.n == 0 and e.p50_ms is None and e.cv is None
    one = summarize([2_000_000])
    assert one.n == 1 and one.p50_ms == 2.0 and one.p50_ci_low_ms is None and one.std_ms is None


def test_bootstrap_is_seeded_and_covers_the_true_median():
    rng = np.random.default_rng(3)
    x = rng.lognormal(0, 0.3, 301)
    assert bootstrap_median_ci(x) == bootstrap_median_ci(x)
    # coverage of the nominal 95% interval over independent samples of a known distribution
    hits = 0
    trials = 120
    for t in range(trials):
        y = rng.lognormal(0, 0.3, 151)  # true median exp(0) = 1
        lo, hi = bootstrap_median_ci(y, resamples=600, seed=t)
        hits += lo <= 1.0 <= hi
    assert 0.85 <= hits / trials <= 1.0


def test_ci_halfwidth_shrinks_with_more_samples():
    rng = np.random.default_rng(4)
    small = ci_halfwidth_rel((rng.normal(10, 1, 100) * 1e6).astype(int))
    large = ci_halfwidth_rel((rng.normal(10, 1, 10000) * 1e6).astype(int))
    assert large < small / 5
    assert large < 0.01 < small


def test_paired_ratio_cancels_drift():
    """B is 10% slower than A in every round; a drift that doubles latency across rounds hits
    both alike: the paired ratio recovers 1.1 where the ratio of pooled medians need not."""
    rng = np.random.default_rng(5)
    a, b, ra, rb = [], [], [], []
    for r in range(40):
        drift = 1.0 + r / 40  # the shared machine gets busier
        a += list((rng.normal(10, 0.1, 20) * drift * 1e6).astype(int))
        b += list((rng.normal(11, 0.1, 20) * drift * 1e6).astype(int))
        ra += [r] * 20
        rb += [r] * 20
    # A ran only the first 30 rounds (it stopped earlier): pairing uses the common rounds
    a, ra = a[:600], ra[:600]
    res = paired_ratio(b, rb, a, ra)
    assert res["rounds"] == 30
    assert res["ratio"] == pytest.approx(1.1, abs=0.01)
    assert res["ci_low"] <= res["ratio"] <= res["ci_high"]
    pooled = np.median(b) / np.median(a)
    assert abs(pooled - 1.1) > 0.05  # what pairing protects against


def test_paired_ratio_without_common_rounds():
    assert paired_ratio([1, 2], [0, 0], [1, 2], [1, 1]) is None
    res = speedup([10, 11, 12, 13], [0, 0, 1, 1], [5, 6, 5, 6], [2, 2, 3, 3])
    assert res["paired"] is False and res["rounds"] == 0 and res["ratio"] == pytest.approx(11.5 / 5.5)
    with pytest.raises(ValueError):
        paired_ratio([1, 2], [0], [1], [0])


def _drifting(seed, rounds=30, per_round=20, drift=0.05, noise=0.02, level=10.0):
    rng = np.random.default_rng(seed)
    x, r = [], []
    for k in range(rounds):
        lv = level * np.exp(drift * rng.standard_normal())
        x += list((lv * (1 + noise * np.abs(rng.standard_normal(per_round))) * 1e6).astype(int))
        r += [k] * per_round
    return x, r


def test_stored_ci_is_round_aware_and_covers_a_rerun():
    """Under drift between rounds the stored CI resamples rounds: a rerun's median falls inside
    the first run's CI about as often as the level promises, where a sample bootstrap's CI is
    several times too narrow."""
    hits_rounds = hits_samples = 0
    trials = 40
    for t in range(trials):
        x, r = _drifting(2 * t)
        y, _ = _drifting(2 * t + 1)
        rerun = np.median(y) / 1e6
        s = summarize(x, r)
        assert s.ci_method == "rounds" and s.ci_units == 30
        lo, hi = bootstrap_median_ci(np.asarray(x) / 1e6, rounds=list(range(len(x))), resamples=500)
        hits_rounds += s.p50_ci_low_ms <= rerun <= s.p50_ci_high_ms
        hits_samples += lo <= rerun <= hi
    # a rerun's median varies by both runs' errors: a 95% CI of one run covers it ~83% of the time
    assert hits_rounds >= 0.65 * trials and hits_samples <= 0.4 * trials


def test_speedup_paired_from_shared_rounds_with_ci():
    base, rb = _drifting(1, drift=0.2)
    model = [int(v / 2) for v in base]  # exactly twice as fast in every round
    res = speedup(base, rb, model, rb)
    assert res["paired"] and res["rounds"] == 30 and res["ratio"] == pytest.approx(2.0, rel=1e-3)
    assert res["ci_low"] == pytest.approx(2.0, rel=1e-3) and res["ci_high"] == pytest.approx(2.0, rel=1e-3)
    # the same numbers with disjoint round ids: unpaired, and the drift shows in a wide CI
    un = speedup(base, rb, model, [k + 100 for k in rb])
    assert not un["paired"] and un["ratio"] == pytest.approx(2.0, rel=1e-3)
    assert un["ci_high"] - un["ci_low"] > 0.05
    assert speedup([], None, model, rb) is None
