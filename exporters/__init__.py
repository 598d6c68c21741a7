"""pfdeploy.exporters: torch -> ONNX -> OpenVINO / TensorRT, ONNX Runtime int8, manifests, the
content-addressed artifact cache, parity verification and `check --target trt`. Export targets
are plugins like the backends (`exporters.targets`: the built-in onnx, openvino, trt, and the
entry-point group `pfdeploy.targets`).

    get_artifact(model, target, precision="fp32", batch=None, dynamic_batch=None, weights=None,
                 seed=0, cache_dir=None, force=False, verify=True, out=None, calib=None,
                 progress=None, calib_size=None) -> Artifact
    load_artifact(path) -> Artifact          # validated; corrupt/truncated -> UserError
    check_trt(path) -> CheckReport           # ONNX ops/opsets against onnx-tensorrt's list
    targets.get_target(name) -> Target; targets.target_names() -> tuple

Importing this package imports no runtime (torch, onnx, openvino, tensorrt load on use).
"""
from __future__ import annotations

from .artifact import Artifact, load_artifact
from .settings import OPSET


def get_artifact(*args, **kwargs):
    from .pipeline import get_artifact as _get

    return _get(*args, **kwargs)


get_artifact.__doc__ = "See pfdeploy.exporters.pipeline.get_artifact."


def check_trt(path):
    from .check import check_trt as _check

    return _check(path)


__all__ = ["Artifact", "get_artifact", "load_artifact", "check_trt", "OPSET"]
