"""`pfdeploy info MODEL`: architecture summary, computed params/MACs beside the published ones."""
from __future__ import annotations

import click

from .options import weights_option
from ..render import Col, emit, fmt, print_line, print_table


@click.command("info")
@click.argument("model")
@weights_option(extra_help=" Given, the checkpoint is loaded (and so validated).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(model, weights, as_json):
    """Architecture summary, params, MACs, baselines and published figures of one model."""
    from ..complexity import complexity
    from ..zoo import build_architecture, create_model, get_spec

    spec = get_spec(model)
    net = create_model(spec.name, weights=weights) if weights and weights != "synthetic" else build_architecture(spec.name).eval()
    cx = complexity(net, spec.input_size)
    counts: dict[str, int] = {}
    for m in net.modules():
        if not list(m.children()):
            counts[type(m).__name__] = counts.get(type(m).__name__, 0) + 1
    data = {**spec.to_dict(), "computed": cx.to_dict(), "layers": counts,
            "weights_source": getattr(net, "pfdeploy_weights_source", "synthetic:0 (default)")}

    def human(console):
        pub = spec.published
        print_line(console, (spec.name, "bold"), f" ({spec.family}): {spec.description}")
        if spec.aliases:
            print_line(console, f"aliases: {', '.join(spec.aliases)}")
        print_line(console, f"input {'x'.join(map(str, spec.input_size))}, {spec.interpolation}, crop {spec.crop_pct}, "
                   f"mean {spec.mean}, std {spec.std}")
        print_table(console, [Col(""), Col("computed", right=True), Col("published", right=True)],
                    [("params (M)", fmt(cx.params_m, 2), fmt(pub.params_m, 1)),
                     ("MACs (G)", fmt(cx.macs_g, 3), fmt(pub.macs_g, 2)),
                     ("ImageNet top-1", "-", fmt(pub.top1, 1)),
                     ("GPU latency (ms)", "-", fmt(pub.gpu_ms, 1)),
                     ("throughput", "-", pub.throughput or "-")])
        if pub.source:
            print_line(console, f"published: {pub.source}")
        print_line(console, "baselines: " + (", ".join(spec.baselines) or "-"))
        print_line(console, "layers: " + ", ".join(f"{k} x{v}" for k, v in sorted(counts.items())))

    emit(data, as_json, human)
