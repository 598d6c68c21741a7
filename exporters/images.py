"""Image folders for calibration (`--calib DIR`) and verification (`verify --images DIR`),
preprocessed per the model's spec (resize to size / crop_pct with its interpolation, centre crop,
normalise), and the synthetic calibration set used when no folder is given."""
from __future__ import annotations

import hashlib
from pathlib import Path

from ..errors import UserError
from .settings import CALIB_SEED, DEFAULT_CALIB_SIZE, CalibSpec

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm")


def list_images(folder, what: str = "image folder") -> list[Path]:
    p = Path(folder).expanduser()
    if not p.is_dir():
        raise UserError(f"{what} not found or not a directory: {p}")
    files = sorted(f for f in p.rglob("*") if f.is_file() and f.suffix.lower() in IMAGE_SUFFIXES)
    if not files:
        raise UserError(f"{what} {p} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return files


def folder_digest(files: list[Path]) -> str:
    from ..weights import sha256_file

    h = hashlib.sha256()
    for f in files:
        h.update(sha256_file(f).encode())
    return h.hexdigest()


def calib_spec(calib=None, size: int | None = None) -> CalibSpec:
    """`calib=None` -> synthetic images (seeded); a folder -> its images (size = their count,
    or the first `size` of them)."""
    if calib is None:
        n = DEFAULT_CALIB_SIZE if size is None else int(size)
        if n < 1:
            raise UserError("the calibration set needs at least one image")
        return CalibSpec("synthetic", n, CALIB_SEED)
    files = list_images(calib, "calibration folder")
    if size is not None:
        files = files[: int(size)]
    return CalibSpec("images", len(files), folder=str(Path(calib).expanduser().resolve()),
                     digest=folder_digest(files))


def preprocess(files: list[Path], spec):
    """Load and preprocess image files to a float32 tensor (N, C, H, W) per the model's spec."""
    import torch
    from PIL import Image, UnidentifiedImageError
    from torchvision.transforms import v2 as T

    _, h, w = spec.input_size
    interp = T.InterpolationMode.BICUBIC if spec.interpolation == "bicubic" else T.InterpolationMode.BILINEAR
    tf = T.Compose([
        T.ToImage(), T.Resize(int(round(min(h, w) / spec.crop_pct)), interpolation=interp, antialias=True),
        T.CenterCrop((h, w)), T.ToDtype(torch.float32, scale=True), T.Normalize(spec.mean, spec.std)])
    out = []
    for f in files:
        try:
            with Image.open(f) as im:
                out.append(tf(im.convert("RGB")))
        except (OSError, UnidentifiedImageError, ValueError) as exc:
            raise UserError(f"{f}: not a readable image ({exc})") from None
    return torch.stack(out)


def calibration_batches(spec, calib: CalibSpec):
    """The calibration set as a list of (1, C, H, W) float32 numpy arrays."""
    if calib.source == "synthetic":
        from ..weights import synthetic_images

        return [synthetic_images(1, spec.input_size, spec.mean, spec.std, calib.seed + i).numpy()
                for i in range(calib.size)]
    files = list_images(calib.folder, "calibration folder")[: calib.size]
    x = preprocess(files, spec)
    return [x[i: i + 1].numpy() for i in range(x.shape[0])]
