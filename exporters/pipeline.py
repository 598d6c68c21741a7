"""get_artifact: the one entry point that exports, verifies and caches artifacts.

Steps compose (Polygraphy's loaders): torch -> ONNX fp32 is the hub; ONNX int8 (QDQ) and every
OpenVINO IR are derived from the cached fp32 ONNX; a TensorRT engine is built from the cached
ONNX of its precision. Each step is an artifact of its own, content-addressed in the cache:

    <cache>/<target>/<model>-<precision>-<key16>/{model file(s), manifest.json}

Every artifact is built in a temporary directory beside its final place and renamed into place
only when complete (parity included), so an interrupted export leaves nothing that looks done.
"""
from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Callable

from .. import __version__
from ..errors import UsageError, UserError
from .artifact import (FORMAT, MANIFEST, Artifact, artifact_sha256, check_writable_dir, files_digest,
                       load_artifact, make_temp_dir, parity_verdict, publish_dir, sweep_stale_temp, tool_versions,
                       utc_now, write_manifest)
from .settings import (DEFAULT_DYNAMIC, MODEL_FILES, OPSET, BatchSpec, ExportRequest, canonical_target, check_precision,
                       parse_batch)

CORE_TOOLS = ("torch", "onnx", "onnxscript", "timm")


def _say(progress: Callable | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


class _Source:
    """The PyTorch model, built once and only when needed (a verified cache hit needs none)."""

    def __init__(self, name: str, weights, seed: int):
        self.name, self.weights, self.seed = name, weights, seed
        self._model = None

    def model(self):
        if self._model is None:
            key = (self.name, str(self.weights) if self.weights else None, self.seed, _weights_stamp(self.weights))
            if _LAST_MODEL and _LAST_MODEL[0] == key:
                self._model = _LAST_MODEL[1]
            else:
                from ..zoo import create_model

                self._model = create_model(self.name, weights=self.weights, seed=self.seed)
                _LAST_MODEL[:] = [key, self._model]
        return self._model


# The last model built, reused by the next export of the same model in this process (a model's
# ONNX, OpenVINO and int8 artifacts are usually asked for in a row; one entry bounds the memory).
_LAST_MODEL: list = []


def _weights_stamp(weights):
    if not weights or str(weights) == "pretrained":
        return None
    st = Path(weights).expanduser().stat()
    return (st.st_size, st.st_mtime_ns)


def weights_source(weights, seed: int) -> str:
    if weights is None:
        return f"synthetic:{int(seed)}"
    p = Path(weights).expanduser()
    if not p.is_file():
        raise UserError(f"weights file not found: {p}")
    from ..weights import sha256_file

    return f"sha256:{sha256_file(p)}"


def tools_for(target: str, precision: str) -> dict:
    mods = list(CORE_TOOLS)
    if target == "onnx" and precision == "int8":
        mods.append("onnxruntime")
    if target == "openvino":
        mods.append("openvino")
        if precision == "int8":
            mods.append("nncf")
    if target == "trt":
        mods += ["onnxruntime", "tensorrt"] if precision == "int8" else ["tensorrt"]
    return tool_versions(*mods)


def make_request(name: str, wsrc: str, target: str, precision: str, batch: BatchSpec, calib=None,
                 extra_tools: dict | None = None, recipe: str | None = None) -> ExportRequest:
    tools = tools_for(target, precision)
    if extra_tools:
        tools.update(extra_tools)
    return ExportRequest(name, wsrc, target, precision, batch, OPSET,
                         calib if precision == "int8" else None, tools, __version__,
                         recipe=recipe if precision == "int8" and target in ("onnx", "trt") else None)


def artifact_dir(root: Path, req: ExportRequest) -> Path:
    return Path(root) / req.target / req.dirname()


def get_artifact(model: str, target: str, precision: str = "fp32", batch=None, dynamic_batch=None,
                 weights=None, seed: int = 0, cache_dir=None, force: bool = False, verify: bool = True,
                 out=None, calib=None, progress: Callable | None = None, calib_size: int | None = None,
                 recipe: str | None = None, _source: _Source | None = None, allow_failed: bool = False) -> Artifact:
    """Export (or reuse from the cache) `model` for `target` at `precision` and return the
    verified Artifact (with `allow_failed`, also one whose parity failed: the caller decides).

    model: zoo name, alias or timm:<name>; target: onnx | openvino | trt; precision: fp32 | fp16 |
    int8; batch: static batch N, or dynamic_batch 'MIN:OPT:MAX' (default dynamic 1:8:64);
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
    target = canonical_target(target)
    precision = check_precision(target, precision)
    bspec = parse_batch(batch, dynamic_batch)
    if (calib is not None or calib_size is not None) and precision != "int8":
        raise UsageError("--calib/--calib-size only apply to --precision int8")
    if recipe is not None and not (precision == "int8" and target == "onnx"):
        raise UsageError("--int8-recipe only applies to --to onnx --precision int8 "
                         "(TensorRT engines use the tensorrt recipe, OpenVINO NNCF)")
    if precision == "int8" and target == "onnx":
        from .quantize import check_recipe

        recipe = check_recipe(recipe)
    root = default_cache(cache_dir)
    # A read-only cache that already holds the artifact is fine: writability is checked (early,
    # before any expensive step) only where something must be exported, in _build/_trt_artifact.
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
    source = _source or _Source(spec.name, weights, seed)

    if target == "trt":
        art = _trt_artifact(spec, wsrc, precision, bspec, cspec, root, force, verify, source, progress,
                            weights, seed, allow_failed)
    else:
        req = make_request(spec.name, wsrc, target, precision, bspec, cspec, recipe=recipe)
        art = _cached_or_build(req, spec, root, force, verify, source, progress, weights, seed, allow_failed)
    if out_path is not None:
        art = _copy_out(art, out_path)
        _say(progress, f"copied to {out_path}")
    return art


def _holds_only_an_artifact(p: Path) -> bool:
    """True when directory `p` holds a previous pfdeploy artifact and nothing else (its
    manifest.json and exactly the files that manifest lists)."""
    import json

    try:
        manifest = json.loads((p / MANIFEST).read_text())
        names = {e.name for e in p.iterdir()}
    except (OSError, ValueError):
        return False
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT or not isinstance(manifest.get("files"), dict):
        return False
    return names <= {MANIFEST, *manifest["files"]}


def _check_out(out, force: bool) -> Path:
    """--out DIR: new or empty; or, with --force, holding only a previous pfdeploy artifact
    (replaced as a whole). A directory with anything else in it is refused, --force or not:
    pfdeploy never deletes a user's files."""
    p = Path(out).expanduser()
    check_writable_dir(p, "--out")
    if p.exists():
        if not p.is_dir():
            raise UserError(f"--out {p} exists and is not a directory")
        if any(p.iterdir()):
            if not _holds_only_an_artifact(p):
                raise UserError(f"--out {p} is not empty and holds more than a pfdeploy artifact; choose a new or "
                                f"empty directory (pfdeploy never deletes other files, --force or not)")
            if not force:
                raise UserError(f"--out {p} is not empty (it holds a pfdeploy artifact); choose a new directory "
                                f"or add --force to replace that artifact")
    return p


def _copy_out(art: Artifact, out: Path) -> Artifact:
    from ..outputs import publish_tree_mode

    tmp = make_temp_dir(out.parent, out.name)
    try:
        for name in [*art.manifest["files"], MANIFEST]:
            shutil.copy2(art.path / name, tmp / name)
        publish_tree_mode(tmp)  # a directory the user named gets the umask's mode, not mkdtemp's 0700
        _check_out(out, True)  # again: files may have appeared there while copying
        if out.exists() and not any(out.iterdir()):
            out.rmdir()
        publish_dir(tmp, out, replace=True)
    except BaseException as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        if isinstance(exc, OSError):  # full disk, permissions
            from ..outputs import _reason

            raise UserError(f"cannot write --out {out}: {_reason(exc)}") from None
        raise
    return load_artifact(out, check_hash=False)


def _cached_or_build(req: ExportRequest, spec, root: Path, force: bool, verify: bool, source: _Source,
                     progress, weights, seed, allow_failed: bool = False) -> Artifact:
    final = artifact_dir(root, req)
    art = None
    replace = force
    if final.exists() and not force:
        try:
            art = load_artifact(final)
            _say(progress, f"cached {req.target} {req.precision} artifact: {final}")
        except UserError as exc:
            _say(progress, f"cached artifact unusable ({exc}); re-exporting")
            replace = True
    if art is None:
        check_writable_dir(root, "cache directory")  # before the expensive export
        art = _build(req, spec, root, final, replace, verify, source, progress, weights, seed)
    elif verify and (art.status in ("unverified", "failed")
                     or (art.status == "inconclusive" and parity_verdict(art.parity) != "inconclusive")):
        # a failed artifact is kept for inspection; asking for it again re-runs parity (with the
        # current tolerances) instead of repeating a stale verdict; so does an 'inconclusive'
        # that the current rule judges otherwise (written by an older, laxer rule)
        art = _verify_in_place(art, spec, source, progress)
    if art.status == "failed" and verify and not allow_failed:
        from .parity import format_failure

        raise UserError(format_failure(f"{spec.name} {req.target} {req.precision}", art.parity)
                        + f"; the artifact is kept for inspection at {art.path} (re-export with --force)")
    if art.status == "inconclusive":
        _say(progress, inconclusive_note(art))
    return art


def inconclusive_note(art: Artifact) -> str:
    p = art.parity
    b = p["baseline"]["overall"]
    return (f"warning: {art.precision} parity is inconclusive for {art.model_name}: the artifact misses the tolerance "
            f"({'; '.join(p['failures'])}), but so does PyTorch itself with weights merely rounded to "
            f"{art.precision} (cosine_min {b['cosine_min']:.3f}, top1 {b['top1']:.3f}): these weights cannot keep "
            f"{art.precision} accuracy, so the figures say nothing about the runtime. Real checkpoints "
            f"(--weights) give a real verdict.")


def _base_manifest(req: ExportRequest, spec, weights) -> dict:
    return {
        "format": "pfdeploy-artifact", "version": 1, "status": "unverified", "key": req.key(),
        "model": {"name": spec.name, "family": spec.family, "input_size": list(spec.input_size),
                  "mean": list(spec.mean), "std": list(spec.std), "interpolation": spec.interpolation,
                  "crop_pct": spec.crop_pct},
        "weights": {"source": req.weights_source, "file": str(Path(weights).expanduser().resolve()) if weights else None},
        "target": req.target, "precision": req.precision,
        "exporter": {"opset": req.opset, "precision": req.precision, "batch": req.batch.to_dict(),
                     "calibration": req.calib.to_dict() if req.calib else None},
        "tools": {**tool_versions("torch", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf",
                                  "tensorrt", "timm"), **req.tools},
        "cache_key_material": req.key_material(),
        "pfdeploy_version": __version__,
    }


def _seal_and_publish(tmp: Path, final: Path, manifest: dict, names: list[str], model_file: str,
                      req: ExportRequest, spec, model, verify: bool, progress, replace: bool) -> Path:
    """Digest the files, verify parity (unless disabled), write the manifest and move the
    temporary directory into place; the caller removes `tmp` if anything raises."""
    manifest["files"] = files_digest(tmp, names)
    manifest["model_file"] = model_file
    manifest["sha256"] = artifact_sha256(manifest["files"])
    manifest["created_at"] = utc_now()
    if verify:
        _say(progress, f"verifying parity at batch {', '.join(map(str, req.batch.parity_batches()))}")
        _attach_parity(manifest, Artifact(tmp, manifest), spec, model)
    write_manifest(tmp, manifest)
    return publish_dir(tmp, final, replace=replace)


def _build(req: ExportRequest, spec, root: Path, final: Path, replace: bool, verify: bool, source: _Source,
           progress, weights, seed) -> Artifact:
    parent = None
    if req.target == "openvino" or (req.target == "onnx" and req.precision == "int8"):
        # derived from the cached fp32 ONNX (exported and verified first if needed)
        parent = get_artifact(spec.name, "onnx", "fp32", batch=req.batch.min if not req.batch.dynamic else None,
                              dynamic_batch=None if not req.batch.dynamic else
                              (req.batch.min, req.batch.opt, req.batch.max),
                              weights=weights, seed=seed, cache_dir=root, force=False, verify=verify,
                              progress=progress, _source=source)
    model = source.model()  # before the temp dir: a bad weights file leaves nothing behind
    tmp = make_temp_dir(final.parent, final.name)
    try:
        manifest = _base_manifest(req, spec, weights)
        if parent is not None:
            manifest["exporter"]["parent"] = {"key": parent.manifest["key"], "sha256": parent.sha256,
                                              "path": str(parent.path)}
        _say(progress, f"exporting {spec.name} to {req.target} {req.precision} ({req.batch.describe()})")
        t0 = time.perf_counter()
        manifest["exporter"].update(_export_step(req, spec, model, tmp, parent))
        manifest["export_seconds"] = round(time.perf_counter() - t0, 3)
        names = sorted(p.name for p in tmp.iterdir() if p.is_file() and not p.name.startswith("."))
        path = _seal_and_publish(tmp, final, manifest, names, MODEL_FILES[req.target], req, spec, model,
                                 verify, progress, replace)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return load_artifact(path, check_hash=False)


def _attach_parity(manifest: dict, art: Artifact, spec, model) -> None:
    from .parity import artifact_runner, run_parity

    t0 = time.perf_counter()
    runner = artifact_runner(art)
    batch = BatchSpec(**{k: v for k, v in manifest["exporter"]["batch"].items() if k != "example"})
    try:
        parity = run_parity(model, spec, runner, batch.parity_batches(), manifest["precision"])
    finally:
        if hasattr(runner, "close"):
            runner.close()
    if getattr(runner, "config", None):
        parity["runtime_config"] = runner.config
    parity["seconds"] = round(time.perf_counter() - t0, 3)
    parity["checked_at"] = utc_now()
    manifest["parity"] = parity
    manifest["status"] = {"passed": "ok", "failed": "failed", "inconclusive": "inconclusive"}[parity["verdict"]]


def _verify_in_place(art: Artifact, spec, source: _Source, progress) -> Artifact:
    _say(progress, f"verifying cached artifact {art.path}")
    manifest = dict(art.manifest)
    _attach_parity(manifest, art, spec, source.model())
    try:
        write_manifest(art.path, manifest)
    except OSError:  # a read-only cache: use the verdict for this command, keep the file as it is
        _say(progress, f"cache {art.path} is read-only: the new parity verdict is not saved there")
        return Artifact(art.path, manifest)
    return load_artifact(art.path, check_hash=False)


def _export_step(req: ExportRequest, spec, model, tmp: Path, parent: Artifact | None) -> dict:
    if req.target == "onnx":
        if req.precision in ("fp32", "fp16"):
            from .onnx_export import export_onnx

            return export_onnx(model, spec, req.batch, tmp / "model.onnx", req.opset, half=req.precision == "fp16")
        from .images import calibration_batches
        from .onnx_export import op_histogram
        from .quantize import ort_quantize

        import onnx

        settings = ort_quantize(parent.model_file, tmp / "model.onnx", calibration_batches(spec, req.calib),
                                recipe=req.recipe)
        onnx.checker.check_model(str(tmp / "model.onnx"), full_check=True)
        return {"name": f"onnxruntime static QDQ quantization of the fp32 ONNX, recipe {req.recipe} "
                        f"({settings['name']})", "recipe": req.recipe, "quantization": settings,
                "ops": op_histogram(onnx.load(str(tmp / "model.onnx")))}
    if req.target == "openvino":
        return _openvino_step(req, spec, model, tmp, parent)
    raise AssertionError(req.target)


def _openvino_step(req: ExportRequest, spec, model, tmp: Path, parent: Artifact) -> dict:
    """OpenVINO IR from the verified fp32 ONNX (not from the module): one torch export feeds every
    runtime, so OpenVINO and ONNX Runtime run the very same graph, and OpenVINO's ONNX frontend
    keeps the dynamic batch axis as exported."""
    from ..errors import optional_import

    from ..backends import get_backend

    ov = optional_import("openvino", "--to openvino", hint=get_backend("openvino").install_hint)
    try:
        ov_model = ov.convert_model(str(parent.model_file))
    except Exception as exc:
        raise UserError(f"OpenVINO could not convert {parent.model_file}: {str(exc).strip().splitlines()[0]}") from None
    info = {"name": "openvino.convert_model(fp32 ONNX) + openvino.save_model", "source": "onnx"}
    if req.precision == "int8":
        import torch.nn as nn

        from .images import calibration_batches
        from .quantize import ov_quantize

        transformer = any(isinstance(m, nn.LayerNorm) for m in model.modules())
        ov_model, qinfo = ov_quantize(ov_model, calibration_batches(spec, req.calib), transformer)
        info["quantization"] = qinfo
    compress = req.precision == "fp16"
    ov.save_model(ov_model, str(tmp / "model.xml"), compress_to_fp16=compress)
    info["compress_to_fp16"] = compress
    return info


# --- TensorRT ---------------------------------------------------------------------------------

def _trt_artifact(spec, wsrc, precision, bspec, cspec, root, force, verify, source, progress, weights, seed,
                  allow_failed: bool = False):
    from . import tensorrt as trtx

    info = trtx.probe()
    strongly = True
    if info["tensorrt"]:
        import tensorrt as trt

        strongly = hasattr(trt.NetworkDefinitionCreationFlag, "STRONGLY_TYPED")
    src_prec = trtx.source_precision(precision, strongly)
    # the ONNX records no batch bounds: one dynamic ONNX feeds every engine profile
    src_batch = parse_batch(None, None) if bspec.dynamic else bspec
    src_recipe = "tensorrt" if src_prec == "int8" else None
    src_req = make_request(spec.name, wsrc, "onnx", src_prec, src_batch, cspec, recipe=src_recipe)
    src_dir = artifact_dir(root, src_req)
    if info["missing"]:
        tc = trtx.timing_cache_path(root, "VERSION", "GPU")
        cmd = trtx.trtexec_command(src_dir / "model.onnx", "model.plan", bspec, spec.input_size, precision,
                                   timing_cache=tc.parent / "timing.cache")
        hint = None
        if not (src_dir / "model.onnx").is_file():
            flags = f" --precision {src_prec}" if src_prec != "fp32" else ""
            if not bspec.dynamic:
                flags += f" --batch {bspec.min}"
            if src_recipe:
                flags += f" --int8-recipe {src_recipe}"
            hint = (f"That ONNX file is not exported yet; `pfdeploy export {spec.name} --to onnx{flags}` "
                    f"writes it there.")
        trtx.require(onnx_hint=hint, trtexec=cmd)
    gpu = trtx.gpu_facts()
    extra = {"tensorrt": info["tensorrt"], "gpu": gpu["gpu"], "compute_capability": gpu["compute_capability"],
             "cuda": gpu["cuda"]}
    req = make_request(spec.name, wsrc, "trt", precision, bspec, cspec, extra_tools=extra, recipe=src_recipe)
    final = artifact_dir(root, req)
    if final.exists() and not force:
        try:
            art = load_artifact(final)
        except UserError as exc:
            _say(progress, f"cached engine unusable ({exc}); rebuilding")
            art = None
        if art is not None:
            if art.status == "failed" and verify and not allow_failed:
                from .parity import format_failure

                raise UserError(format_failure(f"{spec.name} trt {precision}", art.parity)
                                + f"; kept at {art.path} (re-export with --force)")
            return art
    check_writable_dir(root, "cache directory")  # before building an engine
    onnx_art = get_artifact(spec.name, "onnx", src_prec, batch=None if bspec.dynamic else bspec.min,
                            weights=weights, seed=seed, cache_dir=root, verify=verify, progress=progress,
                            calib=cspec.folder if cspec and cspec.source == "images" else None,
                            calib_size=cspec.size if cspec else None, recipe=src_recipe, _source=source)
    if src_prec == "int8" and (onnx_art.manifest["exporter"].get("recipe") != "tensorrt"):
        raise UserError(f"{onnx_art.path} was quantized with recipe {onnx_art.manifest['exporter'].get('recipe')!r}, "
                        f"not TensorRT's (symmetric, float biases); refusing to build an engine from it")
    model = source.model()
    tmp = make_temp_dir(final.parent, final.name)
    try:
        manifest = _base_manifest(req, spec, weights)
        manifest["exporter"]["parent"] = {"key": onnx_art.manifest["key"], "sha256": onnx_art.sha256,
                                          "path": str(onnx_art.path)}
        _say(progress, f"building TensorRT {precision} engine for {spec.name} on {gpu['gpu']}")
        t0 = time.perf_counter()
        settings = trtx.build_engine(onnx_art.model_file, tmp / "model.plan", precision, bspec, spec.input_size,
                                     trtx.timing_cache_path(root, info["tensorrt"], gpu["gpu"]))
        manifest["export_seconds"] = round(time.perf_counter() - t0, 3)
        manifest["exporter"].update({"name": "tensorrt.Builder + OnnxParser", **settings,
                                     "trtexec": trtx.trtexec_command(onnx_art.model_file, final / "model.plan", bspec,
                                                                     spec.input_size, precision)})
        manifest["tools"].update({**extra})
        path = _seal_and_publish(tmp, final, manifest, ["model.plan"], "model.plan", req, spec, model,
                                 verify, progress, replace=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    art = load_artifact(path, check_hash=False)
    if art.status == "failed" and verify and not allow_failed:
        from .parity import format_failure

        raise UserError(format_failure(f"{spec.name} trt {precision}", art.parity) + f"; kept at {art.path}")
    return art


def model_for_artifact(art: Artifact, weights=None):
    """Rebuild the PyTorch model an artifact was exported from (for `verify`). Synthetic weights
    are rebuilt from their seed; a checkpoint is taken from `weights` or the path recorded in the
    manifest, and must have the recorded sha256."""
    from ..weights import sha256_file
    from ..zoo import create_model

    src = art.manifest["weights"]["source"]
    name = art.model_name
    if src.startswith("synthetic:"):
        if weights is not None:
            raise UsageError(f"{art.path} was exported with synthetic weights ({src}); --weights does not apply")
        return create_model(name, seed=int(src.split(":", 1)[1]))
    if src.startswith("pretrained:"):  # timm's pretrained weights (its hub cache)
        return create_model(name, weights="pretrained")
    path = weights or art.manifest["weights"].get("file")
    if src.startswith("release:") and not (path and Path(path).is_file()):
        path = str(_release_path(src))  # fetched again (pinned) when the cache lost it
    if not path or not Path(path).is_file():
        raise UserError(f"{art.path} was exported from a checkpoint ({src}) that is not at its recorded path; "
                        f"pass it with --weights PATH")
    if f"sha256:{sha256_file(path)}" != src.rsplit("@", 1)[-1]:  # release:<name>@sha256:<hex> or sha256:<hex>
        raise UserError(f"{path} is not the checkpoint {art.path} was exported from (sha256 differs from {src})")
    return create_model(name, weights=path)


def _release_path(src: str):
    from ..pretrained import fetch

    return fetch(src.split(":", 1)[1].split("@", 1)[0])
