"""Light configuration objects of the benchmark engine (standard library only).

`StopRule` is the measurement contract of METHOD.md section 3 as data; `CaseSpec` (defined in
`pfdeploy.backends.case`) is the frozen description of one case (what is measured), kept apart from
its samples (what was measured).
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ..errors import UsageError

# CaseSpec, PRECISIONS and SCENARIOS live with the backends (the lowest layer that uses them); re-exported
from ..backends.case import PRECISIONS, SCENARIOS, CaseSpec  # noqa: F401
# `--precision best`: for each backend, fp32 and the fastest precision it supports on the device
PRECISION_TOKENS = ("best",)

# MLPerf LoadGen's early-stopping minimum query counts (zero over-latency queries, 99%
# confidence): a percentile estimated from fewer samples is reported as missing. p90 and p99 are
# LoadGen's figures; p95 follows from the same binomial form (see docs/bench.md).
PERCENTILE_MIN_SAMPLES = {50: 1, 90: 64, 95: 131, 99: 662}


@dataclass(frozen=True)
class StopRule:
    """When to stop measuring one case (METHOD.md section 3).

    Warm-up: at least `warmup_iters` iterations and at least `warmup_time_s` seconds.
    Measurement: at least `min_iters` samples AND at least `min_time_s` seconds of measured time;
    then stop as soon as the round-aware bootstrap 95% CI of the median has a half-width within
    `target_ci` (relative to the median), at least `min_rounds` rounds were measured and at least
    `min_samples` samples exist (the smallest count a
    reported percentile needs: 64 for p90); stop unconverged at `max_time_s` of measured time.
    Measured time is the sum of the case's own samples: time spent waiting while other cases
    of an interleaved comparison run does not count.
    """

    min_iters: int = 64
    min_time_s: float = 2.0
    max_time_s: float = 20.0
    target_ci: float = 0.02  # +-2%: what an honest (round-aware) CI reaches within a suite's budget (docs/bench.md)
    warmup_iters: int = 10
    warmup_time_s: float = 1.0
    min_samples: int = PERCENTILE_MIN_SAMPLES[90]
    min_rounds: int = 5  # rounds before a case may converge (the CI resamples rounds)

    def __post_init__(self):
        if self.min_iters < 1:
            raise UsageError(f"min_iters must be >= 1, got {self.min_iters}")
        for name in ("min_time_s", "max_time_s", "warmup_time_s"):
            v = getattr(self, name)
            if not (isinstance(v, (int, float)) and math.isfinite(v) and v >= 0):
                raise UsageError(f"{name.replace('_s', '').replace('_', '-')} must be a non-negative number of seconds, got {v!r}")
        if self.max_time_s <= 0:
            raise UsageError(f"--max-time must be > 0 seconds, got {self.max_time_s}")
        if self.min_time_s > self.max_time_s:
            raise UsageError(f"--min-time ({self.min_time_s} s) must not exceed --max-time ({self.max_time_s} s)")
        if not (0 < self.target_ci < 1):
            raise UsageError(f"--target-ci must be a fraction between 0 and 1 (0.01 = +-1%), got {self.target_ci}")
        if self.warmup_iters < 0 or self.min_samples < 1 or self.min_rounds < 1:
            raise UsageError("warmup_iters must be >= 0, min_samples and min_rounds >= 1")

    def to_dict(self) -> dict:
        return asdict(self)
