"""The release's checkpoints (naver-ai/PfLayer, "Pretrained models"): what each file is and which
zoo model it fits. A table and its look-ups; nothing here downloads or reads a file."""
from __future__ import annotations

from dataclasses import dataclass

from ..errors import UsageError

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


def get_checkpoint(name: str) -> Checkpoint:
    if name not in CHECKPOINTS:
        import difflib

        near = difflib.get_close_matches(name, CHECKPOINTS, n=1)
        hint = f" (did you mean {near[0]}?)" if near else ""
        raise UsageError(f"unknown release checkpoint {name!r}{hint}; choose from {', '.join(CHECKPOINTS)}")
    return CHECKPOINTS[name]


def checkpoint_for(model: str, recipe: str) -> Checkpoint:
    """The release checkpoint of `recipe` ('release' or 'release+') for zoo model `model`."""
    from ..zoo.catalog import canonical_name

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
