"""Light configuration objects of the benchmark engine (standard library only).

`StopRule` is the measurement contract of docs/method.md section 3 as data; `CaseSpec` (defined in
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
    """When to stop measuring one case (docs/method.md section 3).

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
    # Several fresh worker processes per case (docs/method.md, "Several processes per case"):
    # every case is measured in at least `processes` generations of workers, min_time_s spread
    # over them; while its CI is wider than target_ci, more generations follow, up to
    # `max_processes` (and never past max_time_s of measured time).
    processes: int = 4
    max_processes: int = 8

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
        for name in ("processes", "max_processes"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not 1 <= v <= 100:
                raise UsageError(f"--{name.replace('_', '-')} must be a whole number from 1 to 100, got {v!r}")
        if self.max_processes < self.processes:
            raise UsageError(f"max_processes ({self.max_processes}) must not be below processes ({self.processes})")

    def with_processes(self, processes: int | None) -> "StopRule":
        """This rule with `processes` worker processes per case (None: unchanged); the ceiling
        of adaptive extra processes keeps its ratio to the minimum (at least as many)."""
        if processes is None:
            return self
        from dataclasses import replace

        ratio = self.max_processes / self.processes
        return replace(self, processes=processes, max_processes=max(processes, int(round(processes * ratio))))

    def process_time_s(self) -> float:
        """Measured time of one worker process: min_time_s spread over the minimum processes."""
        return self.min_time_s / self.processes

    def process_rounds(self) -> int:
        """Rounds each worker process measures at least (the minimum rounds spread over them, >= 2)."""
        return max(2, -(-self.min_rounds // self.processes))

    def to_dict(self) -> dict:
        return asdict(self)
