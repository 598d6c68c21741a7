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

Runner options (`pfdeploy tune`'s candidates, `OpenVinoBackend.tune_space`), each read back:
    hint                 PERFORMANCE_HINT (default LATENCY / THROUGHPUT by scenario)
    precision_hint       "default": no INFERENCE_PRECISION_HINT, the plugin's own precision, which
                         must equal the case's precision (else the load fails: never mislabelled)
    threads              "default": no INFERENCE_NUM_THREADS (the plugin's own thread count)
    denormals            "default": CPU_DENORMALS_OPTIMIZATION left as the plugin has it
    api                  "sync" (infer) | "async" (start_async + wait on one request; latency)
    io                   "copy" (the host batch passed as a dict each step) | "shared" (set once as
                         an ov.Tensor sharing the batch's memory; outputs still copied to the host
                         each step, as a sample requires)
    streams, requests    NUM_STREAMS; the AsyncInferQueue's size (throughput)
    inference_precision  the exporters' parity check of an IR the device cannot compute natively
The first three together are what `benchmark_app -hint latency|throughput` compiles with.
"""
from __future__ import annotations

import functools

import numpy as np

from ..errors import UserError, optional_import
from .base import Backend, Runner, precision_table
from .case import CONCURRENT_SCENARIOS, LOADGEN_SCENARIOS

# pfdeploy precision -> INFERENCE_PRECISION_HINT (int8: None, the plugin's default)
HINTS = {"fp32": "f32", "bf16": "bf16", "fp16": "f16", "int8": None}
PRECISION_OF = {"f32": "fp32", "bf16": "bf16", "f16": "fp16"}  # INFERENCE_PRECISION_HINT read back -> label
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
    known_options = frozenset({"hint", "inference_precision", "requests", "streams", "precision_hint", "threads",
                               "denormals", "api", "io"})

    def _option(self, key: str, allowed: tuple, default):
        v = self.case.options.get(key, default)
        if v not in allowed:
            raise UserError(f"openvino option {key}={v!r}: choose from {', '.join(map(repr, allowed))}")
        return v

    def _load(self) -> None:
        ov = optional_import("openvino", "the openvino backend", hint=OpenVinoBackend.install_hint)
        self.ov = ov
        core = ov.Core()
        ov_device = ov_device_name(self.case.device)
        if ov_device is None:
            raise UserError(f"openvino does not run on device {self.case.device!r}")
        if ov_device.split(".")[0] not in [d.split(".")[0] for d in core.available_devices]:
            raise UserError(f"OpenVINO device {ov_device} not found (available: {', '.join(core.available_devices)})")
        throughput = self.case.scenario in CONCURRENT_SCENARIOS  # LoadGen's server/offline/multistream too
        self.api = self._option("api", ("sync", "async"), "async" if throughput else "sync")
        if throughput and self.api != "async":
            raise UserError("openvino option api='sync' does not apply to the throughput scenario (an AsyncInferQueue)")
        if "requests" in self.case.options and not throughput:
            raise UserError("openvino option requests applies to the throughput scenario (latency runs one request)")
        self.io = self._option("io", ("copy", "shared"), "copy")
        threads_opt = self._option("threads", ("default", None), None)
        denormals_opt = self._option("denormals", ("default", None), None)
        precision_opt = self._option("precision_hint", ("default", None), None)
        hint = self.case.options.get("hint") or ("THROUGHPUT" if throughput else "LATENCY")
        config = {"PERFORMANCE_HINT": hint.upper()}
        if ov_device == "CPU":
            if threads_opt is None:
                config["INFERENCE_NUM_THREADS"] = self.case.threads
            if denormals_opt is None:
                config["CPU_DENORMALS_OPTIMIZATION"] = True
        if "streams" in self.case.options:
            config["NUM_STREAMS"] = int(self.case.options["streams"])
        # `inference_precision` option: the exporters' parity check of an IR whose precision the
        # device cannot compute (an fp16 IR on a CPU without fp16) runs it at f32.
        # `precision_hint: "default"`: no hint, the plugin's own precision (what benchmark_app
        # runs), which must then be the case's precision (checked below)
        if precision_opt == "default":
            if "inference_precision" in self.case.options:
                raise UserError("openvino options precision_hint='default' and inference_precision contradict")
            self.want_precision = None
        else:
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
        self._check_applied(config, precision_opt)
        self.request = self.compiled.create_infer_request()
        self.async_mode = throughput
        self.queue = None
        if self.async_mode:
            nireq = int(self.case.options.get("requests") or self.compiled.get_property("OPTIMAL_NUMBER_OF_INFER_REQUESTS"))
            self.queue = ov.AsyncInferQueue(self.compiled, nireq)
            if len(self.queue) != nireq:
                raise UserError(f"OpenVINO made {len(self.queue)} infer requests, not the {nireq} asked for")
            self.nireq = nireq
            self.items_per_step = self.case.batch * nireq
        self._set_inputs(self.inputs)

    def _check_applied(self, config: dict, precision_opt) -> None:
        """Every compiled setting read back; one the plugin did not apply fails the case."""
        props = self.read_back()
        got = props.get("INFERENCE_PRECISION_HINT")
        if self.want_precision and got is not None and got != self.want_precision:
            raise UserError(f"OpenVINO {self.ov_device} compiled {self.case.precision} at inference precision {got}, not "
                            f"{self.want_precision} (the plugin cannot run it here); refusing to mislabel the result")
        if precision_opt == "default" and self.case.precision != "int8":
            label = PRECISION_OF.get(got or "")
            if label != self.case.precision:
                raise UserError(f"OpenVINO {self.ov_device} runs this IR at its default inference precision {got}, "
                                f"not {self.case.precision}; refusing to mislabel the result (label it {label})")
        if props.get("PERFORMANCE_HINT") not in (None, config["PERFORMANCE_HINT"]):
            raise UserError(f"OpenVINO {self.ov_device} compiled PERFORMANCE_HINT={props['PERFORMANCE_HINT']}, not "
                            f"{config['PERFORMANCE_HINT']}; refusing to mislabel the result")
        for key in ("INFERENCE_NUM_THREADS", "NUM_STREAMS"):
            if key in config and props.get(key) is not None and props[key] != str(config[key]):
                raise UserError(f"OpenVINO {self.ov_device} compiled {key}={props[key]}, not the {config[key]} asked "
                                f"for; refusing to mislabel the result")

    def _requests(self) -> list:
        return [self.request] + ([self.queue[i] for i in range(len(self.queue))] if self.queue is not None else [])

    def _set_inputs(self, inputs: np.ndarray) -> None:
        self.inputs = np.ascontiguousarray(inputs.astype(np.float32, copy=False))
        # what each step passes: nothing when the input tensor is set once (shared), else the batch
        self.feed = () if self.io == "shared" else ({0: self.inputs},)
        if self.io == "shared" and getattr(self, "request", None) is not None:
            # the host batch handed over once, as a tensor sharing its memory (what benchmark_app
            # does with its preallocated tensors); each step runs on it without a copy
            for req in self._requests():
                req.set_input_tensor(self.ov.Tensor(self.inputs, shared_memory=True))
            if not all(np.shares_memory(req.get_input_tensor().data, self.inputs) for req in self._requests()):
                raise UserError("OpenVINO copied the shared input tensor (io='shared' not applied); refusing to "
                                "mislabel the result")

    def _step(self):
        if not self.async_mode:
            req = self.request
            if self.api == "async":
                req.start_async(*self.feed)
                req.wait()
                # the output back in host memory, as a sample requires (docs/method.md section 1)
                return np.array(req.get_output_tensor(0).data, dtype=np.float32, copy=True)
            return req.infer(*self.feed)  # outputs copied to numpy (share_outputs=False)
        for _ in range(self.nireq):
            self.queue.start_async(*self.feed)
        self.queue.wait_all()
        return None

    # --- concurrent requests (LoadGen's SUT): the AsyncInferQueue of the throughput settings ---
    def in_flight(self) -> int:
        return len(self.queue) if self.queue is not None else 0

    def submit(self, inputs: np.ndarray, done) -> None:
        if self.queue is None:
            return super().submit(inputs, done)
        if not getattr(self, "_callback_set", False):  # set on first use: the timed steps never pay for it
            self.queue.set_callback(_completed)
            self._callback_set = True
        self.queue.start_async({0: inputs}, done)

    def _output(self, result):
        if result is None:  # throughput steps return nothing; parity runs a synchronous request
            if self.io == "shared":
                self.request.infer()
                return np.array(self.request.get_output_tensor(0).data, dtype=np.float32, copy=True)
            result = self.request.infer({0: self.inputs})
        if isinstance(result, np.ndarray):
            return np.asarray(result, dtype=np.float32)
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
        shared = None
        if getattr(self, "request", None) is not None:
            shared = bool(np.shares_memory(self.request.get_input_tensor().data, self.inputs)) if self.io == "shared" else False
        return {"openvino": self.ov.__version__, "device": self.ov_device, "requested": self.config,
                "properties": props, "inference_precision": props.get("INFERENCE_PRECISION_HINT"),
                "precision_hint": "default" if self.case.options.get("precision_hint") == "default" else "set",
                "intra_op_threads": int(props["INFERENCE_NUM_THREADS"]) if props.get("INFERENCE_NUM_THREADS") else None,
                "flush_denormal": props.get("CPU_DENORMALS_OPTIMIZATION") == "True" if "CPU_DENORMALS_OPTIMIZATION" in props else None,
                "requests": len(self.queue) if self.queue is not None else 1,
                "streams": int(props["NUM_STREAMS"]) if str(props.get("NUM_STREAMS", "")).lstrip("-").isdigit() else None,
                "api": self.api, "io": self.io, "input_shared": shared}

    def _close(self) -> None:
        self.queue = None
        self.request = None
        self.compiled = None


def _completed(request, done) -> None:
    """AsyncInferQueue callback: the output copied to the host, handed to `done` (None: a timed step)."""
    if done is None:
        return
    try:
        out = np.array(request.get_output_tensor(0).data, dtype=np.float32, copy=True)
    except Exception as exc:  # noqa: BLE001 - handed to the SUT, which fails the test with it
        done(None, exc)
        return
    done(out, None)


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


@functools.lru_cache(maxsize=None)
def default_precision(ov_device: str) -> str | None:
    """The pfdeploy precision the plugin computes an fp32 model at when no INFERENCE_PRECISION_HINT
    is given (what `benchmark_app` runs): read back from a one-layer model compiled with only the
    LATENCY hint. None when it cannot be asked. Kept per machine and OpenVINO version."""
    from ..probecache import probed

    def probe():
        try:
            import openvino as ov
            import openvino.opset13 as ops

            x = ops.parameter([1, 4], ov.Type.f32)
            w = ops.constant(np.ones((4, 4), dtype=np.float32))
            model = ov.Model([ops.matmul(x, w, False, False)], [x], "probe")
            compiled = ov.Core().compile_model(model, ov_device, {"PERFORMANCE_HINT": "LATENCY"})
            return PRECISION_OF.get(_prop_str(compiled.get_property("INFERENCE_PRECISION_HINT"))), True
        except Exception:  # noqa: BLE001 - missing plugin, a device without the property
            return None, False

    return probed(f"openvino.default_precision.{ov_device}", "openvino", probe)


class OpenVinoBackend(Backend):
    name = "openvino"
    target = "openvino"
    devices = ("cpu", "openvino")
    requires = ("openvino",)
    install_hint = "pip install 'pfdeploy[cpu]'"
    tools = {"openvino": ("openvino",), "nncf": ("nncf",)}  # NNCF makes its int8 IRs
    description = "OpenVINO runtime (inference precision hint per case, latency/throughput hints, AsyncInferQueue)"
    scenarios = ("latency", "throughput", *LOADGEN_SCENARIOS)
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

    def tune_space(self, device, scenario: str, batch: int, threads: int) -> list:
        """OpenVINO's candidates. First its default, what `benchmark_app -hint latency|throughput`
        does: compile with only PERFORMANCE_HINT (no precision hint, no thread count, denormals as
        the plugin leaves them), async API, input tensors set once (shared memory); labelled with
        the precision the plugin picks here (bf16 on CPUs with native bf16, else fp32; the runner
        refuses the case if the read-back differs). Then pfdeploy's settings per precision (hint,
        INFERENCE_NUM_THREADS = threads, f32/bf16/f16 hint, denormals flushed) with the
        synchronous `infer()` and with async + shared input; throughput: streams/requests variants."""
        from .base import Candidate, as_device, check_space

        device = as_device(device)
        if self.unavailable(device) or self.supports_scenario(scenario):
            return []
        ok = [p for p in ("fp32", "bf16", "fp16", "int8") if self._tune_ok(device, p)]
        if not ok:
            return []
        plugin = default_precision(ov_device_name(str(device)) or "CPU") or "fp32"
        if plugin not in ok:
            plugin = "fp32" if "fp32" in ok else ok[0]
        bare = {"precision_hint": "default", "threads": "default", "denormals": "default", "io": "shared"}
        fast = {"api": "async", "io": "shared"}
        hint = "THROUGHPUT" if scenario == "throughput" else "LATENCY"
        space = [Candidate("default", plugin, {**bare, "api": "async"} if scenario == "latency" else dict(bare),
                           default=True, note=f"benchmark_app -hint {hint.lower()}: only PERFORMANCE_HINT={hint} "
                                              f"(the plugin's {plugin}, threads, streams), async API, shared input")]
        if scenario == "latency":
            for p in ok:
                space.append(Candidate(p, p, {}, note=f"{p}, {threads} threads, synchronous infer() on the host batch"))
                if p != "fp16":  # fp16 runs where the CPU has it; one API variant is enough
                    space.append(Candidate(f"{p}-async-shared", p, dict(fast),
                                           note=f"{p}, {threads} threads, start_async+wait on a shared input tensor"))
        else:
            for p in ok:
                space.append(Candidate(p, p, {"io": "shared"},
                                       note=f"{p}, {threads} threads, the plugin's streams and requests"))
            best = "int8" if "int8" in ok else plugin
            space.append(Candidate(f"{best}-s1", best, {"io": "shared", "streams": 1},
                                   note=f"{best}, one stream (all {threads} threads on one request at a time)"))
            space.append(Candidate(f"{best}-s{threads}-r{2 * threads}", best,
                                   {"io": "shared", "streams": threads, "requests": 2 * threads},
                                   note=f"{best}, {threads} streams, {2 * threads} requests in flight"))
        return check_space(self.name, space)

    def artifact_request(self, precision: str, batch: int) -> dict:
        # bf16 is an execution precision: the fp32 IR, compiled with the bf16 hint
        return {"target": "openvino", "precision": "fp32" if precision == "bf16" else precision}


BACKEND = OpenVinoBackend()
