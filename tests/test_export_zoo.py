"""Slow: every zoo model exports to ONNX and OpenVINO at fp32 and verifies at batch 1 and 3;
int8 on ONNX Runtime and OpenVINO for the ResNet-50 family; a static-batch export.
Run with `pytest -m slow tests/test_export_zoo.py` (about half an hour on a 2-core machine)."""
from __future__ import annotations

import pytest

from pfdeploy.exporters import get_artifact
from pfdeploy.zoo import list_models

ZOO = [s.name for s in list_models()]
INT8 = ["pf_resnet50_max", "pf_resnet50_hybrid", "resnet50", "dw_resnet50"]


@pytest.mark.slow
@pytest.mark.parametrize("model", ZOO)
def test_every_zoo_model_exports_and_verifies(model):
    for target in ("onnx", "openvino"):
        art = get_artifact(model, target)  # raises UserError (with the figures) on a parity failure
        p = art.parity
        assert art.status == "ok" and p["batches"] == [1, 3] and p["overall"]["top1"] == 1.0
        assert art.manifest["exporter"]["batch"]["example"] == 2


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "openvino"])
@pytest.mark.parametrize("model", INT8)
def test_int8_resnets(model, target):
    art = get_artifact(model, target, "int8")  # a verdict of 'failed' raises
    p = art.parity
    assert art.status in ("ok", "inconclusive") and p["overall"]["n"] == 34
    assert art.manifest["exporter"]["calibration"]["size"] == 64


@pytest.mark.slow
def test_static_batch_export():
    import onnx

    art = get_artifact("pf_pit_ti", "onnx", batch=1)
    dims = onnx.load(str(art.model_file)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [1, 3, 224, 224]
    assert art.parity["batches"] == [1] and art.parity["overall"]["n"] == 2 and art.status == "ok"


@pytest.mark.slow
@pytest.mark.parametrize("target", ["onnx", "openvino"])
def test_fp16(target):
    art = get_artifact("pf_vit_ti", target, "fp16")
    assert art.status == "ok" and art.parity["overall"]["cosine_min"] >= 0.999
    if target == "openvino":
        assert art.manifest["exporter"]["compress_to_fp16"] and 'element_type="f16"' in art.model_file.read_text()
    else:
        import onnx

        assert onnx.load(str(art.model_file)).graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT16
