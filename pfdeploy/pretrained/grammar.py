"""The `--weights` grammar: the one parser of every `--weights` value (every verb that takes it,
and create_model), and which choice of a list fits a model (no download: a release checkpoint
fits by name, a checkpoint file by its keys and shapes)."""
from __future__ import annotations

from pathlib import Path

from ..errors import UsageError, UserError
from ..zoo.spec import PF_FAMILY
from .baselines import pretrained_source
from .release import checkpoint_for, get_checkpoint

# --weights spellings (every verb that takes --weights, and create_model): one of these, a
# checkpoint PATH, or a comma-separated list of them (each model gets the first that fits it).
KEYWORDS = ("synthetic", "release", "release+", "pretrained")
SPELLINGS = "synthetic, release, release+, release:<name>, pretrained or a checkpoint PATH"


def is_keyword(part: str) -> bool:
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
    if len(parts) > 1 and not all(is_keyword(p) or Path(p).expanduser().is_file() for p in parts):
        bad = next(p for p in parts if not (is_keyword(p) or Path(p).expanduser().is_file()))
        raise UsageError(f"--weights {w!r}: {bad!r} is neither a keyword nor an existing file; a list takes "
                         f"{SPELLINGS}")
    for p in parts:
        if p.startswith("release:"):
            get_checkpoint(p.split(":", 1)[1])  # UsageError with a "did you mean"
        elif not is_keyword(p) and not Path(p).expanduser().exists():
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
    from ..zoo.catalog import canonical_name, get_spec

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
                return ("timm has none for parameter-free models" if get_spec(name).family == PF_FAMILY
                        else "none exist for this pfdeploy-own baseline")
            return str(exc)
        return None
    return _file_misfit(name, choice)


def _file_misfit(model: str, path: str) -> str | None:
    from ..weights import check_state_dict, is_torchvision_resnet, read_checkpoint, torchvision_to_release
    from ..zoo.catalog import build_architecture

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
    if len(choices) == 1 and not is_keyword(choices[0]):
        return choices[0]  # a single PATH: read (and checked) where it is loaded, as always
    reasons = []
    for c in choices:
        why = why_not(model, c, short=len(choices) > 1)
        if why is None:
            return None if c == "synthetic" else c
        reasons.append(f"{c}: {why}")
    if len(choices) == 1:
        raise UsageError(why)
    from ..zoo.catalog import canonical_name

    raise UsageError(f"no choice of --weights {','.join(choices)} fits {canonical_name(model)} ("
                     + "; ".join(reasons) + ")")
