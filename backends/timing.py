"""The one timing loop of every Runner (docs/method.md: what a sample is).

The clock is read immediately before and after each synchronous call of `fn`, so a sample is
exactly one call; for runners `fn` is the host-latency step (inputs in host memory -> outputs
back in host memory, device work synchronised). The clock is injectable (a callable returning
integer nanoseconds, `time.perf_counter_ns` by default) so the logic is tested deterministically.
The warm-up and the stopping rule built on it are the bench engine's (`pfdeploy.bench.timing`).
"""
from __future__ import annotations

import time
from typing import Callable

Clock = Callable[[], int]


def time_iterations(fn: Callable[[], object], iters: int, clock: Clock = time.perf_counter_ns,
                    budget_ns: int | None = None) -> list[int]:
    """Call `fn` up to `iters` times and return one sample (ns, clock after - clock before) per
    call. With `budget_ns`, stop early once the samples sum to at least the budget, so a caller
    never overruns its time limit by more than one call."""
    samples: list[int] = []
    total = 0
    for _ in range(iters):
        t0 = clock()
        fn()
        t1 = clock()
        dt = t1 - t0
        samples.append(dt)
        total += dt
        if budget_ns is not None and total >= budget_ns:
            break
    return samples
