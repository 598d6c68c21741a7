"""Accuracy of an artifact next to PyTorch's on labelled images (`pfdeploy verify --images DIR`).

Labels come from an ImageNet-style folder (one subfolder per class, named by its ImageNet-1k
synset id `n01440764` or its class index `0`..`999`) or from a labels file (`--labels FILE`: one
`relative/path.jpg<TAB or , or space>label` per line, label an index or a synset id; blank lines
and lines starting with # are skipped). Class indices follow timm's ImageNetInfo (the standard
ImageNet-1k order every released checkpoint uses).

The result is written beside the artifact as `accuracy.json` (keyed by the images' digest, so a
later run on other images adds an entry instead of replacing one); the manifest is not modified.
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


def record(artifact_dir, rec: dict, files: list[Path], images, weights_source: str | None) -> dict:
    """Add `rec` to the artifact's accuracy.json (atomically), keyed by the images' digest."""
    from ..store import atomic_write_bytes

    path = Path(artifact_dir) / ACCURACY_FILE
    data = read(artifact_dir)
    digest = folder_digest(files)
    entry = {**rec, "images": str(Path(images).expanduser().resolve()), "images_sha256": digest,
             "weights": weights_source, "measured_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
    data[digest] = entry
    try:
        atomic_write_bytes(path, (json.dumps(data, indent=1, sort_keys=True) + "\n").encode())
    except OSError as exc:
        entry["not_recorded"] = f"{path}: {exc.strerror or exc}"
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


__all__ = ["labelled_images", "measure", "record", "read", "topk", "IMAGE_SUFFIXES"]
