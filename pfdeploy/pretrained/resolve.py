"""A `--weights` value turned into what a model loads: a local file (a release checkpoint fetched
and pinned when asked) and the identity manifests and case keys record; for one model
(`resolve`) or for every model of a run (`plan_models`, `bench`)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from ..errors import UsageError, UserError
from .baselines import pretrained_source
from .cache import fetch
from .grammar import is_keyword, choose, parse_weights, why_not
from .release import CHECKPOINTS, Checkpoint, checkpoint_for, get_checkpoint


@dataclass(frozen=True)
class Resolved:
    path: Path | None       # a local checkpoint file, or None (synthetic or timm pretrained)
    source: str | None      # what manifests record: release:<name>@sha256:<hex>, sha256:<hex>, pretrained:timm/...
    kind: str               # "synthetic" | "file" | "release" | "pretrained"
    checkpoint: Checkpoint | None = None


def resolve(model: str, weights) -> Resolved:
    """Turn a --weights value into a local file (fetching a release checkpoint when asked) and
    the source string manifests record."""
    w = choose(model, weights)
    if w is None:
        return Resolved(None, None, "synthetic")
    if w in ("release", "release+") or w.startswith("release:"):
        c = get_checkpoint(w.split(":", 1)[1]) if w.startswith("release:") else checkpoint_for(model, w)
        from ..zoo.catalog import canonical_name

        if canonical_name(model) != c.model:
            raise UsageError(f"release checkpoint {c.name} fits {c.model}, not {canonical_name(model)}")
        path = fetch(c.name)
        from ..weights import sha256_file

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
    from ..zoo.catalog import canonical_name

    choices = parse_weights(weights)
    models = [canonical_name(m) for m in models]
    if choices is None:
        return {m: ModelWeights(None, f"synthetic:{seed}") for m in models}
    for c in choices:
        if not is_keyword(c) and not Path(c).expanduser().is_file():
            raise UserError(f"weights file not found: {Path(c).expanduser()}")
    picked, unfit = {}, {}
    for m in models:
        try:
            picked[m] = choose(m, weights) if len(choices) > 1 or is_keyword(choices[0]) else None
        except UsageError as exc:
            unfit[m] = str(exc)
            continue
        if len(choices) == 1 and not is_keyword(choices[0]):  # one checkpoint file: checked against each model
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
        elif c.startswith("release") and is_keyword(c):
            r = resolve(m, c)  # fetched once into the cache, pinned
            out[m] = ModelWeights(f"release:{r.checkpoint.name}", r.source)
        else:
            from ..weights import sha256_file

            out[m] = ModelWeights(c, f"sha256:{sha256_file(Path(c).expanduser())}")
    return out
