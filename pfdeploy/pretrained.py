"""The release's pretrained checkpoints by name: downloaded once, pinned by sha256, loaded safely.

    resolve(model, weights) -> Resolved(path, source)   # weights: None | PATH | "release" | "release+" |
                                                          # "release:<name>" | "pretrained"
    fetch(name) -> Path; verify(name) -> dict; catalogue() -> list[dict]

The six checkpoints of naver-ai/PfLayer (Google Drive links in the release README) are fetched with
gdown (it handles Drive's confirmation pages and checks the announced length) into
`$PFDEPLOY_CACHE_DIR/weights/`, through a private temporary folder that is renamed into place
only after the file passed every check: not an HTML page, a readable checkpoint under
`torch.load(weights_only=True)`, every key and shape of its zoo model, and the sha256 pinned on
its first download (`pins.json`; a later different file is refused). `PFDEPLOY_WEIGHTS_MIRROR=URL`
fetches `URL/<file>` instead (a team's mirror inside its network). Manifests name a release
checkpoint `release:<name>@sha256:<hex>`.

`pretrained` asks timm for a baseline's own pretrained weights (timm's loading, its hub); offline
that fails with one line.
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path

from .errors import UsageError, UserError

MIRROR_ENV = "PFDEPLOY_WEIGHTS_MIRROR"
DRIVE_URL = "https://drive.google.com/uc?id={id}"
RELEASE_README = "https://github.com/naver-ai/PfLayer#pretrained-models"


@dataclass(frozen=True)
class Checkpoint:
    name: str           # the file's stem, as mirrors name it
    model: str          # the zoo model it fits
    recipe: str         # "release" or "release+"
    drive_id: str
    top1: float
    top5: float | None
    training: str

    @property
    def file(self) -> str:
        return f"{self.name}.pth"


# naver-ai/PfLayer README, "Pretrained models" (ImageNet-1k val, 224x224). The ViT/PiT files were
# replaced on 2022-07-25 ("model sizes are minimized"); their accuracy is the +DeiT column.
CHECKPOINTS: dict[str, Checkpoint] = {c.name: c for c in (
    Checkpoint("resnet50_max", "pf_resnet50_max", "release", "1MoCdVLPau4XuI0BVGEwDkiwibpybqWTX",
               74.3, 92.0, "90 epochs"),
    Checkpoint("resnet50_hybrid", "pf_resnet50_hybrid", "release", "1CyajEQUfWo9oetqcIhexVjfRXU-iGHk1",
               77.1, 93.1, "90 epochs"),
    Checkpoint("resnet50_max_plus", "pf_resnet50_max", "release+", "1TQfwMXENn7s78Myc58svKVpHi5OVsdGX",
               75.5, 92.1, "longer training (the release's '+')"),
    Checkpoint("resnet50_hybrid_plus", "pf_resnet50_hybrid", "release+", "1f5fOwEItFITqzofvQ6d-kLLOTs-c1k3o",
               78.0, 93.5, "longer training (the release's '+')"),
    Checkpoint("vit_s_max", "pf_vit_s", "release", "19lfagLJDXWvVHcb8Qm_U4_A_Kr7qYLv7", 80.0, None,
               "DeiT recipe"),
    Checkpoint("pit_s_max", "pf_pit_s", "release", "1S9JJM2WGtDtpo-6Me7Ak74nJOlOeBKeH", 80.8, None,
               "DeiT recipe"),
)}


@dataclass(frozen=True)
class Resolved:
    path: Path | None       # a local checkpoint file, or None (synthetic or timm pretrained)
    source: str | None      # what manifests record: release:<name>@sha256:<hex>, sha256:<hex>, pretrained:timm/...
    kind: str               # "synthetic" | "file" | "release" | "pretrained"
    checkpoint: Checkpoint | None = None


def weights_dir() -> Path:
    from .config import cache_dir

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
    from .store import atomic_write_bytes

    atomic_write_bytes(_pins_path(), (json.dumps(pins, indent=1, sort_keys=True) + "\n").encode())


def get_checkpoint(name: str) -> Checkpoint:
    if name not in CHECKPOINTS:
        import difflib

        near = difflib.get_close_matches(name, CHECKPOINTS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise UsageError(f"unknown release checkpoint {name!r}{hint}; choose from {', '.join(CHECKPOINTS)}")
    return CHECKPOINTS[name]


def checkpoint_for(model: str, recipe: str) -> Checkpoint:
    """The release checkpoint of `recipe` ('release' or 'release+') for zoo model `model`."""
    from .zoo import canonical_name

    model = canonical_name(model)
    for c in CHECKPOINTS.values():
        if c.model == model and c.recipe == recipe:
            return c
    have = sorted({f"{c.model} ({c.recipe})" for c in CHECKPOINTS.values()})
    if any(c.model == model for c in CHECKPOINTS.values()):
        raise UsageError(f"the release has no '{recipe}' checkpoint for {model}; it has: "
                         + ", ".join(f"{c.recipe}" for c in CHECKPOINTS.values() if c.model == model))
    raise UsageError(f"the release published no checkpoint for {model}: --weights {recipe} works for "
                     f"{', '.join(have)}; use --weights pretrained for a timm baseline, or a PATH")


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
    from .weights import check_state_dict, read_checkpoint, sha256_file
    from .zoo import build_architecture

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
        raise UserError(f"cannot download {url}: {_reason(exc)} (offline, or the host is unreachable? "
                        f"set {MIRROR_ENV} to a mirror inside your network)") from None
    if out is None or not target.exists():
        raise UserError(f"cannot download {url}: nothing was received")


def _reason(exc: BaseException) -> str:
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


def resolve(model: str, weights) -> Resolved:
    """Turn a --weights value into a local file (fetching a release checkpoint when asked) and
    the source string manifests record."""
    if weights is None or weights == "":
        return Resolved(None, None, "synthetic")
    w = str(weights)
    if w in ("release", "release+") or w.startswith("release:"):
        c = get_checkpoint(w.split(":", 1)[1]) if w.startswith("release:") else checkpoint_for(model, w)
        from .zoo import canonical_name

        if canonical_name(model) != c.model:
            raise UsageError(f"release checkpoint {c.name} fits {c.model}, not {canonical_name(model)}")
        path = fetch(c.name)
        from .weights import sha256_file

        return Resolved(path, f"release:{c.name}@sha256:{sha256_file(path)}", "release", c)
    if w == "pretrained":
        return Resolved(None, pretrained_source(model), "pretrained")
    return Resolved(Path(w).expanduser(), None, "file")


def pretrained_source(model: str) -> str:
    """The timm pretrained tag a baseline loads with --weights pretrained."""
    from .zoo import canonical_name, get_spec

    name = canonical_name(model)
    spec = get_spec(name)
    if spec.family == "parameter-free":
        raise UsageError(f"{name}: timm has no pretrained weights for the parameter-free models; use "
                         "--weights release (or release+)")
    if name == "dw_resnet50":
        raise UsageError("dw_resnet50 is pfdeploy's own controlled baseline: no pretrained weights exist")
    timm_name = name[5:] if name.startswith("timm:") else name
    return f"pretrained:timm/{timm_name}"


def load_pretrained(model: str, overlay_file: str | None = None):
    """A baseline with timm's pretrained weights (timm downloads them from its hub), converted to
    the zoo's layout where needed (resnet50). Offline: one UserError line."""
    import timm

    from .weights import check_state_dict, torchvision_to_release
    from .zoo import build_architecture, canonical_name

    name = canonical_name(model)
    src = pretrained_source(name)
    timm_name = src.split("/", 1)[1]
    kwargs = {"pretrained_cfg_overlay": {"file": overlay_file}} if overlay_file else {}
    try:
        net = timm.create_model(timm_name, pretrained=True, **kwargs)
    except Exception as exc:  # hub, network and file errors come in many types
        raise UserError(f"{name}: cannot load timm's pretrained weights for {timm_name}: {_reason(exc)} "
                        "(offline? timm downloads them from the Hugging Face hub)") from None
    if name == "resnet50":  # pfdeploy's resnet50 uses the release's layout
        sd = torchvision_to_release(net.state_dict())
        net = build_architecture(name)
        check_state_dict(net, sd, f"timm {timm_name} pretrained")
        net.load_state_dict(sd, strict=True)
    net.eval()
    net.pfdeploy_weights_source = src
    return net
