"""`pfdeploy check ARTIFACT --target trt`: ONNX operators and opsets against onnx-tensorrt's list."""
from __future__ import annotations

import click

from ..errors import UserError
from ..render import emit, esc, table


@click.command("check")
@click.argument("artifact", type=click.Path())
@click.option("--target", type=click.Choice(["trt", "tensorrt"]), default="trt", show_default=True,
              help="Runtime to check against.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(artifact, target, as_json):
    """Check an artifact (or any .onnx) against TensorRT's ONNX parser's supported operators."""
    from ..exporters.check import check_trt

    report = check_trt(artifact)
    data = report.to_dict()

    def human(console):
        t = report.table
        console.print(f"{esc(report.path)}: opset {report.opsets.get('ai.onnx')}, {sum(report.ops.values())} nodes, "
                      f"{len(report.ops)} operator types; checked against onnx-tensorrt's operator list for "
                      f"TensorRT {t['tensorrt_version']} (opset {t['opset_min']}-{t['opset_max']})")
        if report.problems:
            console.print(table(["kind", "operator", "nodes", "problem"],
                                [(p["kind"], p["op"] or "-", ", ".join(p["nodes"][:3]) or "-", p["detail"])
                                 for p in report.problems], title="will not parse in TensorRT"))
        else:
            console.print("[green]every operator and the opset are supported by TensorRT's ONNX parser[/green]")
        if report.notes:
            console.print("restrictions of the operators used (the parser checks them at build time):")
            for n in report.notes:
                console.print(f"  {esc(n['op'])}: {esc(n['restrictions'])}")

    emit(data, as_json, human)
    if not report.ok:
        raise UserError(f"{len(report.problems)} problem(s): TensorRT's ONNX parser is not expected to accept {report.path}")
