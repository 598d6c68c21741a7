"""Export target `onnx-basic`: the fp32 ONNX optimised offline by ONNX Runtime at its basic level
(constant folding, redundant node elimination, semantics-preserving rewrites that every execution
provider can run) and saved as a standalone ONNX file (`SessionOptions.optimized_model_filepath`).

Derived from pfdeploy's verified fp32 ONNX artifact of the same batch settings; verified (parity
against PyTorch) by this plugin's `ort-basic` runtime.
"""
from __future__ import annotations

from pfdeploy.errors import UserError, optional_import
from pfdeploy.exporters.targets import ExportContext, ExportPlan, Target


class OnnxBasicTarget(Target):
    name = "onnx-basic"
    description = "fp32 ONNX optimised offline by ONNX Runtime (ORT_ENABLE_BASIC)"
    model_file = "model.onnx"
    precisions = ("fp32",)
    verify_backend = "ort-basic"

    def tools(self, precision):
        return self.core_tools + ("onnxruntime",)

    def parent(self, plan: ExportPlan):
        b = plan.batch
        return {"target": "onnx", "precision": "fp32", "batch": None if b.dynamic else b.min,
                "dynamic_batch": (b.min, b.opt, b.max) if b.dynamic else None}

    def export(self, ctx: ExportContext) -> dict:
        ort = optional_import("onnxruntime", "the onnx-basic target", hint="pip install onnxruntime")
        import onnx

        src = ctx.parent.model_file
        out = ctx.tmp / self.model_file
        so = ort.SessionOptions()
        so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_BASIC
        so.optimized_model_filepath = str(out)
        so.log_severity_level = 3
        try:
            ort.InferenceSession(str(src), so, providers=["CPUExecutionProvider"])
            model = onnx.load(str(out))
            onnx.checker.check_model(model)
        except Exception as exc:  # noqa: BLE001 - ONNX Runtime's and onnx's own exception types
            raise UserError(f"ONNX Runtime could not optimise {src}: {str(exc).strip().splitlines()[0]}") from None
        before = len(onnx.load(str(src), load_external_data=False).graph.node)
        return {"name": "onnxruntime InferenceSession(ORT_ENABLE_BASIC).optimized_model_filepath of the fp32 ONNX",
                "onnxruntime": ort.__version__, "nodes_before": before, "nodes_after": len(model.graph.node)}


TARGET = OnnxBasicTarget()
