"""Post-training int8 quantization.

- ONNX Runtime: static QDQ quantization (onnxruntime.quantization.quantize_static) with
  symmetric int8 activations and weights, weights per channel, MinMax calibration. Symmetric
  means every zero point is 0, which TensorRT's ONNX parser requires of Q/DQ nodes, so the same
  file also feeds a TensorRT int8 engine (explicit quantization).
- OpenVINO: NNCF post-training quantization (nncf.quantize) of the fp32 IR.
Both use the same calibration set (images.calibration_batches).
"""
from __future__ import annotations

import contextlib
import logging
import sys
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError, optional_import

ORT_SETTINGS = {"tool": "onnxruntime.quantization.quantize_static", "quant_format": "QDQ",
                "activation_type": "QInt8", "weight_type": "QInt8", "per_channel": True,
                "activation_symmetric": True, "weight_symmetric": True, "calibrate_method": "MinMax",
                "preprocess": "onnxruntime.quantization.shape_inference.quant_pre_process"}


def ort_quantize(fp32_onnx: Path, out_path: Path, batches: list) -> dict:
    """Quantize `fp32_onnx` to a QDQ int8 model at `out_path`. `batches`: numpy inputs."""
    q = optional_import("onnxruntime.quantization", "int8 quantization for ONNX Runtime")
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
            _quantize(q, quant_pre_process, fp32_onnx, pre, out_path, Reader(batches))
    finally:
        root_logger.setLevel(level)
        shutil.rmtree(work, ignore_errors=True)
    return dict(ORT_SETTINGS)


def _quantize(q, quant_pre_process, fp32_onnx, pre, out_path, reader) -> None:
    try:
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=False)
    except Exception:  # symbolic shape inference cannot read every graph; ONNX's own can
        quant_pre_process(str(fp32_onnx), str(pre), skip_symbolic_shape=True)
    try:
        q.quantize_static(
            str(pre), str(out_path), reader, quant_format=q.QuantFormat.QDQ,
            per_channel=True, activation_type=q.QuantType.QInt8, weight_type=q.QuantType.QInt8,
            calibrate_method=q.CalibrationMethod.MinMax,
            extra_options={"ActivationSymmetric": True, "WeightSymmetric": True})
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
