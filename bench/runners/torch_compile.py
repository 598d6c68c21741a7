"""torch.compile runner (`torch-compile`): the eager runner's model compiled with inductor.

Options: `channels_last`, `cuda_graphs` (GPU: mode "reduce-overhead", which captures CUDA graphs;
default mode otherwise). Compilation is lazy in PyTorch, so `_load` triggers it with one call on
the prepared batch: the recorded load time includes compilation, and the first inference after
it is the first call of the compiled code.
"""
from __future__ import annotations

from .torch_eager import TorchRunner


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
