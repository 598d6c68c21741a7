"""ONNX Runtime backend (`onnxruntime`).

Providers: the CPU execution provider on `cpu`; on `cuda:N` CUDA -> CPU (option
`provider: "tensorrt"`: TensorRT -> CUDA -> CPU), which needs onnxruntime-gpu. ONNX Runtime only
warns when a requested provider cannot be created and quietly runs on the CPU: this runner checks
every provider of the session after creation, the placement of the nodes on GPU sessions, turns
off the Python API's silent CPU retry, and fails the case instead (`pfdeploy.backends.ort_gpu`).

Precisions: fp32 and int8 on the CPU (int8: the ONNX Runtime x86 recipe, U8S8 QDQ with per-channel
weights, see `pfdeploy.exporters.quantize`); fp32 (`use_tf32` 0), tf32 (`use_tf32` 1), fp16 and
int8 on CUDA. fp16 on the CPU provider is refused for benchmarking: it has no fp16 kernels for most
operators and inserts casts, so its time measures the casts (its parity is still checked on export).

Threads: `intra_op_num_threads` = the case's thread count, `inter_op_num_threads` = 1, sequential
execution, denormals flushed to zero (`session.set_denormal_as_zero`); `describe()` reads every one
back from the session. A latency step is one `session.run` on the host batch (ONNX Runtime copies
to and from the device itself on GPU; no device clock is exposed, so GPU results carry the host
clock only). Throughput scenario: `requests` (option, default 2) `session.run` calls in flight
from as many threads, one step = all completed.

Runner options (`pfdeploy tune`'s candidates, `OnnxRuntimeBackend.tune_space`), each read back
from the session (a setting it did not apply fails the load): `defaults` (a plain
InferenceSession with no session options: ONNX Runtime's own default), `graph_optimization_level`
(all | extended | basic | disabled), `spinning` (session.intra_op.allow_spinning), `memory_arena`
(enable_cpu_mem_arena), `io_binding` (CPU: the input bound once as an OrtValue sharing the batch's
memory, outputs bound to the CPU, run_with_iobinding, outputs copied out each step), `requests`
(throughput), `provider` and `allow_cpu_nodes` (GPU).
"""
from __future__ import annotations

import functools

import numpy as np

from . import ort_gpu
from ..errors import UserError, optional_import
from .base import Backend, Runner, precision_table
from .case import CONCURRENT_SCENARIOS, LOADGEN_SCENARIOS

INSTALL_HINT = ("pip install 'pfdeploy[cpu]' (or 'pfdeploy[gpu]' for onnxruntime-gpu on CUDA 13, "
                "'pfdeploy[gpu-cu12]' on CUDA 12)")
# the distributions that install the `onnxruntime` module (they overwrite each other)
DISTRIBUTIONS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")

ORT_TYPES = {"tensor(float)": np.float32, "tensor(float16)": np.float16, "tensor(double)": np.float64,
             "tensor(uint8)": np.uint8, "tensor(int8)": np.int8}


# option graph_optimization_level -> GraphOptimizationLevel member
OPT_LEVELS = {"all": "ORT_ENABLE_ALL", "extended": "ORT_ENABLE_EXTENDED", "basic": "ORT_ENABLE_BASIC",
              "disabled": "ORT_DISABLE_ALL"}
SPINNING = "session.intra_op.allow_spinning"


class OnnxRuntimeRunner(Runner):
    backend = "onnxruntime"
    known_options = frozenset({"requests", "provider", "allow_cpu_nodes", "defaults", "graph_optimization_level",
                               "spinning", "memory_arena", "io_binding"})

    def _session_options(self, ort):
        """pfdeploy's session options, with the case's options applied (`defaults`: none at all)."""
        opts = self.case.options
        self.defaults = bool(opts.get("defaults"))
        if self.defaults:
            clash = sorted(set(opts) & {"graph_optimization_level", "spinning", "memory_arena"})
            if clash:
                raise UserError(f"onnxruntime option defaults=True sets no session option; it contradicts {', '.join(clash)}")
            return None
        so = ort.SessionOptions()
        so.intra_op_num_threads = self.case.threads
        so.inter_op_num_threads = 1
        so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        level = opts.get("graph_optimization_level", "all")
        if level not in OPT_LEVELS:
            raise UserError(f"onnxruntime option graph_optimization_level={level!r}: choose from {', '.join(OPT_LEVELS)}")
        so.graph_optimization_level = getattr(ort.GraphOptimizationLevel, OPT_LEVELS[level])
        so.add_session_config_entry("session.set_denormal_as_zero", "1")
        if "spinning" in opts:
            so.add_session_config_entry(SPINNING, "1" if opts["spinning"] else "0")
        if "memory_arena" in opts:
            so.enable_cpu_mem_arena = bool(opts["memory_arena"])
        so.log_severity_level = 3
        return so

    def _load(self) -> None:
        ort = optional_import("onnxruntime", "the onnxruntime backend", hint=INSTALL_HINT)
        self.ort = ort
        so = self._session_options(ort)
        self.so = so  # what was asked for (describe() reads the live session's options back)
        providers = self._providers(ort)
        self.requested = providers[0][0] if isinstance(providers[0], tuple) else providers[0]
        self.gpu = self.case.device.startswith("cuda")
        self.placement = None
        self.io_binding = bool(self.case.options.get("io_binding"))
        if self.gpu and (self.defaults or self.io_binding):
            raise UserError("onnxruntime options defaults and io_binding are implemented on the CPU provider only")
        if self.gpu:  # the GPU checks live in pfdeploy.backends.ort_gpu (tested with fakes)
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
            try:
                if so is None:  # a plain InferenceSession: ONNX Runtime's own defaults
                    self.session = ort.InferenceSession(self.model_file, providers=providers)
                else:
                    self.session = ort.InferenceSession(self.model_file, sess_options=so, providers=providers)
            except Exception as exc:  # ORT raises its own exception types for unreadable models
                raise UserError(f"{self.model_file}: ONNX Runtime cannot load it: "
                                f"{str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__}") from None
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
        self.output_names = [o.name for o in self.session.get_outputs()] if self.io_binding else []
        concurrent = self.case.scenario in CONCURRENT_SCENARIOS  # LoadGen's server/offline/multistream too
        if "requests" in self.case.options and not concurrent:
            raise UserError("onnxruntime option requests applies to the throughput scenario (latency runs one request)")
        self.requests = int(self.case.options.get("requests", 2)) if concurrent else 1
        self.binding = None
        self._check_applied()
        if self.io_binding and self.requests > 1:
            raise UserError("onnxruntime option io_binding runs one request at a time (not with requests > 1)")
        if self.io_binding:
            self.binding = self.session.io_binding()
            for name in self.output_names:
                self.binding.bind_output(name, "cpu")
        self._set_inputs(self.inputs)
        self.pool = None
        if self.requests > 1:
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.requests)
            self.items_per_step = self.case.batch * self.requests

    # --- concurrent requests (LoadGen's SUT): `requests` session.run calls from as many threads ---
    def in_flight(self) -> int:
        return self.requests if self.case.scenario in CONCURRENT_SCENARIOS and self.binding is None else 0

    def submit(self, inputs: np.ndarray, done) -> None:
        if not self.in_flight():
            return super().submit(inputs, done)
        if self.pool is None:  # requests=1: one thread serves the queue
            from concurrent.futures import ThreadPoolExecutor

            self.pool = ThreadPoolExecutor(self.requests)
        feed = {self.input_name: np.ascontiguousarray(inputs.astype(self.input_dtype, copy=False))}
        self.pool.submit(self.session.run, None, feed).add_done_callback(lambda f: _hand_over(f, done))

    def _providers(self, ort):
        device = self.case.device
        if device == "cpu":
            return ["CPUExecutionProvider"]
        if device.startswith("cuda"):
            index = int(device.split(":")[1]) if ":" in device else 0
            want = ort_gpu.TRT_EP if self.case.options.get("provider") == "tensorrt" else ort_gpu.CUDA_EP
            self.preloaded = ort_gpu.preload_gpu_libraries(ort, want)
            return ort_gpu.gpu_providers(want, ort.get_available_providers(),
                                         {p: provider_options(p, index, self.case.precision)
                                          for p in (ort_gpu.TRT_EP, ort_gpu.CUDA_EP)})
        raise UserError(f"onnxruntime does not run on device {device!r}")

    def _check_applied(self) -> None:
        """The session's options read back; one ONNX Runtime did not apply fails the case."""
        d = self._describe()
        opts = self.case.options
        so = self.session.get_session_options() if hasattr(self.session, "get_session_options") else self.so
        level = OPT_LEVELS[opts.get("graph_optimization_level", "all")]
        bad = []
        if so is not None and so.graph_optimization_level != getattr(self.ort.GraphOptimizationLevel, level):
            bad.append(f"graph_optimization_level={level} (read back {d['graph_optimization_level']})")
        want = {}
        if "spinning" in opts:
            want["spinning"] = bool(opts["spinning"])
        if "memory_arena" in opts:
            want["memory_arena"] = bool(opts["memory_arena"])
        if not self.defaults:
            want.update(intra_op_threads=self.case.threads, inter_op_threads=1)
        bad += [f"{k}={v!r} (read back {d.get(k)!r})" for k, v in want.items() if d.get(k) != v]
        if bad:
            raise UserError(f"ONNX Runtime did not apply {', '.join(bad)}; refusing to mislabel the result")

    def _set_inputs(self, inputs: np.ndarray) -> None:
        self.inputs = inputs
        self.feed = {self.input_name: np.ascontiguousarray(inputs.astype(self.input_dtype, copy=False))}
        if self.binding is not None:
            # the host batch bound once as an OrtValue on the CPU (sharing the numpy buffer)
            self.input_value = self.ort.OrtValue.ortvalue_from_numpy(self.feed[self.input_name], "cpu")
            if self.input_value.data_ptr() != self.feed[self.input_name].ctypes.data:
                raise UserError("ONNX Runtime copied the bound input (io_binding not applied as asked); refusing "
                                "to mislabel the result")
            self.binding.bind_ortvalue_input(self.input_name, self.input_value)

    def _step(self):
        if self.binding is not None:
            self.session.run_with_iobinding(self.binding)
            return self.binding.copy_outputs_to_cpu()  # the outputs back in host memory, as numpy
        if self.requests == 1:
            return self.session.run(None, self.feed)
        futures = [self.pool.submit(self.session.run, None, self.feed) for _ in range(self.requests)]
        return [f.result() for f in futures][-1]

    def _describe(self) -> dict:
        """Read back from the live session: providers and their options, threads, execution
        mode, optimization level, flush-to-zero."""
        so = self.session.get_session_options() if hasattr(self.session, "get_session_options") else self.so
        try:
            ftz = so.get_session_config_entry("session.set_denormal_as_zero") == "1"
        except Exception:  # noqa: BLE001 - an entry never set raises
            ftz = False
        try:  # ONNX Runtime spins its intra-op threads unless the entry says "0"
            spinning = so.get_session_config_entry(SPINNING) != "0"
        except Exception:  # noqa: BLE001 - never set: the default (on)
            spinning = True
        try:
            popts = self.session.get_provider_options()
        except Exception:  # noqa: BLE001
            popts = {}
        d = {"onnxruntime": self.ort.__version__, "providers": self.actual_providers,
             "intra_op_threads": so.intra_op_num_threads, "inter_op_threads": so.inter_op_num_threads,
             "execution_mode": str(so.execution_mode).rsplit(".", 1)[-1],
             "graph_optimization_level": str(so.graph_optimization_level).rsplit(".", 1)[-1],
             "flush_denormal": ftz, "requests": self.requests,
             "input_dtype": np.dtype(self.input_dtype).name,
             "session_options": "onnxruntime defaults" if self.defaults else "pfdeploy",
             "memory_arena": getattr(so, "enable_cpu_mem_arena", None), "spinning": spinning,
             "io_binding": self.binding is not None}
        if d["io_binding"]:
            try:  # after a run: where the outputs were written (bound to the CPU)
                d["io_binding_outputs"] = sorted({v.device_name() for v in self.binding.get_outputs()})
            except Exception:  # noqa: BLE001 - before the first run there are none
                d["io_binding_outputs"] = []
        main = popts.get(self.actual_providers[0]) or {}
        cuda = popts.get(ort_gpu.CUDA_EP) or {}
        if "use_tf32" in cuda:
            d["tf32"] = cuda["use_tf32"] == "1"
        if main:
            d["provider_options"] = {k: main[k] for k in sorted(main)}
        if self.gpu:
            d["placement"] = self.placement
            d["preload"] = getattr(self, "preloaded", None)
        return d


def _hand_over(future, done) -> None:
    """A finished session.run future handed to the SUT's `done(output, error)`."""
    exc = future.exception()
    done(None, exc) if exc is not None else done(future.result()[0], None)


def provider_options(provider: str, index: int, precision: str) -> dict:
    """Options of a GPU provider: the device, and TF32 only for the tf32 precision (the CUDA
    provider's `use_tf32` defaults to on, which would make "fp32" TF32)."""
    opts = {"device_id": index}
    if provider == "CUDAExecutionProvider":
        opts["use_tf32"] = 1 if precision == "tf32" else 0
    return opts


# the distributions that install the `onnxruntime` module (each with its own providers)
ORT_DISTS = ("onnxruntime", "onnxruntime-gpu", "onnxruntime-openvino", "onnxruntime-directml")


@functools.lru_cache(maxsize=1)
def available_providers() -> tuple[tuple[str, ...], str | None]:
    from ..errors import is_installed

    if not is_installed("onnxruntime"):
        return (), f"onnxruntime is not installed: {INSTALL_HINT}"
    from ..probecache import probed

    def probe():  # kept per machine and onnxruntime distribution (pfdeploy.probecache)
        try:
            import onnxruntime as ort

            return [list(ort.get_available_providers()), None], True
        except Exception as exc:  # noqa: BLE001 - broken install
            return [[], f"onnxruntime cannot be loaded: {exc}"], False

    providers, why = probed("onnxruntime.providers", "onnxruntime", probe, dists=ORT_DISTS)
    return tuple(providers), why


class OnnxRuntimeBackend(Backend):
    name = "onnxruntime"
    target = "onnx"
    devices = ("cpu", "cuda")
    requires = ("onnxruntime",)
    install_hint = INSTALL_HINT
    tools = {"onnxruntime": DISTRIBUTIONS}
    description = "ONNX Runtime (CPU EP; CUDA/TensorRT EPs with onnxruntime-gpu); int8: U8S8 QDQ"
    scenarios = ("latency", "throughput", *LOADGEN_SCENARIOS)
    runner = OnnxRuntimeRunner
    int8_recipe = "onnxruntime"  # pfdeploy.exporters.quantize.RECIPES

    def _device_problem(self, device):
        providers, why = available_providers()
        if why:
            return why
        want = "CPUExecutionProvider" if device.kind == "cpu" else "CUDAExecutionProvider"
        if want not in providers:
            hint = "; pip install 'pfdeploy[gpu]'" if device.kind == "cuda" else ""
            return f"onnxruntime has no {want} (providers: {', '.join(providers)}){hint}"
        return super()._device_problem(device)

    def precisions(self, device) -> dict:
        if device.kind == "cpu":
            return precision_table({
                "fp32": None, "int8": None,
                "fp16": "ONNX Runtime's CPU provider has no fp16 kernels for most operators (it inserts casts): "
                        "not a deployment precision; measure fp16 on a GPU",
                "bf16": "ONNX Runtime's CPU provider has no bf16 kernels",
                "tf32": "tf32 is a CUDA (Ampere and later) precision",
            }, "onnxruntime has no {p} path")
        return precision_table({"fp32": None, "tf32": None, "fp16": None, "int8": None},
                               "onnxruntime has no {p} path on CUDA")

    def tool_versions(self) -> dict:
        """The onnxruntime version and which of its distributions provides it (`onnxruntime_dist`)."""
        from ..versions import installed

        found = installed(DISTRIBUTIONS)
        return {**super().tool_versions(), "onnxruntime_dist": found[0] if found else None}

    def tune_space(self, device, scenario: str, batch: int, threads: int) -> list:
        """ONNX Runtime's candidates. CPU: a plain InferenceSession (the runtime's default: no
        session options), pfdeploy's settings (threads, inter-op 1, sequential, all graph
        optimisations, denormals flushed) and one knob changed at a time (graph optimisation level,
        spinning, memory arena, IO binding), int8 with the ONNX Runtime recipe (U8S8 per-channel),
        the TensorRT recipe (S8S8, float biases) and U8S8 per-tensor, all on the CPU provider.
        CUDA (thin): the CUDA provider's own default (TF32 on), fp32 (TF32 off), fp16, int8."""
        from .base import Candidate, as_device, check_space

        device = as_device(device)
        if self.unavailable(device) or self.supports_scenario(scenario):
            return []
        ok = lambda p: self._tune_ok(device, p)  # noqa: E731
        space = []
        if device.kind == "cpu":
            if not ok("fp32"):
                return []
            space.append(Candidate("default", "fp32", {"defaults": True}, default=True,
                                   note="InferenceSession(path, providers=[CPU]) with no session options"))
            space.append(Candidate("fp32", "fp32", {}, note=f"fp32, {threads} intra-op threads, inter-op 1, "
                                                            "sequential, all graph optimisations, denormals flushed"))
            space.append(Candidate("fp32-extended", "fp32", {"graph_optimization_level": "extended"},
                                   note="fp32, graph optimisation level extended (no layout optimisations)"))
            space.append(Candidate("fp32-nospin", "fp32", {"spinning": False},
                                   note="fp32, intra-op threads do not spin between steps"))
            if scenario == "latency":
                space.append(Candidate("fp32-noarena", "fp32", {"memory_arena": False},
                                       note="fp32, the CPU memory arena off"))
                space.append(Candidate("fp32-iobind", "fp32", {"io_binding": True},
                                       note="fp32, input bound once as an OrtValue, outputs bound to the CPU"))
            else:
                space.append(Candidate("fp32-r1", "fp32", {"requests": 1}, note="fp32, one request at a time"))
            if ok("int8"):
                space.append(Candidate("int8", "int8", {}, note="int8 U8S8 QDQ, per-channel weights (ONNX Runtime's "
                                                                "x86 recipe), CPU provider"))
                space.append(Candidate("int8-s8s8", "int8", {"artifact": {"recipe": "tensorrt"}},
                                       note="int8 S8S8 symmetric QDQ, float biases (the TensorRT recipe), CPU provider"))
                space.append(Candidate("int8-pertensor", "int8", {"artifact": {"recipe": "onnxruntime-pertensor"}},
                                       note="int8 U8S8 QDQ, per-tensor weights, CPU provider"))
        else:
            if ok("tf32"):
                space.append(Candidate("default", "tf32", {}, default=True,
                                       note="the CUDA provider's own default: TF32 convolutions and matmuls on"))
            for p in ("fp32", "fp16", "int8"):
                if ok(p):
                    space.append(Candidate(p, p, {}, default=not space,
                                           note=f"{p} on the CUDA provider" + (" (use_tf32 0)" if p == "fp32" else "")))
        return check_space(self.name, space)

    def artifact_request(self, precision: str, batch: int) -> dict:
        if precision == "tf32":
            return {"target": "onnx", "precision": "fp32"}
        if precision == "int8":
            return {"target": "onnx", "precision": "int8", "recipe": self.int8_recipe}
        return {"target": "onnx", "precision": precision}


BACKEND = OnnxRuntimeBackend()
