"""The GPU paths, exercised here without a GPU through stand-ins that behave like the real APIs on
the points pfdeploy relies on (return values, error paths):

- ONNX Runtime on CUDA: the provider list, every provider checked, node placement, the Python
  API's silent CPU retry turned off, `preload_dlls()` (fake `onnxruntime` module: a session keeps
  only the providers it could create and appends the CPU provider itself, as ONNX Runtime does;
  `session.disable_cpu_ep_fallback` refuses an explicitly listed CPU provider and any node on the CPU).
- Peak GPU memory: one NVML per-process definition for every backend (fake `pynvml`).
- CUDA events on the case's device for cuda:N (fake `torch` with one current stream per device).
The real runtimes on a GPU run in scripts/gpu_check.sh (docs/gpu.md)."""
from __future__ import annotations

import os
import sys
import types
from collections import Counter

import numpy as np
import pytest

from pfdeploy.bench.config import CaseSpec
from pfdeploy.backends import load_runner_class
from pfdeploy.backends import ort_gpu
from pfdeploy.devices.gpu_memory import GpuMemorySampler
from pfdeploy.errors import UserError

TRT, CUDA, CPU = ort_gpu.TRT_EP, ort_gpu.CUDA_EP, ort_gpu.CPU_EP


# ------------------------------------------------------------------ a stand-in for onnxruntime
def fake_ort(available=(TRT, CUDA, CPU), creatable=(TRT, CUDA, CPU), placement=None, record_api=True,
             preload=True):
    """`placement`: {provider: [op_type, ...]} the partitioner would produce."""
    log = {"sessions": [], "preload": 0}
    ort = types.ModuleType("onnxruntime")
    ort.__version__ = "1.31.1"
    ort.ExecutionMode = types.SimpleNamespace(ORT_SEQUENTIAL=0)
    ort.GraphOptimizationLevel = types.SimpleNamespace(ORT_ENABLE_ALL=99)
    ort.get_available_providers = lambda: list(available)
    if preload:
        def preload_dlls(cuda=True, cudnn=True, msvc=True, directory=None):
            log["preload"] += 1
        ort.preload_dlls = preload_dlls
    placement = placement if placement is not None else {CUDA: ["Conv", "Relu", "Conv"]}

    class SessionOptions:
        def __init__(self):
            self.config = {}

        def add_session_config_entry(self, key, value):
            self.config[key] = value

    class Node:
        def __init__(self, op):
            self.op_type, self.name, self.domain = op, f"n_{op}", ""

    class Subgraph:
        def __init__(self, ep, ops):
            self.ep_name, self._ops = ep, ops

        def get_nodes(self):
            return [Node(o) for o in self._ops]

    class InferenceSession:
        def __init__(self, path, sess_options=None, providers=None, **kwargs):
            self.so = sess_options
            self.kwargs = kwargs
            self.fallback = int(kwargs.get("enable_fallback", 1)) == 1
            names = [p[0] if isinstance(p, tuple) else p for p in providers]
            self.options = {p[0]: p[1] for p in providers if isinstance(p, tuple)}
            strict = sess_options.config.get(ort_gpu.DISABLE_CPU_FALLBACK) == "1"
            if strict and CPU in names:
                raise RuntimeError("Conflicting session configuration: explicitly added the CPU EP to the session, "
                                   "but also disabled fallback to the CPU EP via session configuration options.")
            # providers that cannot be created are dropped with a warning; the CPU EP is always there
            self.providers = [n for n in names if n in creatable and n in available]
            if CPU not in self.providers:
                self.providers.append(CPU)
            self.placed = {ep: ops for ep, ops in placement.items() if ep in self.providers}
            lost = [op for ep, ops in placement.items() if ep not in self.providers for op in ops]
            if lost:
                self.placed.setdefault(CPU, []).extend(lost)
            if strict and self.placed.get(CPU):
                raise RuntimeError("This session contains graph nodes that are assigned to the default CPU EP, "
                                   "but fallback to CPU EP has been explicitly disabled by the user.")
            log["sessions"].append(self)

        def disable_fallback(self):
            self.fallback = False

        def get_providers(self):
            return list(self.providers)

        def get_inputs(self):
            return [types.SimpleNamespace(name="input", type="tensor(float)")]

        def run(self, outputs, feed):
            return [np.zeros((feed["input"].shape[0], 4), np.float32)]

    if record_api:
        def get_provider_graph_assignment_info(self):
            if self.so.config.get(ort_gpu.RECORD_PLACEMENT) != "1":
                return []  # not recorded unless asked for
            return [Subgraph(ep, ops) for ep, ops in self.placed.items()]
        InferenceSession.get_provider_graph_assignment_info = get_provider_graph_assignment_info

    ort.SessionOptions, ort.InferenceSession = SessionOptions, InferenceSession
    return ort, log


def ort_runner(monkeypatch, ort, device="cuda:1", **options):
    monkeypatch.setitem(sys.modules, "onnxruntime", ort)
    monkeypatch.setitem(sys.modules, "tensorrt", types.SimpleNamespace(__version__="10.16.1.11"))
    case = CaseSpec("tiny", "onnxruntime", device=device, batch=2, threads=1, options=options)
    return load_runner_class("onnxruntime")(case, np.zeros((2, 3, 8, 8), np.float32), model_file="m.onnx")


def test_tensorrt_provider_list_is_tensorrt_cuda_cpu_on_the_cases_device(monkeypatch):
    ort, log = fake_ort()
    with ort_runner(monkeypatch, ort, provider="tensorrt") as r:
        s = log["sessions"][-1]
        assert s.get_providers() == [TRT, CUDA, CPU]
        assert s.options == {TRT: {"device_id": 1}, CUDA: {"device_id": 1, "use_tf32": 0}}  # fp32: no TF32
        d = r.describe()
        assert d["providers"] == [TRT, CUDA, CPU]
        assert d["preload"] == {"tensorrt": "10.16.1.11", "preload_dlls": "called"} and log["preload"] == 1
        assert d["placement"]["nodes"] == {CUDA: 3}


def test_every_provider_is_checked_not_only_the_first(monkeypatch):
    # the CUDA provider cannot be created: ONNX Runtime warns and would run TensorRT's rejects on the CPU
    ort, _ = fake_ort(creatable=(TRT, CPU), placement={TRT: ["TRTKernel"], CUDA: ["Softmax"]})
    r = ort_runner(monkeypatch, ort, provider="tensorrt")
    with pytest.raises(UserError, match="CUDAExecutionProvider could not be created"):
        r.load()


def test_cuda_provider_missing_from_the_build_is_a_clear_error(monkeypatch):
    ort, _ = fake_ort(available=(CPU,))
    with pytest.raises(UserError, match=r"no CUDAExecutionProvider here.*gpu-cu12"):
        ort_runner(monkeypatch, ort).load()
    ort, _ = fake_ort(available=(TRT, CPU))  # TensorRT without CUDA between it and the CPU: refused
    with pytest.raises(UserError, match="no CUDAExecutionProvider"):
        ort_runner(monkeypatch, ort, provider="tensorrt").load()


def test_compute_nodes_on_the_cpu_fail_the_case_unless_allowed(monkeypatch):
    placed = {TRT: ["TRTKernel"], CUDA: ["Shape"], CPU: ["Shape", "Gather", "NonMaxSuppression", "Conv", "Conv"]}
    ort, _ = fake_ort(placement=placed)
    with pytest.raises(UserError, match=r"3 compute node\(s\) would run on the CPU provider \(Conv x2, NonMaxSuppression x1\)"):
        ort_runner(monkeypatch, ort, provider="tensorrt").load()
    with ort_runner(monkeypatch, ort, provider="tensorrt", allow_cpu_nodes=True) as r:
        p = r.describe()["placement"]
        assert p["nodes"] == {TRT: 1, CUDA: 1, CPU: 5} and "3 compute node(s)" in p["warning"]
        assert p["cpu_ops"] == {"Conv": 2, "Gather": 1, "NonMaxSuppression": 1, "Shape": 1}


def test_shape_computations_may_stay_on_the_cpu(monkeypatch):
    ort, _ = fake_ort(placement={CUDA: ["Conv", "MatMul", "Reshape"], CPU: ["Shape", "Gather", "Unsqueeze", "Concat"]})
    with ort_runner(monkeypatch, ort) as r:
        p = r.describe()["placement"]
        assert p["nodes"] == {CUDA: 3, CPU: 4} and "warning" not in p


def test_the_python_apis_silent_cpu_retry_is_off(monkeypatch):
    ort, log = fake_ort()
    with ort_runner(monkeypatch, ort):
        s = log["sessions"][-1]
        assert s.kwargs.get("enable_fallback") == 0 and s.fallback is False
        assert s.so.config[ort_gpu.RECORD_PLACEMENT] == "1"


def test_older_onnxruntime_refuses_any_cpu_node_with_a_clear_message(monkeypatch):
    # no placement API (< 1.24): session.disable_cpu_ep_fallback, and the CPU provider not listed
    ort, log = fake_ort(record_api=False, preload=False)
    with ort_runner(monkeypatch, ort) as r:
        s = log["sessions"][-1]
        assert s.so.config[ort_gpu.DISABLE_CPU_FALLBACK] == "1" and s.get_providers() == [CUDA, CPU]
        assert r.describe()["preload"]["preload_dlls"].startswith("not available")
    ort, _ = fake_ort(record_api=False, placement={CUDA: ["Conv"], CPU: ["Shape"]})
    with pytest.raises(UserError, match="some nodes would run on the CPU provider"):
        ort_runner(monkeypatch, ort).load()


def test_cpu_sessions_are_unchanged(monkeypatch):
    ort, log = fake_ort()
    with ort_runner(monkeypatch, ort, device="cpu") as r:
        assert r.describe()["providers"] == [CPU] and log["preload"] == 0
        assert "enable_fallback" not in log["sessions"][-1].kwargs


# ------------------------------------------------------------------ peak GPU memory (NVML)
class NVMLError(Exception):
    pass


def fake_nvml(processes_per_gpu, init_error=None):
    """`processes_per_gpu`: a list (one per GPU) of a list of (pid, used bytes or None), or a
    callable returning it (changing between samples)."""
    nv = types.ModuleType("pynvml")
    nv.calls = Counter()

    snap = {}

    def refresh():  # the GPUs' process lists as of this sample (a sample starts with the count)
        snap["now"] = processes_per_gpu() if callable(processes_per_gpu) else processes_per_gpu
        return snap["now"]

    def state():
        return snap["now"]

    def nvmlInit():
        nv.calls["init"] += 1
        if init_error:
            raise NVMLError(init_error)

    nv.nvmlInit = nvmlInit
    nv.nvmlShutdown = lambda: nv.calls.update(["shutdown"])
    nv.nvmlDeviceGetCount = lambda: len(refresh())
    nv.nvmlDeviceGetHandleByIndex = lambda i: ("handle", i)
    nv.nvmlDeviceGetComputeRunningProcesses = lambda h: [
        types.SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in state()[h[1]]]
    return nv


def test_nvml_sampler_counts_only_this_process_over_every_gpu_and_keeps_the_peak():
    seq = iter([[[(7, 100 << 20), (42, 900 << 20)], [(7, 20 << 20)]],
                [[(7, 300 << 20)], [(7, 20 << 20)]],
                [[(7, 50 << 20)], []]])
    nv = fake_nvml(lambda: next(seq))
    s = GpuMemorySampler(pid=7, nvml=nv)
    assert [s.sample() for _ in range(3)] == [120 << 20, 320 << 20, 50 << 20]
    r = s.result()
    assert r["peak_gpu_mb"] == 320 and r["peak_gpu_source"].startswith("NVML per-process") and "3 samples" in r["peak_gpu_source"]
    s.close()
    assert nv.calls["init"] == 1 and nv.calls["shutdown"] == 1


@pytest.mark.parametrize("nv,reason", [
    (fake_nvml([[(42, 1 << 30)]]), "lists no GPU process with this worker's pid"),
    (fake_nvml([[(7, None)]]), "no per-process memory"),
    (fake_nvml([], init_error="NVML Shared Library Not Found"), "NVML could not start: NVML Shared Library Not Found"),
])
def test_nvml_sampler_says_why_there_is_no_figure(nv, reason):
    s = GpuMemorySampler(pid=7, nvml=nv)
    assert s.sample() is None and s.sample() is None
    r = s.result()
    assert r["peak_gpu_mb"] is None and reason in r["peak_gpu_source"]
    assert nv.calls["init"] <= 1  # a failed start is not retried per sample


def test_worker_reports_nvml_peak_for_cuda_cases(monkeypatch, tmp_path):
    """The worker's close reply: NVML's per-process peak whatever the backend, the runtime's own
    figure only as detail. (Before: each runner's own, incomparable figure; none for ONNX Runtime.)"""
    from pfdeploy.bench import worker as W
    from pfdeploy.bench.config import StopRule

    used = {"bytes": 500 << 20}
    nv = fake_nvml(lambda: [[(os.getpid(), used["bytes"])]])
    monkeypatch.setitem(sys.modules, "pynvml", nv)
    inputs = tmp_path / "x.npy"
    np.save(inputs, np.zeros((1, 3, 4, 4), np.float32))
    w = W._Worker()
    case = CaseSpec("fake", "fake", device="cuda:0", batch=1, threads=1, options={"work_us": 1})
    w.load(case=case.to_dict(), inputs=str(inputs))
    used["bytes"] = 700 << 20  # grows during warm-up
    w.warmup(rule=StopRule(min_iters=2, min_time_s=0.001, max_time_s=1, warmup_iters=2, warmup_time_s=0.001,
                           min_samples=2).to_dict())
    used["bytes"] = 600 << 20
    w.measure(iters=3)
    out = w.close()
    assert out["peak_gpu_mb"] == 700 and "NVML per-process" in out["peak_gpu_source"]
    assert "4 samples" in out["peak_gpu_source"]  # load, first inference, warm-up, one round
    cpu = W._Worker()
    cpu.load(case=CaseSpec("fake", "fake", batch=1, threads=1).to_dict(), inputs=str(inputs))
    assert cpu.close()["peak_gpu_mb"] is None and nv.calls["init"] == 1  # CPU cases never touch NVML


# ------------------------------------------------------------------ CUDA events on cuda:N
def fake_torch(log):
    """torch.cuda as far as the runner's step uses it: one current stream per device, the current
    device 0 until set_device; Event.record() without a stream records on the current device's."""
    cur = {"device": 0}
    streams = {}

    def current_stream(device=None):
        idx = cur["device"] if device is None else (device if isinstance(device, int) else device.index)
        return streams.setdefault(idx, types.SimpleNamespace(device=idx))

    class Event:
        def __init__(self, enable_timing=False):
            self.stream = None

        def record(self, stream=None):
            self.stream = stream if stream is not None else current_stream()
            log.append(self.stream.device)

        def synchronize(self):
            pass

        def elapsed_time(self, other):
            return 1.0

    class Tensor:
        def to(self, device, non_blocking=False):
            return self

    class InferenceMode:
        def __enter__(self):
            return self

        def __exit__(self, *a):
            return False

    cuda = types.SimpleNamespace(current_stream=current_stream, Event=Event,
                                 set_device=lambda d: cur.update(device=d.index))
    return types.SimpleNamespace(cuda=cuda, inference_mode=InferenceMode), Tensor


def test_cuda_events_are_recorded_on_the_cases_device():
    log = []
    torch, Tensor = fake_torch(log)
    r = load_runner_class("torch")(CaseSpec("m", "torch", device="cuda:1", threads=1), np.zeros((1, 3, 2, 2), np.float32))
    dev = types.SimpleNamespace(type="cuda", index=1)
    # what _prepare sets up (without building a model): torch, device, events, the stream
    r.torch, r.device, r.cuda, r.model, r.x_host = torch, dev, True, lambda x: x, Tensor()
    r.stream = torch.cuda.current_stream(dev)
    r._events = [torch.cuda.Event(enable_timing=True) for _ in range(4)]
    r._step()
    assert log == [1, 1, 1, 1]
    assert r.device_ms == [1.0] and r.h2d_ms == [1.0] and r.d2h_ms == [1.0]

