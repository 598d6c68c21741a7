"""ONNX Runtime runner (`onnxruntime`).

Providers: the CPU execution provider on `cpu`; on `cuda:N` CUDA -> CPU (option
`provider: "tensorrt"`: TensorRT -> CUDA -> CPU), which needs onnxruntime-gpu. ONNX Runtime only
warns when a requested provider cannot be created and quietly runs on the CPU: this runner checks
every provider of the session after creation, the placement of the nodes on GPU sessions, turns
off the Python API's silent CPU retry, and fails the case instead (`pfdeploy.devices.ort_gpu`).

Threads: `intra_op_num_threads` = the case's thread count, `inter_op_num_threads` = 1, sequential
execution, denormals flushed to zero (`session.set_denormal_as_zero`). A latency step is one
`session.run` on the host batch (ONNX Runtime copies to and from the device itself on GPU; no
device clock is exposed, so GPU results carry the host clock only). Throughput scenario: `requests`
(option, default 2) `session.run` calls in flight from as many threads, one step = all completed.
"""
from __future__ import annotations

import numpy as np

from ...devices import ort_gpu
from ...errors import UserError, optional_import
from .base import Runner

ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"

    def _load(self) -> None:
        ort = optional_import("onnxruntime", "the onnxruntime backend")
        self.ort = ort
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.case.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
        so.log_severity_level = 3
        providers = self._providers(ort)
        self.requested = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        self.gpu = self.case.device.startswith("cuda")
        self.placement = None
        if self.gpu:  # the GPU checks live in pfdeploy.devices.ort_gpu (tested with fakes)
            mode = ort_gpu.configure_session(ort, so)
            try:
                self.session = ort.InferenceSession(self.model_file, sess_options=so,
                                                    providers=ort_gpu.session_providers(providers, mode),
                                                    enable_fallback=0)  # no silent CPU retry in run()
            except Exception as exc:
                raise (ort_gpu.strict_failure(exc) or exc) from None
            if hasattr(self.session, "disable_fallback"):
                self.session.disable_fallback()
            actual = self.session.get_providers()
            ort_gpu.check_providers(providers, actual)
            self.placement = ort_gpu.check_placement(self.session, mode,
                                                     bool(self.case.options.get("allow_cpu_nodes")))
        else:
            self.session = ort.InferenceSession(self.model_file, sess_options=so, providers=providers)
            actual = self.session.get_providers()
            if not actual or actual[0] != self.requested:
                raise UserError(f"ONNX Runtime could not use {self.requested} (session providers: "
                                f"{', '.join(actual)}); refusing to measure a silent CPU fallback")
        self.actual_providers = actual
        inp = self.session.get_inputs()
        if len(inp) != 1:
            raise UserError(f"{self.model_file}: expected one input, found {len(inp)}")
        self.input_name = inp[0].name
        self.input_dtype = ORT_TYPES.get(inp[0].type, np.float32)
        self._set_inputs(self.inputs)
        self.requests = int(self.case.options.get("requests", 2)) if self.case.scenario == "throughput" else 1
        if self.requests > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.requests)
            self.items_per_step = self.case.batch * self.requests

    def _providers(self, ort):
        device = self.case.device
        if device == "cpu":
            return ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            index = int(device.split(":")[1]) if ":" in device else 0
            want = ort_gpu.TRT_EP if self.case.options.get("provider") == "tensorrt" else ort_gpu.CUDA_EP
            self.preloaded = ort_gpu.preload_gpu_libraries(ort, want)
            return ort_gpu.gpu_providers(want, ort.get_available_providers(),
                                         {ort_gpu.TRT_EP: {"device_id": index}, ort_gpu.CUDA_EP: {"device_id": index}})
        raise UserError(f"onnxruntime does not run on device {device!r}")

    def _set_inputs(self, inputs: np.ndarray) -> None:
        self.inputs = inputs
        self.feed = {self.input_name: np.ascontiguousarray(inputs.astype(self.input_dtype, copy=False))}

    def _step(self):
        if self.requests == 1:
            return self.session.run(None, self.feed)
        futures = [self.pool.submit(self.session.run, None, self.feed) for _ in range(self.requests)]
        return [f.result() for f in futures][-1]

    def _describe(self) -> dict:
        return {"onnxruntime": self.ort.__version__, "providers": self.actual_providers,
                "intra_op_threads": self.case.threads, "inter_op_threads": 1, "requests": self.requests,
                "input_dtype": np.dtype(self.input_dtype).name,
                **({"placement": self.placement, "preload": self.preloaded} if self.gpu else {})}

    def _close(self) -> None:
        if getattr(self, "pool", None):
            self.pool.shutdown()
        self.session = None
