"""Export target `openvino` (alias ov): an OpenVINO IR (model.xml + model.bin).

Converted from the verified fp32 ONNX, not from the module: one torch export feeds every runtime,
so OpenVINO and ONNX Runtime run the very same graph, and OpenVINO's ONNX frontend keeps the
dynamic batch axis as exported. fp16: weights compressed to fp16; int8: NNCF post-training
quantization (exporters/quantize.py). bf16 is an execution precision of the fp32 IR, not an IR.
Verified with the openvino backend's Runner on the CPU (an IR whose precision the CPU cannot
compute natively is computed at f32, and the parity record says so).
"""
from __future__ import annotations

from ...errors import UserError, optional_import
from .base import ExportContext, ExportPlan, Target


class OpenVinoTarget(Target):
    name = "openvino"
    aliases = ("ov",)
    description = "OpenVINO IR converted from the fp32 ONNX (fp16: compressed weights; int8: NNCF)"
    model_file = "model.xml"
    precisions = ("fp32", "fp16", "int8")

    def precision_note(self, precision):
        if precision == "bf16":
            return (" (bf16 is an execution precision: the fp32 IR runs at bf16 with "
                    "`pfdeploy bench --backends openvino --precision bf16`)")
        return ""

    def tools(self, precision):
        return self.core_tools + (("openvino", "nncf") if precision == "int8" else ("openvino",))

    def parent(self, plan: ExportPlan):
        b = plan.batch
        return {"target": "onnx", "precision": "fp32", "batch": None if b.dynamic else b.min,
                "dynamic_batch": (b.min, b.opt, b.max) if b.dynamic else None}

    def export(self, ctx: ExportContext) -> dict:
        from ...backends import get_backend

        ov = optional_import("openvino", "--to openvino", hint=get_backend("openvino").install_hint)
        src = ctx.parent.model_file
        try:
            ov_model = ov.convert_model(str(src))
        except Exception as exc:
            raise UserError(f"OpenVINO could not convert {src}: {str(exc).strip().splitlines()[0]}") from None
        info = {"name": "openvino.convert_model(fp32 ONNX) + openvino.save_model", "source": "onnx"}
        if ctx.request.precision == "int8":
            import torch.nn as nn

            from ..images import calibration_batches
            from ..quantize import ov_quantize

            transformer = any(isinstance(m, nn.LayerNorm) for m in ctx.model().modules())
            ov_model, qinfo = ov_quantize(ov_model, calibration_batches(ctx.spec, ctx.request.calib), transformer)
            info["quantization"] = qinfo
        compress = ctx.request.precision == "fp16"
        ov.save_model(ov_model, str(ctx.tmp / self.model_file), compress_to_fp16=compress)
        info["compress_to_fp16"] = compress
        return info

    def verify_setup(self, artifact, backend):
        """An IR whose precision this CPU cannot compute natively (an fp16 IR without native fp16)
        is computed at f32 and says so."""
        from ...devices import parse_device

        device = parse_device(self.verify_device, check=False)
        if backend.precisions(device).get(artifact.precision) is not None:
            return artifact.precision, {"inference_precision": "f32"}
        return artifact.precision, {}


TARGET = OpenVinoTarget()
