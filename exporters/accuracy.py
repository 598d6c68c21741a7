"""Accuracy of an artifact next to PyTorch's on labelled images (`pfdeploy verify --images DIR`).

Labels come from an ImageNet-style folder (one subfolder per class, named by its ImageNet-1k
synset id `n01440764` or its class index `0`..`999`) or from a labels file (`--labels FILE`: one
`relative/path.jpg<TAB or , or space>label` per line, label an index or a synset id; blank lines
and lines starting with # are skipped). Class indices follow timm's ImageNetInfo (the standard
ImageNet-1k order every released checkpoint uses).

The result is written beside the artifact as `accuracy.json` (keyed by the images' digest, so a
later run on other images adds an entry instead of replacing one); the manifest is not modified.
Each entry records the sha256 of the artifact it was measured on: `for_artifact` (what `pfdeploy
bench` rows and the report carry) only returns entries of exactly that artifact, never one left
beside a re-exported or copied-over model file.
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from pathlib import Path

from ..errors import UserError
from .images import IMAGE_SUFFIXES, folder_digest, list_images

_WNID = re.compile(r"^n\d{8}$")
ACCURACY_FILE = "accuracy.json"


def _index_of(label: str, where: str) -> int:
    label = label.strip()
    if label.isdigit():
        i = int(label)
        if 0 <= i < 1000:
            return i
        raise UserError(f"{where}: class index {i} outside ImageNet-1k's 0..999")
    if _WNID.match(label):
        from timm.data import ImageNetInfo

        names = ImageNetInfo().label_names()
        if label in names:
            return names.index(label)
    raise UserError(f"{where}: {label!r} is neither an ImageNet-1k class index (0..999) nor a synset id "
                    "(like n01440764)")


def labelled_images(folder, labels=None) -> tuple[list[Path], list[int]]:
    """(files, class indices) from class subfolders or a labels file. UserError when the images
    carry no labels."""
    root = Path(folder).expanduser()
    if labels is not None:
        lp = Path(labels).expanduser()
        try:
            lines = lp.read_text(encoding="utf-8").splitlines()
        except (OSError, UnicodeDecodeError) as exc:
            raise UserError(f"--labels {lp}: cannot read it ({exc})") from None
        files, targets = [], []
        for n, line in enumerate(lines, 1):
            if not line.strip() or line.lstrip().startswith("#"):
                continue
            parts = re.split(r"[\t, ]+", line.strip())
            if len(parts) != 2:
                raise UserError(f"{lp}:{n}: expected 'path label', got {line.strip()[:80]!r}")
            f = Path(parts[0]).expanduser()
            f = f if f.is_absolute() else root / f
            if not f.is_file():
                raise UserError(f"{lp}:{n}: image {f} does not exist")
            files.append(f)
            targets.append(_index_of(parts[1], f"{lp}:{n}"))
        if not files:
            raise UserError(f"--labels {lp}: no labelled images in it")
        return files, targets
    files = list_images(root)
    classes = sorted({f.relative_to(root).parts[0] for f in files if len(f.relative_to(root).parts) > 1})
    unlabelled = [f for f in files if len(f.relative_to(root).parts) == 1]
    if not classes or unlabelled:
        raise UserError(f"{root}: images need labels for accuracy: one subfolder per class (named n01440764 or "
                        "0..999), or --labels FILE")
    index = {c: _index_of(c, f"{root / c}") for c in classes}
    return files, [index[f.relative_to(root).parts[0]] for f in files]


def topk(logits, targets, ks=(1, 5)) -> dict[int, float]:
    import numpy as np

    logits = np.asarray(logits)
    t = np.asarray(targets)
    order = np.argsort(-logits, axis=1)
    return {k: float((order[:, :k] == t[:, None]).any(axis=1).mean()) for k in ks}


def measure(model, runner, x, targets, step: int, static: bool) -> dict:
    """Top-1/top-5 of `runner` (the artifact) and of `model` (PyTorch fp32) on the same
    preprocessed images `x`, in batches of `step` (padded to `step` for a static-batch artifact)."""
    import numpy as np
    import torch

    outs, refs = [], []
    for i in range(0, x.shape[0], step):
        part = x[i: i + step]
        n = part.shape[0]
        if static and n < step:
            part = torch.cat([part, part[-1:].expand(step - n, *part.shape[1:])])
        outs.append(np.asarray(runner(part.numpy()), dtype=np.float32)[:n])
        with torch.no_grad():
            refs.append(model(part).float().numpy()[:n])
    a, r = np.concatenate(outs), np.concatenate(refs)
    acc, ref = topk(a, targets), topk(r, targets)
    return {"n": int(len(targets)), "top1": acc[1], "top5": acc[5], "torch_top1": ref[1], "torch_top5": ref[5],
            "top1_delta": acc[1] - ref[1], "agree_top1": float((a.argmax(1) == r.argmax(1)).mean())}


def record(artifact_dir, rec: dict, files: list[Path], images, weights_source: str | None,
           artifact_sha256: str | None = None) -> dict:
    """Add `rec` to the artifact's accuracy.json (atomically), keyed by the images' digest, with
    the sha256 of the artifact it was measured on."""
    from ..outputs import atomic_write_bytes

    path = Path(artifact_dir) / ACCURACY_FILE
    data = read(artifact_dir)
    digest = folder_digest(files)
    entry = {**rec, "images": str(Path(images).expanduser().resolve()), "images_sha256": digest,
             "weights": weights_source, "artifact_sha256": artifact_sha256, "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    data[digest] = entry
    try:
        atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    except UserError as exc:  # pfdeploy.outputs turns the OSError (read-only, full) into one line
        entry["not_recorded"] = str(exc)
    return entry


def read(artifact_dir) -> dict:
    path = Path(artifact_dir) / ACCURACY_FILE
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def for_artifact(art) -> dict | None:
    """The accuracy measured for exactly this artifact (an `exporters.artifact.Artifact`): among
    the entries of its accuracy.json, those whose artifact_sha256 is the manifest's sha256 (an
    entry without it, or of another artifact, is ignored), the one over the most images, the
    latest first. None when there is none."""
    sha = (art.manifest or {}).get("sha256")
    if not sha:
        return None
    entries = [e for e in read(art.path).values()
               if isinstance(e, dict) and e.get("artifact_sha256") == sha and e.get("top1") is not None]
    if not entries:
        return None
    best = max(entries, key=lambda e: (int(e.get("n") or 0), str(e.get("measured_at") or "")))
    keep = ("n", "top1", "top5", "torch_top1", "torch_top5", "top1_delta", "agree_top1", "images", "images_sha256",
            "weights", "artifact_sha256", "measured_at")
    return {k: best.get(k) for k in keep}


def measure_artifact(art, images, labels=None, limit: int | None = None, model=None) -> dict:
    """Top-1/top-5 of artifact `art` and of its PyTorch model on labelled `images` (class
    subfolders or a `labels` file), recorded in its accuracy.json; returns the entry. Already
    measured for this artifact on these very images: the recorded entry, nothing run again.
    `model`: the PyTorch model it was exported from (default: rebuilt from its manifest)."""
    from ..zoo import get_spec
    from .images import preprocess
    from .parity import artifact_runner
    from .pipeline import model_for_artifact

    files, targets = labelled_images(images, labels)
    files, targets = files[: limit or None], targets[: limit or None]
    digest = folder_digest(files)
    done = read(art.path).get(digest)
    if isinstance(done, dict) and done.get("artifact_sha256") == art.manifest.get("sha256"):
        return done
    spec = get_spec(art.model_name)
    model = model if model is not None else model_for_artifact(art)
    runner = artifact_runner(art)
    b = art.manifest["exporter"]["batch"]
    step = b["min"] if not b["dynamic"] else min(b["max"], 8)
    try:
        rec = measure(model, runner, preprocess(files, spec), targets, step, static=not b["dynamic"])
    finally:
        runner.close()
    return record(art.path, rec, files, images, art.manifest.get("weights", {}).get("source"),
                  art.manifest.get("sha256"))


__all__ = ["labelled_images", "measure", "measure_artifact", "record", "read", "for_artifact", "topk",
           "IMAGE_SUFFIXES"]
