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
    from .outputs import atomic_write_bytes

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
    from .zoo.catalog import canonical_name

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
    from .zoo.catalog import build_architecture

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


# --weights spellings (every verb that takes --weights, and create_model): one of these, a
# checkpoint PATH, or a comma-separated list of them (each model gets the first that fits it).
KEYWORDS = ("synthetic", "release", "release+", "pretrained")
SPELLINGS = "synthetic, release, release+, release:<name>, pretrained or a checkpoint PATH"


def _is_keyword(part: str) -> bool:
    return part in KEYWORDS or part.startswith("release:")


def parse_weights(value) -> tuple[str, ...] | None:
    """The choices of a --weights value, in order; None for synthetic weights (no value).

    A value naming an existing file is that file, commas and all. Otherwise it is split on
    commas; each part must be a keyword, `release:<name>` of a published checkpoint, or a path
    (a path that does not exist fails later, where it is read, as before: exit 1). A part that is
    neither a file nor a keyword but looks like a misspelt keyword (`relase`, `pretrain`) is a
    UsageError (exit 2) at once, with the spellings."""
    import difflib

    if value is None or str(value).strip() == "":
        return None
    w = str(value).strip()
    if Path(w).expanduser().is_file():
        return (w,)
    parts = [p.strip() for p in w.split(",")]
    if any(not p for p in parts):
        raise UsageError(f"--weights {w!r}: an empty choice in the list; use {SPELLINGS}")
    if len(parts) > 1 and not all(_is_keyword(p) or Path(p).expanduser().is_file() for p in parts):
        bad = next(p for p in parts if not (_is_keyword(p) or Path(p).expanduser().is_file()))
        raise UsageError(f"--weights {w!r}: {bad!r} is neither a keyword nor an existing file; a list takes "
                         f"{SPELLINGS}")
    for p in parts:
        if p.startswith("release:"):
            get_checkpoint(p.split(":", 1)[1])  # UsageError with a "did you mean"
        elif not _is_keyword(p) and not Path(p).expanduser().exists():
            near = difflib.get_close_matches(p, KEYWORDS, n=1, cutoff=0.6)
            if near or p.startswith(("release", "synthetic", "pretrained")):
                hint = f" (did you mean {near[0]}?)" if near else ""
                raise UsageError(f"--weights {p!r} is not a file nor a known choice{hint}; use {SPELLINGS}")
    choices = tuple(dict.fromkeys(parts))
    return None if choices == ("synthetic",) else choices


def why_not(model: str, choice: str, short: bool = False) -> str | None:
    """None when the single choice `choice` fits zoo model `model`, else why not (no download:
    a release checkpoint fits by name; a checkpoint file by its keys and shapes). `short`: a few
    words, for a list of reasons."""
    from .zoo.catalog import canonical_name, get_spec

    name = canonical_name(model)
    if choice == "synthetic":
        return None
    if choice in ("release", "release+"):
        try:
            checkpoint_for(name, choice)
        except UsageError as exc:
            return f"no {choice} checkpoint" if short else str(exc)
        return None
    if choice.startswith("release:"):
        c = get_checkpoint(choice.split(":", 1)[1])
        return None if c.model == name else f"release checkpoint {c.name} fits {c.model}, not {name}"
    if choice == "pretrained":
        try:
            pretrained_source(name)
        except UsageError as exc:
            if short:
                return ("timm has none for parameter-free models" if get_spec(name).family == "parameter-free"
                        else "none exist for this pfdeploy-own baseline")
            return str(exc)
        return None
    return _file_misfit(name, choice)


def _file_misfit(model: str, path: str) -> str | None:
    from .weights import check_state_dict, is_torchvision_resnet, read_checkpoint, torchvision_to_release
    from .zoo.catalog import build_architecture

    p = Path(path).expanduser()
    if not p.is_file():
        return f"weights file not found: {p}"
    key = (str(p.resolve()), p.stat().st_mtime_ns)
    if _SD_CACHE.get("key") != key:
        _SD_CACHE.clear()
        _SD_CACHE.update(key=key, sd=read_checkpoint(p))
    sd = _SD_CACHE["sd"]
    if model in ("resnet50", "dw_resnet50") and is_torchvision_resnet(sd):
        sd = torchvision_to_release(sd)
    try:
        check_state_dict(build_architecture(model), sd, f"{p} (for {model})")
    except UserError as exc:
        return str(exc)
    return None


_SD_CACHE: dict = {}


def choose(model: str, weights) -> str | None:
    """The one choice of a --weights value that applies to `model`: the first of its list that
    fits (None: synthetic). UsageError naming why each choice does not fit when none does."""
    choices = parse_weights(weights)
    if choices is None:
        return None
    if len(choices) == 1 and not _is_keyword(choices[0]):
        return choices[0]  # a single PATH: read (and checked) where it is loaded, as always
    reasons = []
    for c in choices:
        why = why_not(model, c, short=len(choices) > 1)
        if why is None:
            return None if c == "synthetic" else c
        reasons.append(f"{c}: {why}")
    if len(choices) == 1:
        raise UsageError(why)
    from .zoo.catalog import canonical_name

    raise UsageError(f"no choice of --weights {','.join(choices)} fits {canonical_name(model)} ("
                     + "; ".join(reasons) + ")")


def resolve(model: str, weights) -> Resolved:
    """Turn a --weights value into a local file (fetching a release checkpoint when asked) and
    the source string manifests record."""
    w = choose(model, weights)
    if w is None:
        return Resolved(None, None, "synthetic")
    if w in ("release", "release+") or w.startswith("release:"):
        c = get_checkpoint(w.split(":", 1)[1]) if w.startswith("release:") else checkpoint_for(model, w)
        from .zoo.catalog import canonical_name

        if canonical_name(model) != c.model:
            raise UsageError(f"release checkpoint {c.name} fits {c.model}, not {canonical_name(model)}")
        path = fetch(c.name)
        from .weights import sha256_file

        return Resolved(path, f"release:{c.name}@sha256:{sha256_file(path)}", "release", c)
    if w == "pretrained":
        return Resolved(None, pretrained_source(model), "pretrained")
    return Resolved(Path(w).expanduser(), None, "file")


@dataclass(frozen=True)
class ModelWeights:
    """The weights one model of a multi-model run uses."""
    choice: str | None   # what get_artifact / create_model take: None (synthetic), release:<name>, pretrained, PATH
    source: str          # its identity, in case keys and manifests: synthetic:<seed>, release:<name>@sha256:<hex>,
                         # sha256:<hex>, pretrained:timm/<name>


def plan_models(models, weights, seed: int = 0) -> dict[str, "ModelWeights"]:
    """Each model's weights for a --weights value given to a run of several models (`bench`):
    the first choice of the list that fits the model. Every model is checked before anything is
    downloaded; models that no choice fits are one UsageError line naming them all. Then release
    checkpoints are fetched (once; UserError on a failed download) and hashed."""
    from .zoo.catalog import canonical_name

    choices = parse_weights(weights)
    models = [canonical_name(m) for m in models]
    if choices is None:
        return {m: ModelWeights(None, f"synthetic:{seed}") for m in models}
    for c in choices:
        if not _is_keyword(c) and not Path(c).expanduser().is_file():
            raise UserError(f"weights file not found: {Path(c).expanduser()}")
    picked, unfit = {}, {}
    for m in models:
        try:
            picked[m] = choose(m, weights) if len(choices) > 1 or _is_keyword(choices[0]) else None
        except UsageError as exc:
            unfit[m] = str(exc)
            continue
        if len(choices) == 1 and not _is_keyword(choices[0]):  # one checkpoint file: checked against each model
            why = why_not(m, choices[0])
            if why is None:
                picked[m] = choices[0]
            else:
                unfit[m] = why
    if unfit:
        spelt = ",".join(choices)
        names = ", ".join(unfit)
        them = "it" if len(unfit) == 1 else "them"
        if set(choices) <= {"release", "release+"}:
            have = sorted({c.model for c in CHECKPOINTS.values() if c.recipe in choices})
            what = "checkpoints" if spelt == "release" else f"{spelt} checkpoints"
            raise UsageError(f"--weights {spelt} does not fit {names}: the release published {what} only for {', '.join(have)}; use --weights {spelt},pretrained (timm's weights for "
                             f"the baselines) or {spelt},synthetic, or leave {them} out of --models")
        detail = "; ".join(why if why.startswith(("no choice", m)) else f"{m}: {why}" for m, why in unfit.items())
        raise UsageError(f"--weights {spelt} does not fit {names}: {detail}; leave {them} out of --models or "
                         f"add a choice that fits ({spelt},synthetic)")
    out = {}
    for m, c in picked.items():
        if c is None:
            out[m] = ModelWeights(None, f"synthetic:{seed}")
        elif c == "pretrained":
            out[m] = ModelWeights(c, pretrained_source(m))
        elif c.startswith("release") and _is_keyword(c):
            r = resolve(m, c)  # fetched once into the cache, pinned
            out[m] = ModelWeights(f"release:{r.checkpoint.name}", r.source)
        else:
            from .weights import sha256_file

            out[m] = ModelWeights(c, f"sha256:{sha256_file(Path(c).expanduser())}")
    return out


def pretrained_source(model: str) -> str:
    """The timm pretrained tag a baseline loads with --weights pretrained."""
    from .zoo.catalog import canonical_name, get_spec

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
    from .zoo.catalog import build_architecture, canonical_name

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
