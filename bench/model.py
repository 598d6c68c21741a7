"""The engine's data: what a run is asked to do (`BenchConfig`), what preparation gives each case
(`Prepared`), what a finished case is (`CaseResult`) and a run (`Outcome`), and the progress
protocol the CLI draws (`Progress`)."""
from __future__ import annotations

from dataclasses import dataclass, field

from ..result import Result
from .config import CaseSpec, StopRule

ROUND_TIME_S = 0.25  # one interleaving round of a case lasts about this long
# environment variables that change how runtimes' thread pools behave; recorded with the run
THREAD_ENV = ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT", "KMP_BLOCKTIME", "KMP_AFFINITY", "OMP_PROC_BIND", "OMP_PLACES",
              "OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS", "TBB_NUM_THREADS")


@dataclass
class BenchConfig:
    models: tuple[str, ...]
    backends: tuple[str, ...] | None = None  # None: every backend that runs on the device
    device: str = "cpu"
    precisions: tuple[str, ...] = ("fp32",)  # may hold "best": fp32 and each backend's fastest here
    optional_precisions: tuple[str, ...] = ()  # measured only where a backend supports them (no skipped rows)
    batches: tuple[int, ...] = (1,)
    threads: int | None = None  # None: the machine's physical cores
    scenario: str = "latency"
    rule: StopRule = field(default_factory=StopRule)
    interleave: bool = True
    tag: str | None = None
    suite: str | None = None
    suite_version: str | None = None
    seed: int = 0
    options: dict = field(default_factory=dict)  # backend -> runner options
    round_time_s: float = ROUND_TIME_S
    rewarm: int = 1  # discarded calls at the start of each round (caches evicted by other cases)
    cache_dir: str | None = None
    verify: bool = True
    allow_failed_parity: bool = False  # time artifacts whose parity failed (labelled failed in the row)
    # --weights as given (None: synthetic) and, once resolved, each model's weights
    # (pfdeploy.pretrained.plan_models: the first choice of the list that fits the model)
    weights: str | None = None
    model_weights: dict = field(default_factory=dict)
    images: str | None = None  # --images DIR: accuracy of each artifact measured on them before timing
    labels: str | None = None  # --labels FILE for --images
    # --processes: fresh worker processes ("generations") per case; None: the suite's / engine default
    processes: int | None = None
    # explicit cases (`pfdeploy tune`'s candidates, `bench --tuned`): measured instead of the
    # models x backends x precisions x batches product; each still checked against its backend
    cases: tuple = ()
    # MLPerf LoadGen scenarios (issue 31): pfdeploy.bench.loadgen.settings.LoadGenSettings fields
    loadgen: dict = field(default_factory=dict)
    # --images of the LoadGen scenarios and capacity: the QSL's samples are these images,
    # preprocessed per model (the first `loadgen["samples"]` of the folder) instead of synthetic tensors
    qsl_images: str | None = None

    def weights_for(self, model: str):
        """The ModelWeights of `model` (resolved on first use: release checkpoints are fetched)."""
        from ..pretrained import plan_models
        from ..zoo import canonical_name

        name = canonical_name(model)
        if name not in self.model_weights:  # the run's models, and a case prepared outside them
            self.model_weights.update(plan_models(list(dict.fromkeys([*self.models, name])), self.weights, self.seed))
        return self.model_weights[name]

    def to_dict(self) -> dict:
        return {"models": list(self.models), "backends": list(self.backends) if self.backends else None,
                "device": self.device, "precisions": list(self.precisions),
                "optional_precisions": list(self.optional_precisions), "batches": list(self.batches),
                "threads": self.threads, "scenario": self.scenario, "rule": self.rule.to_dict(),
                "interleave": self.interleave, "seed": self.seed, "options": self.options,
                "round_time_s": self.round_time_s, "rewarm": self.rewarm,
                "allow_failed_parity": self.allow_failed_parity, "weights": self.weights,
                "model_weights": {m: w.source for m, w in self.model_weights.items()},
                "accuracy_images": self.images, "accuracy_labels": self.labels,
                **({"cases": [c.to_dict() for c in self.cases]} if self.cases else {}),
                **({"loadgen": dict(self.loadgen)} if self.loadgen else {}),
                **({"loadgen_images": self.qsl_images} if self.qsl_images else {})}


@dataclass
class CaseResult:
    """A committed case: its spec and its typed result (samples included), and the store's id."""

    spec: CaseSpec
    result: Result
    result_id: object = None

    @property
    def samples_ns(self) -> list[int]:
        return self.result.samples_ns or []

    @property
    def rounds(self) -> list[int]:
        return self.result.sample_rounds or []

    @property
    def device_samples_ns(self) -> list[int] | None:
        return self.result.device_samples_ns


@dataclass
class Outcome:
    run_id: object
    status: str
    results: list[CaseResult]
    store_url: str
    wall_s: float
    notes: list[str] = field(default_factory=list)
    signum: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM, SIGHUP)


class Progress:
    """What the engine reports while it runs; the CLI draws it with rich. No-op by default."""

    def phase(self, text: str) -> None: ...

    def plan(self, total_units: float) -> None: ...

    def update(self, current: str, completed_units: float, total_units: float) -> None: ...

    def case_done(self, result: CaseResult) -> None: ...


@dataclass
class Prepared:
    family: str | None = None
    baselines: tuple[str, ...] = ()  # the baselines the model's zoo spec names (ModelSpec.baselines)
    params: int | None = None
    macs: int | None = None
    inputs: str | None = None
    model_file: str | None = None
    weights_file: str | None = None
    artifact_sha256: str | None = None
    artifact: dict = field(default_factory=dict)
    parity: dict = field(default_factory=dict)
    error: str | None = None
    parity_inputs: str | None = None  # .npz of the inputs the timed runner is verified on
    parity_refs: list | None = None  # [(batch, PyTorch fp32 output, rounded-weights baseline or None)]
    accuracy: dict | None = None  # top-1/top-5 measured for exactly this artifact (its accuracy.json)
    qsl_inputs: str | None = None  # .npy of LoadGen's samples from --images (None: synthetic)
    qsl: dict | None = None  # where those samples came from (folder, count, sha256)


@dataclass
class CaseRun:
    """One case while it is measured: everything its worker processes gave so far. The case is
    measured by several worker processes in turn (generations); `worker` is the current one."""

    spec: CaseSpec
    prep: Prepared
    worker: object = None  # the live WorkerProcess of this generation, None between generations
    load: dict = field(default_factory=dict)  # the first process's load reply (describe, threads)
    loads: list[dict] = field(default_factory=list)  # every process's {pid, load_ms, first_ms}
    finals: list[dict] = field(default_factory=list)  # every process's close reply (peak memory)
    k: int = 1  # iterations per round (from the first process's warm-up, kept for every process)
    samples: list[int] = field(default_factory=list)
    rounds: list[int] = field(default_factory=list)
    procs: list[int] = field(default_factory=list)  # the process (0, 1, ...) of every sample
    process_rounds: list[list[int]] = field(default_factory=list)  # the rounds of every process
    device_ms: list[float] = field(default_factory=list)
    h2d_ms: list[float] = field(default_factory=list)
    d2h_ms: list[float] = field(default_factory=list)
    measured_ns: int = 0
    proc_measured_ns: int = 0  # measured by the current process
    cpu: dict | None = None  # CPU used by this worker / everyone else during the timed rounds
    warmup_n: int = 0
    budget_units: float = 0.0

    @property
    def process(self) -> int:
        """Index of the current (last started) process."""
        return len(self.process_rounds) - 1

    def add_round(self, rnd: int, reply: dict) -> list[int]:
        s = reply["samples_ns"]
        self.samples += s
        self.rounds += [rnd] * len(s)
        self.procs += [self.process] * len(s)
        self.process_rounds[-1].append(rnd)
        self.device_ms += reply.get("device_ms") or []
        self.h2d_ms += reply.get("h2d_ms") or []
        self.d2h_ms += reply.get("d2h_ms") or []
        self.measured_ns += sum(s)
        self.proc_measured_ns += sum(s)
        return s
