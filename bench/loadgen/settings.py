"""What one LoadGen test is asked to do, and LoadGen's own TestSettings built from it.

Durations are far below MLPerf's submission minimum (600 s): pfdeploy runs PerformanceOnly tests
of `min_duration_s` (default 5 s) in several worker processes instead, and says so in every record.
The minimum query count of each scenario is what LoadGen's early stopping needs to accept the
run's percentile with no query over the bound (server p99: (0.99)^n <= 0.01 -> n >= 459), so a
VALID verdict is possible at all; LoadGen still judges the run itself.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

from ...errors import UsageError

# the fewest queries with which LoadGen's early stopping can accept the scenario's percentile
# (no query over the bound; 99% confidence): server p99 459; what LoadGen 6 asks of single-stream
# (64) and multistream (662)
# offline: LoadGen issues one query; its sample count is sized from offline_expected_qps x duration,
# so at least this many samples are asked for through that sizing (a saturated rate from a dozen
# samples is mostly start-up and tail)
MIN_QUERIES = {"server": 460, "capacity": 460, "multistream": 662, "single-stream": 64, "offline": 64}
# a server run far above capacity ends soon after its duration: the issued queries are bounded by
# what this multiple of the runner's saturated throughput serves in the run's duration
QUERY_BOUND_FACTOR = 1.5
MULTISTREAM_SAMPLES = 8  # LoadGen's samples per MultiStream query (MLPerf's value)


def positive(value, what: str) -> float:
    """A positive finite number, else UsageError naming the option."""
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise UsageError(f"{what} must be a positive number, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise UsageError(f"{what} must be a positive number, got {value!r}")
    return v


def parse_ms(value, what: str = "--latency-bound") -> float:
    """'15ms', '0.015s', '15' (milliseconds) -> 15.0; UsageError for anything not positive."""
    text = str(value).strip().lower()
    scale = 1.0
    for suffix, mult in (("ms", 1.0), ("us", 1e-3), ("s", 1e3)):
        if text.endswith(suffix):
            text, scale = text[: -len(suffix)].strip(), mult
            break
    try:
        v = float(text) * scale
    except ValueError:
        raise UsageError(f"{what} must be a positive duration such as 15ms or 0.015s, got {value!r}") from None
    if not math.isfinite(v) or v <= 0:
        raise UsageError(f"{what} must be a positive duration such as 15ms or 0.015s, got {value!r}")
    return v


@dataclass(frozen=True)
class LoadGenSettings:
    """One LoadGen test. `scenario`: server | multistream | single-stream | offline (capacity probes
    are server tests); `target_qps`: the server's Poisson arrival rate; `latency_bound_ms`: the
    server's p99 bound (multistream: its target latency, optional)."""

    scenario: str
    target_qps: float | None = None
    latency_bound_ms: float | None = None
    min_duration_s: float = 5.0
    min_queries: int | None = None  # None: MIN_QUERIES of the scenario
    max_queries: int | None = None  # None: bounded from the saturated throughput (server)
    samples_per_query: int = MULTISTREAM_SAMPLES
    samples: int = 16  # distinct preprocessed tensors the QSL holds in memory
    seed: int = 0

    def __post_init__(self):
        from . import LOADGEN_SCENARIO

        if self.scenario not in LOADGEN_SCENARIO:
            raise UsageError(f"unknown LoadGen scenario {self.scenario!r}; choose from {', '.join(LOADGEN_SCENARIO)}")
        if self.scenario in ("server", "capacity"):
            if self.target_qps is None and self.scenario == "server":
                raise UsageError("--scenario server needs --target-qps N (the Poisson arrival rate)")
            if self.latency_bound_ms is None:
                raise UsageError(f"--scenario {self.scenario} needs --latency-bound (e.g. 15ms: the p99 bound)")
        if self.target_qps is not None:
            positive(self.target_qps, "--target-qps")
        if self.latency_bound_ms is not None:
            positive(self.latency_bound_ms, "--latency-bound")
        positive(self.min_duration_s, "--loadgen-duration")
        for name in ("min_queries", "max_queries", "samples_per_query", "samples"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < 1):
                raise UsageError(f"{name.replace('_', '-')} must be a positive whole number, got {v!r}")

    @property
    def queries(self) -> int:
        return self.min_queries or MIN_QUERIES[self.scenario]

    def expected_s(self) -> float:
        """The least a test lasts: its minimum duration, or (server, capacity) its minimum query
        count at the target rate, whichever is longer: 460 queries at 2 QPS take 230 s."""
        if self.scenario in ("server", "capacity") and self.target_qps:
            return max(self.min_duration_s, self.queries / float(self.target_qps))
        return self.min_duration_s

    def query_bound(self, saturated_qps: float | None) -> int:
        """LoadGen's max_query_count (0: none): a server test far above capacity must not spend
        minutes draining its queue, so it issues at most what QUERY_BOUND_FACTOR x the saturated
        throughput serves in the duration (never fewer than the minimum count); below that rate
        the bound is not set, and LoadGen still judges the run (a short one is INVALID)."""
        if self.max_queries:
            return self.max_queries
        if self.scenario not in ("server", "capacity") or not saturated_qps:
            return 0
        if self.target_qps <= QUERY_BOUND_FACTOR * saturated_qps:
            return 0  # not far above: unbounded (LoadGen flags a count it cuts as an error)
        return max(self.queries, math.ceil(QUERY_BOUND_FACTOR * saturated_qps * self.min_duration_s))

    def test_settings(self, lg, expected_latency_s: float, saturated_qps: float):
        """LoadGen's TestSettings (PerformanceOnly) for this test; `expected_latency_s` and
        `saturated_qps` come from the worker's warm-up (LoadGen sizes single-stream, multistream
        and offline runs from them)."""
        from . import LOADGEN_SCENARIO

        ts = lg.TestSettings()
        ts.scenario = getattr(lg.TestScenario, LOADGEN_SCENARIO[self.scenario])
        ts.mode = lg.TestMode.PerformanceOnly
        ts.min_duration_ms = int(round(self.min_duration_s * 1000))
        ts.min_query_count = self.queries
        ts.max_query_count = self.query_bound(saturated_qps)
        ts.performance_sample_count_override = self.samples
        ts.qsl_rng_seed = ts.sample_index_rng_seed = ts.schedule_rng_seed = self.seed
        if self.scenario in ("server", "capacity"):
            ts.server_target_qps = float(self.target_qps)
            ts.server_target_latency_ns = int(round(self.latency_bound_ms * 1e6))
            ts.server_target_latency_percentile = 0.99
        elif self.scenario == "multistream":
            ts.multi_stream_samples_per_query = self.samples_per_query
            ts.multi_stream_expected_latency_ns = int(max(expected_latency_s, 1e-6) * 1e9 * self.samples_per_query)
            ts.multi_stream_target_latency_percentile = 0.99
        elif self.scenario == "single-stream":
            ts.single_stream_expected_latency_ns = int(max(expected_latency_s, 1e-6) * 1e9)
        else:  # offline: one query of what the duration needs at the saturated rate, >= `queries` samples
            ts.min_query_count = 1
            ts.offline_expected_qps = float(max(saturated_qps, self.queries / (1.1 * self.min_duration_s), 1.0))
        return ts

    def to_dict(self) -> dict:
        return asdict(self)
