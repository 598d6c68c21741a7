"""torch.compile backend (`torch-compile`): the eager backend's model compiled with inductor.

Options: `channels_last`, `cuda_graphs` (GPU: mode "reduce-overhead", which captures CUDA graphs;
default mode otherwise), `mode` (torch.compile's mode: default, max-autotune-no-cudagraphs,
max-autotune; reduce-overhead on CUDA only; `describe()` records the inductor settings the mode
applies, torch._inductor.list_mode_options). Compilation is lazy in PyTorch, so `_load` triggers it with one call on
the prepared batch: the recorded load time includes compilation, and the first inference after
it is the first call of the compiled code. Precisions and process setup: as the eager backend.
On CPU inductor needs a C++ compiler.
"""
from __future__ import annotations

import os
import shutil

from .torch_eager import TorchBackend, TorchRunner


MODES = ("default", "reduce-overhead", "max-autotune", "max-autotune-no-cudagraphs")


class TorchCompileRunner(TorchRunner):
    backend = "torch-compile"
    known_options = frozenset({"channels_last", "cuda_graphs", "mode"})

    def _load(self) -> None:
        from ..errors import UserError

        model = self._prepare()
        torch = self.torch
        mode = self.case.options.get("mode")
        if mode is not None and mode not in MODES:
            raise UserError(f"torch-compile option mode={mode!r}: choose from {', '.join(MODES)}")
        if self.case.options.get("cuda_graphs"):
            if not self.cuda:
                raise UserError("torch-compile option cuda_graphs needs a CUDA device")
            if mode not in (None, "reduce-overhead"):
                raise UserError(f"torch-compile options cuda_graphs and mode={mode!r} contradict")
            mode = "reduce-overhead"
        if mode == "reduce-overhead" and not self.cuda:
            raise UserError("torch-compile mode reduce-overhead captures CUDA graphs: it does nothing on the CPU")
        mode = None if mode == "default" else mode
        self.mode = mode or "default"
        try:
            self.mode_options = {k: str(v) for k, v in torch._inductor.list_mode_options(self.mode).items()}
        except Exception:  # noqa: BLE001 - a torch without the helper
            self.mode_options = None
        self.model = torch.compile(model, backend="inductor", mode=mode)
        with torch.inference_mode():
            self.model(self.x_host.to(self.device))
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _describe(self) -> dict:
        return {**super()._describe(), "compile_backend": "inductor", "mode": self.mode,
                "mode_options": self.mode_options}


def cxx_compiler() -> str | None:
    for name in (os.environ.get("CXX"), "g++", "c++", "clang++"):
        if name and shutil.which(name):
            return shutil.which(name)
    return None


class TorchCompileBackend(TorchBackend):
    name = "torch-compile"
    description = "torch.compile, inductor backend (CUDA graphs option on GPU)"
    runner = TorchCompileRunner
    tools = {"triton": ("triton", "pytorch-triton")}  # torch itself is a core tool (pfdeploy.devices)
    load_timeout_s = 900.0  # inductor compiles at the first inference, inside the load

    def tune_space(self, device, scenario: str, batch: int, threads: int) -> list:
        """torch.compile's candidates: the default mode at fp32 (its default), channels_last, bf16
        where native, and max-autotune (no CUDA graphs) -- whose load compiles and benchmarks kernel
        choices: minutes per model on a small CPU, inside the load timeout; on CUDA (thin) also
        CUDA graphs (reduce-overhead) and fp16."""
        from .base import Candidate, as_device, check_space

        device = as_device(device)
        if self.unavailable(device) or self.supports_scenario(scenario) or not self._tune_ok(device, "fp32"):
            return []
        space = [Candidate("default", "fp32", {}, default=True, note="torch.compile (inductor, default mode), fp32"),
                 Candidate("fp32-cl", "fp32", {"channels_last": True}, note="default mode, fp32, channels_last"),
                 Candidate("max-autotune", "fp32", {"mode": "max-autotune-no-cudagraphs"},
                           note="mode max-autotune-no-cudagraphs, fp32 (slow to compile: kernel choices benchmarked)")]
        if self._tune_ok(device, "bf16"):
            space.append(Candidate("bf16", "bf16", {}, note="default mode, bf16"
                                   + (" (channels_last, oneDNN)" if device.kind == "cpu" else "")))
        if device.kind == "cuda":
            space.append(Candidate("cudagraphs", "fp32", {"cuda_graphs": True}, note="mode reduce-overhead (CUDA graphs), fp32"))
            if self._tune_ok(device, "fp16"):
                space.append(Candidate("fp16-cudagraphs", "fp16", {"cuda_graphs": True},
                                       note="mode reduce-overhead (CUDA graphs), fp16"))
        return check_space(self.name, space)

    def _device_problem(self, device):
        from ..errors import is_installed

        if device.kind == "cpu" and cxx_compiler() is None:
            return "torch.compile (inductor) needs a C++ compiler on the CPU: install g++ (apt-get install g++)"
        why = super()._device_problem(device)
        if why is None and device.kind == "cuda" and not is_installed("triton"):
            return "triton is not installed (inductor needs it on CUDA)"
        return why


BACKEND = TorchCompileBackend()
