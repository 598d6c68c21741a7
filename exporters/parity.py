"""Parity: does the artifact compute what PyTorch computes?

Inputs are seeded synthetic images from a seed range never used for calibration (so int8 is
judged on held-out inputs), run at two batch sizes (one different from the export's example
batch). Figures per batch size and overall:

- max_abs: max |artifact - torch| over all logits;
- max_rel: max_abs / max |torch logits| (a scale-free error; element-wise relative error is
  meaningless for logits near zero);
- cosine: cosine similarity of each sample's logit vector, minimum and mean over samples;
- top1: fraction of samples whose arg-max class agrees.

Tolerances per precision (TOLERANCES, recorded in every parity record): fp32 is held to ~1e-4
absolute on logits (1e-4 + 1e-4 * max|logit|: a ResNet-50's reordered fp32 sums reach 2e-4 on
logits of magnitude 2-3), fp16 and tf32 (10-bit mantissas) to ~1e-2 + 3e-2 * max|logit|, bf16
(8-bit mantissa, four times coarser) to 4e-2 + 1e-1 * max|logit| and cosine 0.99, int8 by top-1
agreement and cosine.

The outputs always come from a backend Runner (`pfdeploy.backends`): the exporters verify an
artifact with the runner class and settings the benchmark times, and `pfdeploy bench` verifies
every case with the very runner object it times (`parity_record` on its outputs).
"""
from __future__ import annotations

import math
from pathlib import Path

from ..errors import UserError
from .settings import PARITY_SEED

# An artifact passes when every listed bound holds. atol/rtol: max_abs <= atol + rtol * max|ref|.
TOLERANCES = {
    "fp32": {"atol": 1e-4, "rtol": 1e-4, "min_cosine": 0.99999, "min_top1": 1.0},
    "tf32": {"atol": 1e-2, "rtol": 3e-2, "min_cosine": 0.999},
    "fp16": {"atol": 1e-2, "rtol": 3e-2, "min_cosine": 0.999},
    "bf16": {"atol": 4e-2, "rtol": 1e-1, "min_cosine": 0.99},
    "int8": {"min_cosine": 0.95, "min_top1": 0.70},
}
# int8 is judged on more held-out images than the float precisions: top-1 agreement over 4 images says little.
EXTRA_BATCHES = {"fp32": 0, "tf32": 0, "fp16": 0, "bf16": 0, "int8": 10}

# When a reduced-precision artifact misses the tolerance and so does PyTorch with merely rounded
# weights, the miss is `inconclusive` only if the artifact is about as close to PyTorch as that
# rounded-weights baseline: each error measure of the artifact (1 - mean cosine, max_rel, top-1
# disagreement) at most INCONCLUSIVE_FACTOR times the baseline's. Anything further off is
# `failed`, and so are non-finite outputs (NaN/Inf) and outputs that point elsewhere entirely:
# mean cosine below FAR_OFF_COSINE, or, where rounding the weights alone already takes PyTorch's
# own mean cosine below 2 x FAR_OFF_COSINE, below FAR_OFF_COSINE x that baseline's (int8 on
# synthetic weights: the rounded-weights ResNet-50 itself reaches only 0.47-0.61, so an absolute
# 0.5 failed artifacts exactly as close as int8 rounding allows; a broken artifact, e.g.
# mobilenetv2_100 at 0.15 against a baseline of 0.78, still fails).
INCONCLUSIVE_FACTOR = 4.0
FAR_OFF_COSINE = 0.5


def far_off_floor(baseline_cosine_mean) -> float:
    """The mean cosine below which an artifact's outputs point elsewhere entirely (see above)."""
    if isinstance(baseline_cosine_mean, (int, float)) and math.isfinite(baseline_cosine_mean):
        return min(FAR_OFF_COSINE, FAR_OFF_COSINE * max(0.0, baseline_cosine_mean))
    return FAR_OFF_COSINE


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
    fp16 -> every parameter rounded to fp16; bf16 -> to bf16; tf32 -> to tf32's 10-bit mantissa; int8 -> Conv/Linear weights rounded per output
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
        elif precision == "bf16":
            for p in q.parameters():
                p.copy_(p.bfloat16().float())
        elif precision == "tf32":
            for p in q.parameters():  # round to nearest on the 13 low mantissa bits
                bits = p.detach().contiguous().view(torch.int32)
                p.copy_(((bits + 0x1000) & ~0x1FFF).view(torch.float32))
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
    Returns the manifest's parity record (see `parity_record`)."""
    import torch

    pairs = inputs if inputs is not None else parity_inputs(spec, batches, precision, seed)
    rounded = rounded_copy(model, precision) if baseline else None
    per_input = []
    with torch.no_grad():
        for b, x in pairs:
            ref = model(x).float().numpy()
            out = runner(x.numpy())
            base = rounded(x).float().numpy() if rounded is not None else None
            per_input.append((b, ref, out, base))
    return parity_record(per_input, precision, label=label, seed=seed if inputs is None else None)


def parity_record(per_input: list, precision: str, label: str = "synthetic", seed: int | None = PARITY_SEED) -> dict:
    """Judge outputs against PyTorch's. `per_input`: [(batch, reference, output, baseline or None)]
    (numpy arrays; baseline: PyTorch with weights merely rounded to `precision`). Returns {passed,
    verdict, precision, inputs, per_batch, overall, tolerance, failures, baseline}.

    When even the rounded-weights baseline misses the tolerance, the model itself cannot keep that
    precision's accuracy (typical of random synthetic weights) and a miss of the artifact says
    nothing about the runtime: the verdict is then 'inconclusive' rather than 'failed'."""
    per_batch: dict[str, list] = {}
    parts, base_parts = [], []
    for b, ref, out, base in per_input:
        fig = compare(ref, out)
        parts.append(fig)
        per_batch.setdefault(str(b), []).append(fig)
        if base is not None:
            base_parts.append(compare(ref, base))
    overall = merge(parts)
    failures = judge(overall, precision)
    record = {
        "passed": not failures, "verdict": "passed" if not failures else "failed", "precision": precision,
        "inputs": label, "seed": seed, "batches": sorted({b for b, *_ in per_input}),
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
    base = record.get("baseline") or {}
    bo = base.get("overall") or {}
    floor = far_off_floor(bo.get("cosine_mean"))
    if overall["cosine_mean"] < floor:
        return "failed", f"far off: mean cosine {overall['cosine_mean']:.3f} < {floor:.3g}" + (
            f" (half the rounded-weights baseline's {bo['cosine_mean']:.3f})" if floor < FAR_OFF_COSINE else "")
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


def parity_verdict(parity: dict | None) -> str:
    """One word for a parity record (the manifest's `parity`, carried into every result row):
    passed | failed | inconclusive | unverified (no record) | reference (PyTorch itself, the
    reference everything is checked against)."""
    if not parity:
        return "unverified"
    if parity.get("status") == "reference":
        return "reference"
    if parity.get("verdict") == "inconclusive" and parity.get("overall"):
        # re-judged by the current rule: a record written by an older, laxer rule (every miss
        # of a model whose rounded-weights baseline also missed) may be a failure today
        return classify(parity)[0]
    if parity.get("verdict") in ("passed", "failed", "inconclusive"):
        return parity["verdict"]
    if isinstance(parity.get("passed"), bool):
        return "passed" if parity["passed"] else "failed"
    return "unverified"


def format_failure(name: str, parity: dict) -> str:
    o = parity["overall"]
    why = f"; {parity['why']}" if parity.get("why") else ""
    return (f"{name}: parity {parity.get('verdict', 'failed').upper()} ({'; '.join(parity['failures'])}{why}): "
            f"max_abs {o['max_abs']:.3g}, "
            f"max_rel {o['max_rel']:.3g}, cosine_min {o['cosine_min']:.6f}, top1 {o['top1']:.3f} over {o['n']} inputs")


# --- runners: artifact -> callable(np.ndarray) -> np.ndarray ----------------------------------

def verifier(artifact):
    """(target, backend) that verify `artifact`: its target's `verify_backend`, else the first
    backend registered for the target."""
    from ..backends import for_target, get_backend
    from .targets import get_target

    target = get_target(artifact.target)
    backend = get_backend(target.verify_backend) if target.verify_backend else for_target(target.name)
    return target, backend


def runtime_precision(artifact) -> tuple[str, dict]:
    """(precision, runner options) an artifact is verified at on its target's verifying device
    (the CPU; the GPU for engines): its own precision where the backend runs it there (an IR whose
    precision the CPU cannot compute, an fp16 IR without native fp16, is computed at f32 and says
    so: `Target.verify_setup`)."""
    target, backend = verifier(artifact)
    return target.verify_setup(artifact, backend)


def artifact_runner(artifact, threads: int | None = None):
    """A callable(np.ndarray) -> np.ndarray running a loaded Artifact through its backend's Runner
    (the class and settings `pfdeploy bench` times), one loaded Runner per batch size. The
    callable has `.config` (what the runner reports: `describe()` of the first one) and `.close()`."""
    import numpy as np

    from ..backends.case import CaseSpec
    from ..devices import physical_cores

    target, backend = verifier(artifact)
    target.check_runnable(artifact)  # e.g. an engine built for another GPU: refused before loading
    precision, options = target.verify_setup(artifact, backend)
    device = target.verify_device
    threads = threads or physical_cores()
    runners: dict[int, object] = {}

    def run(x):
        b = int(x.shape[0])
        if b not in runners:
            case = CaseSpec(model=artifact.model_name, backend=backend.name, device=device, precision=precision,
                            batch=b, threads=threads, options=dict(options))
            runners[b] = backend.load(case, np.ascontiguousarray(x, dtype=np.float32),
                                      model_file=str(artifact.model_file))
            if run.config is None:
                run.config = runners[b].describe()
        return runners[b].outputs(x)

    def close():
        for r in runners.values():
            r.close()
        runners.clear()

    run.config = None
    run.close = close
    return run
