"""`compare` at fleet scale (issue 32, item 5; docs/compare.md, "Many cases"): the family-wise
correction without m x m work. The exact parts (leave-one-out medians, Mann-Whitney, round
medians, the flat-cumsum bootstrap) must give the same numbers as before; the many-case regime
(a fixed replicate count with a parametric tail, beyond 50 cases at 95%) must give the verdicts
of the exact bootstrap; 2,000 cases against 2,000 must finish."""
from __future__ import annotations

import math
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from scipy.stats import mannwhitneyu

import pfdeploy.compare.rule as rule
from pfdeploy.bench.stats import (TAIL_REPLICATES, RatioStats, percentile_interval, ratio_stats, round_median_values,
                                  row_procs, tail_interval, tail_intervals)
from pfdeploy.bench.stats.ratios import _mwu_asymptotic_p
from pfdeploy.compare import compare_runs
from pfdeploy.compare.shift import _loo_by_group, _loo_medians

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))
from big_runs import make_docs  # noqa: E402


# ---------------------------------------------------------------- exact pieces: the same numbers

def test_leave_one_out_medians_are_the_medians_of_the_others():
    rng = np.random.default_rng(0)
    for n in range(2, 14):
        for ties in (False, True):
            X = rng.normal(size=(n, 9))
            if ties:
                X = np.round(X)
            want = np.vstack([np.median(np.delete(X, i, axis=0), axis=0) for i in range(n)])
            assert np.array_equal(_loo_medians(X), want)
            assert np.array_equal(_loo_medians(X[:, 0]), want[:, 0])
    X = rng.normal(size=(11, 5))
    group = ["a", "b", None, "a", "b", "a", None, "b", "a", "b", None]
    got = _loo_by_group(X, group)
    for i in range(11):
        others = [j for j in range(11) if j != i and (group[i] is None or group[j] == group[i])]
        assert np.array_equal(got[i], np.median(X[others], axis=0))


def test_tail_interval_is_the_percentile_interval_where_the_replicates_reach():
    rng = np.random.default_rng(1)
    R = np.exp(rng.normal(0, 0.1, size=(6, 2000)))
    lo, hi = tail_intervals(R, np.ones(6), 0.95)
    for i in range(6):
        assert (lo[i], hi[i]) == percentile_interval(R[i], 1.0, 0.95)
        assert tail_interval(R[i], 1.0, 0.99) == percentile_interval(R[i], 1.0, 0.99)  # 10 beyond each bound


def test_parametric_tail_is_the_normal_and_t_quantile():
    """Replicates normal (or t) on the log scale: the stretched tail is the distribution's own
    quantile at the Bonferroni level of 10,000 cases, which 200 replicates never reach."""
    from scipy.stats import norm, t

    conf = 1 - 0.05 / 10_000
    for df in (math.inf, 3.0, 12.0):
        widths = []
        for seed in range(40):
            rng = np.random.default_rng(seed)
            draws = rng.standard_normal(200) if math.isinf(df) else rng.standard_t(df, 200)
            lo, hi = tail_interval(np.exp(0.05 * draws), 1.0, conf, df)
            widths.append(math.log(hi / lo) / 2)
        q = norm.ppf(1 - (1 - conf) / 2) if math.isinf(df) else t.ppf(1 - (1 - conf) / 2, df)
        assert np.median(widths) == pytest.approx(0.05 * q, rel=0.08)
    # and skew is kept: a right-skewed set of replicates gets a longer upper side
    rng = np.random.default_rng(2)
    lo, hi = tail_interval(np.exp(rng.gamma(4, 0.02, 400) - 0.08), 1.0, conf)
    assert hi - 1 > 1 - lo


def test_mann_whitney_and_round_medians_are_scipys_and_numpys_to_the_bit():
    rng = np.random.default_rng(3)
    for it in range(300):
        n1, n2 = rng.integers(9, 60, 2)
        a = np.round(rng.random(n1) * rng.integers(3, 500))
        b = np.round(rng.random(n2) * rng.integers(3, 500)) * (1.3 if it % 2 else 1.0)
        assert _mwu_asymptotic_p(b, a) == mannwhitneyu(b, a, alternative="two-sided").pvalue
        x, r = np.round(rng.random(3 * n1) * 40), rng.integers(0, rng.integers(1, 12), 3 * n1)
        assert np.array_equal(round_median_values(x, r), [np.median(x[r == k]) for k in np.unique(r)])


def test_resamples_for_exact_up_to_50_cases_then_fixed():
    assert rule.resamples_for(0.95) == 2000
    assert rule.resamples_for(1 - 0.05 / 15) == 6001            # 10 beyond each bound, as before
    assert rule.resamples_for(1 - 0.05 / 50) == 20_000 and rule.exact_level(1 - 0.05 / 50)
    for m in (51, 1000, 10_000):
        assert not rule.exact_level(1 - 0.05 / m)
        assert rule.resamples_for(1 - 0.05 / m) == rule.MANY_CASES_RESAMPLES
    assert rule.resamples_for(1 - 0.05 / 1000, minimum=100) == 100


# ------------------------------------------- the many-case regime gives the exact bootstrap's verdicts

def _exact(monkeypatch):
    monkeypatch.setattr(rule, "EXACT_RESAMPLES_CAP", 10**9)  # every level on its own replicates


@pytest.mark.slow  # ~17 s a case (the exact bootstrap at 24,000 replicates a case)
@pytest.mark.parametrize("processes", [3, 1])
def test_many_case_regime_agrees_with_the_exact_bootstrap(processes, monkeypatch):
    """60 cases (Bonferroni 99.92%: the exact bootstrap needs 24,000 replicates a case), a fifth of
    them slower by 6-25% on top of a 2% shift: the verdicts of the many-case regime (200 replicates,
    parametric tail) are those of the exact percentile bootstrap, and its intervals are as wide."""
    agree, total, widths = 0, 0, []
    for seed, factor in ((0, 1.06), (1, 1.10), (2, 1.25)):
        base, head = make_docs(60, seed=seed, processes=processes, rounds=8 if processes > 1 else 20, per_round=5,
                               shift=1.02, regress=12, factor=factor, drift=0.02)
        fast = compare_runs(base, head)
        with monkeypatch.context() as mp:
            _exact(mp)
            exact = compare_runs(base, head)
        ex = {c.case_key: c for c in exact.cases}
        for c in fast.cases:
            e = ex[c.case_key]
            total += 1
            agree += c.verdict == e.verdict
            assert {c.verdict, e.verdict} != {"regression", "unchanged"}
            assert {c.verdict, e.verdict} != {"regression", "improvement"}
            widths.append((c.rel_ci_high - c.rel_ci_low) / (e.rel_ci_high - e.rel_ci_low))
        if factor >= 1.25:
            assert Counter(c.verdict for c in fast.cases)["regression"] >= 10
    assert agree / total >= 0.97, (agree, total)
    assert 0.95 <= float(np.median(widths)) <= 1.05
    assert 0.7 <= min(widths) and max(widths) <= 1.4  # case by case: both methods' Monte Carlo noise


def test_small_comparisons_use_the_exact_bootstrap_unchanged():
    """15 cases: the exact regime (6001 replicates a case, the percentile interval) as before:
    the relative interval is the percentile interval of its replicates."""
    base, head = make_docs(15, seed=4, processes=1, rounds=20, per_round=5, regress=2, factor=1.3)
    cmp = compare_runs(base, head)
    assert cmp.tested == 15 and rule.exact_level(cmp.case_confidence)
    assert Counter(c.verdict for c in cmp.cases)["regression"] == 2


# ---------------------------------------------------------------- parallel workers change nothing

def test_cases_computed_in_worker_processes_are_the_sequential_ones():
    """The per-case statistics spread over forked workers (compare.parallel) come back in order
    and identical: ratios, intervals, p-values, verdicts, and the shift model built on their
    replicates."""
    base, head = make_docs(80, seed=5, processes=3, rounds=6, per_round=4, regress=6, factor=1.2)
    one = compare_runs(base, head, workers=1)
    two = compare_runs(base, head, workers=2)
    assert [c.to_dict() for c in one.cases] == [c.to_dict() for c in two.cases]
    assert one.shift.to_dict() == two.shift.to_dict()
    assert Counter(c.verdict for c in two.cases)["regression"] == 6


def test_workers_are_used_from_many_cases_on_linux(monkeypatch):
    from pfdeploy.compare import parallel

    assert parallel.workers_for(10) == 1                       # a CI gate's few cases: in-process
    assert parallel.workers_for(10, requested=3) == 3
    monkeypatch.setattr(parallel.os, "sched_getaffinity", lambda pid: {0, 1})
    if sys.platform.startswith("linux"):
        assert parallel.workers_for(10_000) == 2               # one per usable CPU
        assert parallel.workers_for(300) == 1                  # under PARALLEL_MIN_CASES


# ---------------------------------------------------------------- 2,000 cases against 2,000

@pytest.mark.slow
def test_2000_cases_against_2000_finish_and_match_the_exact_verdicts_on_a_sample():
    """Fleet scale: 2,000 cases (3 processes of 6 rounds each side) with 20 slower by 25%: it must
    find the 20, no others; for a sample of 8 cases (4 of the 20 among
    them) the verdict from the exact bootstrap at the Bonferroni level (10 replicates beyond each
    bound of a 99.9975% interval: 800,000 replicates a side) relative to the same shift is the
    same."""
    base, head = make_docs(2000, seed=7, processes=3, rounds=6, per_round=4, regress=20, factor=1.25)
    cmp = compare_runs(base, head)  # (how long it takes is measured by scripts/big_runs.py, not asserted here)
    counts = Counter(c.verdict for c in cmp.cases)
    assert counts["regression"] == 20 and counts["improvement"] == 0, counts
    by_key = {c.case_key: c for c in cmp.cases}
    rows_b = {r["case_key"]: r for r in base["results"]}
    rows_h = {r["case_key"]: r for r in head["results"]}
    slow = [c.case_key for c in cmp.cases if c.verdict == "regression"][:4]
    rest = [k for k in list(rows_b)[1::331] if k not in slow][:4]
    need = math.ceil(TAIL_REPLICATES / ((1 - cmp.case_confidence) / 2))
    assert cmp.shift.spread == 0.0  # no tau to add: the relative interval is the case's own, moved
    for key in slow + rest:
        c, b, h = by_key[key], rows_b[key], rows_h[key]
        group = (b["backend"], b["precision"], b["device"])   # the run's pooled process spread, as compare
        ex = ratio_stats(b["samples_ns"], h["samples_ns"], b["sample_rounds"], h["sample_rounds"], cmp.case_confidence,
                         need, [0, 1], base_procs=row_procs(b), head_procs=row_procs(h),
                         base_prior=cmp.priors[0].get(group), head_prior=cmp.priors[1].get(group))
        # the exact pipeline's relative replicates are these, less the leave-one-out median of 1,999
        # other cases (whose own spread is ~1/40 of a case's: left out)
        loo = c.ratio / c.rel_ratio
        rs = RatioStats(c.rel_ratio, ex.ci_low / loo, ex.ci_high / loo, c.p_value, ex.base_median_ns,
                        ex.head_median_ns, ex.base_method, ex.head_method, ex.base_units, ex.head_units)
        assert rule.verdict(rs, cmp.threshold, cmp.case_alpha)[0] == c.verdict, key
        assert (c.rel_ci_high / c.rel_ci_low) == pytest.approx(ex.ci_high / ex.ci_low, rel=0.1)
