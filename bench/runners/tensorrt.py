"""TensorRT runner (`tensorrt`), written against the TensorRT 10 Python API and kept thin.

Load: `trt.Runtime.deserialize_cuda_engine` on the .plan file (an engine built for another GPU
or TensorRT version fails to deserialise: that is reported as such, not as a crash), one
execution context, input shapes set for the dynamic batch, device buffers (torch CUDA tensors:
torch is a core dependency, so no second CUDA binding is needed) bound with
`set_tensor_address`. A step: pinned host batch -> device (async copy), `execute_async_v3` on the
runner's stream, device -> pinned host output, stream synchronised: host latency. CUDA events
around the three parts give the device latency (compute) and the copy times.

Not run on the development machine (no GPU, TensorRT not installable there); see docs/bench.md.
"""
from __future__ import annotations

from pathlib import Path

from ...errors import UserError, optional_import
from .base import Runner


class TensorRtRunner(Runner):
    backend = "tensorrt"
    clock_kinds = ("host", "device")

    def _load(self) -> None:
        trt = optional_import("tensorrt", "the tensorrt backend")
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
        self.context.set_input_shape(self.input_name, tuple(self.inputs.shape))
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

    def _describe(self) -> dict:
        size = getattr(self.engine, "device_memory_size_v2", None) or getattr(self.engine, "device_memory_size", None)
        return {"tensorrt": self.trt.__version__, "device": str(self.device), "engine_device_memory_bytes": size,
                "io": {"input": self.input_name, "outputs": self.output_names}}

    def _peak_gpu_mb(self):
        # torch's allocator holds the I/O buffers; the engine's activation memory is its own
        size = getattr(self.engine, "device_memory_size_v2", None) or getattr(self.engine, "device_memory_size", 0) or 0
        return (self.torch.cuda.max_memory_allocated(self.device) + int(size)) / 2**20

    def _close(self) -> None:
        self.context = None
        self.engine = None
