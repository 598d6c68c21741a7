"""What one case is: a model through one backend at one precision, batch, thread count and
scenario (standard library only).

`CaseSpec` is what a Runner is loaded for; it lives with the backends, the lowest layer that uses
it (the bench engine plans, groups and records cases; the exporters verify artifacts through a
Runner loaded for a case). `pfdeploy.bench.config` re-exports it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from ..errors import UsageError

# latency/throughput: pfdeploy's own timing loop; the others are run by MLPerf LoadGen
# (pfdeploy.bench.loadgen: the official load generator issues the queries, the runner serves
# them), "capacity" being the search of the highest VALID server QPS (`pfdeploy capacity`)
LOADGEN_SCENARIOS = ("server", "multistream", "single-stream", "offline", "capacity")
SCENARIOS = ("latency", "throughput", *LOADGEN_SCENARIOS)
# scenarios whose runner keeps several requests in flight (the runtime's throughput settings)
CONCURRENT_SCENARIOS = ("throughput", "server", "multistream", "offline", "capacity")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16", "int8")


@dataclass(frozen=True)
class CaseSpec:
    """One case: a model through one backend at one precision, batch, thread count and scenario."""

    model: str
    backend: str
    device: str = "cpu"
    precision: str = "fp32"
    batch: int = 1
    threads: int = 1
    scenario: str = "latency"
    weights: str = "synthetic:0"
    options: dict = field(default_factory=dict)  # backend options (channels_last, cuda_graphs, hint, ...)
    # a named setting of the runtime (`pfdeploy tune`'s candidates, `bench --tuned`): part of the
    # case's identity, so two settings of one runtime and precision never share a key
    variant: str = ""

    def __post_init__(self):
        if self.precision not in PRECISIONS:
            raise UsageError(f"unknown precision {self.precision!r}; choose from {', '.join(PRECISIONS)}")
        if self.scenario not in SCENARIOS:
            raise UsageError(f"unknown scenario {self.scenario!r}; choose from {', '.join(SCENARIOS)}")
        if self.batch < 1:
            raise UsageError(f"batch must be >= 1, got {self.batch}")
        if self.threads < 1:
            raise UsageError(f"threads must be >= 1, got {self.threads}")

    @property
    def key(self) -> str:
        """The case key of the results store: model|weights|backend|device|precision|batch|threads|scenario."""
        return case_key_of(asdict(self))

    @property
    def label(self) -> str:
        v = f" [{self.variant}]" if self.variant else ""
        return f"{self.model} / {self.backend} / {self.precision} / b{self.batch}{v}"

    def to_dict(self) -> dict:
        return asdict(self)


# The one definition of a case's identity: the fields, and the key built from them (the store's
# `case_key` column, compare's matching, the engine's CaseSpec.key). A missing field is empty.
CASE_FIELDS = ("model", "weights", "backend", "device", "precision", "batch", "threads", "scenario")


def case_key_of(row: dict) -> str:
    """'model|weights|backend|device|precision|batch|threads|scenario' of a row or spec (missing:
    empty), followed by '|variant' for a named runtime setting (rows without one keep the key
    every earlier run recorded)."""
    key = "|".join("" if row.get(k) is None else str(row.get(k)) for k in CASE_FIELDS)
    return f"{key}|{row['variant']}" if row.get("variant") else key

