"""Export target `trt` (alias tensorrt): a serialized TensorRT engine (model.plan).

Built from the cached ONNX of its source precision (tf32 and, without strong typing, fp16 are
built from the fp32 ONNX; int8 from the ONNX quantized with the `tensorrt` recipe), with one
optimization profile over the batch range; the tools in exporters/tensorrt.py. The engine is tied
to the GPU model and TensorRT version, so both are part of its cache key. On a machine without
TensorRT or a GPU nothing is exported: one error names what is missing, the install hint and the
equivalent trtexec command. Verified with the tensorrt backend's Runner on cuda:0, after checking
that the engine was built for this GPU and TensorRT; a cached engine is not re-verified.
"""
from __future__ import annotations

from .base import ExportContext, ExportPlan, Target


class TensorRtTarget(Target):
    name = "trt"
    aliases = ("tensorrt",)
    description = "TensorRT engine built from the ONNX (one optimization profile over the batch range)"
    model_file = "model.plan"
    precisions = ("fp32", "tf32", "fp16", "int8")
    verify_device = "cuda:0"
    reverify_cached = False

    def int8_recipe(self, precision, requested):
        super().int8_recipe(precision, requested)  # --int8-recipe is refused
        return "tensorrt" if precision == "int8" else None

    def tools(self, precision):
        return self.core_tools + (("onnxruntime", "tensorrt") if precision == "int8" else ("tensorrt",))

    def _source(self, plan: ExportPlan) -> tuple[str, str | None]:
        """(precision, recipe) of the ONNX the engine is built from."""
        from .. import tensorrt as trtx

        src = trtx.source_precision(plan.precision, plan.facts.get("strongly_typed", True))
        return src, ("tensorrt" if src == "int8" else None)

    def prepare(self, plan: ExportPlan) -> None:
        """TensorRT and a GPU, or one error with the install hint, the trtexec equivalent and the
        command that writes the ONNX it needs; the TensorRT version and the GPU go into the key."""
        from .. import tensorrt as trtx

        info = trtx.probe()
        strongly = True
        if info["tensorrt"]:
            import tensorrt as trt

            strongly = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
        plan.facts["strongly_typed"] = strongly
        plan.facts["tensorrt"] = info["tensorrt"]
        src_prec, src_recipe = self._source(plan)
        if info["missing"]:
            from ..settings import parse_batch

            src_batch = parse_batch(None, None) if plan.batch.dynamic else plan.batch
            src_dir = plan.artifact_dir_of("onnx", src_prec, src_batch, src_recipe)
            tc = trtx.timing_cache_path(plan.root, "VERSION", "GPU")
            cmd = trtx.trtexec_command(src_dir / "model.onnx", "model.plan", plan.batch, plan.spec.input_size,
                                       plan.precision, timing_cache=tc.parent / "timing.cache")
            hint = None
            if not (src_dir / "model.onnx").is_file():
                flags = f" --precision {src_prec}" if src_prec != "fp32" else ""
                if not plan.batch.dynamic:
                    flags += f" --batch {plan.batch.min}"
                if src_recipe:
                    flags += f" --int8-recipe {src_recipe}"
                hint = (f"That ONNX file is not exported yet; `pfdeploy export {plan.spec.name} --to onnx{flags}` "
                        f"writes it there.")
            trtx.require(onnx_hint=hint, trtexec=cmd)
        gpu = trtx.gpu_facts()
        plan.facts["gpu"] = gpu["gpu"]
        plan.extra_tools.update({"tensorrt": info["tensorrt"], "gpu": gpu["gpu"],
                                 "compute_capability": gpu["compute_capability"], "cuda": gpu["cuda"]})

    def parent(self, plan: ExportPlan):
        """The ONNX of the source precision: the default dynamic ONNX (it records no batch bounds,
        so one file feeds every engine profile) or the static one of the batch."""
        src_prec, src_recipe = self._source(plan)
        calib = plan.calib
        return {"target": "onnx", "precision": src_prec, "batch": None if plan.batch.dynamic else plan.batch.min,
                "calib": calib.folder if calib and calib.source == "images" else None,
                "calib_size": calib.size if calib else None, "recipe": src_recipe}

    def progress_message(self, plan: ExportPlan) -> str:
        return f"building TensorRT {plan.precision} engine for {plan.spec.name} on {plan.facts.get('gpu')}"

    def export(self, ctx: ExportContext) -> dict:
        from ...errors import UserError
        from .. import tensorrt as trtx

        onnx_art, plan = ctx.parent, ctx.plan
        if onnx_art.precision == "int8" and onnx_art.manifest["exporter"].get("recipe") != "tensorrt":
            raise UserError(f"{onnx_art.path} was quantized with recipe {onnx_art.manifest['exporter'].get('recipe')!r}, "
                            f"not TensorRT's (symmetric, float biases); refusing to build an engine from it")
        settings = trtx.build_engine(onnx_art.model_file, ctx.tmp / self.model_file, plan.precision, plan.batch,
                                     plan.spec.input_size,
                                     trtx.timing_cache_path(plan.root, plan.facts["tensorrt"], plan.facts["gpu"]))
        return {"name": "tensorrt.Builder + OnnxParser", **settings,
                "trtexec": trtx.trtexec_command(onnx_art.model_file, ctx.final / self.model_file, plan.batch,
                                                plan.spec.input_size, plan.precision)}

    def files(self, tmp):
        return [self.model_file]

    def check_runnable(self, artifact) -> None:
        from ..tensorrt import check_engine_compat

        check_engine_compat(artifact)


TARGET = TensorRtTarget()
