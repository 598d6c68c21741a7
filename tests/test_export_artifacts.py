"""Real exports, shared through the session's artifact cache (PFDEPLOY_CACHE_DIR, see conftest):
pf_vit_ti (the smallest parameter-free model with the max-pool token mixer) to ONNX, OpenVINO and
ONNX Runtime int8; the export-every-zoo-model run is under the `slow` marker."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from pfdeploy.errors import UserError
from pfdeploy.exporters import get_artifact, load_artifact

from conftest import invoke_cli

MODEL = "pf_vit_ti"


@pytest.fixture(scope="session")
def vit_onnx(artifact_cache):
    return get_artifact(MODEL, "onnx")


@pytest.fixture(scope="session")
def vit_ov(vit_onnx):
    return get_artifact(MODEL, "openvino")


@pytest.fixture(scope="session")
def photos(tmp_path_factory):
    """A few real photographs shipped by scikit-image, as files."""
    from PIL import Image
    from skimage import data

    d = tmp_path_factory.mktemp("photos")
    for name in ("astronaut", "chelsea", "coffee", "rocket"):
        img = getattr(data, name)()
        Image.fromarray(img).save(d / f"{name}.png")
    return d


def _model_and_spec():
    from pfdeploy.zoo import create_model, get_spec

    return create_model(MODEL), get_spec(MODEL)


def test_onnx_artifact_is_one_verified_self_contained_file(vit_onnx):
    import onnx

    from pfdeploy.weights import sha256_file

    art = vit_onnx
    assert sorted(p.name for p in art.path.iterdir()) == ["manifest.json", "model.onnx"]
    proto = onnx.load(str(art.model_file), load_external_data=False)
    assert not any(t.data_location == onnx.TensorProto.EXTERNAL for t in proto.graph.initializer)
    assert {o.domain or "ai.onnx": o.version for o in proto.opset_import}["ai.onnx"] == 18
    onnx.checker.check_model(str(art.model_file), full_check=True)
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.HasField("dim_value")  # dynamic batch axis

    m = art.manifest
    assert m["status"] == "ok" and m["model"]["name"] == MODEL and m["model"]["family"] == "parameter-free"
    assert m["weights"]["source"] == "synthetic:0" and m["target"] == "onnx" and m["precision"] == "fp32"
    assert m["exporter"]["opset"] == 18 and m["exporter"]["batch"]["example"] == 2 and m["exporter"]["batch"]["dynamic"]
    assert m["exporter"]["static_grid"]["pool_grids"] == ["14x14"]  # 196 tokens -> a constant 14x14 grid
    assert m["tools"]["torch"] and m["tools"]["onnx"] and m["pfdeploy_version"] and m["created_at"]
    assert m["sha256"] == sha256_file(art.model_file)
    parity = m["parity"]
    assert parity["passed"] and parity["batches"] == [1, 3] and set(parity["per_batch"]) == {"1", "3"}
    assert parity["overall"]["max_abs"] < 1e-4 and parity["overall"]["top1"] == 1.0


def test_cache_hit_reuses_the_artifact(vit_onnx):
    said = []
    again = get_artifact(MODEL, "onnx", progress=said.append)
    assert again.path == vit_onnx.path and again.sha256 == vit_onnx.sha256
    assert any("cached" in s for s in said) and not any("exporting" in s for s in said)


def test_openvino_fp32_is_uncompressed_and_checked_in_f32(vit_onnx, vit_ov):
    m = vit_ov.manifest
    assert sorted(m["files"]) == ["model.bin", "model.xml"] and vit_ov.model_file.name == "model.xml"
    assert m["exporter"]["compress_to_fp16"] is False and m["exporter"]["source"] == "onnx"
    assert m["exporter"]["parent"]["key"] == vit_onnx.manifest["key"]
    xml = vit_ov.model_file.read_text()
    assert 'element_type="f16"' not in xml and 'element_type="f32"' in xml
    rc = m["parity"]["runtime_config"]  # read back from the live runtime by the backend runner
    assert rc.get("inference_precision", rc.get("INFERENCE_PRECISION_HINT")) == "f32"
    assert m["status"] == "ok" and m["parity"]["overall"]["max_abs"] < 1e-4 and m["parity"]["batches"] == [1, 3]


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_force_reexports_in_place(vit_ov):
    before = (vit_ov.path / "model.bin").stat().st_ino, vit_ov.manifest["created_at"], vit_ov.manifest["export_seconds"]
    said = []
    again = get_artifact(MODEL, "openvino", force=True, progress=said.append)
    assert again.path == vit_ov.path and any("exporting" in s for s in said)
    assert (again.path / "model.bin").stat().st_ino != before[0]  # new files, renamed into place
    assert again.status == "ok"
    assert not [p for p in again.path.parent.iterdir() if p.name.startswith((".tmp-", ".old-"))]


def _int8(recipe, monkeypatch):
    from pfdeploy.exporters import parity

    monkeypatch.setitem(parity.EXTRA_BATCHES, "int8", 1)  # 7 held-out images instead of 34: keeps the test fast
    try:
        return get_artifact(MODEL, "onnx", "int8", calib_size=4, recipe=recipe)
    except UserError as exc:  # a real int8 accuracy failure still leaves a manifest to inspect
        assert "parity FAILED" in str(exc)
        return load_artifact(str(exc).split("inspection at ")[1].split(" (re-export")[0])


def _qdq(art):
    import onnx
    from onnx import numpy_helper

    proto = onnx.load(str(art.model_file))
    inits = {i.name: numpy_helper.to_array(i) for i in proto.graph.initializer}
    qdq = [n for n in proto.graph.node if n.op_type in ("QuantizeLinear", "DequantizeLinear")]
    zps = {n.input[0]: inits[n.input[2]] for n in qdq if len(n.input) > 2 and n.input[2] in inits}
    return proto, inits, qdq, zps


@pytest.mark.integration  # a real int8 quantisation with calibration
def test_tensorrt_int8_recipe_is_symmetric_per_channel_qdq_with_float_biases(vit_onnx, monkeypatch):
    from pfdeploy.exporters.check import check_trt

    art = _int8("tensorrt", monkeypatch)
    m = art.manifest
    assert m["exporter"]["calibration"] == {"source": "synthetic", "size": 4, "seed": 20000}
    q = m["exporter"]["quantization"]
    assert m["exporter"]["recipe"] == "tensorrt" and q["quant_format"] == "QDQ" and q["per_channel"]
    assert q["quantize_bias"] is False and q["activation_symmetric"] and q["activation_type"] == "QInt8"
    proto, inits, qdq, zps = _qdq(art)
    assert qdq and zps and all((z == 0).all() for z in zps.values())  # symmetric: every zero point is 0
    assert {z.dtype.name for z in zps.values()} == {"int8"}  # no int32 bias DequantizeLinear
    per_channel = [inits[n.input[1]] for n in qdq
                   if n.op_type == "DequantizeLinear" and n.input[0] in inits and inits[n.input[1]].size > 1]
    assert per_channel  # weight scales are vectors (one per output channel)
    assert check_trt(art.path).ok  # the QDQ file is fit for a TensorRT int8 engine
    # int8 is judged on held-out inputs with a PyTorch weight-rounding baseline beside the figures
    p = m["parity"]
    assert p["overall"]["n"] == 7 and p["baseline"]["overall"]["n"] == 7
    assert p["verdict"] == {"ok": "passed", "failed": "failed", "inconclusive": "inconclusive"}[m["status"]]
    from pfdeploy.exporters.parity import classify

    assert p["verdict"] == classify(p)[0] and p["why"] == classify(p)[1]
    if p["verdict"] == "inconclusive":
        assert p["failures"] and p["baseline"]["failures"]


@pytest.mark.integration  # a real int8 quantisation with calibration
def test_onnxruntime_int8_recipe_is_u8s8_and_a_different_artifact(vit_onnx, monkeypatch):
    from pfdeploy.exporters.check import check_trt

    art = _int8(None, monkeypatch)  # the default recipe for an int8 ONNX: ONNX Runtime's
    m = art.manifest
    assert m["exporter"]["recipe"] == "onnxruntime" and m["cache_key_material"]["recipe"] == "onnxruntime"
    q = m["exporter"]["quantization"]
    assert q["activation_type"] == "QUInt8" and q["weight_type"] == "QInt8" and q["per_channel"]
    proto, inits, qdq, zps = _qdq(art)
    dtypes = {z.dtype.name for z in zps.values()}
    assert {"uint8", "int8"} <= dtypes  # uint8 activations, int8 weights
    assert any(z.dtype == np.uint8 and (z != 0).any() for z in zps.values())  # asymmetric activations
    assert not check_trt(art.path).ok  # TensorRT cannot take it: never used for an engine
    trt_art = _int8("tensorrt", monkeypatch)
    assert trt_art.path != art.path and trt_art.manifest["key"] != m["key"]


def test_calibration_and_parity_inputs_are_disjoint():
    from pfdeploy.exporters.settings import CALIB_SEED, PARITY_SEED
    from pfdeploy.exporters.parity import EXTRA_BATCHES

    assert CALIB_SEED + 10_000 < PARITY_SEED and EXTRA_BATCHES["int8"] > 0


def test_out_copies_the_artifact_and_refuses_to_overwrite(vit_onnx, tmp_path):
    out = tmp_path / "deploy"
    art = get_artifact(MODEL, "onnx", out=out)
    assert art.path == out and load_artifact(out).sha256 == vit_onnx.sha256
    with pytest.raises(UserError, match="not empty"):
        get_artifact(MODEL, "onnx", out=out)


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_parity_failure_marks_the_manifest_failed(vit_onnx, tmp_path, monkeypatch):
    from pfdeploy.exporters import parity

    # a private cache holding a copy of the verified ONNX, so only the OpenVINO step re-runs
    cache = tmp_path / "cache"
    shutil.copytree(vit_onnx.path, cache / "onnx" / vit_onnx.path.name)
    real = parity.artifact_runner

    def noisy(art):
        run = real(art)
        return (lambda x: run(x) + 0.05) if art.target == "openvino" else run

    monkeypatch.setattr(parity, "artifact_runner", noisy)
    with pytest.raises(UserError, match=r"parity FAILED \(max_abs .* > .*\): max_abs 0.05"):
        get_artifact(MODEL, "openvino", cache_dir=cache)
    (failed,) = [p for p in (cache / "openvino").iterdir()]
    m = json.loads((failed / "manifest.json").read_text())
    assert m["status"] == "failed" and m["parity"]["failures"]
    monkeypatch.setattr(parity, "artifact_runner", real)  # fixed runtime: re-verification passes
    assert get_artifact(MODEL, "openvino", cache_dir=cache).status == "ok"


def test_interrupted_export_leaves_nothing(tmp_path, monkeypatch):
    from pfdeploy.exporters import onnx_export

    def dies(model, spec, batch, path, opset, half=False):
        Path(path).write_bytes(b"half an onnx file")
        raise KeyboardInterrupt

    monkeypatch.setattr(onnx_export, "export_onnx", dies)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        get_artifact(MODEL, "onnx", cache_dir=cache)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


def test_weights_for_another_model_leave_nothing(tmp_path):
    import torch

    ckpt = tmp_path / "other.pth"
    torch.save({"fc.weight": torch.zeros(10, 4)}, ckpt)
    cache = tmp_path / "cache"
    with pytest.raises(UserError, match="does not match the model"):
        get_artifact(MODEL, "onnx", weights=ckpt, cache_dir=cache)
    assert [p for p in cache.rglob("*") if p.is_file()] == []


@pytest.mark.parametrize("args, code, text", [
    (["export", "pf_vit_tiny", "--to", "onnx"], 2, "did you mean"),
    (["export", MODEL, "--to", "tflite"], 2, "unknown target 'tflite'"),
    (["export", MODEL, "--to", "openvino", "--precision", "bf16"], 2, "choose from fp32, fp16, int8"),
    (["export", MODEL, "--to", "onnx", "--batch", "2", "--dynamic-batch", "1:2:4"], 2, "not both"),
    (["export", MODEL, "--to", "onnx", "--calib", "."], 2, "only apply to --precision int8"),
    (["export", MODEL, "--to", "onnx", "--weights", "/nonexistent.pth"], 1, "weights file not found"),
    (["export", MODEL, "--to", "onnx", "--precision", "int8", "--calib", "/nonexistent"], 1, "calibration folder"),
    (["verify", "/nonexistent"], 1, "artifact not found"),
    (["export", MODEL, "--to", "openvino", "--precision", "int8", "--int8-recipe", "tensorrt"], 2,
     "--int8-recipe only applies to --to onnx --precision int8"),
    (["export", MODEL, "--to", "onnx", "--precision", "int8", "--int8-recipe", "s8s8"], 2, "unknown int8 recipe"),
])
def test_cli_bad_input_one_line(args, code, text, capsys):
    from pfdeploy.cli import main

    assert main(args) == code
    err = capsys.readouterr().err
    assert text in err and "Traceback" not in err and err.startswith("pfdeploy: error:")


def test_cli_unwritable_out(tmp_path, capsys):
    from pfdeploy.cli import main

    (tmp_path / "f").write_text("x")
    assert main(["export", MODEL, "--to", "onnx", "--out", str(tmp_path / "f" / "out")]) == 1
    assert "is a file, not a directory" in capsys.readouterr().err


def test_cli_corrupt_artifact(vit_onnx, tmp_path, capsys):
    from pfdeploy.cli import main

    broken = tmp_path / "broken"
    shutil.copytree(vit_onnx.path, broken)
    with open(broken / "model.onnx", "r+b") as f:
        f.truncate(1000)
    for verb in (["verify", str(broken)], ["check", str(broken), "--target", "trt"]):
        assert main(verb) == 1
        err = capsys.readouterr().err
        assert "truncated" in err and "Traceback" not in err


def test_cli_check_trt_on_the_export(vit_onnx, capsys):
    from pfdeploy.cli import main

    assert main(["check", str(vit_onnx.path), "--target", "trt", "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["opsets"]["ai.onnx"] == 18 and "MaxPool" in report["ops"]


def test_cli_export_json_on_cache_hit(vit_onnx):
    r = invoke_cli("export", MODEL, "--to", "onnx", "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)  # stdout holds only the JSON (exporter chatter goes to stderr)
    assert data["path"] == str(vit_onnx.path) and data["status"] == "ok" and data["opset"] == 18


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_cli_verify_on_real_photographs(vit_onnx, photos):
    r = invoke_cli("verify", str(vit_onnx.path), "--images", str(photos), "--json")
    assert r.returncode == 0, r.stderr
    data = json.loads(r.stdout)
    assert data["synthetic"]["passed"] and data["images"]["passed"] and data["images"]["images"] == 4
    assert data["images"]["overall"]["top1"] == 1.0 and data["images"]["overall"]["max_abs"] < 1e-4


def _trt_usable() -> bool:
    from pfdeploy.exporters.tensorrt import probe

    return not probe()["missing"]


@pytest.mark.skipif(_trt_usable(), reason="TensorRT and a CUDA GPU are present: the missing-TensorRT path cannot run")
def test_cli_trt_without_tensorrt_explains_and_leaves_nothing(tmp_path):
    cache = tmp_path / "cache"
    r = invoke_cli("export", "pf_resnet50", "--to", "trt", "--cache-dir", str(cache))
    assert r.returncode == 1
    assert r.stderr.count("pfdeploy: error:") == 1 and "Traceback" not in r.stderr
    assert "TensorRT Python package" in r.stderr and "pip install 'pfdeploy[gpu]'" in r.stderr
    assert "trtexec --onnx=" in r.stderr and "/onnx/pf_resnet50_hybrid-fp32-" in r.stderr
    assert "--minShapes=input:1x3x224x224" in r.stderr and "pfdeploy export pf_resnet50_hybrid --to onnx" in r.stderr
    assert not cache.exists() or [p for p in cache.rglob("*") if p.is_file()] == []


@pytest.mark.tensorrt
@pytest.mark.skipif(not _trt_usable(), reason="needs the TensorRT Python package and a CUDA GPU")
def test_trt_engines_build_and_verify(tmp_path):  # pragma: no cover - needs a GPU
    for precision in ("fp32", "fp16", "int8"):
        art = get_artifact("pf_resnet50_hybrid", "trt", precision, dynamic_batch="1:4:8", calib_size=16,
                           cache_dir=tmp_path)
        m = art.manifest
        assert art.model_file.suffix == ".plan" and m["tools"]["tensorrt"] and m["tools"]["gpu"]
        assert m["exporter"]["profile"]["max"][0] == 8 and Path(m["exporter"]["timing_cache"]).is_file()
        assert m["status"] in ("ok", "inconclusive")


@pytest.mark.integration  # two verify runs over images, the artifact and PyTorch each
def test_cli_verify_accuracy_on_labelled_photographs(vit_onnx, photos, tmp_path):
    """Labels from class subfolders (synset ids) and from a labels file give the same top-1/top-5,
    computed for the artifact and for PyTorch on the same images, and recorded beside the artifact."""
    import shutil

    from pfdeploy.exporters.accuracy import labelled_images, read, topk

    classes = {"astronaut": "n10148035", "chelsea": "n02123045", "coffee": "n07920052", "rocket": "n04266014"}
    tree = tmp_path / "val"
    for name, wnid in classes.items():
        (tree / wnid).mkdir(parents=True)
        shutil.copy(photos / f"{name}.png", tree / wnid / f"{name}.png")
    files, targets = labelled_images(tree)
    from timm.data import ImageNetInfo

    names = ImageNetInfo().label_names()
    assert sorted(targets) == sorted(names.index(w) for w in classes.values())
    r = invoke_cli("verify", str(vit_onnx.path), "--images", str(tree), "--json")
    assert r.returncode == 0, r.stderr
    acc = json.loads(r.stdout)["accuracy"]
    assert acc["n"] == 4 and 0 <= acc["top1"] <= acc["top5"] <= 1
    assert acc["torch_top1"] == acc["top1"] and acc["agree_top1"] == 1.0  # fp32 artifact == PyTorch
    labels = tmp_path / "labels.txt"
    labels.write_text("# path label\n" + "".join(f"{w}/{n}.png\t{names.index(w)}\n" for n, w in classes.items()))
    r2 = invoke_cli("verify", str(vit_onnx.path), "--images", str(tree), "--labels", str(labels), "--json")
    assert r2.returncode == 0, r2.stderr
    acc2 = json.loads(r2.stdout)["accuracy"]
    assert (acc2["top1"], acc2["top5"]) == (acc["top1"], acc["top5"])
    assert list(read(vit_onnx.path).values())[0]["images_sha256"] == acc["images_sha256"]
    # top-k itself, on logits whose answer is known
    assert topk([[0.1, 0.9, 0.0, 0, 0, 0], [0.9, 0.1, 0.0, 0, 0, 0]], [1, 1]) == {1: 0.5, 5: 1.0}
    bad = tmp_path / "bad.txt"
    bad.write_text("astronaut.png n99999999\n")
    r3 = invoke_cli("verify", str(vit_onnx.path), "--images", str(photos), "--labels", str(bad))
    assert r3.returncode == 1 and "neither an ImageNet-1k class index" in r3.stderr and "Traceback" not in r3.stderr
