"""The two base classes of a backend module.

`Backend` is what pfdeploy knows about one runtime, asked by everything else (planning, the
worker, the exporters' parity check, `pfdeploy devices`): its artifact target, availability and
install hint, the devices, precisions and scenarios it supports on *this* machine (probed from
the runtime and the CPU), the int8 recipe of its artifact, the process setup of a worker (threads,
denormals) and `load(...) -> Runner`.

`Runner` owns the lifecycle (load -> infer ... -> close) and the one timing code path; a backend
implements `_load`, `_step`, `_close`, `_output` (and optionally `_describe`, `_peak_gpu_mb`).
The same Runner object serves parity verification and benchmarking.

What one sample is (docs/method.md section 1): `_step()` hands the prepared host-memory batch to the
runtime and returns once the outputs are back in host memory (device work synchronised). Runners
with a device clock (CUDA events) also append the compute-only time of each step to
`self.device_ms` (and copy times to `self.h2d_ms` / `self.d2h_ms` where measured).
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..errors import UsageError, UserError, is_installed
from .case import PRECISIONS, CaseSpec
from .timing import Clock, time_iterations

if TYPE_CHECKING:
    import numpy as np


class RunnerStateError(RuntimeError):
    """A lifecycle method was called in the wrong state (a bug in the caller)."""


class Runner:
    """Base class. `artifact`: the artifact's model file path (None for runners that build the
    model from the zoo), `inputs`: the seeded float32 host batch (N, C, H, W)."""

    backend = "base"
    clock_kinds = ("host",)  # "host" always; "device" when the runner records CUDA-event times
    # the runner options this runner applies (None: not checked); any other option of a case makes
    # the load fail, so that a setting that was not applied never labels a result
    known_options: frozenset[str] | None = None

    def __init__(self, case: CaseSpec, inputs: np.ndarray, model_file: str | None = None,
                 weights_file: str | None = None):
        import numpy as np  # here, not at module level: listing and planning backends import no numpy

        self.case = case
        self.inputs = np.ascontiguousarray(inputs)
        self.model_file = model_file
        self.weights_file = weights_file
        self.state = "new"
        self.device_ms: list[float] = []
        self.h2d_ms: list[float] = []
        self.d2h_ms: list[float] = []
        self.items_per_step = case.batch  # throughput runners with several requests in flight raise it

    # --- lifecycle ----------------------------------------------------------------------
    def load(self) -> None:
        if self.state != "new":
            raise RunnerStateError(f"load() called on a runner in state {self.state!r}")
        if self.inputs.ndim < 1 or self.inputs.shape[0] != self.case.batch:
            raise RunnerStateError(f"inputs of shape {self.inputs.shape} do not match batch {self.case.batch}")
        self.check_options()
        self._load()
        self.state = "loaded"

    def check_options(self) -> None:
        """UserError when the case has a runner option this runner does not apply."""
        if self.known_options is None or not isinstance(self.case.options, dict):
            return
        unknown = sorted(set(self.case.options) - set(self.known_options) - {"artifact"})
        if unknown:
            raise UserError(f"{self.backend} does not apply the option(s) {', '.join(unknown)} (it applies: "
                            f"{', '.join(sorted(self.known_options))}); refusing to label a setting that was not used")

    def infer(self, inputs: np.ndarray | None = None) -> Any:
        """One inference on `inputs` (default: the prepared batch); returns host outputs."""
        import numpy as np

        self._check_loaded("infer")
        if inputs is not None:
            if inputs.shape != self.inputs.shape:
                raise UserError(f"input shape {inputs.shape} differs from the prepared {self.inputs.shape}")
            self._set_inputs(np.ascontiguousarray(inputs))
        return self._step()

    def outputs(self, inputs: np.ndarray | None = None) -> np.ndarray:
        """One inference; the first output as a float32 numpy array on the host (for parity)."""
        import numpy as np

        return np.asarray(self._output(self.infer(inputs)), dtype=np.float32)

    def step(self) -> Any:
        """One inference on the prepared batch, nothing checked: the callable the timing loop and
        the warm-up run (public, so the worker never reaches into `_step`)."""
        return self._step()

    def set_inputs(self, inputs: np.ndarray) -> None:
        """Make `inputs` the prepared batch the next steps run (same shape as the loaded one)."""
        import numpy as np

        self._check_loaded("set_inputs")
        if inputs.shape != self.inputs.shape:
            raise UserError(f"input shape {inputs.shape} differs from the prepared {self.inputs.shape}")
        self._set_inputs(np.ascontiguousarray(inputs))

    def timed(self, iters: int, clock: Clock = time.perf_counter_ns, budget_ns: int | None = None) -> list[int]:
        """The one timing code path of every backend: `iters` host-latency samples (ns)."""
        self._check_loaded("timed")
        return time_iterations(self._step, iters, clock=clock, budget_ns=budget_ns)

    def close(self) -> None:
        if self.state == "loaded":
            try:
                self._close()
            finally:
                self.state = "closed"
        else:
            self.state = "closed"

    def __enter__(self):
        if self.state == "new":  # `Backend.load` hands out runners already loaded
            self.load()
        return self

    def __exit__(self, *exc):
        self.close()
        return False

    def describe(self) -> dict:
        """What the runner actually uses (providers, threads, compiled properties...)."""
        self._check_loaded("describe")
        return {"backend": self.backend, "clock": list(self.clock_kinds), **self._describe()}

    def peak_gpu_mb(self) -> float | None:
        return self._peak_gpu_mb()

    # --- concurrent requests (MLPerf LoadGen's system under test: pfdeploy.bench.loadgen) ----
    def in_flight(self) -> int:
        """How many requests `submit` keeps in flight at once; 0: this runner has no
        concurrent-request API (LoadGen's scenarios refuse it). The timing path never uses it."""
        return 0

    def submit(self, inputs: np.ndarray, done) -> None:
        """Start one inference on the host batch `inputs` and return at once; `done(output, error)`
        is called from a runtime thread when its first output is back in host memory (or it
        failed). The caller keeps at most `in_flight()` requests outstanding."""
        raise UserError(f"{self.backend} cannot keep several requests in flight (no concurrent-request API)")

    def _check_loaded(self, what: str):
        if self.state != "loaded":
            raise RunnerStateError(f"{what}() needs a loaded runner (state: {self.state!r})")

    # --- for subclasses -----------------------------------------------------------------
    def _load(self) -> None:
        raise NotImplementedError

    def _step(self) -> Any:
        raise NotImplementedError

    def _set_inputs(self, inputs: np.ndarray) -> None:
        self.inputs = inputs

    def _output(self, result) -> np.ndarray:
        """The first output of a `_step()` result as numpy."""
        import numpy as np

        if isinstance(result, (list, tuple)):
            return np.asarray(result[0])
        return np.asarray(result)

    def _close(self) -> None:
        pass

    def _describe(self) -> dict:
        return {}

    def _peak_gpu_mb(self) -> float | None:
        return None


# ---------------------------------------------------------------------------------- candidates
@dataclass(frozen=True)
class Candidate:
    """One setting of a runtime that `pfdeploy tune` races: a precision and runner options,
    declared by the backend module itself (`Backend.tune_space`)."""

    name: str          # the variant name: short, unique within its backend, e.g. "fp32-sync", "int8-s8s8"
    precision: str     # a pfdeploy precision (what the case is labelled; must be what the runtime runs)
    options: dict = field(default_factory=dict)  # runner options (incl. "artifact": {...} exporter-request extras)
    default: bool = False  # True for exactly one candidate per backend: the runtime's own default
    note: str = ""     # one line: what this setting is


def check_space(backend: str, space: list[Candidate]) -> list[Candidate]:
    """`space` checked: names unique and non-empty, exactly one default and it comes first
    (ValueError naming the backend: a bug in its declaration)."""
    if not space:
        return space
    names = [c.name for c in space]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup or not all(names):
        raise ValueError(f"{backend}: tune candidate names must be unique and non-empty (repeated: {dup})")
    defaults = [c.name for c in space if c.default]
    if defaults != [space[0].name]:
        raise ValueError(f"{backend}: the first tune candidate must be the only default (defaults: {defaults})")
    return space


# ----------------------------------------------------------------------------------- backends
def as_device(device):
    """A pfdeploy.devices.Device from a Device or a device string (not checked for usability)."""
    if isinstance(device, str):
        from ..devices import parse_device

        return parse_device(device, check=False)
    return device


class Backend:
    """What pfdeploy knows about one runtime. Subclasses set the class attributes and override the
    probing methods; instances are stateless (probes are cached per process).

    name: the backend's name on the command line; target: the exporter target of its artifact
    (None: the model is built from the zoo in the worker); devices: device kinds it can run on
    (cpu, cuda, openvino); requires: importable modules it needs; install_hint: what to install
    when one is missing; tools: {tool: distributions that provide it} whose versions every run
    records (default: one per required module); load_timeout_s: how long a worker may take to
    load a case (runtime import, model load, first inference; $PFDEPLOY_LOAD_TIMEOUT_S overrides);
    scenarios: the scenarios it implements; runner: its Runner subclass.
    """

    name = "base"
    target: str | None = None
    devices: tuple[str, ...] = ("cpu",)
    requires: tuple[str, ...] = ()
    install_hint = ""
    tools: dict[str, tuple[str, ...]] = {}
    load_timeout_s: float = 300.0
    description = ""
    scenarios: tuple[str, ...] = ("latency",)
    runner: type[Runner] = Runner
    # precisions at which this backend *is* the reference artifacts are checked against
    reference_precisions: tuple[str, ...] = ()
    # the order in which `--precision best` looks for the fastest precision a runtime supports
    speed_order: tuple[str, ...] = ("int8", "fp16", "bf16", "tf32", "fp32")

    # --- availability -------------------------------------------------------------------
    def missing(self) -> str | None:
        """None when the runtime is installed, else the reason with the install hint."""
        for mod in self.requires:
            if not is_installed(mod):
                return f"{mod} is not installed: {self.install_hint}"
        return None

    def unavailable(self, device) -> str | None:
        """None when the backend can run on `device` (a pfdeploy.devices.Device) here, else why not."""
        device = as_device(device)
        if device.kind not in self.devices:
            return f"{self.name} does not run on {device.kind} devices (it runs on {', '.join(self.devices)})"
        return self.missing() or self._device_problem(device)

    def _device_problem(self, device) -> str | None:
        from ..devices import device_unavailable_reason

        return device_unavailable_reason(device)

    # --- precisions ---------------------------------------------------------------------
    def precisions(self, device) -> dict[str, str | None]:
        """{precision: None when it runs on `device` here, else the reason}: probed from the runtime
        and the hardware, for every precision pfdeploy knows."""
        raise NotImplementedError

    def supports(self, device, precision: str) -> str | None:
        """None when `precision` runs on `device` here, else the reason it does not."""
        device = as_device(device)
        why = self.unavailable(device)
        if why:
            return why
        table = self.precisions(device)
        if precision not in table:
            raise UsageError(f"unknown precision {precision!r}; choose from {', '.join(table)}")
        return table[precision]

    def supported_precisions(self, device) -> list[str]:
        device = as_device(device)
        return [p for p, why in self.precisions(device).items() if why is None]

    def best_precision(self, device) -> str:
        """The fastest precision this runtime runs on `device` here (by `speed_order`; a declared
        order, not a measurement): what `--precision best` measures next to fp32."""
        ok = self.supported_precisions(as_device(device))
        return next((p for p in self.speed_order if p in ok), "fp32")

    def supports_scenario(self, scenario: str) -> str | None:
        if scenario in self.scenarios:
            return None
        return (f"the {scenario} scenario is not implemented for {self.name} (it measures "
                f"{', '.join(self.scenarios)} only; use --scenario latency with --batch N for batched throughput)")

    # --- tuning -------------------------------------------------------------------------
    def tune_space(self, device, scenario: str, batch: int, threads: int) -> list[Candidate]:
        """Every candidate setting of this runtime on `device` (a pfdeploy.devices.Device or a
        device string) for the scenario; only precisions this machine runs (`supports(...)` is
        None). The first candidate is the runtime's default (default=True). Empty when the backend
        or the scenario does not run here.

        The base declaration: the runtime's default (fp32, no options), then one candidate per
        other precision it runs here, without options. Backends override it with their knobs."""
        device = as_device(device)
        if self.unavailable(device) or self.supports_scenario(scenario):
            return []
        ok = self.supported_precisions(device)
        if not ok:
            return []
        first = "fp32" if "fp32" in ok else ok[0]
        space = [Candidate("default", first, {}, default=True, note=f"{self.name} at its defaults ({first}, no options)")]
        space += [Candidate(p, p, {}, note=f"{p}, no options") for p in ok if p != first]
        return check_space(self.name, space)

    def _tune_ok(self, device, precision: str) -> bool:
        """True when `precision` runs on `device` here (a tune space keeps only those)."""
        return precision in self.precisions(device) and self.supports(device, precision) is None

    # --- artifacts ----------------------------------------------------------------------
    def artifact_request(self, precision: str, batch: int) -> dict | None:
        """The exporter request of the artifact a case at `precision` and `batch` runs: keyword
        arguments of `pfdeploy.exporters.get_artifact` (target, precision, ...), or None when the
        backend builds its model from the zoo."""
        if self.target is None:
            return None
        return {"target": self.target, "precision": precision}

    # --- the worker process -------------------------------------------------------------
    def setup_process(self, threads: int, interop: int = 1) -> dict:
        """Thread and denormal setup of a fresh worker process, before `load`: the OpenMP/MKL
        variables (read once, when a pool starts). Returns what was applied; the runtime's own
        settings are read back by the runner's `describe()`."""
        import os

        from ..devices.threads import THREAD_ENV_VARS

        env = {var: str(threads) for var in THREAD_ENV_VARS}
        os.environ.update(env)
        return {"threads": threads, "interop": interop, "env": env, "warnings": []}

    def load(self, case: CaseSpec, inputs: np.ndarray, model_file: str | None = None,
             weights_file: str | None = None) -> Runner:
        """A loaded Runner for `case` on the prepared host batch `inputs`."""
        r = self.runner(case, inputs, model_file=model_file, weights_file=weights_file)
        r.load()
        return r

    def tool_table(self) -> dict[str, tuple[str, ...]]:
        """{tool: distributions that provide it} of the runtime: its `tools`, by default its
        required modules (each its own distribution)."""
        return dict(self.tools) if self.tools else {mod: (mod,) for mod in self.requires}

    def tool_versions(self) -> dict:
        """{tool: version or None} of the runtime's `tool_table()`, from the installed
        distributions' metadata (the first installed distribution of each tool); imports nothing."""
        return {tool: dist_version(dists) for tool, dists in self.tool_table().items()}

    def __repr__(self) -> str:
        return f"<backend {self.name}>"



from ..versions import dist_version  # noqa: E402,F401 (the one lookup; backends.base.dist_version kept)


def precision_table(reasons: dict[str, str | None], default: str) -> dict[str, str | None]:
    """{precision: reason} over every precision pfdeploy knows: `reasons` for the ones a backend
    has a path for (None: runs here), `default` (formatted with {p}) for the others."""
    return {p: reasons[p] if p in reasons else default.format(p=p) for p in PRECISIONS}
