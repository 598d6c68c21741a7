"""Backends: the registry, what each backend probes on this machine (with fakes for the probes
where the hardware or runtime is absent: bf16 CPUs, TensorRT, CUDA), and settings read back from
the live runtimes."""
from __future__ import annotations

import importlib
import json
import sys
import types

import numpy as np
import pytest

import pfdeploy.backends as B
from pfdeploy.bench.config import PRECISIONS, CaseSpec
from pfdeploy.devices import Device, cpu_native, parse_device
from pfdeploy.errors import UsageError, UserError, is_installed

CPU = Device("cpu", None, "cpu")
AMX_FLAGS = {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"}
EPYC_FLAGS = {"avx2", "fma"}


def _fake_torch(monkeypatch, cuda_version, count):
    import torch

    monkeypatch.setattr(torch.version, "cuda", cuda_version)
    monkeypatch.setattr(torch.version, "hip", None, raising=False)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: count)


# ----------------------------------------------------------------------------- registry

def test_registry_names_order_and_did_you_mean():
    assert B.BACKEND_NAMES == ("torch", "torch-compile", "onnxruntime", "openvino", "tensorrt")
    for name in B.BACKEND_NAMES:
        b = B.get_backend(name)
        assert b.name == name and b.runner.backend == name and b.install_hint
    with pytest.raises(UsageError, match="did you mean openvino"):
        B.get_backend("openvin")
    assert B.for_target("onnx").name == "onnxruntime" and B.for_target("openvino").name == "openvino"
    assert B.for_target("trt").name == "tensorrt"


def test_the_old_runners_import_path_is_gone():
    """`pfdeploy.bench.runners` was a compatibility path; the runners live in `pfdeploy.backends`."""
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module("pfdeploy.bench.runners")
    assert B.load_runner_class("openvino") is B.get_backend("openvino").runner


def test_availability_on_cuda_without_gpu(monkeypatch):
    _fake_torch(monkeypatch, None, 0)
    avail = B.availability(parse_device("cuda:0", check=False))
    assert set(avail) == set(B.backend_names())  # the built-in ones and the plugins (the test suite's fake)
    assert "no CUDA support" in avail["torch"]
    assert avail["openvino"] and avail["tensorrt"] and avail["onnxruntime"]
    assert B.backends_for("cuda:0") == []


def test_cpu_backends():
    names = B.backends_for("cpu")
    assert names[0] == "torch" and "tensorrt" not in names


def test_list_devices_structure():
    entries = B.list_devices()
    cpu = entries[0]
    assert cpu["device"] == "cpu" and cpu["kind"] == "cpu" and cpu["name"]
    assert set(cpu["backends"]) | set(cpu["unavailable"]) == set(B.backend_names())
    assert not set(cpu["backends"]) & set(cpu["unavailable"])
    assert all(isinstance(r, str) and r for r in cpu["unavailable"].values())
    for b in cpu["backends"]:
        assert "fp32" in cpu["precisions"][b]
    for e in entries:
        parse_device(e["device"])
    json.dumps(entries)


# ----------------------------------------------------------------------------- CPU probes

def test_cpu_native_bf16_from_flags():
    assert cpu_native("bf16", AMX_FLAGS) is None
    assert "avx512_bf16" in cpu_native("bf16", EPYC_FLAGS)
    assert cpu_native("fp16", {"avx512_fp16"}) is None and cpu_native("fp16", EPYC_FLAGS)
    assert cpu_native("fp32", set()) is None


def _fake_flags(monkeypatch, flags):
    import pfdeploy.devices as D
    import pfdeploy.devices.machine as M

    monkeypatch.setattr(M, "cpu_flags", lambda: frozenset(flags))
    real = M.cpu_native
    monkeypatch.setattr(D, "cpu_native", lambda p, flags=None: real(p, M.cpu_flags() if flags is None else flags))


@pytest.mark.parametrize("flags,bf16", [(AMX_FLAGS, True), (EPYC_FLAGS, False)])
def test_torch_bf16_only_on_cpus_with_native_bf16(monkeypatch, flags, bf16):
    _fake_flags(monkeypatch, flags)
    table = B.get_backend("torch").precisions(CPU)
    assert set(table) == set(PRECISIONS)
    assert table["fp32"] is None
    assert (table["bf16"] is None) == bf16
    if not bf16:
        assert "emulate" in table["bf16"] and "avx512_bf16" in table["bf16"]
    assert table["fp16"] and table["int8"] and table["tf32"]
    assert B.get_backend("torch").best_precision(CPU) == ("bf16" if bf16 else "fp32")


def _fake_ov_caps(monkeypatch, caps):
    import pfdeploy.backends.openvino as O

    monkeypatch.setattr(O, "capabilities", lambda dev: (tuple(caps), None))


@pytest.mark.parametrize("caps,flags,expect", [
    (("FP32", "BF16", "FP16", "INT8"), AMX_FLAGS, {"fp32", "bf16", "fp16", "int8"}),
    (("FP32", "INT8", "BIN", "EXPORT_IMPORT"), EPYC_FLAGS, {"fp32", "int8"}),
    (("FP32", "BF16", "INT8"), EPYC_FLAGS, {"fp32", "int8"}),  # the plugin would emulate: refused
])
def test_openvino_precisions_from_optimization_capabilities(monkeypatch, caps, flags, expect):
    _fake_ov_caps(monkeypatch, caps)
    _fake_flags(monkeypatch, flags)
    ov = B.get_backend("openvino")
    assert set(ov.supported_precisions(CPU)) == expect
    assert ov.precisions(CPU)["tf32"]
    if "bf16" not in expect:
        assert "BF16" in ov.precisions(CPU)["bf16"] or "bf16" in ov.precisions(CPU)["bf16"]
    # bf16 is an execution precision of the fp32 IR
    assert ov.artifact_request("bf16", 1) == {"target": "openvino", "precision": "fp32"}


def test_openvino_capabilities_probe_is_real_here():
    pytest.importorskip("openvino")
    from pfdeploy.backends.openvino import capabilities

    caps, why = capabilities("CPU")
    assert why is None and "FP32" in caps
    table = B.get_backend("openvino").precisions(CPU)
    assert table["fp32"] is None
    assert (table["bf16"] is None) == ("BF16" in caps and cpu_native("bf16") is None)


def test_onnxruntime_precisions_and_int8_recipe():
    ort = B.get_backend("onnxruntime")
    table = ort.precisions(CPU)
    assert table["fp32"] is None and table["int8"] is None
    assert "casts" in table["fp16"] and table["bf16"] and table["tf32"]
    assert ort.artifact_request("int8", 1) == {"target": "onnx", "precision": "int8", "recipe": "onnxruntime"}
    assert ort.artifact_request("fp32", 4) == {"target": "onnx", "precision": "fp32"}
    cuda = ort.precisions(Device("cuda", 0, "cuda:0"))
    assert cuda["tf32"] is None and cuda["fp32"] is None
    assert ort.artifact_request("tf32", 1) == {"target": "onnx", "precision": "fp32"}


def test_onnxruntime_cuda_provider_options_keep_fp32_ieee():
    from pfdeploy.backends.onnxruntime import provider_options

    assert provider_options("CUDAExecutionProvider", 1, "fp32") == {"device_id": 1, "use_tf32": 0}
    assert provider_options("CUDAExecutionProvider", 0, "tf32")["use_tf32"] == 1
    assert "use_tf32" not in provider_options("TensorrtExecutionProvider", 0, "fp32")


def test_scenarios_are_declared():
    assert B.get_backend("torch").supports_scenario("throughput")
    assert B.get_backend("tensorrt").supports_scenario("throughput")
    assert B.get_backend("onnxruntime").supports_scenario("throughput") is None
    assert B.get_backend("openvino").supports_scenario("throughput") is None
    assert "not implemented for torch" in B.get_backend("torch").supports_scenario("throughput")


def test_tensorrt_engines_are_built_for_the_measured_batch():
    from pfdeploy.backends.tensorrt import check_batch_in_profile, profile_for_batch

    trt = B.get_backend("tensorrt")
    assert trt.artifact_request("fp16", 1) == {"target": "trt", "precision": "fp16", "dynamic_batch": (1, 1, 64)}
    assert trt.artifact_request("fp32", 16)["dynamic_batch"] == (1, 16, 64)
    assert profile_for_batch(128) == (1, 128, 128)
    prof = {"min": [1, 3, 224, 224], "opt": [8, 3, 224, 224], "max": [64, 3, 224, 224]}
    check_batch_in_profile(64, prof, "m.plan")
    with pytest.raises(UserError, match="batch 65 is outside the optimization profile.*1 to 64"):
        check_batch_in_profile(65, prof, "m.plan")


def test_tensorrt_precisions_from_compute_capability(monkeypatch):
    import torch

    trt = B.get_backend("tensorrt")
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (7, 5))
    t = trt.precisions(Device("cuda", 0, "cuda:0"))
    assert t["fp32"] is None and t["fp16"] is None and t["int8"] is None and "8.0" in t["tf32"]
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda i=0: (9, 0))
    assert trt.precisions(Device("cuda", 0, "cuda:0"))["tf32"] is None
    assert trt.best_precision(Device("cuda", 0, "cuda:0")) == "int8"


def test_best_precision_follows_the_declared_order(monkeypatch):
    ov = B.get_backend("openvino")
    _fake_flags(monkeypatch, AMX_FLAGS)
    _fake_ov_caps(monkeypatch, ("FP32", "BF16"))
    assert ov.best_precision(CPU) == "bf16"
    _fake_ov_caps(monkeypatch, ("FP32",))
    assert ov.best_precision(CPU) == "fp32"


# ----------------------------------------------------------------------------- read-back

def _x(b=2):
    return np.random.default_rng(1).normal(size=(b, 3, 8, 8)).astype(np.float32)


def test_onnxruntime_reads_back_its_session_settings(tiny_onnx):
    pytest.importorskip("onnxruntime")
    case = CaseSpec("tiny", "onnxruntime", batch=2, threads=2)
    with B.get_backend("onnxruntime").load(case, _x(), model_file=tiny_onnx) as r:
        d = r.describe()
        assert d["intra_op_threads"] == 2 and d["inter_op_threads"] == 1
        assert d["execution_mode"] == "ORT_SEQUENTIAL" and d["flush_denormal"] is True
        assert d["providers"] == ["CPUExecutionProvider"]
        out = r.outputs()
        assert out.shape == (2, 4) and out.dtype == np.float32


def _tiny_ir(tmp_path, tiny_onnx):
    ov = pytest.importorskip("openvino")
    xml = tmp_path / "tiny.xml"
    ov.save_model(ov.convert_model(tiny_onnx), str(xml), compress_to_fp16=False)
    return str(xml)


def test_openvino_reads_back_the_compiled_properties(tmp_path, tiny_onnx):
    xml = _tiny_ir(tmp_path, tiny_onnx)
    case = CaseSpec("tiny", "openvino", batch=2, threads=1)
    with B.get_backend("openvino").load(case, _x(), model_file=xml) as r:
        d = r.describe()
        assert d["inference_precision"] == "f32" and d["intra_op_threads"] == 1
        assert d["flush_denormal"] is True and d["properties"]["PERFORMANCE_HINT"] == "LATENCY"
        assert d["requested"]["INFERENCE_PRECISION_HINT"] == "f32"


def test_openvino_refuses_a_hint_the_plugin_did_not_apply(tmp_path, tiny_onnx):
    """The CPU plugin silently compiles f32 when it cannot run bf16: the read-back catches it."""
    xml = _tiny_ir(tmp_path, tiny_onnx)
    from pfdeploy.backends.openvino import capabilities

    if "BF16" in capabilities("CPU")[0]:
        pytest.skip("this CPU runs bf16: no silent fallback to provoke")
    case = CaseSpec("tiny", "openvino", precision="bf16", batch=2, threads=1)
    with pytest.raises(UserError, match="compiled bf16 at inference precision f32, not bf16"):
        B.get_backend("openvino").load(case, _x(), model_file=xml)


def test_torch_setup_reads_back_threads_and_flush_to_zero(monkeypatch):
    """In a subprocess: thread pools are per process."""
    import subprocess

    code = ("import json; from pfdeploy.backends import get_backend; "
            "print(json.dumps(get_backend('torch').setup_process(1)))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    d = json.loads(out.stdout.strip().splitlines()[-1])
    assert d["torch_threads"] == 1 and d["torch_interop"] == 1
    assert d["flush_denormal"] is d["flush_denormal_supported"]


def test_torch_denormal_read_back_sees_the_switch():
    import torch

    from pfdeploy.devices.threads import torch_denormals_flushed

    try:
        if not torch.set_flush_denormal(True):
            pytest.skip("this CPU cannot flush denormals")
        assert torch_denormals_flushed() is True
        torch.set_flush_denormal(False)
        assert torch_denormals_flushed() is False
    finally:
        torch.set_flush_denormal(False)


def test_torch_cuda_tf32_switches(monkeypatch):
    """fp32 on CUDA turns cuDNN's default-on TF32 off; tf32 turns both on (fake CUDA checks)."""
    import torch

    from pfdeploy.backends.torch_eager import TorchRunner

    seen = {}

    class Stop(Exception):
        pass

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda device: None)  # the runner makes cuda:N current
    monkeypatch.setattr(torch.cuda, "current_stream", lambda device=None: object())

    def build(self):
        seen[self.case.precision] = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
        raise Stop

    monkeypatch.setattr(TorchRunner, "_build", build)
    old = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32)
    try:
        for p in ("fp32", "tf32"):
            r = TorchRunner(CaseSpec("resnet50", "torch", device="cuda:0", precision=p), np.zeros((1, 3, 4, 4), np.float32))
            with pytest.raises(Stop):
                r.load()
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = old
    assert seen == {"fp32": (False, False), "tf32": (True, True)}


def test_tensorrt_runner_checks_the_profile_and_set_input_shape(monkeypatch, tmp_path):
    """Against a stand-in `tensorrt` module and fake CUDA (no GPU here): a batch outside the
    engine's profile is a clear error before any buffer is made."""
    import torch

    from pfdeploy.backends.tensorrt import TensorRtRunner

    trt = types.ModuleType("tensorrt")
    trt.__version__ = "10.13.0"
    trt.TensorIOMode = types.SimpleNamespace(INPUT="in", OUTPUT="out")

    class Engine:
        num_io_tensors = 2

        def get_tensor_name(self, i):
            return ["input", "logits"][i]

        def get_tensor_mode(self, n):
            return "in" if n == "input" else "out"

        def get_tensor_profile_shape(self, n, i):
            return [(1, 3, 8, 8), (4, 3, 8, 8), (4, 3, 8, 8)]

        def create_execution_context(self):
            return types.SimpleNamespace(set_input_shape=lambda n, s: False)

    class Runtime:
        def __init__(self, logger):
            pass

        def deserialize_cuda_engine(self, blob):
            return Engine()

    trt.Runtime = Runtime
    trt.Logger = type("Logger", (), {"WARNING": 2, "__init__": lambda self, level: None})
    monkeypatch.setitem(sys.modules, "tensorrt", trt)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"x")
    r = TensorRtRunner(CaseSpec("m", "tensorrt", device="cuda:0", batch=8), np.zeros((8, 3, 8, 8), np.float32),
                       model_file=str(plan))
    with pytest.raises(UserError, match="batch 8 is outside the optimization profile"):
        r.load()
    r = TensorRtRunner(CaseSpec("m", "tensorrt", device="cuda:0", batch=2), np.zeros((2, 3, 8, 8), np.float32),
                       model_file=str(plan))
    with pytest.raises(UserError, match="TensorRT refused input shape"):
        r.load()


@pytest.mark.skipif(not is_installed("onnxruntime"), reason="onnxruntime not installed")
def test_the_same_runner_class_verifies_and_times(tiny_onnx):
    """The exporters' parity runner is the backend's Runner with the bench's settings."""
    from pfdeploy.exporters.parity import artifact_runner

    art = types.SimpleNamespace(target="onnx", precision="fp32", model_name="tiny", model_file=tiny_onnx,
                                manifest={})
    run = artifact_runner(art, threads=1)
    y1, y3 = run(_x(1)), run(_x(3))
    assert y1.shape == (1, 4) and y3.shape == (3, 4)
    assert run.config["backend"] == "onnxruntime" and run.config["intra_op_threads"] == 1
    run.close()


@pytest.mark.skipif(not is_installed("onnxruntime"), reason="onnxruntime not installed")
def test_bench_worker_verifies_with_the_object_it_times(tiny_onnx, tmp_path):
    """The worker's parity op runs the loaded runner (the one timed) on the parity inputs, and
    the timed batch is the prepared one again afterwards."""
    from pfdeploy.bench.worker import _Worker
    from pfdeploy.exporters.parity import parity_record

    x = _x(2)
    np.save(tmp_path / "x.npy", x)
    w = _Worker()
    case = CaseSpec("tiny", "onnxruntime", batch=2, threads=1).to_dict()
    loaded = w.load(case, str(tmp_path / "x.npy"), model_file=tiny_onnx)
    assert loaded["describe"]["intra_op_threads"] == 1 and loaded["threads"]["env"]["OMP_NUM_THREADS"] == "1"
    runner = w.runner
    before = runner.outputs()
    xs = {f"x{i}": np.random.default_rng(10 + i).normal(size=(2, 3, 8, 8)).astype(np.float32) for i in range(3)}
    np.savez(tmp_path / "p.npz", **xs)
    assert w.parity(str(tmp_path / "p.npz"), str(tmp_path / "o.npz")) == {"n": 3}
    assert w.runner is runner
    outs = np.load(tmp_path / "o.npz")
    import onnxruntime as ort

    sess = ort.InferenceSession(tiny_onnx, providers=["CPUExecutionProvider"])
    for i in range(3):
        np.testing.assert_allclose(outs[f"y{i}"], sess.run(None, {"x": xs[f"x{i}"]})[0], rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(runner.outputs(), before)  # the timed batch is back in place
    rec = parity_record([(2, sess.run(None, {"x": xs[f"x{i}"]})[0], outs[f"y{i}"], None) for i in range(3)], "fp32")
    assert rec["verdict"] == "passed" and rec["tolerance"]["atol"] == 1e-4
    w.close()
