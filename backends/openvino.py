"""OpenVINO backend (`openvino`).

Device: `cpu` -> OpenVINO's CPU plugin; `openvino:<NAME>` (e.g. openvino:GPU, openvino:NPU) -> that
plugin. Compiled with PERFORMANCE_HINT = LATENCY (latency scenario) or THROUGHPUT (throughput
scenario, option `hint` overrides), INFERENCE_NUM_THREADS = the case's thread count on the CPU,
denormals flushed (CPU_DENORMALS_OPTIMIZATION), and the inference precision hint of the case:

    fp32 -> f32 on the fp32 IR (CPUs with AMX otherwise run bf16 silently)
    bf16 -> bf16 on the fp32 IR (what the CPU plugin picks by default on AVX512-BF16/AMX CPUs)
    fp16 -> f16 on the fp16 IR
    int8 -> the NNCF-quantized IR at the plugin's default precision for the non-quantized parts

A precision runs only where the plugin reports it in `OPTIMIZATION_CAPABILITIES` (and, for bf16
on the CPU, where the CPU has native bf16). After compiling, every setting is read back with
`compiled_model.get_property`; a hint the plugin did not apply (it falls back to f32 silently)
fails the case. A latency step is one synchronous `InferRequest.infer` on the host batch, outputs
copied back to numpy. Throughput scenario: an AsyncInferQueue with the plugin's
OPTIMAL_NUMBER_OF_INFER_REQUESTS; one step = that many requests started and all completed.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import UserError, optional_import
from .base import Backend, Runner, precision_table

# pfdeploy precision -> INFERENCE_PRECISION_HINT (int8: None, the plugin's default)
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": None}
CAPABILITY = {"fp32": "FP32", "bf16": "BF16", "fp16": "FP16", "int8": "INT8"}
READ_BACK = ("PERFORMANCE_HINT", "NUM_STREAMS", "INFERENCE_NUM_THREADS", "INFERENCE_PRECISION_HINT",
             "OPTIMAL_NUMBER_OF_INFER_REQUESTS", "ENABLE_CPU_PINNING", "CPU_DENORMALS_OPTIMIZATION",
             "EXECUTION_MODE_HINT")


def _prop_str(v) -> str:
    name = getattr(v, "get_type_name", None)  # ov.Type -> "f32", "bf16", "f16"
    return name() if callable(name) else str(v)


def ov_device_name(device: str) -> str | None:
    if device == "cpu":
        return "CPU"
    return device.split(":", 1)[1] if device.startswith("openvino:") else None


class OpenVinoRunner(Runner):
    backend = "openvino"

    def _load(self) -> None:
        ov = optional_import("openvino", "the openvino backend", hint=OpenVinoBackend.install_hint)
        self.ov = ov
        core = ov.Core()
        ov_device = ov_device_name(self.case.device)
        if ov_device is None:
            raise UserError(f"openvino does not run on device {self.case.device!r}")
        if ov_device.split(".")[0] not in [d.split(".")[0] for d in core.available_devices]:
            raise UserError(f"OpenVINO device {ov_device} not found (available: {', '.join(core.available_devices)})")
        hint = self.case.options.get("hint") or ("THROUGHPUT" if self.case.scenario == "throughput" else "LATENCY")
        config = {"PERFORMANCE_HINT": hint.upper()}
        if ov_device == "CPU":
            config["INFERENCE_NUM_THREADS"] = self.case.threads
            config["CPU_DENORMALS_OPTIMIZATION"] = True
        # `inference_precision` option: the exporters' parity check of an IR whose precision the
        # device cannot compute (an fp16 IR on a CPU without fp16) runs it at f32
        self.want_precision = self.case.options.get("inference_precision", HINTS.get(self.case.precision))
        if self.want_precision:
            config["INFERENCE_PRECISION_HINT"] = self.want_precision
        try:
            model = core.read_model(self.model_file)
        except Exception as exc:  # noqa: BLE001
            raise UserError(f"{self.model_file}: OpenVINO cannot read it: {str(exc).strip().splitlines()[0]}") from None
        if len(model.inputs) != 1:
            raise UserError(f"{self.model_file}: expected one input, found {len(model.inputs)}")
        pshape = model.inputs[0].get_partial_shape()
        if pshape.is_dynamic:
            model.reshape({0: list(self.inputs.shape)})
        self.compiled = core.compile_model(model, ov_device, config)
        self.config = {k: str(v) for k, v in config.items()}
        self.ov_device = ov_device
        self.hint = hint.upper()
        got = self.read_back().get("INFERENCE_PRECISION_HINT")
        if self.want_precision and got is not None and got != self.want_precision:
            raise UserError(f"OpenVINO {ov_device} compiled {self.case.precision} at inference precision {got}, not "
                            f"{self.want_precision} (the plugin cannot run it here); refusing to mislabel the result")
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

    def _output(self, result):
        if result is None:  # throughput steps return nothing; parity runs a synchronous request
            result = self.request.infer({0: self.inputs})
        return np.array(result[self.compiled.output(0)], dtype=np.float32)

    def read_back(self) -> dict:
        props = {}
        for key in READ_BACK:
            try:
                props[key] = _prop_str(self.compiled.get_property(key))
            except Exception:  # noqa: BLE001 - a plugin without this property
                pass
        return props

    def _describe(self) -> dict:
        props = self.read_back()
        return {"openvino": self.ov.__version__, "device": self.ov_device, "requested": self.config,
                "properties": props, "inference_precision": props.get("INFERENCE_PRECISION_HINT"),
                "intra_op_threads": int(props["INFERENCE_NUM_THREADS"]) if props.get("INFERENCE_NUM_THREADS") else None,
                "flush_denormal": props.get("CPU_DENORMALS_OPTIMIZATION") == "True" if "CPU_DENORMALS_OPTIMIZATION" in props else None,
                "requests": getattr(self, "nireq", 1)}

    def _close(self) -> None:
        self.queue = None
        self.request = None
        self.compiled = None


@functools.lru_cache(maxsize=None)
def capabilities(ov_device: str) -> tuple[tuple[str, ...], str | None]:
    """(OPTIMIZATION_CAPABILITIES of an OpenVINO device, reason when it cannot be asked). Kept per
    machine and OpenVINO version (pfdeploy.probecache): listing devices does not import OpenVINO."""
    from ..probecache import probed

    def probe():
        try:
            import openvino as ov

            return [[str(c) for c in ov.Core().get_property(ov_device, "OPTIMIZATION_CAPABILITIES")], None], True
        except Exception as exc:  # noqa: BLE001 - missing plugin, broken install
            return [[], f"OpenVINO cannot report {ov_device}'s capabilities: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}"], False

    caps, why = probed(f"openvino.capabilities.{ov_device}", "openvino", probe)
    return tuple(caps), why


class OpenVinoBackend(Backend):
    name = "openvino"
    target = "openvino"
    devices = ("cpu", "openvino")
    requires = ("openvino",)
    install_hint = "pip install 'pfdeploy[cpu]'"
    tools = {"openvino": ("openvino",), "nncf": ("nncf",)}  # NNCF makes its int8 IRs
    description = "OpenVINO runtime (inference precision hint per case, latency/throughput hints, AsyncInferQueue)"
    scenarios = ("latency", "throughput")
    runner = OpenVinoRunner

    def _device_problem(self, device):
        from ..devices import device_unavailable_reason, openvino_devices

        avail, why = openvino_devices()
        if why:
            return why
        if device.kind == "cpu":
            return None if "CPU" in avail else f"OpenVINO has no CPU plugin here (available: {', '.join(avail) or 'none'})"
        return device_unavailable_reason(device)

    def precisions(self, device) -> dict:
        from ..devices import cpu_native

        ov_device = ov_device_name(str(device))
        caps, why = capabilities(ov_device)
        reasons = {}
        for p, cap in CAPABILITY.items():
            if why:
                reasons[p] = why
            elif cap not in caps:
                reasons[p] = f"OpenVINO {ov_device} does not report {cap} (OPTIMIZATION_CAPABILITIES: {', '.join(caps)})"
            elif ov_device == "CPU" and p == "bf16" and cpu_native("bf16"):
                reasons[p] = f"{cpu_native('bf16')}: OpenVINO would emulate bf16"
            else:
                reasons[p] = None
        return precision_table(reasons, "openvino has no {p} path")

    def artifact_request(self, precision: str, batch: int) -> dict:
        # bf16 is an execution precision: the fp32 IR, compiled with the bf16 hint
        return {"target": "openvino", "precision": "fp32" if precision == "bf16" else precision}


BACKEND = OpenVinoBackend()
