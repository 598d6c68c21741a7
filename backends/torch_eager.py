"""PyTorch eager backend (`torch`): the zoo model in the worker, under `torch.inference_mode()`.

Precisions (probed, `TorchBackend.precisions`):
- fp32 everywhere; on CUDA, TF32 off (`torch.backends.cuda.matmul.allow_tf32` and
  `torch.backends.cudnn.allow_tf32` False: cuDNN has TF32 convolutions on by default);
- tf32 (CUDA): fp32 tensors with both TF32 switches on;
- bf16 on CPU only where the CPU computes bf16 natively (AVX512-BF16 / AMX-BF16): weights and
  activations in bf16, channels_last, oneDNN kernels, as PyTorch recommends for CPU speed;
  elsewhere torch would emulate bf16 (a slow path nobody ships), so it is refused;
- bf16 and fp16 on CUDA (bf16 where `torch.cuda.is_bf16_supported()`).

Options: `channels_last` (bool; always on for bf16 on CPU). On CUDA a step copies the host batch
to the device, runs the model and copies the output back (host latency); CUDA events around the
compute alone (and around each copy) give the device latency. Scenarios: latency only (one
request at a time; a batch sweep measures batched throughput).
"""
from __future__ import annotations

import numpy as np

from ..errors import UserError
from .base import Backend, Runner, precision_table

DTYPES = {"fp32": "float32", "tf32": "float32", "fp16": "float16", "bf16": "bfloat16"}


class TorchRunner(Runner):
    backend = "torch"
    known_options = frozenset({"channels_last"})

    def _build(self):
        import torch

        from ..zoo import build_architecture, create_model

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
        self.cuda = self.device.type == "cuda"
        if self.cuda:  # cuda:N: N becomes the current device, its stream is the one the events time
            torch.cuda.set_device(self.device)
            self.stream = torch.cuda.current_stream(self.device)
        if self.cuda:  # fp32 means IEEE fp32: TF32 only when asked for
            tf32 = self.case.precision == "tf32"
            torch.backends.cuda.matmul.allow_tf32 = tf32
            torch.backends.cudnn.allow_tf32 = tf32
        self.dtype = getattr(torch, DTYPES[self.case.precision])
        channels_last = bool(self.case.options.get("channels_last")) or (
            not self.cuda and self.case.precision == "bf16")
        self.memory_format = torch.channels_last if channels_last else torch.contiguous_format
        model = self._build().to(self.device, dtype=self.dtype, memory_format=self.memory_format)
        self._set_inputs(self.inputs)
        if channels_last and not self._channels_last_applied(model):
            raise UserError("torch did not lay the model or the input out channels_last (option channels_last); "
                            "refusing to mislabel the result")
        if self.cuda:
            torch.cuda.reset_peak_memory_stats(self.device)
            self.clock_kinds = ("host", "device")
            self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        return model

    def _channels_last_applied(self, model) -> bool:
        """The input and every 4-D weight of `model` are channels_last in memory (read back)."""
        torch = self.torch
        w4 = [p for p in model.parameters() if p.dim() == 4]
        return (self.x_host.dim() != 4 or self.x_host.is_contiguous(memory_format=torch.channels_last)) and all(
            p.is_contiguous(memory_format=torch.channels_last) for p in w4)

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

    def _output(self, result):
        return result.float().cpu().numpy()

    def _describe(self) -> dict:
        """Read back from torch: dtype, memory format, threads, flush-to-zero, TF32 switches, oneDNN."""
        from ..devices.threads import torch_denormals_flushed

        torch = self.torch
        p = next(iter(self.model.parameters()), None) if getattr(self, "model", None) is not None else None
        d = {"torch": torch.__version__, "device": str(self.device), "dtype": str(self.dtype),
             "weights_dtype": str(p.dtype) if p is not None else None,
             "channels_last": self.x_host.is_contiguous(memory_format=torch.channels_last)
             and self.memory_format == torch.channels_last,
             "intra_op_threads": torch.get_num_threads(), "inter_op_threads": torch.get_num_interop_threads(),
             "flush_denormal": torch_denormals_flushed(), "mkldnn": torch.backends.mkldnn.is_available()}
        if self.cuda:
            d["tf32"] = {"matmul": torch.backends.cuda.matmul.allow_tf32, "cudnn": torch.backends.cudnn.allow_tf32}
        elif self.case.precision == "bf16":
            d["mkldnn_bf16"] = bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
        return d

    def _peak_gpu_mb(self):
        if getattr(self, "cuda", False):
            return self.torch.cuda.max_memory_allocated(self.device) / 2**20
        return None

    def _close(self) -> None:
        self.model = None


def cuda_bf16_problem() -> str | None:
    import torch

    try:
        return None if torch.cuda.is_bf16_supported() else "this GPU has no bf16 (compute capability < 8.0)"
    except Exception as exc:  # noqa: BLE001 - a broken driver
        return f"cannot ask the GPU for bf16 support: {exc}"


class TorchBackend(Backend):
    name = "torch"
    target = None
    devices = ("cpu", "cuda")
    requires = ("torch",)
    install_hint = "pip install torch"
    tools = {"torch": ("torch",)}
    description = "PyTorch eager (inference_mode; channels_last option; bf16 with oneDNN on CPUs with native bf16)"
    scenarios = ("latency",)
    runner = TorchRunner
    reference_precisions = ("fp32",)  # PyTorch fp32 (TF32 off) is what every artifact is checked against

    def precisions(self, device) -> dict:
        from ..devices import cpu_native

        if device.kind == "cpu":
            bf16 = cpu_native("bf16")
            return precision_table({
                "fp32": None,
                "bf16": None if bf16 is None else f"{bf16}: torch would emulate bf16 (a slow path), so it is not measured",
                "fp16": f"{self.name} has no fast fp16 kernels on CPU (it runs fp16 on CUDA)",
                "tf32": "tf32 is a CUDA (Ampere and later) precision",
            }, f"{self.name} has no {{p}} path (int8 runs through onnxruntime, openvino, tensorrt)")
        return precision_table({"fp32": None, "tf32": None, "fp16": None, "bf16": cuda_bf16_problem()},
                               f"{self.name} has no {{p}} path on CUDA")

    def tune_space(self, device, scenario: str, batch: int, threads: int) -> list:
        """torch's candidates: eager fp32 (the runtime's default), fp32 channels_last, bf16 where
        the CPU computes it natively (always channels_last on the CPU); on CUDA (thin) also tf32,
        fp16 and fp16 channels_last."""
        from .base import Candidate, as_device, check_space

        device = as_device(device)
        if self.unavailable(device) or self.supports_scenario(scenario) or not self._tune_ok(device, "fp32"):
            return []
        space = [Candidate("default", "fp32", {}, default=True, note="eager fp32 (TF32 off on CUDA), no options"),
                 Candidate("fp32-cl", "fp32", {"channels_last": True}, note="eager fp32, channels_last")]
        for p in ("bf16", "tf32", "fp16"):
            if self._tune_ok(device, p):
                cl = " (channels_last, oneDNN)" if p == "bf16" and device.kind == "cpu" else ""
                space.append(Candidate(p, p, {}, note=f"eager {p}{cl}"))
        if device.kind == "cuda" and self._tune_ok(device, "fp16"):
            space.append(Candidate("fp16-cl", "fp16", {"channels_last": True}, note="eager fp16, channels_last"))
        return check_space(self.name, space)

    def setup_process(self, threads: int, interop: int = 1) -> dict:
        """OMP/MKL variables, torch intra/inter-op threads and flush-to-zero, read back."""
        from ..devices import apply_thread_settings, set_flush_denormal
        from ..devices.threads import torch_denormals_flushed

        applied = apply_thread_settings(threads, interop)
        applied["flush_denormal_supported"] = set_flush_denormal()
        applied["flush_denormal"] = torch_denormals_flushed()
        return applied


BACKEND = TorchBackend()
