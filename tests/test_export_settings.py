"""Exporter logic that needs no export: settings, cache keys, manifests, atomic directories,
parity figures, the TensorRT decisions (profile, trtexec line, engine compatibility, parser
errors) and `check --target trt` on hand-made ONNX graphs."""
from __future__ import annotations

import json
import os
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from pfdeploy import outputs, publish
from pfdeploy.clock import utc_now_iso
from pfdeploy.errors import UsageError, UserError
from pfdeploy.exporters import artifact as A
from pfdeploy.exporters import manifest_io as M
from pfdeploy.exporters import parity as P
from pfdeploy.exporters import settings as S
from pfdeploy.exporters import tensorrt as T


# --- settings --------------------------------------------------------------------------------

def test_batch_parsing_and_parity_batches():
    d = S.parse_batch()
    assert (d.dynamic, d.min, d.opt, d.max) == (True, *S.DEFAULT_DYNAMIC)
    assert d.example == 2  # never 1 for a dynamic axis (the ViT reshape trap)
    assert d.parity_batches() == [1, 3] and d.example not in d.parity_batches()
    s = S.parse_batch(batch=4)
    assert (s.dynamic, s.min, s.max, s.example, s.parity_batches()) == (False, 4, 4, 4, [4])
    r = S.parse_batch(dynamic_batch="4:8:16")
    assert r.example == 4 and r.parity_batches() == [4, 16]
    assert S.parse_batch(dynamic_batch=(1, 2, 2)).parity_batches() == [1, 2]


@pytest.mark.parametrize("kw, match", [
    (dict(batch=2, dynamic_batch="1:2:4"), "not both"),
    (dict(batch=0), "between 1"),
    (dict(batch="x"), "positive integer"),
    (dict(dynamic_batch="1:8"), "MIN:OPT:MAX"),
    (dict(dynamic_batch="8:4:16"), "MIN <= OPT <= MAX"),
    (dict(dynamic_batch="1:1:1"), "MAX >= 2"),
])
def test_bad_batch_settings(kw, match):
    with pytest.raises(UsageError, match=match):
        S.parse_batch(**kw)


def test_targets_and_precisions():
    from pfdeploy.exporters.targets import canonical_target, check_precision, get_target, target_names

    assert canonical_target("TensorRT") == "trt" and canonical_target("ov") == "openvino"
    assert target_names()[:3] == ("onnx", "openvino", "trt")
    with pytest.raises(UsageError, match="unknown target 'tflite'; choose from onnx, openvino, trt \\(tensorrt\\)"):
        canonical_target("tflite")
    with pytest.raises(UsageError, match="choose from fp32, fp16, int8"):
        check_precision("onnx", "bf16")
    with pytest.raises(UsageError, match="bf16 is an execution precision"):
        check_precision("openvino", "bf16")
    assert {t: get_target(t).model_file for t in ("onnx", "openvino", "trt")} == {
        "onnx": "model.onnx", "openvino": "model.xml", "trt": "model.plan"}
    with pytest.raises(UsageError, match="--int8-recipe only applies to --to onnx --precision int8"):
        get_target("openvino").int8_recipe("int8", "tensorrt")
    assert get_target("trt").int8_recipe("int8", None) == "tensorrt" and get_target("onnx").int8_recipe("int8", None) == "onnxruntime"


def _req(**over):
    base = dict(model="pf_vit_ti", weights_source="synthetic:0", target="onnx", precision="fp32",
                batch=S.parse_batch(), tools={"torch": "2.0"}, pfdeploy_version="0.1.0")
    base.update(over)
    return S.ExportRequest(**base)


def test_cache_key_is_stable_and_covers_every_setting():
    key = _req().key()
    assert key == _req().key() and len(key) == 64
    variants = [dict(model="pf_pit_ti"), dict(weights_source="synthetic:1"), dict(target="openvino"),
                dict(precision="fp16"), dict(batch=S.parse_batch(batch=1)), dict(opset=17),
                dict(calib=S.CalibSpec("synthetic", 8)), dict(tools={"torch": "2.1"}),
                dict(pfdeploy_version="0.2.0")]
    keys = {_req(**v).key() for v in variants}
    assert key not in keys and len(keys) == len(variants)
    assert _req().dirname().startswith("pf_vit_ti-fp32-")
    assert ":" not in _req(model="timm:resnet18").dirname()


# --- manifests and atomic directories -------------------------------------------------------

def _fake_artifact(tmp_path: Path, content: bytes = b"0123456789") -> Path:
    d = tmp_path / "art"
    d.mkdir()
    (d / "model.onnx").write_bytes(content)
    files = M.files_digest(d, ["model.onnx"])
    manifest = {"format": M.FORMAT, "version": M.VERSION, "status": "ok", "key": "k", "model": {"name": "pf_vit_ti"},
                "weights": {"source": "synthetic:0"}, "target": "onnx", "precision": "fp32", "exporter": {},
                "tools": {}, "files": files, "model_file": "model.onnx", "sha256": M.artifact_sha256(files),
                "created_at": utc_now_iso(), "pfdeploy_version": "0"}
    M.write_manifest(d, manifest)
    return d


def test_manifest_round_trip_and_no_temp_files(tmp_path):
    d = _fake_artifact(tmp_path)
    art = A.load_artifact(d)
    assert art.model_file == d / "model.onnx" and art.status == "ok"
    assert art.sha256 == M.files_digest(d, ["model.onnx"])["model.onnx"]["sha256"]
    assert sorted(p.name for p in d.iterdir()) == ["manifest.json", "model.onnx"]
    assert A.load_artifact(d / "model.onnx").path == d  # the model file also opens its artifact


@pytest.mark.parametrize("damage, match", [
    (lambda d: (d / "model.onnx").write_bytes(b"01234"), "truncated"),
    (lambda d: (d / "model.onnx").write_bytes(b"9876543210"), "sha256 does not match"),
    (lambda d: (d / "model.onnx").unlink(), "missing"),
    (lambda d: (d / "manifest.json").write_text('{"format": "pfdeploy-artifact", "vers'), "corrupt manifest"),
    (lambda d: (d / "manifest.json").unlink(), "no manifest.json"),
    (lambda d: (d / "manifest.json").write_text(json.dumps({"format": "pfdeploy-artifact", "version": 1})),
     "incomplete manifest"),
])
def test_damaged_artifacts_give_one_clear_error(tmp_path, damage, match):
    d = _fake_artifact(tmp_path)
    damage(d)
    with pytest.raises(UserError, match=match):
        A.load_artifact(d)


def test_publish_dir_keeps_the_first_and_replaces_on_request(tmp_path):
    final = tmp_path / "final"
    for i, replace in enumerate((False, False, True)):
        tmp = publish.make_temp_dir(tmp_path, "final")
        (tmp / "x").write_text(str(i))
        publish.publish_dir(tmp, final, replace=replace)
        assert not tmp.exists()
    assert (final / "x").read_text() == "2"
    assert [p.name for p in tmp_path.iterdir()] == ["final"]  # no temp or old directories left


def test_unwritable_destinations(tmp_path):
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(UserError, match="is a file, not a directory"):
        outputs.check_output_dir(f / "out")


# --- parity figures --------------------------------------------------------------------------

def test_compare_and_judge():
    rng = np.random.default_rng(0)
    ref = rng.normal(size=(3, 10))
    same = P.compare(ref, ref + 1e-6)
    assert same["top1"] == 1.0 and same["max_abs"] == pytest.approx(1e-6) and same["cosine_min"] > 0.999999
    assert P.judge(same, "fp32") == []
    worse = P.compare(ref, ref + 1e-2)
    assert any("max_abs" in f for f in P.judge(worse, "fp32")) and P.judge(worse, "fp16") == []
    flipped = P.compare(ref, -ref)
    assert flipped["top1"] < 1 and flipped["cosine_min"] == pytest.approx(-1)
    assert len(P.judge(flipped, "int8")) == 2
    nan = P.compare(ref, ref * np.nan)
    assert P.judge(nan, "fp32") and P.judge(nan, "int8")
    merged = P.merge([same, P.compare(ref[:1], -ref[:1])])
    assert merged["n"] == 4 and merged["top1"] == pytest.approx(3 / 4)


# --- TensorRT decisions (no TensorRT needed) ------------------------------------------------

def test_trt_profile_and_trtexec_line():
    b = S.parse_batch(dynamic_batch="1:8:32")
    assert T.profile_shapes(b, (3, 224, 224)) == {"min": (1, 3, 224, 224), "opt": (8, 3, 224, 224),
                                                  "max": (32, 3, 224, 224)}
    cmd = T.trtexec_command("/c/model.onnx", "/c/model.plan", b, (3, 224, 224), "fp32", 1 << 30, "/c/t.cache")
    assert cmd.startswith("trtexec --onnx=/c/model.onnx --saveEngine=/c/model.plan")
    for part in ("--minShapes=input:1x3x224x224", "--optShapes=input:8x3x224x224", "--maxShapes=input:32x3x224x224",
                 "--memPoolSize=workspace:1024M", "--stronglyTyped", "--noTF32", "--timingCacheFile=/c/t.cache"):
        assert part in cmd
    assert "--noTF32" not in T.trtexec_command("m.onnx", "m.plan", b, (3, 224, 224), "fp16")
    assert T.source_precision("fp16", strongly_typed=True) == "fp16"
    assert T.source_precision("fp16", strongly_typed=False) == "fp32"
    assert T.source_precision("int8") == "int8"


def test_trt_engine_compatibility():
    m = {"tools": {"tensorrt": "10.13.0", "gpu": "NVIDIA H100 80GB HBM3"}}
    assert T.compat_problems(m, "10.13.0", "NVIDIA H100 80GB HBM3") == []
    probs = T.compat_problems(m, "11.4.0", "NVIDIA L4")
    assert any("TensorRT 10.13.0" in p for p in probs) and any("NVIDIA L4" in p for p in probs)
    assert T.compat_problems(m, None, None) == ["TensorRT is not installed", "no CUDA GPU is available"]


def test_trt_parser_errors_name_nodes():
    new = SimpleNamespace(node_name=lambda: "/blocks.1/attn/Reshape", node_operator=lambda: "Reshape",
                          desc=lambda: "unsupported shape", node=lambda: 7)
    old = SimpleNamespace(desc=lambda: "bad node", node=lambda: 3)
    parser = SimpleNamespace(num_errors=2, get_error=lambda i: [new, old][i])
    assert T.parser_errors(parser) == ["node '/blocks.1/attn/Reshape' (Reshape): unsupported shape",
                                       "node #3: bad node"]


def test_trt_require_names_what_is_missing(monkeypatch):
    monkeypatch.setattr(T, "probe", lambda: {"tensorrt": None, "cuda": False, "gpu": None,
                                             "missing": ["the TensorRT Python package", "a CUDA GPU"]})
    with pytest.raises(T.TensorRTUnavailable) as exc:
        T.require(onnx_hint="export it first", trtexec="trtexec --onnx=x.onnx")
    msg = str(exc.value)
    assert "the TensorRT Python package and a CUDA GPU" in msg and "pip install 'pfdeploy[gpu]'" in msg
    assert "trtexec --onnx=x.onnx" in msg and "export it first" in msg


def test_timing_cache_path_is_per_gpu_and_version(tmp_path):
    a = T.timing_cache_path(tmp_path, "10.13.0", "NVIDIA H100 80GB HBM3")
    b = T.timing_cache_path(tmp_path, "10.13.0", "NVIDIA L4")
    assert a != b and a.parent == tmp_path / "trt-timing-cache" and " " not in a.name


# --- check --target trt ------------------------------------------------------------------------

def _onnx_model(tmp_path, nodes, opset=18, extra_opsets=(), inits=()):
    import onnx
    from onnx import TensorProto, helper

    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("input", TensorProto.FLOAT, ["b", 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["b", 4])], initializer=list(inits))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset),
                                                    *[helper.make_opsetid(d, v) for d, v in extra_opsets]])
    path = tmp_path / "m.onnx"
    onnx.save(model, str(path))
    return path


def test_check_trt_accepts_supported_graph(tmp_path):
    from onnx import helper

    from pfdeploy.exporters.check import check_trt, operator_table

    table = operator_table()
    assert table["source"].startswith("onnx/onnx-tensorrt") and table["tensorrt_version"]
    path = _onnx_model(tmp_path, [helper.make_node("Relu", ["input"], ["h"], name="relu"),
                                  helper.make_node("Softmax", ["h"], ["y"], name="softmax")])
    report = check_trt(path)
    assert report.ok and report.ops == {"Relu": 1, "Softmax": 1}


def test_check_trt_flags_unsupported_ops_opsets_domains_and_zero_points(tmp_path):
    import numpy as np
    from onnx import helper, numpy_helper

    from pfdeploy.exporters.check import check_trt

    zp = numpy_helper.from_array(np.array(3, dtype=np.int8), "zp")
    scale = numpy_helper.from_array(np.array(0.1, dtype=np.float32), "scale")
    nodes = [helper.make_node("Unique", ["input"], ["u"], name="uniq"),
             helper.make_node("QuantizeLinear", ["input", "scale", "zp"], ["q"], name="quant"),
             helper.make_node("DequantizeLinear", ["q", "scale", "zp"], ["dq"], name="dequant"),
             helper.make_node("FusedGemm", ["dq"], ["y"], domain="com.microsoft", name="fused")]
    path = _onnx_model(tmp_path, nodes, opset=25, extra_opsets=[("com.microsoft", 1)], inits=[zp, scale])
    report = check_trt(path)
    kinds = {(p["kind"], p["op"]) for p in report.problems}
    assert ("operator", "Unique") in kinds and ("opset", None) in kinds and ("domain", None) in kinds
    assert ("restriction", "QuantizeLinear") in kinds and ("restriction", "DequantizeLinear") in kinds
    assert not report.ok


def test_check_trt_rejects_non_onnx(tmp_path):
    from pfdeploy.exporters.check import check_trt

    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"\x08\x07garbage" * 3)
    with pytest.raises(UserError, match="not a readable ONNX file"):
        check_trt(bad)
    with pytest.raises(UserError, match="not found"):
        check_trt(tmp_path / "nope.onnx")
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="not a pfdeploy artifact"):
        check_trt(tmp_path / "empty")


def test_importing_exporters_loads_no_runtime():
    import subprocess
    import sys

    code = ("import sys, pfdeploy.exporters, pfdeploy.exporters.settings, pfdeploy.exporters.artifact; "
            "print(sorted(m for m in ('torch', 'onnx', 'onnxruntime', 'openvino', 'tensorrt') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=dict(os.environ), check=True)
    assert out.stdout.strip() == "[]"
