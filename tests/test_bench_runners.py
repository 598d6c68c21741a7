"""Runners against real runtimes on a tiny ONNX model (fast), their lifecycle, the silent
fallback guard, and the paths without a GPU or TensorRT."""
from __future__ import annotations

import itertools

import numpy as np
import pytest

from pfdeploy.bench.config import CaseSpec
from pfdeploy.backends import get_backend, load_runner_class
from pfdeploy.backends.base import RunnerStateError
from pfdeploy.errors import UserError, is_installed


@pytest.fixture(scope="module")
def tiny_onnx(tmp_path_factory):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(0, 0.3, (4, 3, 3, 3)).astype(np.float32), "w")
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("GlobalAveragePool", ["r"], ["g"]),
             helper.make_node("Flatten", ["g"], ["y"])]
    graph = helper.make_graph(nodes, "tiny", [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 8, 8])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["N", 4])], [w])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model, full_check=True)
    path = tmp_path_factory.mktemp("tiny") / "tiny.onnx"
    onnx.save(model, path)
    return str(path)


def x(batch=2):
    return np.random.default_rng(1).normal(size=(batch, 3, 8, 8)).astype(np.float32)


def counting_clock():
    c = itertools.count(0, 1000)
    return lambda: next(c)


def runner(backend, model_file, batch=2, **kw):
    case = CaseSpec("tiny", backend, batch=batch, threads=1, **kw)
    return load_runner_class(backend)(case, x(batch), model_file=model_file)


def test_onnxruntime_runner_lifecycle(tiny_onnx):
    pytest.importorskip("onnxruntime")
    r = runner("onnxruntime", tiny_onnx)
    with pytest.raises(RunnerStateError):
        r.infer()
    with r:
        out = r.infer()
        assert out[0].shape == (2, 4)
        assert r.timed(5, clock=counting_clock()) == [1000] * 5  # one clock read before and after each call
        d = r.describe()
        assert d["providers"] == ["CPUExecutionProvider"] and d["intra_op_threads"] == 1
        with pytest.raises(RunnerStateError):
            r.load()
    assert r.state == "closed"
    r.close()  # idempotent


def test_onnxruntime_throughput_has_requests_in_flight(tiny_onnx):
    pytest.importorskip("onnxruntime")
    with runner("onnxruntime", tiny_onnx, scenario="throughput", options={"requests": 3}) as r:
        assert r.items_per_step == 6
        r.timed(2)


def test_onnxruntime_refuses_a_silent_cpu_fallback(tiny_onnx, monkeypatch):
    ort = pytest.importorskip("onnxruntime")
    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("onnxruntime-gpu with CUDA here: no fallback to provoke")
    r = runner("onnxruntime", tiny_onnx, device="cuda:0")
    with pytest.raises(UserError, match="CUDAExecutionProvider"):
        r.load()
    # pretend the provider is available: ONNX Runtime then only warns and runs on the CPU
    monkeypatch.setattr(ort, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    r = runner("onnxruntime", tiny_onnx, device="cuda:0")
    with pytest.raises(UserError, match="CUDAExecutionProvider could not be created; refusing to measure a silent"):
        r.load()


@pytest.mark.openvino
def test_openvino_runner_latency_and_throughput(tiny_onnx):
    pytest.importorskip("openvino")
    with runner("openvino", tiny_onnx) as r:
        out = r.infer()
        assert list(out.values())[0].shape == (2, 4)
        props = r.describe()["properties"]
        assert props["PERFORMANCE_HINT"] == "LATENCY" and props["INFERENCE_NUM_THREADS"] == "1"
        assert r.timed(3, clock=counting_clock()) == [1000] * 3
    with runner("openvino", tiny_onnx, scenario="throughput") as r:
        assert r.describe()["properties"]["PERFORMANCE_HINT"] == "THROUGHPUT"
        assert r.items_per_step == 2 * r.nireq
        r.timed(2)


def test_backends_agree_on_the_same_input(tiny_onnx):
    pytest.importorskip("onnxruntime")
    pytest.importorskip("openvino")
    with runner("onnxruntime", tiny_onnx) as a, runner("openvino", tiny_onnx) as b:
        np.testing.assert_allclose(a.infer()[0], list(b.infer().values())[0], rtol=1e-4, atol=1e-5)


def test_torch_runner_cpu_and_no_gpu(tmp_path):
    torch = pytest.importorskip("torch")
    from pfdeploy.zoo import build_architecture

    path = tmp_path / "w.pt"
    torch.save(build_architecture("mobilenetv2_100").eval().state_dict(), path)
    case = CaseSpec("mobilenetv2_100", "torch", batch=1, threads=1, options={"channels_last": True})
    with load_runner_class("torch")(case, x(1).repeat(28, 2).repeat(28, 3), weights_file=str(path)) as r:
        assert tuple(r.infer().shape) == (1, 1000)
        assert r.describe()["channels_last"] is True and r.peak_gpu_mb() is None
    if not torch.cuda.is_available():
        gpu = CaseSpec("mobilenetv2_100", "torch", device="cuda:0", threads=1)
        with pytest.raises(UserError, match="CUDA"):
            load_runner_class("torch")(gpu, x(1), weights_file=str(path)).load()


@pytest.mark.skipif(is_installed("tensorrt"), reason="TensorRT is installed: the missing-TensorRT path cannot run")
def test_tensorrt_runner_without_tensorrt(tmp_path):
    plan = tmp_path / "m.plan"
    plan.write_bytes(b"not an engine")
    r = runner("tensorrt", str(plan), device="cuda:0")
    with pytest.raises(UserError, match=r"pip install 'pfdeploy\[gpu\]'"):
        r.load()
    assert get_backend("tensorrt").missing() and "pfdeploy[gpu]" in get_backend("tensorrt").missing()


def test_backend_precision_support_is_explicit():
    from pfdeploy.devices import Device

    assert get_backend("torch").supports("cpu", "fp16") is not None
    assert get_backend("torch").precisions(Device("cuda", 0, "cuda:0"))["fp16"] is None
    assert get_backend("openvino").supports("cuda", "fp32") is not None
    assert get_backend("tensorrt").supports("cpu", "fp32") is not None
