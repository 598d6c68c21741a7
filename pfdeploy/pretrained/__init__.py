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

One module a concern; this package's names are the public ones:

    release    the release's checkpoints: Checkpoint, CHECKPOINTS, get_checkpoint, checkpoint_for
    cache      download and pinning: fetch, verify, catalogue, read_pins, weights_dir, cached_path
    grammar    the --weights grammar: parse_weights, why_not, choose, KEYWORDS, SPELLINGS
    resolve    a value turned into files and identities: resolve, Resolved, plan_models, ModelWeights
    baselines  timm's pretrained weights of a baseline: pretrained_source, load_pretrained
"""
from __future__ import annotations

from .baselines import load_pretrained, pretrained_source
from .cache import (DRIVE_URL, MIRROR_ENV, cached_path, catalogue, fetch, read_pins, source_url, verify,
                    weights_dir)
from .grammar import KEYWORDS, SPELLINGS, choose, parse_weights, why_not
from .release import CHECKPOINTS, RELEASE_README, Checkpoint, checkpoint_for, get_checkpoint
from .resolve import ModelWeights, Resolved, plan_models, resolve

__all__ = ["CHECKPOINTS", "DRIVE_URL", "KEYWORDS", "MIRROR_ENV", "RELEASE_README", "SPELLINGS", "Checkpoint",
           "ModelWeights", "Resolved", "cached_path", "catalogue", "checkpoint_for", "choose", "fetch",
           "get_checkpoint", "load_pretrained", "parse_weights", "plan_models", "pretrained_source", "read_pins",
           "resolve", "source_url", "verify", "weights_dir", "why_not"]
