"""OpenVINO runner (`openvino`).

Device: `cpu` -> OpenVINO's CPU plugin; `openvino:<NAME>` (e.g. openvino:GPU, openvino:NPU) -> that
plugin. Compiled with PERFORMANCE_HINT = LATENCY (latency scenario) or THROUGHPUT (throughput
scenario, option `hint` overrides), INFERENCE_NUM_THREADS = the case's thread count on the CPU,
INFERENCE_PRECISION_HINT = f32 for fp32 artifacts (CPUs with AMX otherwise run bf16 silently),
denormals flushed (CPU_DENORMALS_OPTIMIZATION). A latency step is one synchronous
`InferRequest.infer` on the host batch, outputs copied back to numpy. Throughput scenario:
an AsyncInferQueue with the plugin's OPTIMAL_NUMBER_OF_INFER_REQUESTS; one step = that many
requests started and all completed.
"""
from __future__ import annotations

import numpy as np

from ...errors import UserError, optional_import
from .base import Runner


class OpenVinoRunner(Runner):
    backend = "openvino"

    def _load(self) -> None:
        ov = optional_import("openvino", "the openvino backend")
        self.ov = ov
        core = ov.Core()
        device = self.case.device
        ov_device = "CPU" if device == "cpu" else device.split(":", 1)[1] if device.startswith("openvino:") else None
        if ov_device is None:
            raise UserError(f"openvino does not run on device {device!r}")
        if ov_device.split(".")[0] not in [d.split(".")[0] for d in core.available_devices]:
            raise UserError(f"OpenVINO device {ov_device} not found (available: {', '.join(core.available_devices)})")
        hint = self.case.options.get("hint") or ("THROUGHPUT" if self.case.scenario == "throughput" else "LATENCY")
        config = {"PERFORMANCE_HINT": hint.upper()}
        if ov_device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.case.threads
            config["CPU_DENORMALS_OPTIMIZATION"] = True
            if self.case.precision == "fp32":
                config["INFERENCE_PRECISION_HINT"] = "f32"
        model = core.read_model(self.model_file)
        if len(model.inputs) != 1:
            raise UserError(f"{self.model_file}: expected one input, found {len(model.inputs)}")
        pshape = model.inputs[0].get_partial_shape()
        if pshape.is_dynamic:
            model.reshape({0: list(self.inputs.shape)})
        self.compiled = core.compile_model(model, ov_device, config)
        self.ov_device = ov_device
        self.hint = hint.upper()
        self.request = self.compiled.create_infer_request()
        self._set_inputs(self.inputs)
        self.async_mode = self.case.scenario == "throughput"
        if self.async_mode:
            nireq = int(self.case.options.get("requests") or self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self.queue = ov.AsyncInferQueue(self.compiled, nireq)
            self.nireq = nireq
            self.items_per_step = self.case.batch * nireq

    def _set_inputs(self, inputs: np.ndarray) -> None:
        self.inputs = np.ascontiguousarray(inputs.astype(np.float32, copy=False))

    def _step(self):
        if not self.async_mode:
            return self.request.infer({0: self.inputs})
        for _ in range(self.nireq):
            self.queue.start_async({0: self.inputs})
        self.queue.wait_all()
        return None

    def _describe(self) -> dict:
        props = {}
        for key in ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT",
                    "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "ENABLE_CPU_PINNING", "CPU_DENORMALS_OPTIMIZATION"):
            try:
                props[key] = str(self.compiled.get_property(key))
            except Exception:  # noqa: BLE001 - a plugin without this property
                pass
        return {"openvino": self.ov.__version__, "device": self.ov_device, "properties": props,
                "requests": getattr(self, "nireq", 1)}

    def _close(self) -> None:
        self.queue = None
        self.request = None
        self.compiled = None
