"""The PyTorch model an artifact is exported from: built once and only when needed, with the
process-wide cache of the last model built, and the way back from an artifact to its model.

    ModelSource(name, weights, seed).model()   # a verified cache hit never builds it
    weights_source(weights, seed) -> "synthetic:<seed>" | "sha256:<hex>"
    model_for_artifact(artifact, weights=None) # for `pfdeploy verify`
"""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError, UserError

# The last model built, reused by the next export of the same model in this process (a model's
# ONNX, OpenVINO and int8 artifacts are usually asked for in a row; one entry bounds the memory).
_LAST_MODEL: list = []


def _weights_stamp(weights):
    if not weights or str(weights) == "pretrained":
        return None
    st = Path(weights).expanduser().stat()
    return (st.st_size, st.st_mtime_ns)


class ModelSource:
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


def weights_source(weights, seed: int) -> str:
    if weights is None:
        return f"synthetic:{int(seed)}"
    p = Path(weights).expanduser()
    if not p.is_file():
        raise UserError(f"weights file not found: {p}")
    from ..weights import sha256_file

    return f"sha256:{sha256_file(p)}"


def model_for_artifact(art, weights=None):
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
