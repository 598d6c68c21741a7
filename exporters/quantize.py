"""Post-training int8 quantization: one recipe per target, each the runtime's own recommendation,
recorded in the manifest (and in the artifact's cache key: an artifact made for one target is
never used for another).

- `onnxruntime` (ONNX Runtime on x86 CPUs): static QDQ (onnxruntime.quantization.quantize_static)
  with asymmetric uint8 activations and symmetric int8 weights per channel (U8S8), MinMax
  calibration, biases quantized to int32: the combination ONNX Runtime's quantization guide
  recommends for x86 (its fused QLinearConv/MatMulInteger kernels take U8S8).
- `onnxruntime-pertensor`: the same with one weight scale per tensor (a `pfdeploy tune` variant).
- `tensorrt` (TensorRT explicit quantization): symmetric int8 activations and weights (every zero
  point 0, as TensorRT's parser requires of Q/DQ nodes), weights per channel, biases left in float
  (`QuantizeBias` off: TensorRT's parser rejects an int32 DequantizeLinear).
- OpenVINO: NNCF post-training quantization (nncf.quantize) of the fp32 IR.
All use the same calibration set (images.calibration_batches).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError, optional_import

_COMMON = {"tool": "onnxruntime.quantization.quantize_static", "quant_format": "QDQ", "per_channel": True,
           "calibrate_method": "MinMax", "preprocess": "onnxruntime.quantization.shape_inference.quant_pre_process"}
RECIPES = {
    "onnxruntime": {**_COMMON, "recipe": "onnxruntime", "name": "U8S8 QDQ (ONNX Runtime x86)",
                    "activation_type": "QUInt8", "weight_type": "QInt8", "activation_symmetric": False,
                    "weight_symmetric": True, "quantize_bias": True},
    # the ONNX Runtime recipe with one scale per weight tensor (fewer scales, a different kernel mix)
    "onnxruntime-pertensor": {**_COMMON, "recipe": "onnxruntime-pertensor", "per_channel": False,
                              "name": "U8S8 QDQ, per-tensor weights (ONNX Runtime x86)",
                              "activation_type": "QUInt8", "weight_type": "QInt8", "activation_symmetric": False,
                              "weight_symmetric": True, "quantize_bias": True},
    "tensorrt": {**_COMMON, "recipe": "tensorrt", "name": "S8S8 symmetric QDQ, float biases (TensorRT)",
                 "activation_type": "QInt8", "weight_type": "QInt8", "activation_symmetric": True,
                 "weight_symmetric": True, "quantize_bias": False},
}
DEFAULT_RECIPE = "onnxruntime"
ORT_SETTINGS = RECIPES["tensorrt"]  # the recipe every int8 ONNX used before recipes per target


def check_recipe(recipe: str | None) -> str:
    from ..errors import UsageError

    recipe = recipe or DEFAULT_RECIPE
    if recipe not in RECIPES:
        raise UsageError(f"unknown int8 recipe {recipe!r}; choose from {', '.join(RECIPES)}")
    return recipe


def ort_quantize(fp32_onnx: Path, out_path: Path, batches: list, recipe: str = DEFAULT_RECIPE) -> dict:
    """Quantize `fp32_onnx` to a QDQ int8 model at `out_path` with `recipe` (RECIPES).
    `batches`: numpy inputs. Returns the recipe's settings for the manifest."""
    settings = RECIPES[check_recipe(recipe)]
    from ..backends import get_backend

    q = optional_import("onnxruntime.quantization", "int8 quantization for ONNX Runtime",
                        hint=get_backend("onnxruntime").install_hint)
    from onnxruntime.quantization.shape_inference import quant_pre_process

    class Reader(q.CalibrationDataReader):
        def __init__(self, data):
            self._it = iter(data)

        def get_next(self):
            x = next(self._it, None)
            return None if x is None else {"input": x}

    work = Path(tempfile.mkdtemp(prefix=".quant-", dir=Path(out_path).parent))
    root_logger = logging.getLogger()
    level = root_logger.level
    root_logger.setLevel(logging.ERROR)  # the quantizer logs a warning per 1-D weight (LayerNorm scales)
    try:
        pre = work / "pre.onnx"
        with contextlib.redirect_stdout(sys.stderr):
            _quantize(q, quant_pre_process, fp32_onnx, pre, out_path, Reader(batches), settings)
    finally:
        root_logger.setLevel(level)
        shutil.rmtree(work, ignore_errors=True)
    return dict(settings)


def quantize_kwargs(q, settings: dict) -> dict:
    """quantize_static keyword arguments of a recipe (`q`: onnxruntime.quantization)."""
    return {"quant_format": q.QuantFormat.QDQ, "per_channel": settings["per_channel"],
            "activation_type": getattr(q.QuantType, settings["activation_type"]),
            "weight_type": getattr(q.QuantType, settings["weight_type"]),
            "calibrate_method": q.CalibrationMethod.MinMax,
            "extra_options": {"ActivationSymmetric": settings["activation_symmetric"],
                              "WeightSymmetric": settings["weight_symmetric"],
                              "QuantizeBias": settings["quantize_bias"]}}


def _quantize(q, quant_pre_process, fp32_onnx, pre, out_path, reader, settings) -> None:
    try:
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=False)
    except Exception:  # symbolic shape inference cannot read every graph; ONNX's own can
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
    try:
        q.quantize_static(str(pre), str(out_path), reader, **quantize_kwargs(q, settings))
    except Exception as exc:
        raise UserError(f"ONNX Runtime quantization failed: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None


def ov_quantize(ov_model, batches: list, transformer: bool):
    """NNCF post-training quantization of an OpenVINO model; returns the quantized model and the
    settings used."""
    nncf = optional_import("nncf", "int8 quantization for OpenVINO")
    kwargs = {"subset_size": len(batches)}
    if transformer:
        kwargs["model_type"] = nncf.ModelType.TRANSFORMER
    try:
        with contextlib.redirect_stdout(sys.stderr):  # NNCF's progress bars: keep stdout for --json
            qmodel = nncf.quantize(ov_model, nncf.Dataset(batches), **kwargs)
    except Exception as exc:
        raise UserError(f"NNCF quantization failed: {type(exc).__name__}: "
                        f"{str(exc).strip().splitlines()[0] if str(exc).strip() else ''}") from None
    return qmodel, {"tool": "nncf.quantize", "subset_size": len(batches),
                    "model_type": "TRANSFORMER" if transformer else "default", "preset": "default (performance)"}
