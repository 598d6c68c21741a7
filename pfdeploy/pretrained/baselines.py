"""A baseline's own pretrained weights from timm (`--weights pretrained`): its tag, and the model
loaded through timm's hub; offline that fails with one line."""
from __future__ import annotations

from ..errors import UsageError, UserError
from ..zoo.spec import PF_FAMILY
from .cache import error_reason



def pretrained_source(model: str) -> str:
    """The timm pretrained tag a baseline loads with --weights pretrained."""
    from ..zoo.catalog import canonical_name, get_spec

    name = canonical_name(model)
    spec = get_spec(name)
    if spec.family == PF_FAMILY:
        raise UsageError(f"{name}: timm has no pretrained weights for the parameter-free models; use "
                         "--weights release (or release+)")
    if name == "dw_resnet50":
        raise UsageError("dw_resnet50 is pfdeploy's own controlled baseline: no pretrained weights exist")
    timm_name = name[5:] if name.startswith("timm:") else name
    return f"pretrained:timm/{timm_name}"


def load_pretrained(model: str, overlay_file: str | None = None):
    """A baseline with timm's pretrained weights (timm downloads them from its hub), converted to
    the zoo's layout where needed (resnet50). Offline: one UserError line."""
    import timm

    from ..weights import check_state_dict, torchvision_to_release
    from ..zoo.catalog import build_architecture, canonical_name

    name = canonical_name(model)
    src = pretrained_source(name)
    timm_name = src.split("/", 1)[1]
    kwargs = {"pretrained_cfg_overlay": {"file": overlay_file}} if overlay_file else {}
    try:
        net = timm.create_model(timm_name, pretrained=True, **kwargs)
    except Exception as exc:  # hub, network and file errors come in many types
        raise UserError(f"{name}: cannot load timm's pretrained weights for {timm_name}: {error_reason(exc)} "
                        "(offline? timm downloads them from the Hugging Face hub)") from None
    if name == "resnet50":  # pfdeploy's resnet50 uses the release's layout
        sd = torchvision_to_release(net.state_dict())
        net = build_architecture(name)
        check_state_dict(net, sd, f"timm {timm_name} pretrained")
        net.load_state_dict(sd, strict=True)
    net.eval()
    net.pfdeploy_weights_source = src
    return net
