"""torch.compile backend (`torch-compile`): the eager backend's model compiled with inductor.

Options: `channels_last`, `cuda_graphs` (GPU: mode "reduce-overhead", which captures CUDA graphs;
default mode otherwise). Compilation is lazy in PyTorch, so `_load` triggers it with one call on
the prepared batch: the recorded load time includes compilation, and the first inference after
it is the first call of the compiled code. Precisions and process setup: as the eager backend.
On CPU inductor needs a C++ compiler.
"""
from __future__ import annotations

import os
import shutil

from .torch_eager import TorchBackend, TorchRunner


class TorchCompileRunner(TorchRunner):
    backend = "torch-compile"

    def _load(self) -> None:
        model = self._prepare()
        torch = self.torch
        mode = "reduce-overhead" if (self.cuda and self.case.options.get("cuda_graphs")) else None
        self.mode = mode or "default"
        self.model = torch.compile(model, backend="inductor", mode=mode)
        with torch.inference_mode():
            self.model(self.x_host.to(self.device))
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def _describe(self) -> dict:
        return {**super()._describe(), "compile_backend": "inductor", "mode": self.mode}


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

    def _device_problem(self, device):
        from ..errors import is_installed

        if device.kind == "cpu" and cxx_compiler() is None:
            return "torch.compile (inductor) needs a C++ compiler on the CPU: install g++ (apt-get install g++)"
        why = super()._device_problem(device)
        if why is None and device.kind == "cuda" and not is_installed("triton"):
            return "triton is not installed (inductor needs it on CUDA)"
        return why


BACKEND = TorchCompileBackend()
