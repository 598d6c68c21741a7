"""Weights: every supported checkpoint wrapper loads with identical outputs; code never runs;
mismatches are named; synthetic weights are deterministic and free of denormals."""
from __future__ import annotations

import os

import pytest
import torch

from pfdeploy.errors import UserError
from pfdeploy.weights import synthetic_images
from pfdeploy.zoo import create_model, get_spec


@pytest.fixture(scope="module")
def source_model():
    return create_model("pf_pit_ti", seed=3)


@pytest.fixture(scope="module")
def images():
    spec = get_spec("pf_pit_ti")
    return synthetic_images(2, spec.input_size, spec.mean, spec.std, seed=7)


def _save(tmp_path, name, obj):
    path = tmp_path / name
    torch.save(obj, path)
    return path


@pytest.mark.parametrize("wrapper", ["plain", "state_dict", "model", "module_prefix", "wrapped_module_prefix", "safetensors"])
def test_checkpoint_wrappers_load_with_identical_outputs(tmp_path, source_model, images, wrapper):
    sd = source_model.state_dict()
    if wrapper == "plain":
        path = _save(tmp_path, "w.pth", sd)
    elif wrapper == "state_dict":
        path = _save(tmp_path, "w.pth", {"state_dict": sd, "epoch": 300, "arch": "pit_ti_max"})
    elif wrapper == "model":
        path = _save(tmp_path, "w.pth", {"model": sd, "optimizer": {"lr": 0.1}})
    elif wrapper == "module_prefix":
        path = _save(tmp_path, "w.pth", {f"module.{k}": v for k, v in sd.items()})
    elif wrapper == "wrapped_module_prefix":
        path = _save(tmp_path, "w.pth", {"state_dict": {f"module.{k}": v for k, v in sd.items()}})
    else:
        from safetensors.torch import save_file

        path = tmp_path / "w.safetensors"
        save_file({k: v.contiguous() for k, v in sd.items()}, str(path))
    loaded = create_model("pit_ti_max", weights=path)
    assert loaded.pfdeploy_weights_source.startswith("sha256:") and len(loaded.pfdeploy_weights_source) == 71
    with torch.no_grad():
        assert torch.equal(loaded(images), source_model(images))


def test_torchvision_resnet50_checkpoint_is_converted_and_equivalent(tmp_path):
    import torchvision

    tv = torchvision.models.resnet50(weights=None).eval()
    with torch.no_grad():  # non-trivial BN statistics so that a wrong mapping shows
        for m in tv.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.uniform_(-0.1, 0.1)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.2, 0.5)
    path = _save(tmp_path, "tv.pth", tv.state_dict())
    ours = create_model("resnet50", weights=path)
    x = torch.randn(2, 3, 224, 224)
    with torch.no_grad():
        torch.testing.assert_close(ours(x), tv(x), rtol=1e-4, atol=1e-4)


class _Evil:
    def __reduce__(self):
        return (os.system, (f"touch {os.environ['PFDEPLOY_TEST_MARKER']}",))


def test_pickle_that_would_run_code_is_refused(tmp_path, monkeypatch):
    marker = tmp_path / "pwned"
    monkeypatch.setenv("PFDEPLOY_TEST_MARKER", str(marker))
    path = _save(tmp_path, "evil.pth", {"state_dict": {"x": torch.zeros(1)}, "payload": _Evil()})
    with pytest.raises(UserError, match="refused: unsafe"):
        create_model("pf_pit_ti", weights=path)
    assert not marker.exists()


@pytest.mark.slow  # over 3 s: the default run stays under 5 min; .ci/run's slow pass runs it
def test_mismatch_names_missing_unexpected_and_misshaped_keys(tmp_path):
    sd = create_model("pf_resnet50_max").state_dict()
    path = _save(tmp_path, "max.pth", sd)
    with pytest.raises(UserError) as err:
        create_model("pf_resnet50_hybrid", weights=path)
    msg = str(err.value)
    assert "18 missing: layer2.0.conv_block.1.0.weight" in msg
    assert "does not match the model" in msg
    sd2 = dict(sd)
    sd2["fc.weight"] = torch.zeros(10, 2048)
    sd2["extra.weight"] = torch.zeros(1)
    with pytest.raises(UserError) as err:
        create_model("pf_resnet50_max", weights=_save(tmp_path, "bad.pth", sd2))
    assert "1 unexpected: extra.weight" in str(err.value)
    assert "1 mis-shaped: fc.weight (10, 2048) != (1000, 2048)" in str(err.value)


@pytest.mark.parametrize("content,match", [
    (b"not a checkpoint at all", "not a readable PyTorch checkpoint"),
    (b"", "not a readable PyTorch checkpoint"),
])
def test_corrupt_files_give_clear_errors(tmp_path, content, match):
    path = tmp_path / "bad.pth"
    path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        create_model("pf_pit_ti", weights=path)
    bad_st = tmp_path / "bad.safetensors"
    bad_st.write_bytes(content)
    with pytest.raises(UserError, match="safetensors"):
        create_model("pf_pit_ti", weights=bad_st)
    with pytest.raises(UserError, match="not found"):
        create_model("pf_pit_ti", weights=tmp_path / "missing.pth")


def test_truncated_checkpoint(tmp_path, source_model):
    path = _save(tmp_path, "w.pth", source_model.state_dict())
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(UserError, match="not a readable"):
        create_model("pf_pit_ti", weights=path)


@pytest.mark.integration  # three full models built and calibrated
def test_synthetic_weights_are_deterministic():
    a = create_model("mobilenetv2_100", seed=1).state_dict()
    b = create_model("mobilenetv2_100", seed=1).state_dict()
    c = create_model("mobilenetv2_100", seed=2).state_dict()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert not torch.equal(a["classifier.weight"], c["classifier.weight"])


@pytest.mark.integration  # full-size models built, calibrated and run with hooks on every module
@pytest.mark.parametrize("name", ["pf_resnet50_max", "resnet50"])
def test_synthetic_weights_keep_activations_normal(name):
    """No denormal floats anywhere in the network (they make CPU timings meaningless), and
    top-1 depends on the input (so parity's top-1 agreement means something)."""
    spec = get_spec(name)
    model = create_model(name)
    tiny = torch.finfo(torch.float32).tiny
    denormals = []

    def hook(mod, args, out):
        if isinstance(out, torch.Tensor):
            denormals.append(int(((out != 0) & (out.abs() < tiny)).sum()))

    handles = [m.register_forward_hook(hook) for m in model.modules()]
    x = synthetic_images(8, spec.input_size, spec.mean, spec.std, seed=2024)
    with torch.no_grad():
        y = model(x)
    for h in handles:
        h.remove()
    assert sum(denormals) == 0
    assert len(set(y.argmax(1).tolist())) >= 4
    bn = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    assert all(float(m.running_var.mean()) != 1.0 for m in bn)  # calibrated, not defaults
