"""The model zoo: the released parameter-free models (own implementations, official key layout)
and their baselines (own ResNets, timm models). Importing this module also registers the
transformers in timm under the release's names, so `timm.create_model('pit_s_max')` works (as soon
as timm is imported: importing the zoo itself loads neither timm nor torch).

    create_model(name, weights=None, seed=0) -> eval-mode torch.nn.Module
    list_models(family=None) -> list[ModelSpec];  get_spec(name) -> ModelSpec

The catalogue (specs, builders, lookups) is `zoo.catalog`; this module adds the weights
(`create_model`, through `pfdeploy.pretrained` and `pfdeploy.weights`) on top of it.
"""
from __future__ import annotations

from .catalog import build_architecture, get_spec, list_models
from .spec import FAMILIES, PF_FAMILY, ModelSpec, Published, builder, canonical_name, register, specs

__all__ = ["FAMILIES", "PF_FAMILY", "ModelSpec", "Published", "build_architecture", "builder", "canonical_name", "create_model",
           "get_spec", "list_models", "register", "specs"]


def create_model(name: str, weights=None, seed: int = 0):
    """Build `name` in eval mode. `weights`: a checkpoint path (.pth/.pt/.bin/.safetensors);
    'release' / 'release+' / 'release:<checkpoint>' for the PfLayer release's checkpoints (fetched
    once into the cache, pinned by sha256: pfdeploy.pretrained); 'pretrained' for a baseline's timm
    pretrained weights; None or 'synthetic' for deterministic synthetic weights (seeded, BatchNorm
    calibrated); or a comma-separated list of these (the first that fits the model).
    The result carries `pfdeploy_weights_source` ('sha256:<hex>', 'release:<name>@sha256:<hex>',
    'pretrained:timm/<name>' or 'synthetic:<seed>')."""
    from ..pretrained import load_pretrained, resolve
    from ..weights import load_weights, synthetic_weights

    spec = get_spec(name)
    res = resolve(spec.name, weights)  # 'synthetic', a list ('release,pretrained': the first that fits)...
    if res.kind == "synthetic":
        model = synthetic_weights(lambda: build_architecture(spec.name), spec, seed)
    elif res.kind == "pretrained":
        model = load_pretrained(spec.name)
    else:
        model = build_architecture(spec.name)
        load_weights(model, res.path, spec)
        if res.source:
            model.pfdeploy_weights_source = res.source
    model.eval()
    return model


def _register_in_timm() -> None:
    """Register the PF transformers in timm under the release's names (vit_s_max, pit_s_max...)."""
    from timm.models import is_model, register_model

    for spec in specs().values():
        if spec.family != PF_FAMILY or not spec.release_name or "resnet" in spec.release_name:
            continue
        if is_model(spec.release_name):
            continue
        make = builder(spec.name)

        def entry(pretrained: bool = False, _make=make, _name=spec.release_name, _zoo=spec.name, **kwargs):
            kwargs.pop("pretrained_cfg", None)
            kwargs.pop("pretrained_cfg_overlay", None)
            kwargs.pop("cache_dir", None)
            model = _make(**kwargs)
            if pretrained:  # the release's checkpoint, as pfdeploy fetches and pins it
                from ..pretrained import checkpoint_for, fetch
                from ..weights import load_weights

                load_weights(model, fetch(checkpoint_for(_zoo, "release").name), get_spec(_zoo))
            return model

        entry.__name__ = spec.release_name
        entry.__module__ = "pfdeploy.zoo"
        register_model(entry)


from ..importhook import after_import  # noqa: E402

after_import("timm", _register_in_timm)
