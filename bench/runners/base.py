"""The runner base class: it owns the lifecycle (load -> infer ... -> close) and the one timing
code path; a backend implements `_load`, `_step`, `_close` (and optionally `_describe`,
`_peak_gpu_mb`). A new runtime is one new module with one subclass.

What one sample is (METHOD.md section 1): `_step()` hands the prepared host-memory batch to the
runtime and returns once the outputs are back in host memory (device work synchronised). Runners
with a device clock (CUDA events) also append the compute-only time of each step to
`self.device_ms` (and copy times to `self.h2d_ms` / `self.d2h_ms` where measured).
"""
from __future__ import annotations

import time
from typing import Any

import numpy as np

from ...errors import UserError
from ..config import CaseSpec
from ..timing import Clock, time_iterations


class RunnerStateError(RuntimeError):
    """A lifecycle method was called in the wrong state (a bug in the caller)."""


class Runner:
    """Base class. `artifact`: the artifact's model file path (None for runners that build the
    model from the zoo), `inputs`: the seeded float32 host batch (N, C, H, W)."""

    backend = "base"
    clock_kinds = ("host",)  # "host" always; "device" when the runner records CUDA-event times

    def __init__(self, case: CaseSpec, inputs: np.ndarray, model_file: str | None = None,
                 weights_file: str | None = None):
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
        self._load()
        self.state = "loaded"

    def infer(self, inputs: np.ndarray | None = None) -> Any:
        """One inference on `inputs` (default: the prepared batch); returns host outputs."""
        self._check_loaded("infer")
        if inputs is not None:
            if inputs.shape != self.inputs.shape:
                raise UserError(f"input shape {inputs.shape} differs from the prepared {self.inputs.shape}")
            self._set_inputs(np.ascontiguousarray(inputs))
        return self._step()

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

    def _close(self) -> None:
        pass

    def _describe(self) -> dict:
        return {}

    def _peak_gpu_mb(self) -> float | None:
        return None
