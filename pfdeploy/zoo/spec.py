"""Frozen model specs and the registry. Standard library only: listing models imports no torch."""
from __future__ import annotations

import difflib
from dataclasses import dataclass, field
from typing import Callable

from ..errors import UsageError

PF_FAMILY = "parameter-free"  # the paper's models; every other family is a baseline (one definition)
FAMILIES = (PF_FAMILY, "depthwise", "conv", "attention")
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@dataclass(frozen=True)
class Published:
    """Figures published for a model (None where not published). MACs are multiply-accumulates
    at batch 1 and the model's input size."""

    params_m: float | None = None
    macs_g: float | None = None
    top1: float | None = None
    gpu_ms: float | None = None
    throughput: str | None = None
    source: str = ""

    def to_dict(self) -> dict:
        return {k: getattr(self, k) for k in ("params_m", "macs_g", "top1", "gpu_ms", "throughput", "source")}


@dataclass(frozen=True)
class ModelSpec:
    name: str
    family: str
    description: str
    input_size: tuple[int, int, int] = (3, 224, 224)
    mean: tuple[float, float, float] = IMAGENET_MEAN
    std: tuple[float, float, float] = IMAGENET_STD
    interpolation: str = "bilinear"
    crop_pct: float = 0.875
    baselines: tuple[str, ...] = ()
    published: Published = field(default_factory=Published)
    aliases: tuple[str, ...] = ()
    release_name: str | None = None  # key in the official release / state_dict_keys.json
    source: str = "pfdeploy"  # "pfdeploy" (own implementation) or "timm"
    timm_name: str | None = None

    def __post_init__(self):
        if self.family not in FAMILIES:
            raise ValueError(f"{self.name}: family {self.family!r} is not one of {FAMILIES}")
        if self.interpolation not in ("bilinear", "bicubic"):
            raise ValueError(f"{self.name}: interpolation must be bilinear or bicubic")

    def to_dict(self) -> dict:
        return {
            "name": self.name, "family": self.family, "description": self.description,
            "input_size": list(self.input_size), "mean": list(self.mean), "std": list(self.std),
            "interpolation": self.interpolation, "crop_pct": self.crop_pct,
            "baselines": list(self.baselines), "published": self.published.to_dict(),
            "aliases": list(self.aliases), "release_name": self.release_name, "source": self.source,
            "timm_name": self.timm_name,
        }


_SPECS: dict[str, ModelSpec] = {}
_BUILDERS: dict[str, Callable] = {}
_ALIASES: dict[str, str] = {}


def register(spec: ModelSpec):
    """Decorator (timm's register_model idea): registers `builder(**kw) -> nn.Module` under
    spec.name and its aliases."""

    def deco(builder: Callable) -> Callable:
        # Re-registering an identical spec is allowed (a module re-executed after a failed import).
        if _SPECS.get(spec.name) != spec:
            for key in (spec.name, *spec.aliases):
                if key in _SPECS or key in _ALIASES:
                    raise ValueError(f"model name {key!r} registered twice")
        _SPECS[spec.name] = spec
        _BUILDERS[spec.name] = builder
        for alias in spec.aliases:
            _ALIASES[alias] = spec.name
        return builder

    return deco


def canonical_name(name: str) -> str:
    """Resolve an alias; 'timm:<name>' passes through. Unknown names raise UsageError (exit 2)
    with close matches."""
    if name in _SPECS:
        return name
    if name in _ALIASES:
        return _ALIASES[name]
    if name.startswith("timm:") and len(name) > 5:
        return name
    known = list(_SPECS) + list(_ALIASES)
    close = difflib.get_close_matches(name, known, n=3, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else "; `pfdeploy models` lists them (any timm model: timm:<name>)"
    raise UsageError(f"unknown model {name!r}{hint}")


def specs() -> dict[str, ModelSpec]:
    return dict(_SPECS)


def builder(name: str) -> Callable:
    return _BUILDERS[name]
