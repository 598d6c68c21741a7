"""The one timing loop and the stopping rule (docs/method.md section 3).

Every backend is timed by `time_iterations`: the clock is read immediately before and after each
synchronous call of `fn`, so a sample is exactly one call. For runners, `fn` is the runner's
host-latency step: inputs in host memory -> outputs back in host memory (device work
synchronised). The clock is injectable (a callable returning integer nanoseconds,
`time.perf_counter_ns` by default) so that this logic is tested deterministically.
"""
from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Callable

from .config import StopRule

# the loop itself lives with the runners it times (the lowest layer that uses it); re-exported here
from ..backends.timing import Clock, time_iterations  # noqa: E402,F401


def warm_up(fn: Callable[[], object], rule: StopRule, clock: Clock = time.perf_counter_ns,
            max_time_s: float | None = None) -> list[int]:
    """Warm-up: call `fn` until at least `rule.warmup_iters` calls AND `rule.warmup_time_s`
    seconds have passed (wall time on `clock`); `max_time_s` caps a pathologically slow model.
    Returns the warm-up samples (not part of the measurement)."""
    samples: list[int] = []
    start = clock()
    need_ns = int(rule.warmup_time_s * 1e9)
    cap_ns = None if max_time_s is None else int(max_time_s * 1e9)
    while True:
        t0 = clock()
        fn()
        t1 = clock()
        samples.append(t1 - t0)
        elapsed = t1 - start
        if len(samples) >= rule.warmup_iters and elapsed >= need_ns:
            break
        if cap_ns is not None and elapsed >= cap_ns:
            break
    return samples


@dataclass(frozen=True)
class Decision:
    stop: bool
    reason: str  # "continue" | "converged" | "max_time"
    ci_halfwidth: float | None = None


def decide(rule: StopRule, samples_ns: list[int], measured_ns: int | None = None,
           ci_fn: Callable[..., float | None] | None = None, rounds: list[int] | None = None,
           procs: list[int] | None = None) -> Decision:
    """Apply the stopping rule to a case's samples so far. `measured_ns` defaults to their sum
    (the case's own measured time). `rounds` gives each sample's round and `procs` its worker
    process: the CI is `stats.ci_halfwidth_rel(samples, rounds, procs=procs)` (or `ci_fn`),
    hierarchical with two or more processes; a case converges only after at least
    `rule.min_rounds` rounds and, when `procs` is given, at least `rule.processes` processes (a CI
    over two or three rounds, or one process, says little about the next one)."""
    if ci_fn is None:
        from .stats import ci_halfwidth_rel as ci_fn

    def hw_of():
        return ci_fn(samples_ns, rounds, procs=procs) if procs is not None else ci_fn(samples_ns, rounds)

    n = len(samples_ns)
    measured = sum(samples_ns) if measured_ns is None else measured_ns
    n_rounds = len(set(rounds)) if rounds is not None else None
    if measured >= rule.max_time_s * 1e9:
        return Decision(True, "max_time", hw_of() if n >= 2 else None)
    if n < max(rule.min_iters, rule.min_samples) or measured < rule.min_time_s * 1e9:
        return Decision(False, "continue")
    if n_rounds is not None and n_rounds < rule.min_rounds:
        return Decision(False, "continue")
    if procs is not None and len(set(procs)) < rule.processes:
        return Decision(False, "continue")
    hw = hw_of()
    if hw is not None and hw <= rule.target_ci:
        return Decision(True, "converged", hw)
    return Decision(False, "continue", hw)


def round_size(warmup_samples: list[int], round_time_s: float, max_iters: int = 10_000) -> int:
    """Iterations per interleaving round so that one round takes about `round_time_s`, from the
    median warm-up latency (at least 1)."""
    if not warmup_samples:
        return 1
    s = sorted(warmup_samples[len(warmup_samples) // 2:])  # second half: past the first-call effects
    med = s[len(s) // 2]
    if med <= 0:
        return max_iters
    return max(1, min(max_iters, int(round(round_time_s * 1e9 / med))))
