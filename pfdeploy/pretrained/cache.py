"""Download and pinning: a release checkpoint fetched once into `$PFDEPLOY_CACHE_DIR/weights/`,
checked (not an HTML page, a readable checkpoint with every key and shape of its zoo model) and
pinned by sha256 on its first download (`pins.json`; a later different file is refused).
`PFDEPLOY_WEIGHTS_MIRROR=URL` fetches `URL/<file>` instead of Google Drive."""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from pathlib import Path

from ..errors import UserError
from .release import CHECKPOINTS, Checkpoint, get_checkpoint

MIRROR_ENV = "PFDEPLOY_WEIGHTS_MIRROR"
DRIVE_URL = "https://drive.google.com/uc?id={id}"


def weights_dir() -> Path:
    from ..config import cache_dir

    return Path(cache_dir()) / "weights"


def _pins_path() -> Path:
    return weights_dir() / "pins.json"


def read_pins() -> dict:
    p = _pins_path()
    if not p.exists():
        return {}
    try:
        data = json.loads(p.read_text())
    except (OSError, ValueError) as exc:
        raise UserError(f"{p}: unreadable pins file ({exc}); delete it to pin checkpoints anew") from None
    return data if isinstance(data, dict) else {}


def _write_pins(pins: dict) -> None:
    from ..outputs import atomic_write_bytes

    atomic_write_bytes(_pins_path(), (json.dumps(pins, indent=1, sort_keys=True) + "\n").encode())


def source_url(c: Checkpoint) -> str:
    mirror = os.environ.get(MIRROR_ENV, "").strip()
    if mirror:
        return mirror.rstrip("/") + "/" + c.file
    return DRIVE_URL.format(id=c.drive_id)


def cached_path(c: Checkpoint) -> Path:
    return weights_dir() / c.file


def _looks_like_html(path: Path) -> bool:
    with open(path, "rb") as f:
        head = f.read(512).lstrip().lower()
    return head.startswith(b"<!doctype html") or head.startswith(b"<html") or b"<head" in head[:200]


def _check_file(c: Checkpoint, path: Path, where: str) -> str:
    """Every check a checkpoint passes before it is used; returns its sha256."""
    from ..weights import check_state_dict, read_checkpoint, sha256_file
    from ..zoo.catalog import build_architecture

    if path.stat().st_size == 0:
        raise UserError(f"{where}: the download is empty")
    if _looks_like_html(path):
        raise UserError(f"{where}: got an HTML page instead of a checkpoint (a login, quota or error page "
                        "of the host; try again later or use PFDEPLOY_WEIGHTS_MIRROR)")
    sd = read_checkpoint(path)
    check_state_dict(build_architecture(c.model), sd, f"{where} (release checkpoint {c.name} for {c.model})")
    digest = sha256_file(path)
    pinned = read_pins().get(c.name, {}).get("sha256")
    if pinned and pinned != digest:
        raise UserError(f"{where}: sha256 {digest[:16]}... differs from the {pinned[:16]}... pinned for {c.name} "
                        f"on its first download; refusing it (delete the pin in {_pins_path()} only if the "
                        "release really replaced the file)")
    return digest


def fetch(name: str, force: bool = False, quiet: bool = True) -> Path:
    """Download the release checkpoint `name` into the cache (once) and return its path. Nothing
    is left in the cache when any step fails."""
    c = get_checkpoint(name)
    final = cached_path(c)
    if final.exists() and not force:
        return final
    url = source_url(c)
    root = weights_dir()
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"cannot create the weights cache {root}: {exc}") from None
    tmpdir = Path(tempfile.mkdtemp(prefix=f".fetch-{c.name}-", dir=root))
    try:
        target = tmpdir / c.file
        _download(url, target, quiet)
        digest = _check_file(c, target, f"{c.name} from {url}")
        os.replace(target, final)
        pins = read_pins()
        if c.name not in pins:
            pins[c.name] = {"sha256": digest, "url": url, "bytes": final.stat().st_size,
                            "pinned_at": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds")}
            _write_pins(pins)
    finally:
        shutil.rmtree(tmpdir, ignore_errors=True)
    return final


def _download(url: str, target: Path, quiet: bool) -> None:
    import gdown
    import requests
    from gdown.exceptions import DownloadError

    try:
        out = gdown.download(url=url, output=str(target), quiet=quiet, timeout=60)
    except DownloadError as exc:
        first = str(exc).strip().splitlines()
        raise UserError(f"cannot download {url}: {first[0] if first else type(exc).__name__}") from None
    except requests.exceptions.RequestException as exc:
        raise UserError(f"cannot download {url}: {error_reason(exc)} (offline, or the host is unreachable? "
                        f"set {MIRROR_ENV} to a mirror inside your network)") from None
    if out is None or not target.exists():
        raise UserError(f"cannot download {url}: nothing was received")


def error_reason(exc: BaseException) -> str:
    inner = exc
    while inner.__context__ is not None and inner.__context__ is not inner:
        inner = inner.__context__
    text = str(inner).strip() or type(inner).__name__
    return text.splitlines()[0][:200]


def verify(name: str) -> dict:
    """Re-check a cached release checkpoint: its hash against the pin, its keys and shapes against
    the zoo model. UserError when it is not cached or fails."""
    c = get_checkpoint(name)
    path = cached_path(c)
    if not path.exists():
        raise UserError(f"{name} is not cached; run `pfdeploy weights fetch {name}`")
    digest = _check_file(c, path, str(path))
    return {"name": name, "model": c.model, "path": str(path), "sha256": digest, "pinned": True, "ok": True}


def catalogue() -> list[dict]:
    """Every release checkpoint with its zoo model, published accuracy and cache state."""
    pins = read_pins()
    out = []
    for c in CHECKPOINTS.values():
        path = cached_path(c)
        out.append({"name": c.name, "model": c.model, "weights": c.recipe, "top1": c.top1, "top5": c.top5,
                    "training": c.training, "file": c.file, "cached": path.exists(),
                    "sha256": pins.get(c.name, {}).get("sha256"), "drive_id": c.drive_id})
    return out


