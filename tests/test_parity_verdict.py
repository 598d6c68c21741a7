"""The parity verdict rule (issue 9, item 4): `inconclusive` only when a reduced-precision
artifact is as close to PyTorch as PyTorch with merely rounded weights (within the stated factor);
NaN, Inf or far-off outputs are `failed`, and a failed artifact is not timed unless asked."""
from __future__ import annotations

import math
import shutil

import numpy as np
import pytest

from pfdeploy.exporters import parity
from pfdeploy.exporters.parity import FAR_OFF_COSINE, INCONCLUSIVE_FACTOR, classify, parity_verdict


def _record(cos_mean, max_rel, top1, base=(0.9, 0.3, 0.6), n=34, failures=("cosine_min 0.8 < 0.95",),
            base_failures=("cosine_min 0.8 < 0.95",), nonfinite=False):
    overall = {"n": n, "max_abs": math.inf if nonfinite else max_rel * 3, "max_rel": max_rel,
               "cosine_min": cos_mean - 0.05, "cosine_mean": cos_mean, "top1": top1}
    if nonfinite:
        overall["cosine_mean"] = -1.0
    return {"precision": "int8", "overall": overall, "failures": list(failures),
            "baseline": {"overall": {"n": n, "max_rel": base[1], "cosine_mean": base[0], "top1": base[2],
                                     "cosine_min": base[0] - 0.05, "max_abs": base[1] * 3},
                         "failures": list(base_failures)}}


def test_within_the_factor_of_the_rounded_baseline_is_inconclusive():
    # baseline: 1 - cos 0.1, max_rel 0.3, disagreement 0.4; the artifact at twice that
    assert classify(_record(0.8, 0.6, 0.3))[0] == "inconclusive"


def test_further_than_the_factor_is_failed_and_says_which_measure():
    worse = 1 - (INCONCLUSIVE_FACTOR + 0.5) * 0.1  # 1 - cos beyond the factor x baseline
    verdict, why = classify(_record(worse, 0.6, 0.3))
    assert verdict == "failed" and "1 - mean cosine" in why
    verdict, why = classify(_record(0.85, 0.3 * (INCONCLUSIVE_FACTOR + 1), 0.5))
    assert verdict == "failed" and "max_rel" in why


def test_nan_and_far_off_outputs_fail_whatever_the_baseline():
    assert classify(_record(0.9, 0.3, 0.6, nonfinite=True)) == ("failed", "the artifact returned NaN or Inf")
    # far off: below FAR_OFF_COSINE where rounding alone keeps PyTorch close to itself
    verdict, why = classify(_record(FAR_OFF_COSINE - 0.1, 1.0, 0.0))
    assert verdict == "failed" and why.startswith("far off")
    # a baseline so bad that the factor would allow anything: below half its cosine is still failed
    rec = _record(0.14, 1.0, 0.0, base=(0.3, 5.0, 0.0))
    verdict, why = classify(rec)
    assert verdict == "failed" and why.startswith("far off") and "half the rounded-weights baseline" in why
    # int8 on synthetic weights (measured: ResNet-50's ONNX Runtime int8 artifact at mean cosine 0.456,
    # PyTorch with int8-rounded weights 0.47-0.61): as close as rounding allows is inconclusive, not failed
    verdict, why = classify(_record(0.456, 1.22, 0.059, base=(0.5, 1.0, 0.1)))
    assert verdict == "inconclusive", why


def test_a_miss_where_the_baseline_passes_is_failed_and_a_pass_is_passed():
    assert classify(_record(0.8, 0.6, 0.3, base_failures=()))[0] == "failed"
    assert classify(_record(0.999, 0.01, 1.0, failures=()))[0] == "passed"


def test_records_written_by_the_old_rule_are_rejudged():
    old = _record(0.1 + FAR_OFF_COSINE, 9.0, 0.0)
    old["verdict"] = "inconclusive"  # what the old rule wrote: both missed the tolerance
    assert parity_verdict(old) == "failed"
    ok = _record(0.8, 0.6, 0.3)
    ok["verdict"] = "inconclusive"
    assert parity_verdict(ok) == "inconclusive"


# ---------------------------------------------------------------------------------------------
# a real, deliberately broken int8 artifact
# ---------------------------------------------------------------------------------------------

def _break(src, dst, how):
    """Copy of the QDQ int8 model, broken: `nan` -> the logits pass through an Add of NaN (a
    runtime that produces NaN); `far` -> the weight scales of the first half of the layers
    multiplied by 40 (a broken quantization recipe)."""
    import onnx
    from onnx import helper, numpy_helper

    proto = onnx.load(str(src))
    if how == "nan":
        out = proto.graph.output[0]
        old = out.name
        proto.graph.initializer.append(numpy_helper.from_array(np.array([np.nan], np.float32), "nan_const"))
        for node in proto.graph.node:
            node.output[:] = [f"{old}_pre" if o == old else o for o in node.output]
        proto.graph.node.append(helper.make_node("Add", [f"{old}_pre", "nan_const"], [old]))
        onnx.save(proto, str(dst))
        return
    inits = {i.name: i for i in proto.graph.initializer}
    deq = [n for n in proto.graph.node if n.op_type == "DequantizeLinear" and n.input[0] in inits
           and inits[n.input[1]].dims and inits[n.input[1]].dims[0] > 1]
    assert deq, "no per-channel weight DequantizeLinear nodes"
    for i, node in enumerate(deq[: max(1, len(deq) // 2)]):
        scale = inits[node.input[1]]
        arr = numpy_helper.to_array(scale).copy()
        arr = arr * np.float32(40.0)
        scale.CopyFrom(numpy_helper.from_array(arr.astype(np.float32), scale.name))
    onnx.save(proto, str(dst))


@pytest.fixture(scope="module")
def vit_int8(artifact_cache):
    from pfdeploy.errors import UserError
    from pfdeploy.exporters import get_artifact, load_artifact

    old = parity.EXTRA_BATCHES["int8"]
    parity.EXTRA_BATCHES["int8"] = 1
    try:
        return get_artifact("pf_vit_ti", "onnx", "int8", calib_size=4)
    except UserError as exc:
        return load_artifact(str(exc).split("inspection at ")[1].split(" (re-export")[0])
    finally:
        parity.EXTRA_BATCHES["int8"] = old


def _runner(art, model_file):
    """The backend runner `pfdeploy bench` times (parity.artifact_runner) over another model file."""
    from pathlib import Path
    from types import SimpleNamespace

    other = SimpleNamespace(target=art.target, precision=art.precision, model_name=art.model_name,
                            model_file=Path(model_file), manifest=art.manifest, path=art.path)
    return parity.artifact_runner(other)


@pytest.mark.integration  # a real int8 export and parity runs through ONNX Runtime
@pytest.mark.parametrize("how", ["nan", "far"])
def test_a_broken_int8_artifact_fails_parity(vit_int8, tmp_path, how):
    from pfdeploy.zoo import create_model, get_spec

    broken = tmp_path / "model.onnx"
    _break(vit_int8.model_file, broken, how)
    model, spec = create_model("pf_vit_ti"), get_spec("pf_vit_ti")
    inputs = parity.parity_inputs(spec, [1, 2], "int8")[:3]
    good = parity.run_parity(model, spec, _runner(vit_int8, vit_int8.model_file), [1, 2], "int8", inputs=inputs)
    bad = parity.run_parity(model, spec, _runner(vit_int8, broken), [1, 2], "int8", inputs=inputs)
    assert bad["verdict"] == "failed", bad
    if how == "nan":
        assert "NaN" in bad["why"]
    else:  # the corruption, not the int8 recipe, is what failed it: far further off than the intact file
        assert bad["overall"]["cosine_mean"] < good["overall"]["cosine_mean"] - 0.2
        assert bad["overall"]["max_rel"] > good["overall"]["max_rel"]
