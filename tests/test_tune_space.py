"""`pfdeploy tune`'s search space (issue 23): each backend declares its candidates (`tune_space`),
the first being the runtime's own default; every runner option a candidate uses is applied by the
real runtime and read back in `describe()`, and an option that was not applied fails the load
(never a mislabelled row). Real loads of a tiny model; no timing is asserted (a shared machine)."""
from __future__ import annotations

import numpy as np
import pytest

import pfdeploy.backends as B
from pfdeploy.backends import Candidate, CaseSpec, check_space
from pfdeploy.devices import Device, parse_device
from pfdeploy.errors import UserError

CPU = parse_device("cpu", check=False)
BUILTIN = ("torch", "torch-compile", "onnxruntime", "openvino", "tensorrt")


def _spaces():
    for name in BUILTIN:
        for scenario in ("latency", "throughput"):
            yield name, scenario, B.get_backend(name).tune_space(CPU, scenario, 1, 2)


@pytest.mark.parametrize("name", BUILTIN)
def test_each_space_is_well_formed_on_this_machine(name):
    backend = B.get_backend(name)
    for scenario in ("latency", "throughput"):
        space = backend.tune_space(CPU, scenario, 1, 2)
        if backend.unavailable(CPU) or backend.supports_scenario(scenario):
            assert space == []
            continue
        assert space, (name, scenario)
        assert all(isinstance(c, Candidate) for c in space)
        assert space[0].default and sum(c.default for c in space) == 1
        names = [c.name for c in space]
        assert len(set(names)) == len(names) and space[0].name == "default"
        for c in space:
            assert backend.supports(CPU, c.precision) is None, (name, c)
            assert c.note and isinstance(c.options, dict)
            known = backend.runner.known_options
            assert known is None or set(c.options) - {"artifact"} <= known, (name, c)
        check_space(name, space)


def test_check_space_refuses_bad_declarations():
    a = Candidate("default", "fp32", {}, default=True)
    with pytest.raises(ValueError, match="unique"):
        check_space("x", [a, Candidate("default", "int8", {})])
    with pytest.raises(ValueError, match="first tune candidate"):
        check_space("x", [Candidate("fp32", "fp32", {}), a])
    with pytest.raises(ValueError, match="first tune candidate"):
        check_space("x", [a, Candidate("b", "fp32", {}, default=True)])


def test_the_defaults_are_the_runtimes_own():
    ort = {c.name: c for c in B.get_backend("onnxruntime").tune_space(CPU, "latency", 1, 2)}
    assert ort["default"].options == {"defaults": True} and ort["default"].precision == "fp32"
    assert ort["int8-s8s8"].options == {"artifact": {"recipe": "tensorrt"}}
    assert ort["int8-pertensor"].options["artifact"]["recipe"] == "onnxruntime-pertensor"
    assert B.get_backend("torch").tune_space(CPU, "latency", 1, 2)[0] == Candidate(
        "default", "fp32", {}, default=True, note="eager fp32 (TF32 off on CUDA), no options")
    ov = B.get_backend("openvino")
    if ov.unavailable(CPU):
        pytest.skip("openvino is not installed")
    from pfdeploy.backends.openvino import default_precision

    lat = ov.tune_space(CPU, "latency", 1, 2)[0]
    assert lat.options == {"precision_hint": "default", "threads": "default", "denormals": "default",
                           "io": "shared", "api": "async"}
    assert lat.precision == default_precision("CPU") in ("fp32", "bf16", "fp16")
    tput = ov.tune_space(CPU, "throughput", 1, 2)[0]
    assert "api" not in tput.options and tput.options["precision_hint"] == "default"


def test_onnxruntime_cuda_declaration_is_thin(monkeypatch):
    ort = B.get_backend("onnxruntime")
    monkeypatch.setattr(type(ort), "unavailable", lambda self, d: None)
    space = ort.tune_space(Device("cuda", 0, "cuda:0"), "latency", 1, 2)
    assert [c.name for c in space] == ["default", "fp32", "fp16", "int8"]
    assert space[0].precision == "tf32" and all(not c.options for c in space)


def test_the_per_tensor_recipe_has_its_own_key():
    from pfdeploy.exporters.keys import make_request
    from pfdeploy.exporters.quantize import RECIPES, check_recipe
    from pfdeploy.exporters.settings import parse_batch

    assert check_recipe("onnxruntime-pertensor") == "onnxruntime-pertensor"
    assert RECIPES["onnxruntime-pertensor"]["per_channel"] is False and RECIPES["onnxruntime"]["per_channel"]
    b = parse_batch(1, None)
    keys = {r: make_request("m", "synthetic:0", "onnx", "int8", b, None, recipe=r).key()
            for r in ("onnxruntime", "onnxruntime-pertensor", "tensorrt")}
    assert len(set(keys.values())) == 3


# ------------------------------------------------------------------ real loads of a tiny model
@pytest.fixture(scope="module")
def tiny_ir(tiny_onnx, tmp_path_factory):
    ov = pytest.importorskip("openvino")
    xml = tmp_path_factory.mktemp("tinyir") / "tiny.xml"
    ov.save_model(ov.convert_model(tiny_onnx), str(xml), compress_to_fp16=False)
    return str(xml)


def _x(b=2, seed=1):
    return np.random.default_rng(seed).normal(size=(b, 3, 8, 8)).astype(np.float32)


def _load(backend, model_file, precision="fp32", scenario="latency", **options):
    case = CaseSpec("tiny", backend, precision=precision, batch=2, threads=1, scenario=scenario, options=options)
    return B.get_backend(backend).load(case, _x(), model_file=model_file)


def _reference(tiny_onnx):
    with _load("onnxruntime", tiny_onnx) as r:
        return r.outputs(), r.outputs(_x(seed=2))


@pytest.mark.parametrize("scenario", ["latency", "throughput"])
def test_every_openvino_candidate_loads_reads_back_and_computes(tiny_onnx, tiny_ir, scenario):
    ref, ref2 = _reference(tiny_onnx)
    ov = B.get_backend("openvino")
    for c in ov.tune_space(CPU, scenario, 2, 1):
        if c.precision == "int8":  # an NNCF IR of its own (the exporters' tests cover it)
            continue
        case = CaseSpec("tiny", "openvino", precision=c.precision, batch=2, threads=1, scenario=scenario,
                        options=c.options, variant=c.name)
        with ov.load(case, _x(), model_file=tiny_ir) as r:
            d = r.describe()
            assert len(r.timed(3)) == 3
            tol = 2e-2 if c.precision != "fp32" else 1e-4
            np.testing.assert_allclose(r.outputs(), ref, rtol=tol, atol=tol)
            np.testing.assert_allclose(r.outputs(_x(seed=2)), ref2, rtol=tol, atol=tol)  # inputs rebound
            want = {"fp32": "f32", "bf16": "bf16", "fp16": "f16"}[c.precision]
            assert d["inference_precision"] == want, c
            assert d["io"] == c.options.get("io", "copy") and d["input_shared"] is (d["io"] == "shared")
            assert d["api"] == ("async" if scenario == "throughput" else c.options.get("api", "sync"))
            if c.options.get("precision_hint") == "default":
                assert d["precision_hint"] == "default"
                assert set(d["requested"]) == {"PERFORMANCE_HINT"}  # what benchmark_app compiles with
            else:
                assert d["requested"]["INFERENCE_NUM_THREADS"] == "1" and d["intra_op_threads"] == 1
                assert d["flush_denormal"] is True
            if "streams" in c.options:
                assert d["streams"] == c.options["streams"]
            if "requests" in c.options:
                assert d["requests"] == c.options["requests"]


def test_openvino_streams_and_requests_read_back(tiny_ir):
    with _load("openvino", tiny_ir, scenario="throughput", streams=1, requests=3, io="shared") as r:
        d = r.describe()
        assert d["streams"] == 1 and d["requests"] == 3 and d["properties"]["NUM_STREAMS"] == "1"
        assert r.items_per_step == 6 and len(r.timed(2)) == 2


def test_openvino_refuses_a_default_precision_that_is_not_the_label(tiny_ir):
    from pfdeploy.backends.openvino import default_precision

    plugin = default_precision("CPU")
    wrong = "fp32" if plugin != "fp32" else "bf16"
    with pytest.raises(UserError, match=f"default inference precision .*not {wrong}; refusing to mislabel"):
        _load("openvino", tiny_ir, precision=wrong, precision_hint="default")
    with _load("openvino", tiny_ir, precision=plugin, precision_hint="default", threads="default") as r:
        assert "INFERENCE_NUM_THREADS" not in r.describe()["requested"]


@pytest.mark.parametrize("options,match", [
    ({"api": "fast"}, "option api='fast'"),
    ({"io": "zero"}, "option io='zero'"),
    ({"threads": 3}, "option threads=3"),
    ({"nonsense": True}, "does not apply the option.*nonsense"),
    ({"requests": 2}, "requests applies to the throughput scenario"),
    ({"precision_hint": "default", "inference_precision": "f32"}, "contradict"),
])
def test_openvino_refuses_options_it_does_not_apply(tiny_ir, options, match):
    with pytest.raises(UserError, match=match):
        _load("openvino", tiny_ir, **options)


def test_openvino_refuses_sync_api_in_the_throughput_scenario(tiny_ir):
    with pytest.raises(UserError, match="api='sync' does not apply to the throughput"):
        _load("openvino", tiny_ir, scenario="throughput", api="sync")


@pytest.mark.parametrize("scenario", ["latency", "throughput"])
def test_every_onnxruntime_candidate_loads_reads_back_and_computes(tiny_onnx, scenario):
    pytest.importorskip("onnxruntime")
    ref, ref2 = _reference(tiny_onnx)
    ort = B.get_backend("onnxruntime")
    for c in ort.tune_space(CPU, scenario, 2, 1):
        if c.precision == "int8":  # quantized artifacts: test_int8_recipes_quantize_and_run
            continue
        case = CaseSpec("tiny", "onnxruntime", batch=2, threads=1, scenario=scenario, options=c.options,
                        variant=c.name)
        with ort.load(case, _x(), model_file=tiny_onnx) as r:
            assert len(r.timed(3)) == 3
            np.testing.assert_allclose(r.outputs(), ref, rtol=1e-5, atol=1e-6)
            np.testing.assert_allclose(r.outputs(_x(seed=2)), ref2, rtol=1e-5, atol=1e-6)
            d = r.describe()
            opts = c.options
            if opts.get("defaults"):
                assert d["session_options"] == "onnxruntime defaults" and d["intra_op_threads"] == 0
                assert d["flush_denormal"] is False
            else:
                assert d["session_options"] == "pfdeploy" and d["intra_op_threads"] == 1
                assert d["execution_mode"] == "ORT_SEQUENTIAL" and d["flush_denormal"] is True
            level = {"extended": "ORT_ENABLE_EXTENDED"}.get(opts.get("graph_optimization_level"), "ORT_ENABLE_ALL")
            assert d["graph_optimization_level"] == level
            assert d["spinning"] is opts.get("spinning", True)
            assert d["memory_arena"] is opts.get("memory_arena", True)
            assert d["io_binding"] is bool(opts.get("io_binding"))
            if d["io_binding"]:
                assert d["io_binding_outputs"] == ["cpu"]
            assert d["requests"] == opts.get("requests", 2 if scenario == "throughput" else 1)


@pytest.mark.parametrize("options,match", [
    ({"graph_optimization_level": "max"}, "graph_optimization_level='max'"),
    ({"defaults": True, "memory_arena": False}, "contradicts memory_arena"),
    ({"hint": "LATENCY"}, "does not apply the option.*hint"),
    ({"requests": 3}, "requests applies to the throughput scenario"),
])
def test_onnxruntime_refuses_options_it_does_not_apply(tiny_onnx, options, match):
    pytest.importorskip("onnxruntime")
    with pytest.raises(UserError, match=match):
        _load("onnxruntime", tiny_onnx, **options)


def test_onnxruntime_refuses_io_binding_with_several_requests(tiny_onnx):
    pytest.importorskip("onnxruntime")
    with pytest.raises(UserError, match="io_binding runs one request"):
        _load("onnxruntime", tiny_onnx, scenario="throughput", io_binding=True)


def test_onnxruntime_refuses_a_session_option_it_did_not_apply(tiny_onnx, monkeypatch):
    """A session whose read-back differs from the request (faked here) fails the load."""
    pytest.importorskip("onnxruntime")
    from pfdeploy.backends import onnxruntime as O

    real = O.OnnxRuntimeRunner._describe
    monkeypatch.setattr(O.OnnxRuntimeRunner, "_describe", lambda self: {**real(self), "spinning": True})
    with pytest.raises(UserError, match="did not apply spinning=False"):
        _load("onnxruntime", tiny_onnx, spinning=False)


def test_int8_recipes_quantize_and_run(tiny_onnx, tmp_path):
    """The three ONNX int8 recipes of the space, made by the real quantizer, run on the CPU provider."""
    pytest.importorskip("onnxruntime.quantization")
    import onnx

    from pfdeploy.exporters.quantize import ort_quantize

    ref, _ = _reference(tiny_onnx)
    model = onnx.load(tiny_onnx)  # the exporters name the input "input" (the calibration reader feeds it)
    model.graph.input[0].name = "input"
    model.graph.node[0].input[0] = "input"
    src = tmp_path / "tiny-input.onnx"
    onnx.save(model, src)
    batches = [_x(seed=s) for s in range(4)]
    for recipe in ("onnxruntime", "onnxruntime-pertensor", "tensorrt"):
        out = tmp_path / f"{recipe}.onnx"
        settings = ort_quantize(src, out, batches, recipe)
        assert settings["recipe"] == recipe
        model = onnx.load(out)
        w_scales = [i for i in model.graph.initializer if i.name.startswith("w") and "scale" in i.name]
        assert w_scales and (len(w_scales[0].dims) == 0) == (recipe == "onnxruntime-pertensor"), recipe
        with _load("onnxruntime", str(out), precision="int8") as r:
            np.testing.assert_allclose(r.outputs(), ref, rtol=0.1, atol=0.1)


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_torch_candidates_read_back_their_layout():
    torch = pytest.importorskip("torch")
    backend = B.get_backend("torch")
    x = np.random.default_rng(0).normal(size=(1, 3, 32, 32)).astype(np.float32)
    for c in backend.tune_space(CPU, "latency", 1, 1):
        case = CaseSpec("mobilenetv2_100", "torch", precision=c.precision, threads=1, options=c.options, variant=c.name)
        with backend.load(case, x) as r:
            d = r.describe()
            assert d["channels_last"] is (bool(c.options.get("channels_last")) or c.precision == "bf16"), c
            assert d["dtype"] == {"fp32": "torch.float32", "bf16": "torch.bfloat16"}[c.precision]
    del torch


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_torch_refuses_unknown_options_and_cpu_cuda_graph_modes():
    x = np.zeros((1, 3, 32, 32), dtype=np.float32)
    with pytest.raises(UserError, match="does not apply the option.*mode"):
        B.get_backend("torch").load(CaseSpec("mobilenetv2_100", "torch", options={"mode": "max-autotune"}), x)
    compile_ = B.get_backend("torch-compile")
    for options, match in [({"mode": "fastest"}, "mode='fastest'"), ({"mode": "reduce-overhead"}, "nothing on the CPU"),
                           ({"cuda_graphs": True}, "needs a CUDA device")]:
        with pytest.raises(UserError, match=match):
            compile_.load(CaseSpec("mobilenetv2_100", "torch-compile", options=options), x)


@pytest.mark.slow
def test_torch_compile_max_autotune_reads_back_its_mode():
    backend = B.get_backend("torch-compile")
    if backend.unavailable(CPU):
        pytest.skip(backend.unavailable(CPU))
    x = np.zeros((1, 3, 32, 32), dtype=np.float32)
    case = CaseSpec("mobilenetv2_100", "torch-compile", options={"mode": "max-autotune-no-cudagraphs"})
    with backend.load(case, x) as r:
        d = r.describe()
        assert d["mode"] == "max-autotune-no-cudagraphs" and d["mode_options"]["max_autotune"] == "True"


def test_torch_cuda_declarations_are_thin(monkeypatch):
    """On a GPU (faked: no GPU here) torch adds tf32/fp16 and channels_last fp16; torch.compile CUDA graphs."""
    from pfdeploy.backends.base import precision_table

    gpu = Device("cuda", 0, "cuda:0")
    table = precision_table({"fp32": None, "tf32": None, "fp16": None, "bf16": None}, "no {p}")
    for name in ("torch", "torch-compile"):
        backend = B.get_backend(name)
        monkeypatch.setattr(type(backend), "unavailable", lambda self, d: None)
        monkeypatch.setattr(type(backend), "precisions", lambda self, d: table)
    eager = [c.name for c in B.get_backend("torch").tune_space(gpu, "latency", 1, 2)]
    assert eager == ["default", "fp32-cl", "bf16", "tf32", "fp16", "fp16-cl"]
    compiled = {c.name: c for c in B.get_backend("torch-compile").tune_space(gpu, "latency", 1, 2)}
    assert compiled["cudagraphs"].options == {"cuda_graphs": True} and "fp16-cudagraphs" in compiled
