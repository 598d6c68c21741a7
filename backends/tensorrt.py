"""TensorRT backend (`tensorrt`), written against the TensorRT 10 Python API and kept thin.

Artifacts: an engine per precision *and measured batch*: the optimization profile is
min 1 / opt = the batch measured / max max(64, batch), so TensorRT tunes its kernels for the
shape that is timed (an engine tuned for batch 8 and timed at batch 1 measures the wrong
tactics). Precisions: fp32 (TF32 cleared), tf32 (TF32 allowed, the fp32 ONNX), fp16 (the fp16
ONNX), int8 (the symmetric S8S8 QDQ ONNX with float biases: TensorRT's recipe, see
`pfdeploy.exporters.quantize`). Scenarios: latency only (one execution context, one stream).

Load: `trt.Runtime.deserialize_cuda_engine` on the .plan file (an engine built for another GPU
or TensorRT version fails to deserialise: that is reported as such, not as a crash), one
execution context, the batch checked against the engine's profile (a batch outside it is a
clear error; `set_input_shape`'s return value is checked too), device buffers (torch CUDA tensors:
torch is a core dependency, so no second CUDA binding is needed) bound with
`set_tensor_address`. A step: pinned host batch -> device (async copy), `execute_async_v3` on the
runner's stream, device -> pinned host output, stream synchronised: host latency. CUDA events
around the three parts give the device latency (compute) and the copy times.

Not run on the development machine (no GPU, TensorRT not installable there); see docs/bench.md.
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UserError, optional_import
from .base import Backend, Runner, precision_table

PROFILE_MAX = 64  # the profile's max batch unless the measured batch is larger


class TensorRtRunner(Runner):
    backend = "tensorrt"
    clock_kinds = ("host", "device")

    def _load(self) -> None:
        trt = optional_import("tensorrt", "the tensorrt backend", hint=TensorRtBackend.install_hint)
        import torch

        if not torch.cuda.is_available():
            raise UserError("the tensorrt backend needs a usable CUDA GPU; torch sees none")
        self.trt, self.torch = trt, torch
        self.device = torch.device(self.case.device)
        torch.cuda.set_device(self.device)
        logger = trt.Logger(trt.Logger.WARNING)
        self.runtime = trt.Runtime(logger)
        plan = Path(self.model_file).read_bytes()
        self.engine = self.runtime.deserialize_cuda_engine(plan)
        if self.engine is None:
            raise UserError(f"TensorRT {trt.__version__} could not deserialise {self.model_file}: engines are tied to "
                            f"the GPU model and TensorRT version they were built with; rebuild it on this machine "
                            f"(pfdeploy export ... --to trt --force)")
        self.context = self.engine.create_execution_context()
        names = [self.engine.get_tensor_name(i) for i in range(self.engine.num_io_tensors)]
        inputs = [n for n in names if self.engine.get_tensor_mode(n) == trt.TensorIOMode.INPUT]
        outputs = [n for n in names if n not in inputs]
        if len(inputs) != 1 or not outputs:
            raise UserError(f"{self.model_file}: expected one input and at least one output, found {inputs} / {outputs}")
        self.input_name, self.output_names = inputs[0], outputs
        self.profile = profile_of(self.engine, self.input_name)
        check_batch_in_profile(self.case.batch, self.profile, self.model_file)
        if self.context.set_input_shape(self.input_name, tuple(self.inputs.shape)) is False:
            raise UserError(f"TensorRT refused input shape {tuple(self.inputs.shape)} for {self.model_file} "
                            f"(profile {self.profile})")
        torch_dtype = {trt.float32: torch.float32, trt.float16: torch.float16, trt.int8: torch.int8,
                       trt.int32: torch.int32, trt.bfloat16: torch.bfloat16}
        self.in_dtype = torch_dtype[self.engine.get_tensor_dtype(self.input_name)]
        self.d_in = torch.empty(tuple(self.inputs.shape), dtype=self.in_dtype, device=self.device)
        self.context.set_tensor_address(self.input_name, self.d_in.data_ptr())
        self.d_out, self.h_out = {}, {}
        for name in outputs:
            shape = tuple(self.context.get_tensor_shape(name))
            if any(d < 0 for d in shape):
                raise UserError(f"output {name} has an unresolved shape {shape} after setting the input shape")
            dt = torch_dtype[self.engine.get_tensor_dtype(name)]
            self.d_out[name] = torch.empty(shape, dtype=dt, device=self.device)
            self.h_out[name] = torch.empty(shape, dtype=dt).pin_memory()
            self.context.set_tensor_address(name, self.d_out[name].data_ptr())
        self.stream = torch.cuda.Stream(self.device)
        self._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
        self._set_inputs(self.inputs)
        torch.cuda.reset_peak_memory_stats(self.device)

    def _set_inputs(self, inputs) -> None:
        self.inputs = inputs
        if hasattr(self, "in_dtype"):
            self.h_in = self.torch.from_numpy(inputs).to(self.in_dtype).pin_memory()

    def _step(self):
        e0, e1, e2, e3 = self._events
        with self.torch.cuda.stream(self.stream):
            e0.record(self.stream)
            self.d_in.copy_(self.h_in, non_blocking=True)
            e1.record(self.stream)
            if not self.context.execute_async_v3(self.stream.cuda_stream):
                raise UserError("TensorRT execute_async_v3 failed (see the TensorRT log above)")
            e2.record(self.stream)
            for name in self.output_names:
                self.h_out[name].copy_(self.d_out[name], non_blocking=True)
            e3.record(self.stream)
        self.stream.synchronize()
        self.h2d_ms.append(e0.elapsed_time(e1))
        self.device_ms.append(e1.elapsed_time(e2))
        self.d2h_ms.append(e2.elapsed_time(e3))
        return self.h_out

    def _output(self, result):
        return result[self.output_names[0]].float().numpy()

    def _describe(self) -> dict:
        """Read back from the engine and context: profile, input shape, I/O dtypes, memory."""
        size = getattr(self.engine, "device_memory_size_v2", None) or getattr(self.engine, "device_memory_size", None)
        return {"tensorrt": self.trt.__version__, "device": str(self.device), "engine_device_memory_bytes": size,
                "io": {"input": self.input_name, "outputs": self.output_names},
                "profile": self.profile, "input_shape": list(self.context.get_tensor_shape(self.input_name)),
                "dtypes": {n: str(self.engine.get_tensor_dtype(n)) for n in [self.input_name, *self.output_names]}}

    def _peak_gpu_mb(self):
        # torch's allocator holds the I/O buffers; the engine's activation memory is its own
        size = getattr(self.engine, "device_memory_size_v2", None) or getattr(self.engine, "device_memory_size", 0) or 0
        return (self.torch.cuda.max_memory_allocated(self.device) + int(size)) / 2**20

    def _close(self) -> None:
        self.context = None
        self.engine = None


def profile_of(engine, input_name: str) -> dict:
    """{"min", "opt", "max"} input shapes of the engine's optimization profile 0."""
    shapes = engine.get_tensor_profile_shape(input_name, 0)
    return {k: [int(d) for d in v] for k, v in zip(("min", "opt", "max"), shapes)}


def check_batch_in_profile(batch: int, profile: dict, where) -> None:
    lo, hi = profile["min"][0], profile["max"][0]
    if not lo <= batch <= hi:
        raise UserError(f"batch {batch} is outside the optimization profile of {where} (batch {lo} to {hi}); "
                        f"build an engine for it: pfdeploy export MODEL --to trt --dynamic-batch 1:{batch}:{max(batch, hi)}")


def profile_for_batch(batch: int) -> tuple[int, int, int]:
    """The optimization profile (min, opt, max) of the engine that measures `batch`."""
    return (1, batch, max(PROFILE_MAX, batch))


class TensorRtBackend(Backend):
    name = "tensorrt"
    target = "trt"
    devices = ("cuda",)
    requires = ("tensorrt", "torch")
    install_hint = ("pip install 'pfdeploy[gpu]' (CUDA 13; 'pfdeploy[gpu-cu12]' for CUDA 12, docs/gpu.md) on Linux "
                    "x86_64 with an NVIDIA driver")
    # the tensorrt module's distributions (the bare name and the per-CUDA wheels)
    tools = {"tensorrt": ("tensorrt", "tensorrt-cu12", "tensorrt-cu13", "tensorrt-cu11", "tensorrt_cu12_bindings")}
    description = "TensorRT 10 engine (execute_async_v3, CUDA events; opt shape = the measured batch)"
    scenarios = ("latency",)
    runner = TensorRtRunner
    int8_recipe = "tensorrt"

    def precisions(self, device) -> dict:
        try:
            import torch

            major, minor = torch.cuda.get_device_capability(device.index or 0)
            tf32 = None if major >= 8 else f"TF32 needs compute capability 8.0 (this GPU: {major}.{minor})"
        except Exception as exc:  # noqa: BLE001
            tf32 = f"cannot read the GPU's compute capability: {exc}"
        return precision_table({"fp32": None, "tf32": tf32, "fp16": None, "int8": None},
                               "pfdeploy builds no {p} TensorRT engines")

    def artifact_request(self, precision: str, batch: int) -> dict:
        return {"target": "trt", "precision": precision, "dynamic_batch": profile_for_batch(batch)}

    def setup_process(self, threads: int, interop: int = 1) -> dict:
        from .torch_eager import TorchBackend

        return TorchBackend.setup_process(self, threads, interop)


BACKEND = TensorRtBackend()
