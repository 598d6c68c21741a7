"""Parity: does the artifact compute what PyTorch computes?

Inputs are seeded synthetic images from a seed range never used for calibration (so int8 is
judged on held-out inputs), run at two batch sizes (one different from the export's example
batch). Figures per batch size and overall:

- max_abs: max |artifact - torch| over all logits;
- max_rel: max_abs / max |torch logits| (a scale-free error; element-wise relative error is
  meaningless for logits near zero);
- cosine: cosine similarity of each sample's logit vector, minimum and mean over samples;
- top1: fraction of samples whose arg-max class agrees.

Tolerances per precision (TOLERANCES): fp32 is held to ~1e-4 absolute on logits (1e-4 + 1e-4 *
max|logit|: a ResNet-50's reordered fp32 sums reach 2e-4 on logits of magnitude 2-3), fp16 to
~1e-2 + 3e-2 * max|logit|, int8 by top-1 agreement and cosine.
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import UserError, optional_import
from .settings import PARITY_SEED

# An artifact passes when every listed bound holds. atol/rtol: max_abs <= atol + rtol * max|ref|.
TOLERANCES = {
    "fp32": {"atol": 1e-4, "rtol": 1e-4, "min_cosine": 0.99999, "min_top1": 1.0},
    "fp16": {"atol": 1e-2, "rtol": 3e-2, "min_cosine": 0.999},
    "int8": {"min_cosine": 0.95, "min_top1": 0.70},
}
# int8 is judged on more held-out images than fp32/fp16: top-1 agreement over 4 images says little.
EXTRA_BATCHES = {"fp32": 0, "fp16": 0, "int8": 10}

# When a reduced-precision artifact misses the tolerance and so does PyTorch with merely rounded
# weights, the miss is `inconclusive` only if the artifact is about as close to PyTorch as that
# rounded-weights baseline: each error measure of the artifact (1 - mean cosine, max_rel, top-1
# disagreement) at most INCONCLUSIVE_FACTOR times the baseline's. Anything further off is
# `failed`, and so are non-finite outputs (NaN/Inf) and outputs that point elsewhere entirely
# (mean cosine below FAR_OFF_COSINE), whatever the baseline does.
INCONCLUSIVE_FACTOR = 4.0
FAR_OFF_COSINE = 0.5


def parity_inputs(spec, batches: list[int], precision: str, seed: int = PARITY_SEED) -> list:
    """[(batch_size, tensor)]: one input per requested batch size, then (int8) EXTRA_BATCHES more
    at the largest batch size. Seeds are disjoint from calibration's."""
    from ..weights import synthetic_images

    sizes = list(batches) + [max(batches)] * EXTRA_BATCHES.get(precision, 0)
    if len(sizes) == 1:  # a static batch: a second input at the same size
        sizes = sizes * 2
    return [(b, synthetic_images(b, spec.input_size, spec.mean, spec.std, seed + i)) for i, b in enumerate(sizes)]


def compare(ref, out) -> dict:
    """Figures for one pair of (N, classes) arrays."""
    import numpy as np

    ref = np.asarray(ref, dtype=np.float64).reshape(ref.shape[0], -1)
    out = np.asarray(out, dtype=np.float64).reshape(out.shape[0], -1)
    if ref.shape != out.shape:
        raise UserError(f"the artifact returned shape {out.shape}, PyTorch {ref.shape}")
    if not np.all(np.isfinite(out)):
        return {"n": int(ref.shape[0]), "max_abs": math.inf, "max_rel": math.inf, "cosine_min": -1.0,
                "cosine_mean": -1.0, "top1": 0.0, "nonfinite": True}
    diff = np.abs(ref - out)
    scale = float(np.abs(ref).max()) or 1.0
    num = (ref * out).sum(1)
    den = np.linalg.norm(ref, axis=1) * np.linalg.norm(out, axis=1)
    cos = np.where(den > 0, num / np.where(den > 0, den, 1.0), 1.0)
    agree = ref.argmax(1) == out.argmax(1)
    return {"n": int(ref.shape[0]), "max_abs": float(diff.max()), "max_rel": float(diff.max() / scale),
            "ref_scale": scale, "cosine_min": float(cos.min()), "cosine_mean": float(cos.mean()),
            "top1": float(agree.mean()), "_agree": int(agree.sum()), "_cos_sum": float(cos.sum())}


def merge(parts: list[dict]) -> dict:
    n = sum(p["n"] for p in parts)
    return {"n": n, "max_abs": max(p["max_abs"] for p in parts), "max_rel": max(p["max_rel"] for p in parts),
            "ref_scale": max(p.get("ref_scale", 0.0) for p in parts),
            "cosine_min": min(p["cosine_min"] for p in parts),
            "cosine_mean": sum(p.get("_cos_sum", p["cosine_mean"] * p["n"]) for p in parts) / n,
            "top1": sum(p.get("_agree", p["top1"] * p["n"]) for p in parts) / n}


def judge(figures: dict, precision: str) -> list[str]:
    """The tolerance violations (empty when the figures pass)."""
    tol = TOLERANCES[precision]
    bad = []
    if "atol" in tol:
        limit = tol["atol"] + tol.get("rtol", 0.0) * figures.get("ref_scale", 0.0)
        if not figures["max_abs"] <= limit:
            bad.append(f"max_abs {figures['max_abs']:.3g} > {limit:.3g}")
    if "min_cosine" in tol and not figures["cosine_min"] >= tol["min_cosine"]:
        bad.append(f"cosine_min {figures['cosine_min']:.6f} < {tol['min_cosine']}")
    if "min_top1" in tol and not figures["top1"] >= tol["min_top1"]:
        bad.append(f"top1 agreement {figures['top1']:.3f} < {tol['min_top1']}")
    return bad


def _clean(d: dict) -> dict:
    return {k: v for k, v in d.items() if not k.startswith("_")}


def rounded_copy(model, precision: str):
    """The PyTorch model with its weights rounded as `precision` rounds them, computing in fp32:
    fp16 -> every parameter rounded to fp16; int8 -> Conv/Linear weights rounded per output
    channel to symmetric int8 (what every int8 artifact does at the very least). None for fp32.
    It measures how sensitive the *model* is to the rounding, independently of any runtime."""
    import copy

    import torch

    if precision == "fp32":
        return None
    q = copy.deepcopy(model)
    with torch.no_grad():
        if precision == "fp16":
            for p in q.parameters():
                p.copy_(p.half().float())
        else:
            for m in q.modules():
                if isinstance(m, (torch.nn.Conv2d, torch.nn.Linear)):
                    w = m.weight
                    scale = w.abs().flatten(1).amax(1).clamp_min(1e-12) / 127
                    scale = scale.view(-1, *([1] * (w.dim() - 1)))
                    w.copy_(torch.round(w / scale).clamp(-127, 127) * scale)
    return q


def run_parity(model, spec, runner, batches: list[int], precision: str, seed: int = PARITY_SEED,
               inputs=None, label: str = "synthetic", baseline: bool = True) -> dict:
    """Run `runner(np.ndarray) -> np.ndarray` against `model` (PyTorch fp32) and judge the result.
    Returns the manifest's parity record: {passed, verdict, precision, inputs, per_batch, overall,
    tolerance, failures, baseline}.

    For fp16/int8 the same inputs also go through `rounded_copy(model)`: when even PyTorch with
    merely rounded weights misses the tolerance, the model itself cannot keep that precision's
    accuracy (typical of random synthetic weights) and a miss of the artifact says nothing about
    the runtime: the verdict is then 'inconclusive' rather than 'failed', with both sets of figures."""
    import torch

    pairs = inputs if inputs is not None else parity_inputs(spec, batches, precision, seed)
    rounded = rounded_copy(model, precision) if baseline else None
    per_batch: dict[str, list] = {}
    parts, base_parts = [], []
    with torch.no_grad():
        for b, x in pairs:
            ref = model(x).float().numpy()
            out = runner(x.numpy())
            fig = compare(ref, out)
            parts.append(fig)
            per_batch.setdefault(str(b), []).append(fig)
            if rounded is not None:
                base_parts.append(compare(ref, rounded(x).float().numpy()))
    overall = merge(parts)
    failures = judge(overall, precision)
    record = {
        "passed": not failures, "verdict": "passed" if not failures else "failed", "precision": precision,
        "inputs": label, "seed": seed if inputs is None else None, "batches": sorted({b for b, _ in pairs}),
        "per_batch": {b: _clean(merge(v)) for b, v in per_batch.items()},
        "overall": _clean(overall), "tolerance": TOLERANCES[precision], "failures": failures, "baseline": None,
    }
    if base_parts:
        base = merge(base_parts)
        base_failures = judge(base, precision)
        record["baseline"] = {"what": f"PyTorch with weights rounded to {precision} (fp32 compute)",
                              "overall": _clean(base), "failures": base_failures}
    record["verdict"], record["why"] = classify(record)
    record["passed"] = record["verdict"] == "passed"
    return record


def classify(record: dict) -> tuple[str, str]:
    """(verdict, why) of a parity record (`run_parity`'s, or one read back from a manifest):
    passed | failed | inconclusive, by the rule above INCONCLUSIVE_FACTOR."""
    overall = record.get("overall") or {}
    failures = record.get("failures") or []
    if not failures:
        return "passed", "within tolerance"
    if overall.get("nonfinite") or not all(
            isinstance(overall.get(k), (int, float)) and math.isfinite(overall[k]) for k in ("max_abs", "cosine_mean")):
        return "failed", "the artifact returned NaN or Inf"
    if overall["cosine_mean"] < FAR_OFF_COSINE:
        return "failed", f"far off: mean cosine {overall['cosine_mean']:.3f} < {FAR_OFF_COSINE}"
    base = record.get("baseline") or {}
    bo = base.get("overall") or {}
    if not base.get("failures") or not bo:
        return "failed", "misses the tolerance" + ("" if bo else " (no rounded-weights baseline)") + \
            ("; PyTorch with rounded weights meets it" if bo else "")
    n = max(1, int(overall.get("n") or 1))
    measures = (("1 - mean cosine", 1 - overall["cosine_mean"], 1 - bo.get("cosine_mean", 1.0), 0.0),
                ("max_rel", overall.get("max_rel", math.inf), bo.get("max_rel", 0.0), 0.0),
                ("top-1 disagreement", 1 - overall.get("top1", 0.0), 1 - bo.get("top1", 1.0), 1.0 / n))
    worse = [f"{name} {a:.3g} > {INCONCLUSIVE_FACTOR:g} x baseline {b:.3g}" for name, a, b, slack in measures
             if not a <= INCONCLUSIVE_FACTOR * b + slack]
    if worse:
        return "failed", "further from PyTorch than the rounded-weights baseline allows: " + "; ".join(worse)
    return "inconclusive", (f"misses the tolerance, as PyTorch with weights rounded to {record.get('precision')} "
                            f"does; within {INCONCLUSIVE_FACTOR:g}x of that baseline's error")


def format_failure(name: str, parity: dict) -> str:
    o = parity["overall"]
    why = f"; {parity['why']}" if parity.get("why") else ""
    return (f"{name}: parity {parity.get('verdict', 'failed').upper()} ({'; '.join(parity['failures'])}{why}): "
            f"max_abs {o['max_abs']:.3g}, "
            f"max_rel {o['max_rel']:.3g}, cosine_min {o['cosine_min']:.6f}, top1 {o['top1']:.3f} over {o['n']} inputs")


# --- runners: artifact -> callable(np.ndarray) -> np.ndarray ----------------------------------

def ort_runner(path: Path, threads: int | None = None):
    ort = optional_import("onnxruntime", "running ONNX artifacts")
    import numpy as np

    so = ort.SessionOptions()
    if threads:
        so.intra_op_num_threads = threads
    try:
        sess = ort.InferenceSession(str(path), so, providers=["CPUExecutionProvider"])
    except Exception as exc:  # ORT raises its own exception types for unreadable models
        raise UserError(f"{path}: ONNX Runtime cannot load it: {str(exc).strip().splitlines()[0]}") from None
    inp = sess.get_inputs()[0]
    dtype = np.float16 if "float16" in inp.type else np.float32

    def run(x):
        return sess.run(None, {inp.name: x.astype(dtype)})[0].astype(np.float32)

    return run


def ov_runner(path: Path, precision: str):
    ov = optional_import("openvino", "running OpenVINO artifacts")
    import numpy as np

    core = ov.Core()
    # fp32 and fp16 IRs are checked with f32 execution: CPUs with AMX otherwise run bf16 silently.
    config = {"INFERENCE_PRECISION_HINT": "f32"} if precision in ("fp32", "fp16") else {}
    try:
        compiled = core.compile_model(core.read_model(str(path)), "CPU", config)
    except Exception as exc:
        raise UserError(f"{path}: OpenVINO cannot load it: {str(exc).strip().splitlines()[0]}") from None
    request = compiled.create_infer_request()

    def run(x):
        return np.array(request.infer({0: x.astype(np.float32)})[compiled.output(0)], dtype=np.float32)

    run.config = config
    return run


def artifact_runner(artifact):
    """The runner for a loaded Artifact."""
    t = artifact.target
    if t == "onnx":
        return ort_runner(artifact.model_file)
    if t == "openvino":
        return ov_runner(artifact.model_file, artifact.precision)
    if t == "trt":
        from .tensorrt import engine_runner

        return engine_runner(artifact)
    raise UserError(f"unknown artifact target {t!r}")
