"""get_artifact: the one entry point that exports, verifies and caches artifacts, for every
export target alike (exporters/targets/: what a target declares; this module orchestrates).

Steps compose (Polygraphy's loaders): torch -> ONNX fp32 is the hub; a target may derive its
artifact from another one (its `parent`: ONNX int8 and every OpenVINO IR from the cached fp32
ONNX, a TensorRT engine from the cached ONNX of its precision). Each step is an artifact of its
own, content-addressed in the cache (exporters/keys.py):

    <cache>/<target>/<model>-<precision>-<key16>/{model file(s), manifest.json}

Every artifact is built in a temporary directory beside its final place and renamed into place
only when complete (parity included), so an interrupted export leaves nothing that looks done.
The concerns around it: exporters/source.py (the PyTorch model and its process-wide cache),
keys.py (cache keys and places), manifest.py (the manifest written), verify.py (parity recorded),
outdir.py (`--out`).
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from ..errors import UsageError, UserError
from ..outputs import check_output_dir
from ..publish import make_temp_dir, sweep_stale_temp
from .artifact import Artifact, load_artifact
from .keys import artifact_dir, make_request, tools_for  # noqa: F401  (tools_for: re-exported)
from .manifest import base_manifest, inconclusive_note, seal_and_publish
from .outdir import check_out as _check_out
from .outdir import copy_out
from .parity import parity_verdict
from .settings import ExportRequest, parse_batch
from .source import ModelSource, model_for_artifact, weights_source  # noqa: F401  (re-exported)
from .targets import ExportContext, ExportPlan, Target, get_target
from .verify import say, verify_in_place

_Source = ModelSource  # the name older callers use


def get_artifact(model: str, target: str, precision: str = "fp32", batch=None, dynamic_batch=None,
                 weights=None, seed: int = 0, cache_dir=None, force: bool = False, verify: bool = True,
                 out=None, calib=None, progress: Callable | None = None, calib_size: int | None = None,
                 recipe: str | None = None, _source: ModelSource | None = None, allow_failed: bool = False) -> Artifact:
    """Export (or reuse from the cache) `model` for `target` at `precision` and return the
    verified Artifact (with `allow_failed`, also one whose parity failed: the caller decides).

    model: zoo name, alias or timm:<name>; target: onnx | openvino | trt, or a plugin's target
    (`pfdeploy.exporters.targets`); precision: what the target exports (fp32 | fp16 | int8, trt
    also tf32); batch: static batch N, or dynamic_batch 'MIN:OPT:MAX' (default dynamic 1:8:64);
    weights: checkpoint path (default synthetic weights with `seed`); cache_dir: cache root
    (default $PFDEPLOY_CACHE_DIR or the user cache); force: re-export even if cached; verify: run
    parity (a failure raises UserError and leaves the artifact marked failed); out: also copy
    the finished artifact to this directory; calib: folder of calibration images for int8
    (default synthetic); progress: callable(str) for stage messages; recipe: the int8 recipe of an
    ONNX artifact (`onnxruntime`, U8S8, the default; `tensorrt`, S8S8 with float biases; TensorRT
    engines always use `tensorrt`)."""
    from ..config import cache_dir as default_cache
    from ..zoo import get_spec

    spec = get_spec(model)
    tgt = get_target(target)
    precision = tgt.check_precision(precision)
    bspec = parse_batch(batch, dynamic_batch)
    if (calib is not None or calib_size is not None) and precision != "int8":
        raise UsageError("--calib/--calib-size only apply to --precision int8")
    recipe = tgt.int8_recipe(precision, recipe)
    root = default_cache(cache_dir)
    # A read-only cache that already holds the artifact is fine: writability is checked (early,
    # before any expensive step) only where something must be exported, in _cached_or_build.
    out_path = _check_out(out, force) if out is not None else None
    sweep_stale_temp(root)  # leftovers of exports that were killed (best effort)
    from ..pretrained import resolve

    resolved = resolve(spec.name, weights)  # a release checkpoint is fetched (once) here
    # from here on `weights` is what the model is built from: None (synthetic), 'pretrained' or a file
    weights = {"synthetic": None, "pretrained": "pretrained"}.get(resolved.kind, str(resolved.path))
    wsrc = resolved.source or weights_source(weights, seed)
    cspec = None
    if precision == "int8":
        from .images import calib_spec

        cspec = calib_spec(calib, calib_size)
    source = _source or ModelSource(spec.name, weights, seed)

    def artifact_dir_of(t: str, p: str, b, r: str | None = None) -> Path:
        return artifact_dir(root, make_request(spec.name, wsrc, t, p, b, cspec, recipe=r))

    plan = ExportPlan(spec, wsrc, precision, bspec, cspec, recipe, root, artifact_dir_of)
    tgt.prepare(plan)  # a missing toolchain stops here, with its hint
    req = make_request(spec.name, wsrc, tgt.name, precision, bspec, cspec, extra_tools=plan.extra_tools,
                       recipe=recipe)
    art = _cached_or_build(tgt, req, plan, force, verify, source, progress, weights, seed, allow_failed)
    if out_path is not None:
        art = copy_out(art, out_path)
        say(progress, f"copied to {out_path}")
    return art


def _failure(spec, req: ExportRequest, art: Artifact) -> UserError:
    from .parity import format_failure

    return UserError(format_failure(f"{spec.name} {req.target} {req.precision}", art.parity)
                     + f"; the artifact is kept for inspection at {art.path} (re-export with --force)")


def _cached_or_build(tgt: Target, req: ExportRequest, plan: ExportPlan, force: bool, verify: bool,
                     source: ModelSource, progress, weights, seed, allow_failed: bool = False) -> Artifact:
    spec, root = plan.spec, plan.root
    final = artifact_dir(root, req)
    art = None
    replace = force
    if final.exists() and not force:
        try:
            art = load_artifact(final)
            say(progress, f"cached {req.target} {req.precision} artifact: {final}")
        except UserError as exc:
            say(progress, f"cached artifact unusable ({exc}); re-exporting")
            replace = True
    if art is None:
        check_output_dir(root, "cache directory")  # before the expensive export
        art = _build(tgt, req, plan, final, replace, verify, source, progress, weights, seed)
    elif verify and tgt.reverify_cached and (
            art.status in ("unverified", "failed")
            or (art.status == "inconclusive" and parity_verdict(art.parity) != "inconclusive")):
        # a failed artifact is kept for inspection; asking for it again re-runs parity (with the
        # current tolerances) instead of repeating a stale verdict; so does an 'inconclusive'
        # that the current rule judges otherwise (written by an older, laxer rule)
        art = verify_in_place(art, spec, source.model, progress)
    if art.status == "failed" and verify and not allow_failed:
        raise _failure(spec, req, art)
    if art.status == "inconclusive":
        say(progress, inconclusive_note(art))
    return art


def _build(tgt: Target, req: ExportRequest, plan: ExportPlan, final: Path, replace: bool, verify: bool,
           source: ModelSource, progress, weights, seed) -> Artifact:
    spec = plan.spec
    parent = None
    parent_request = tgt.parent(plan)
    if parent_request is not None:  # derived from a cached artifact (exported and verified first if needed)
        parent = get_artifact(spec.name, weights=weights, seed=seed, cache_dir=plan.root, force=False,
                              verify=verify, progress=progress, _source=source, **parent_request)
    model = source.model()  # before the temp dir: a bad weights file leaves nothing behind
    tmp = make_temp_dir(final.parent, final.name)
    try:
        manifest = base_manifest(req, spec, weights)
        if parent is not None:
            manifest["exporter"]["parent"] = {"key": parent.manifest["key"], "sha256": parent.sha256,
                                              "path": str(parent.path)}
        say(progress, tgt.progress_message(plan))
        t0 = time.perf_counter()
        ctx = ExportContext(req, plan, tmp, final, parent, source.model, progress or (lambda msg: None))
        manifest["exporter"].update(tgt.export(ctx))
        manifest["export_seconds"] = round(time.perf_counter() - t0, 3)
        path = seal_and_publish(tmp, final, manifest, tgt.files(tmp), tgt.model_file, req, spec, model,
                                verify, progress, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_artifact(path, check_hash=False)


__all__ = ["artifact_dir", "get_artifact", "inconclusive_note", "make_request", "model_for_artifact"]
