"""pfdeploy: export and benchmark the parameter-free networks of "Learning Features with
Parameter-Free Layers" (ICLR 2022) against depthwise-convolution and standard baselines.

Public API (heavy imports happen on first use):
    create_model(name, weights=None, seed=0) -> torch.nn.Module (eval mode)
    list_models(family=None) -> list[ModelSpec]
    get_spec(name) -> ModelSpec
"""
from __future__ import annotations

__version__ = "0.2.0"

__all__ = ["__version__", "create_model", "list_models", "get_spec"]


def create_model(name: str, weights=None, seed: int = 0):
    from .zoo import create_model as _create

    return _create(name, weights=weights, seed=seed)


def list_models(family: str | None = None):
    from .zoo import list_models as _list

    return _list(family)


def get_spec(name: str):
    from .zoo import get_spec as _get

    return _get(name)
