"""Export target `onnx` (aliases onnxruntime, ort): the hub every other built-in target derives from.

fp32 and fp16: `torch.onnx.export` of the PyTorch model (opset OPSET, dynamic or static batch;
exporters/onnx_export.py). int8: static QDQ quantization of the verified fp32 ONNX with ONNX
Runtime's tools, recipe `onnxruntime` (U8S8, the default) or `tensorrt` (S8S8 with float biases,
what TensorRT engines are built from; exporters/quantize.py). Verified with the onnxruntime
backend's Runner on the CPU.
"""
from __future__ import annotations

from .base import ExportContext, ExportPlan, Target


class OnnxTarget(Target):
    name = "onnx"
    aliases = ("onnxruntime", "ort")
    description = "ONNX (torch.onnx.export; int8: ONNX Runtime static QDQ quantization)"
    model_file = "model.onnx"
    precisions = ("fp32", "fp16", "int8")

    def int8_recipe(self, precision, requested):
        if precision != "int8":
            return super().int8_recipe(precision, requested)
        from ..quantize import check_recipe

        return check_recipe(requested)

    def tools(self, precision):
        return self.core_tools + (("onnxruntime",) if precision == "int8" else ())

    def parent(self, plan: ExportPlan):
        if plan.precision != "int8":
            return None
        b = plan.batch  # the fp32 ONNX of the same batch settings
        return {"target": "onnx", "precision": "fp32", "batch": None if b.dynamic else b.min,
                "dynamic_batch": (b.min, b.opt, b.max) if b.dynamic else None}

    def export(self, ctx: ExportContext) -> dict:
        req = ctx.request
        if req.precision in ("fp32", "fp16"):
            from ..onnx_export import export_onnx

            return export_onnx(ctx.model(), ctx.spec, req.batch, ctx.tmp / self.model_file, req.opset,
                               half=req.precision == "fp16")
        import onnx

        from ..images import calibration_batches
        from ..onnx_export import op_histogram
        from ..quantize import ort_quantize

        out = ctx.tmp / self.model_file
        settings = ort_quantize(ctx.parent.model_file, out, calibration_batches(ctx.spec, req.calib), recipe=req.recipe)
        onnx.checker.check_model(str(out), full_check=True)
        return {"name": f"onnxruntime static QDQ quantization of the fp32 ONNX, recipe {req.recipe} "
                        f"({settings['name']})", "recipe": req.recipe, "quantization": settings,
                "ops": op_histogram(onnx.load(str(out)))}


TARGET = OnnxTarget()
