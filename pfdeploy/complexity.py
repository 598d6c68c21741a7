"""Parameters and multiply-accumulates, computed (not copied) from the module.

MACs: torch.utils.flop_counter.FlopCounterMode at batch 1 and the model's input size, total
FLOPs / 2. Like the release table, it counts convolutions and matrix products; pooling,
normalisation and activations count zero.
"""
from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Complexity:
    params: int
    macs: int

    @property
    def params_m(self) -> float:
        return self.params / 1e6

    @property
    def macs_g(self) -> float:
        return self.macs / 1e9

    def to_dict(self) -> dict:
        return {"params": self.params, "macs": self.macs,
                "params_m": round(self.params_m, 3), "macs_g": round(self.macs_g, 3)}


def count_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def count_macs(model, input_size) -> int:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    x = torch.zeros(1, *input_size)
    counter = FlopCounterMode(display=False)
    # no torch.no_grad(): FlopCounterMode's module tracker asserts on some models (timm's PiT)
    # when autograd is off. Batch 1 keeps the autograd graph small.
    with counter:
        model(x)
    return counter.get_total_flops() // 2


def complexity(model, input_size) -> Complexity:
    return Complexity(count_params(model), count_macs(model, input_size))


def complexity_of(name: str) -> Complexity:
    """Params and MACs of a zoo model (built on the meta device where possible, so no weights
    are materialised for params; MACs need a real forward pass at batch 1)."""
    from .zoo import build_architecture, get_spec

    spec = get_spec(name)
    model = build_architecture(spec.name).eval()
    return complexity(model, spec.input_size)
