"""Timing loop, warm-up and stopping rule with an injected fake clock: deterministic, no real
durations asserted."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from pfdeploy.bench.config import CaseSpec, StopRule
from pfdeploy.bench.timing import decide, round_size, time_iterations, warm_up
from pfdeploy.errors import UsageError

MS = 1_000_000


class FakeClock:
    """A clock that only moves when the code under test 'works': work(ns) advances it."""

    def __init__(self):
        self.now = 0
        self.reads = 0

    def __call__(self) -> int:
        self.reads += 1
        return self.now

    def work(self, ns: int) -> None:
        self.now += ns


def stepper(clock, latencies):
    it = iter(latencies)
    return lambda: clock.work(next(it))


def test_time_iterations_measures_exactly_each_call():
    clock = FakeClock()
    lat = [5 * MS, 7 * MS, 6 * MS, 9 * MS]
    assert time_iterations(stepper(clock, lat), 4, clock=clock) == lat
    assert clock.reads == 8  # one read before and one after each call, nothing else


def test_time_iterations_budget_stops_after_the_call_that_reaches_it():
    clock = FakeClock()
    s = time_iterations(stepper(clock, itertools.repeat(10 * MS)), 100, clock=clock, budget_ns=35 * MS)
    assert s == [10 * MS] * 4


def test_warm_up_needs_both_iterations_and_time():
    rule = StopRule(warmup_iters=10, warmup_time_s=1.0)
    clock = FakeClock()
    fast = warm_up(stepper(clock, itertools.repeat(50 * MS)), rule, clock=clock)
    assert len(fast) == 20  # 1 s at 50 ms per call: time is the binding condition
    clock = FakeClock()
    slow = warm_up(stepper(clock, itertools.repeat(500 * MS)), rule, clock=clock)
    assert len(slow) == 10  # 10 calls take 5 s: the iteration count binds
    clock = FakeClock()
    capped = warm_up(stepper(clock, itertools.repeat(3000 * MS)), rule, clock=clock, max_time_s=6)
    assert len(capped) == 2


def test_stop_rule_minimums_then_convergence():
    rule = StopRule(min_iters=100, min_time_s=2.0, max_time_s=60, target_ci=0.01)
    tight = [10 * MS + (i % 7) * 1000 for i in range(1000)]  # 10 ms, spread < 0.1%
    assert decide(rule, tight[:99]).stop is False  # too few iterations
    assert decide(rule, tight[:150]).stop is False  # 1.5 s of measured time < min_time
    d = decide(rule, tight[:200])  # 2 s and 200 iterations: the CI is tight
    assert d.stop and d.reason == "converged" and d.ci_halfwidth <= 0.01


def test_stop_rule_keeps_going_while_the_ci_is_wide_and_stops_at_max_time():
    rule = StopRule(min_iters=10, min_time_s=0.1, max_time_s=5.0, target_ci=0.01, min_samples=10)
    rng = np.random.default_rng(0)
    noisy = list((rng.lognormal(np.log(10), 0.6, 2000) * MS).astype(int))
    d = decide(rule, noisy[:50])
    assert not d.stop and d.ci_halfwidth > 0.01
    d = decide(rule, noisy[:50], measured_ns=5_000 * MS)
    assert d.stop and d.reason == "max_time"


def test_stop_rule_never_stops_below_the_percentile_minimum():
    rule = StopRule(min_iters=10, min_time_s=0.0, max_time_s=100, target_ci=0.5)  # min_samples 64 (p90)
    flat = [10 * MS] * 63
    assert decide(rule, flat).stop is False
    assert decide(rule, flat + [10 * MS]).stop is True


def test_round_size():
    assert round_size([10 * MS] * 20, 0.25) == 25
    assert round_size([500 * MS] * 4, 0.25) == 1
    assert round_size([], 0.25) == 1


@pytest.mark.parametrize("kwargs", [dict(min_time_s=5, max_time_s=1), dict(target_ci=0), dict(target_ci=1.5),
                                    dict(min_iters=0), dict(max_time_s=0), dict(min_time_s=float("nan"))])
def test_stop_rule_rejects_bad_values(kwargs):
    with pytest.raises(UsageError):
        StopRule(**kwargs)


def test_case_spec_key_and_validation():
    c = CaseSpec("resnet50", "onnxruntime", batch=8, threads=2)
    assert c.key == "resnet50|synthetic:0|onnxruntime|cpu|fp32|8|2|latency"
    with pytest.raises(UsageError):
        CaseSpec("resnet50", "torch", precision="fp64")
    with pytest.raises(UsageError):
        CaseSpec("resnet50", "torch", scenario="batchy")


def test_stop_rule_waits_for_min_rounds_and_uses_the_round_aware_ci():
    rule = StopRule(min_iters=10, min_time_s=0.0, max_time_s=100, target_ci=0.05, min_samples=10, min_rounds=5)
    flat = [10 * MS] * 40
    assert decide(rule, flat, rounds=[0] * 20 + [1] * 20).stop is False  # 2 rounds < 5
    assert decide(rule, flat, rounds=[i // 8 for i in range(40)]).stop is True
    # rounds at two levels (drift between rounds): single samples would look tight, rounds do not
    rng = np.random.default_rng(3)
    levels = 10 * np.exp(0.1 * rng.standard_normal(10))
    drift = [int(levels[i // 20] * (1 + 0.01 * rng.random()) * MS) for i in range(200)]
    rounds = [i // 20 for i in range(200)]
    by_rounds = decide(rule, drift, rounds=rounds)
    by_samples = decide(rule, drift, rounds=list(range(200)))
    assert by_samples.ci_halfwidth < by_rounds.ci_halfwidth and not by_rounds.stop
