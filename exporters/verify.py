"""Parity of a freshly built or a cached artifact, recorded in its manifest: the artifact runs
through its target's verifying backend Runner (exporters/parity.py `artifact_runner`) and is
judged against the PyTorch model it was exported from.
"""
from __future__ import annotations

import time
from typing import Callable

from ..clock import utc_now_iso
from .artifact import Artifact, load_artifact
from .manifest_io import write_manifest
from .settings import BatchSpec


def say(progress: Callable | None, msg: str) -> None:
    if progress is not None:
        progress(msg)


def attach_parity(manifest: dict, art: Artifact, spec, model) -> None:
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
    parity["checked_at"] = utc_now_iso()
    manifest["parity"] = parity
    manifest["status"] = {"passed": "ok", "failed": "failed", "inconclusive": "inconclusive"}[parity["verdict"]]


def verify_in_place(art: Artifact, spec, model: Callable, progress) -> Artifact:
    """Re-run parity on a cached artifact and rewrite its manifest (a read-only cache: the new
    verdict is used for this command and the file is left as it is)."""
    say(progress, f"verifying cached artifact {art.path}")
    manifest = dict(art.manifest)
    attach_parity(manifest, art, spec, model())
    try:
        write_manifest(art.path, manifest)
    except OSError:
        say(progress, f"cache {art.path} is read-only: the new parity verdict is not saved there")
        return Artifact(art.path, manifest)
    return load_artifact(art.path, check_hash=False)
