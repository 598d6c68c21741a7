"""PyTorch eager runner (`torch`): the zoo model under `torch.inference_mode()`.

Options: `channels_last` (bool). Precisions: fp32 everywhere, bf16 on CPU and GPU, fp16 on GPU
(weights and inputs cast, no autocast). On CUDA a step copies the host batch to the device, runs
the model and copies the output back (host latency); CUDA events around the compute alone (and
around each copy) give the device latency.
"""
from __future__ import annotations

import numpy as np

from ...errors import UserError
from .base import Runner

DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchRunner(Runner):
    backend = "torch"

    def _build(self):
        import torch

        from ...zoo import build_architecture, create_model

        if self.weights_file:  # the parent's state dict of the exact model it measured params/MACs on
            model = build_architecture(self.case.model)
            model.load_state_dict(torch.load(self.weights_file, map_location="cpu", weights_only=True))
            model.eval()
        else:
            seed = int(self.case.weights.split(":", 1)[1]) if self.case.weights.startswith("synthetic:") else 0
            model = create_model(self.case.model, seed=seed)
        return model

    def _prepare(self):
        import torch

        if self.case.precision not in DTYPES:
            raise UserError(f"{self.backend} does not run {self.case.precision}")
        self.torch = torch
        self.device = torch.device(self.case.device)
        if self.device.type == "cuda" and not torch.cuda.is_available():
            raise UserError(f"{self.case.device} requested but torch sees no usable CUDA GPU")
        self.dtype = getattr(torch, DTYPES[self.case.precision])
        self.memory_format = torch.channels_last if self.case.options.get("channels_last") else torch.contiguous_format
        self.cuda = self.device.type == "cuda"
        if self.cuda:  # cuda:N: N becomes the current device, its stream is the one the events time
            torch.cuda.set_device(self.device)
            self.stream = torch.cuda.current_stream(self.device)
        model = self._build().to(self.device, dtype=self.dtype, memory_format=self.memory_format)
        self._set_inputs(self.inputs)
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            self.clock_kinds = ("host", "device")
            self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        return model

    def _set_inputs(self, inputs: np.ndarray) -> None:
        torch = self.torch
        self.inputs = inputs
        host = torch.from_numpy(inputs).to(self.dtype).contiguous(memory_format=self.memory_format)
        if self.device.type == "cuda":
            host = host.pin_memory()
        self.x_host = host

    def _load(self) -> None:
        self.model = self._prepare()

    def _step(self):
        torch = self.torch
        with torch.inference_mode():
            if not self.cuda:
                return self.model(self.x_host)
            e0, e1, e2, e3 = self._events
            s = self.stream  # the current stream of this case's device (not device 0's)
            e0.record(s)
            x = self.x_host.to(self.device, non_blocking=True)
            e1.record(s)
            y = self.model(x)
            e2.record(s)
            out = y.to("cpu")  # synchronous copy back: the host has the output
            e3.record(s)
            e3.synchronize()
            self.h2d_ms.append(e0.elapsed_time(e1))
            self.device_ms.append(e1.elapsed_time(e2))
            self.d2h_ms.append(e2.elapsed_time(e3))
            return out

    def _describe(self) -> dict:
        torch = self.torch
        return {"torch": torch.__version__, "device": str(self.device), "dtype": str(self.dtype),
                "channels_last": self.memory_format == torch.channels_last,
                "intra_op_threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads()}

    def _peak_gpu_mb(self):
        if getattr(self, "cuda", False):
            return self.torch.cuda.max_memory_allocated(self.device) / 2**20
        return None

    def _close(self) -> None:
        self.model = None
