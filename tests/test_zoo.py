"""Model zoo: architecture fidelity to the official release, forward passes, params/MACs."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import pfdeploy
from pfdeploy.complexity import complexity
from pfdeploy.errors import UsageError
from pfdeploy.zoo import build_architecture, canonical_name, get_spec, list_models

# The release's key/shape listing: ../shared/pflayer/state_dict_keys.json beside the repository,
# with a verbatim copy in tests/data so that a clone without ../shared still runs the check.
SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "pflayer" / "state_dict_keys.json"
VENDORED = Path(__file__).resolve().parent / "data" / "state_dict_keys.json"
RELEASE = json.loads((SHARED if SHARED.is_file() else VENDORED).read_text())
RELEASED = [s for s in list_models() if s.release_name]
# the base-size transformers (~86M parameters each) take seconds to initialise and run: their forward
# pass is an `integration` test (.ci/run). The layout checks build every model on the meta device
# (shapes, no storage, no initialisation: instant), so they all stay in the default run.
BASE_SIZE = {"pf_vit_b", "pf_pit_b", "deit_base_patch16_224", "pit_b_224"}


def _sized(names):
    return [pytest.param(n, marks=pytest.mark.integration) if getattr(n, "name", n) in BASE_SIZE else n for n in names]


def test_vendored_release_listing_is_the_shared_one():
    if not SHARED.is_file():
        pytest.skip(f"{SHARED} not present; using the vendored copy")
    assert json.loads(VENDORED.read_text()) == json.loads(SHARED.read_text())


def test_every_released_model_is_in_the_zoo():
    assert sorted(s.release_name for s in RELEASED) == sorted(RELEASE)


@pytest.mark.parametrize("spec", RELEASED, ids=lambda s: s.name)
def test_state_dict_keys_and_shapes_equal_release(spec):
    with torch.device("meta"):
        model = build_architecture(spec.name)
    ours = {k: list(v.shape) for k, v in model.state_dict().items()}
    ref = RELEASE[spec.release_name]
    assert ours == ref["state_dict"]
    assert list(ours) == list(ref["state_dict"])  # same order too
    assert sum(p.numel() for p in model.parameters()) == ref["params"]


@pytest.mark.parametrize("spec", RELEASED, ids=lambda s: s.name)
def test_release_layout_loads_strict(spec):
    """A checkpoint in the release layout (keys from state_dict_keys.json) loads with strict=True
    (keys and shapes: the model and the checkpoint live on the meta device)."""
    ref = RELEASE[spec.release_name]["state_dict"]
    with torch.device("meta"):
        sd = {k: torch.zeros(shape) if shape else torch.tensor(0) for k, shape in ref.items()}
        model = build_architecture(spec.name)
    model.load_state_dict(sd, strict=True)


@pytest.mark.parametrize("name", _sized([s.name for s in list_models()]))
def test_forward_at_input_size(name):
    spec = get_spec(name)
    model = build_architecture(name).eval()
    with torch.no_grad():
        y = model(torch.zeros(1, *spec.input_size))
    assert y.shape == (1, 1000)
    assert torch.isfinite(y).all()


@pytest.mark.parametrize("name,params_m,macs_g", [
    ("resnet50", 25.6, 4.1), ("pf_resnet50_max", 14.2, 2.2), ("pf_resnet50_hybrid", 17.3, 2.6)])
def test_params_and_macs_match_release_table(name, params_m, macs_g):
    spec = get_spec(name)
    cx = complexity(build_architecture(name).eval(), spec.input_size)
    assert abs(cx.params_m - params_m) <= 0.1
    assert abs(cx.macs_g - macs_g) <= 0.05
    assert spec.published.params_m == params_m and spec.published.macs_g == macs_g


def test_depthwise_baseline_is_the_same_macro_architecture():
    dw = build_architecture("dw_resnet50")
    r50 = build_architecture("resnet50")
    assert list(dw.state_dict()) == list(r50.state_dict())
    convs = [m for n, m in dw.named_modules() if n.endswith("conv_block.0")]
    assert len(convs) == 16 and all(m.groups == m.in_channels == m.out_channels for m in convs)


def test_hybrid_uses_conv_only_in_the_three_stride2_blocks():
    model = build_architecture("pf_resnet50_hybrid")
    convs = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]
    assert convs == ["layer2.0.conv_block.1.0", "layer3.0.conv_block.1.0", "layer4.0.conv_block.1.0"]


def test_max_variant_has_no_spatial_parameters():
    model = build_architecture("pf_resnet50_max")
    assert not [m for m in model.modules() if isinstance(m, torch.nn.Conv2d) and m.kernel_size == (3, 3)]


def test_aliases_and_pf_resnet50_is_hybrid():
    assert canonical_name("pf_resnet50") == "pf_resnet50_hybrid"
    assert canonical_name("resnet50_max") == "pf_resnet50_max"
    assert canonical_name("pit_s_max") == "pf_pit_s"
    assert get_spec("vit_s_max").name == "pf_vit_s"


def test_specs_carry_baselines_and_family():
    assert set(get_spec("pf_resnet50_max").baselines) == {"resnet50", "dw_resnet50", "mobilenetv2_100", "efficientnet_b0"}
    assert get_spec("pf_vit_s").baselines == ("deit_small_patch16_224",)
    assert get_spec("pf_pit_s").baselines == ("pit_s_224",)
    for base in {b for s in list_models() for b in s.baselines}:
        get_spec(base)  # every named baseline is itself in the zoo
    assert {s.family for s in list_models()} == {"parameter-free", "depthwise", "conv", "attention"}
    assert [s.name for s in list_models("depthwise")] == ["dw_resnet50", "mobilenetv2_100", "efficientnet_b0"]


def test_unknown_model_suggests_close_matches():
    with pytest.raises(UsageError, match="did you mean.*pf_resnet50"):
        get_spec("pf_resnet5")
    with pytest.raises(UsageError, match="unknown family"):
        list_models("nope")


def test_timm_prefix_and_timm_registration():
    import timm

    spec = get_spec("timm:resnet18")
    assert spec.family == "conv" and spec.source == "timm"
    assert get_spec("timm:mobilenetv3_small_100").family == "depthwise"
    model = timm.create_model("pit_s_max")  # the release README's usage
    assert type(model).__name__ == "PiTMax"
    assert timm.create_model("vit_ti_max", num_classes=10).head.out_features == 10
    # pretrained=True fetches the release checkpoint (tests/test_pretrained.py); unreachable: one clear error
    import os

    from pfdeploy.errors import UserError

    os.environ["PFDEPLOY_WEIGHTS_MIRROR"] = "http://127.0.0.1:9/pflayer"  # discard port: nothing listens
    try:
        with pytest.raises(UserError, match="cannot download http://127.0.0.1:9/pflayer/vit_s_max.pth"):
            timm.create_model("vit_s_max", pretrained=True)
    finally:
        del os.environ["PFDEPLOY_WEIGHTS_MIRROR"]
    with pytest.raises(UsageError, match="unknown timm model"):
        get_spec("timm:resnet_does_not_exist")


def test_pit_resizes_position_embedding_for_other_input_sizes():
    model = build_architecture("pf_pit_ti").eval()
    with torch.no_grad():
        assert model(torch.zeros(1, 3, 256, 256)).shape == (1, 1000)


def test_create_model_public_api():
    model = pfdeploy.create_model("pf_vit_ti")
    assert not model.training
    assert model.pfdeploy_weights_source == "synthetic:0"
    assert "pf_resnet50_max" in [s.name for s in pfdeploy.list_models()]
