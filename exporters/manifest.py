"""An artifact's manifest.json as the pipeline writes it: the record every target shares (model,
weights, target, precision, exporter settings, tools, the cache key and its material), sealed
with the files' digests, the parity verdict and the time, then published by an atomic rename.
Reading and validating a manifest is exporters/manifest_io.py, opening an artifact exporters/artifact.py.
"""
from __future__ import annotations

from pathlib import Path

from .. import __version__
from ..clock import utc_now_iso
from ..publish import publish_dir
from .artifact import Artifact
from .manifest_io import FORMAT, VERSION, artifact_sha256, files_digest, write_manifest
from .settings import ExportRequest

# the tools every manifest records (besides the ones in its key)
RECORDED_TOOLS = ("torch", "onnx", "onnxscript", "onnxruntime", "openvino", "nncf", "tensorrt", "timm")


def base_manifest(req: ExportRequest, spec, weights) -> dict:
    from ..backends import tool_versions

    return {
        "format": FORMAT, "version": VERSION, "status": "unverified", "key": req.key(),
        "model": {"name": spec.name, "family": spec.family, "input_size": list(spec.input_size),
                  "mean": list(spec.mean), "std": list(spec.std), "interpolation": spec.interpolation,
                  "crop_pct": spec.crop_pct},
        "weights": {"source": req.weights_source, "file": str(Path(weights).expanduser().resolve()) if weights else None},
        "target": req.target, "precision": req.precision,
        "exporter": {"opset": req.opset, "precision": req.precision, "batch": req.batch.to_dict(),
                     "calibration": req.calib.to_dict() if req.calib else None},
        "tools": {**tool_versions(*RECORDED_TOOLS), **req.tools},
        "cache_key_material": req.key_material(),
        "pfdeploy_version": __version__,
    }


def seal_and_publish(tmp: Path, final: Path, manifest: dict, names: list[str], model_file: str,
                     req: ExportRequest, spec, model, verify: bool, progress, replace: bool) -> Path:
    """Digest the files, verify parity (unless disabled), write the manifest and move the
    temporary directory into place; the caller removes `tmp` if anything raises."""
    from .verify import attach_parity, say

    manifest["files"] = files_digest(tmp, names)
    manifest["model_file"] = model_file
    manifest["sha256"] = artifact_sha256(manifest["files"])
    manifest["created_at"] = utc_now_iso()
    if verify:
        say(progress, f"verifying parity at batch {', '.join(map(str, req.batch.parity_batches()))}")
        attach_parity(manifest, Artifact(tmp, manifest), spec, model)
    write_manifest(tmp, manifest)
    return publish_dir(tmp, final, replace=replace, what="artifact directory")


def inconclusive_note(art: Artifact) -> str:
    p = art.parity
    b = p["baseline"]["overall"]
    return (f"warning: {art.precision} parity is inconclusive for {art.model_name}: the artifact misses the tolerance "
            f"({'; '.join(p['failures'])}), but so does PyTorch itself with weights merely rounded to "
            f"{art.precision} (cosine_min {b['cosine_min']:.3f}, top1 {b['top1']:.3f}): these weights cannot keep "
            f"{art.precision} accuracy, so the figures say nothing about the runtime. Real checkpoints "
            f"(--weights) give a real verdict.")
