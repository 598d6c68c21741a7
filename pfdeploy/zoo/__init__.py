"""The model zoo: the released parameter-free models (own implementations, official key layout)
and their baselines (own ResNets, timm models). Importing this module also registers the
transformers in timm under the release's names, so `timm.create_model('pit_s_max')` works (as soon
as timm is imported: importing the zoo itself loads neither timm nor torch).

    create_model(name, weights=None, seed=0) -> eval-mode torch.nn.Module
    list_models(family=None) -> list[ModelSpec];  get_spec(name) -> ModelSpec
"""
from __future__ import annotations

from .spec import FAMILIES, ModelSpec, Published, canonical_name, register, specs, builder

PAPER = "PfLayer release README (Han et al., ICLR 2022)"
R50_BASELINES = ("resnet50", "dw_resnet50", "mobilenetv2_100", "efficientnet_b0")
TIMM_TRANSFORMER = dict(interpolation="bicubic", crop_pct=0.875)


def _resnet(variant):
    def build(**kw):
        from .resnet import ResNet

        return ResNet(variant, **kw)

    return build


def _vit(dim, heads):
    def build(**kw):
        from .transformer import ViTMax

        return ViTMax(dim, heads, **kw)

    return build


def _pit(patch, stride, base, heads, depth):
    def build(**kw):
        from .transformer import PiTMax

        return PiTMax(patch, stride, base, heads, depth, **kw)

    return build


def _timm(name):
    def build(**kw):
        import timm

        return timm.create_model(name, pretrained=False, **kw)

    return build


# --- parameter-free models (the release) -------------------------------------------------
register(ModelSpec(
    "pf_resnet50_max", "parameter-free", "ResNet-50 with every 3x3 conv replaced by a 3x3 max-pool (R50-max)",
    baselines=R50_BASELINES, release_name="resnet50_max", aliases=("resnet50_max",),
    published=Published(14.2, 2.2, 74.3, 6.8, source=PAPER + "; top-1 75.5 with longer training"),
))(_resnet("max"))
register(ModelSpec(
    "pf_resnet50_hybrid", "parameter-free",
    "ResNet-50 with max-pools in stride-1 blocks and avg-pool + 3x3 conv in the 3 stride-2 blocks (R50-hybrid)",
    baselines=R50_BASELINES, release_name="resnet50_hybrid", aliases=("resnet50_hybrid", "pf_resnet50"),
    published=Published(17.3, 2.6, 77.1, 7.3, source=PAPER + "; top-1 78.0 with longer training"),
))(_resnet("hybrid"))
for _size, _dim, _heads, _pub in (
    ("ti", 192, 3, Published()),
    ("s", 384, 6, Published(top1=80.0, throughput="763/96", source=PAPER + " (throughput units not stated)")),
    ("b", 768, 12, Published()),
):
    register(ModelSpec(
        f"pf_vit_{_size}", "parameter-free",
        f"ViT-{_size.upper()} (D={_dim}, {_heads} heads) with every second attention layer replaced by a max-pool mixer",
        baselines=(f"deit_{dict(ti='tiny', s='small', b='base')[_size]}_patch16_224",),
        release_name=f"vit_{_size}_max", aliases=(f"vit_{_size}_max",), published=_pub, **TIMM_TRANSFORMER,
    ))(_vit(_dim, _heads))
for _size, _cfg, _pub in (
    ("ti", (16, 8, 32, (2, 4, 8), (2, 6, 4)), Published()),
    ("s", (16, 8, 48, (3, 6, 12), (2, 6, 4)),
     Published(top1=80.8, throughput="1000/92", source=PAPER + " (throughput units not stated)")),
    ("b", (14, 7, 64, (4, 8, 16), (3, 6, 4)), Published()),
):
    register(ModelSpec(
        f"pf_pit_{_size}", "parameter-free",
        f"PiT-{_size.upper()} with every second attention layer replaced by a max-pool mixer",
        baselines=(f"pit_{_size}_224",), release_name=f"pit_{_size}_max", aliases=(f"pit_{_size}_max",),
        published=_pub, **TIMM_TRANSFORMER,
    ))(_pit(*_cfg))

# --- baselines ---------------------------------------------------------------------------
register(ModelSpec(
    "resnet50", "conv", "ResNet-50 v1.5 with 3x3 conv bottlenecks, in the release's layout",
    aliases=("r50",), published=Published(25.6, 4.1, 76.2, 8.7, throughput="962/112", source=PAPER),
))(_resnet("conv"))
register(ModelSpec(
    "dw_resnet50", "depthwise",
    "ResNet-50 with a depthwise 3x3 conv + BN + ReLU in every block (pfdeploy's controlled depthwise baseline)",
))(_resnet("depthwise"))
for _name, _family, _desc, _pub, _extra in (
    ("mobilenetv2_100", "depthwise", "MobileNetV2 1.0 (timm)",
     Published(3.5, 0.3, 72.0, source="MobileNetV2 paper (Sandler et al., 2018)"), {}),
    ("efficientnet_b0", "depthwise", "EfficientNet-B0 (timm)",
     Published(5.3, 0.39, 77.1, source="EfficientNet paper (Tan & Le, 2019)"), dict(interpolation="bicubic")),
    ("deit_tiny_patch16_224", "attention", "DeiT-Ti: ViT-Ti with attention in every block (timm)",
     Published(5.7, 1.3, 72.2, source="DeiT paper (Touvron et al., 2021)"), TIMM_TRANSFORMER),
    ("deit_small_patch16_224", "attention", "DeiT-S: ViT-S with attention in every block (timm)",
     Published(22.1, 4.6, 79.8, source="DeiT paper (Touvron et al., 2021)"), TIMM_TRANSFORMER),
    ("deit_base_patch16_224", "attention", "DeiT-B: ViT-B with attention in every block (timm)",
     Published(86.6, 17.6, 81.8, source="DeiT paper (Touvron et al., 2021)"), TIMM_TRANSFORMER),
    ("pit_ti_224", "attention", "PiT-Ti with attention in every block (timm)",
     Published(4.9, 0.7, 73.0, source="PiT paper (Heo et al., 2021)"), TIMM_TRANSFORMER),
    ("pit_s_224", "attention", "PiT-S with attention in every block (timm)",
     Published(23.5, 2.9, 80.9, source="PiT paper (Heo et al., 2021)"), TIMM_TRANSFORMER),
    ("pit_b_224", "attention", "PiT-B with attention in every block (timm)",
     Published(73.8, 12.5, 82.0, source="PiT paper (Heo et al., 2021)"), TIMM_TRANSFORMER),
):
    register(ModelSpec(_name, _family, _desc, published=_pub, source="timm", timm_name=_name, **_extra))(_timm(_name))


def get_spec(name: str) -> ModelSpec:
    """Spec of a zoo model, an alias, or `timm:<name>` (derived from timm's pretrained config)."""
    name = canonical_name(name)
    if name.startswith("timm:"):
        return _timm_spec(name[5:])
    return specs()[name]


def list_models(family: str | None = None) -> list[ModelSpec]:
    if family is not None and family not in FAMILIES:
        from ..errors import UsageError

        raise UsageError(f"unknown family {family!r}; choose from {', '.join(FAMILIES)}")
    return [s for s in specs().values() if family is None or s.family == family]


_TIMM_SPEC_CACHE: dict[str, ModelSpec] = {}


def _timm_spec(timm_name: str) -> ModelSpec:
    if timm_name in _TIMM_SPEC_CACHE:
        return _TIMM_SPEC_CACHE[timm_name]
    import timm
    import torch

    from ..errors import UsageError

    if not timm.is_model(timm_name):
        import difflib

        close = difflib.get_close_matches(timm_name, timm.list_models(), n=3, cutoff=0.6)
        hint = f"; did you mean {', '.join('timm:' + c for c in close)}?" if close else ""
        raise UsageError(f"unknown timm model {timm_name!r}{hint}")
    with torch.device("meta"):
        model = timm.create_model(timm_name, pretrained=False)
    cfg = dict(getattr(model, "pretrained_cfg", {}) or {})
    family = _infer_family(model)
    spec = ModelSpec(
        f"timm:{timm_name}", family, f"{timm_name} from timm",
        input_size=tuple(cfg.get("input_size", (3, 224, 224))),
        mean=tuple(cfg.get("mean", (0.485, 0.456, 0.406))), std=tuple(cfg.get("std", (0.229, 0.224, 0.225))),
        interpolation=cfg.get("interpolation", "bilinear") if cfg.get("interpolation") in ("bilinear", "bicubic") else "bilinear",
        crop_pct=float(cfg.get("crop_pct", 0.875)), source="timm", timm_name=timm_name,
    )
    _TIMM_SPEC_CACHE[timm_name] = spec
    return spec


def _infer_family(model) -> str:
    import torch.nn as nn

    names = {type(m).__name__.lower() for m in model.modules()}
    if any("attention" in n or n == "attn" for n in names):
        return "attention"
    for m in model.modules():
        if isinstance(m, nn.Conv2d) and m.groups > 1 and m.groups == m.in_channels:
            return "depthwise"
    return "conv"


def build_architecture(name: str):
    """The bare architecture (initialised, not calibrated, train mode)."""
    name = canonical_name(name)
    if name.startswith("timm:"):
        _timm_spec(name[5:])
        return _timm(name[5:])()
    return builder(name)()


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
        if spec.family != "parameter-free" or not spec.release_name or "resnet" in spec.release_name:
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
