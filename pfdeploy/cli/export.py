"""`pfdeploy export MODEL --to TARGET`: a verified artifact with its manifest. The targets are the
registry's (`pfdeploy.exporters.targets`: onnx, openvino, trt and every installed plugin's)."""
from __future__ import annotations

import click

from .options import weights_option
from ..render import emit, err_console, esc, fmt, table


def parity_rows(parity: dict | None) -> list:
    if not parity:
        return []
    rows = []
    for b, f in sorted(parity["per_batch"].items(), key=lambda kv: int(kv[0])):
        rows.append((b, f["n"], f"{f['max_abs']:.2e}", f"{f['max_rel']:.2e}", f"{f['cosine_min']:.6f}", fmt(f["top1"], 3)))
    o = parity["overall"]
    rows.append(("all", o["n"], f"{o['max_abs']:.2e}", f"{o['max_rel']:.2e}", f"{o['cosine_min']:.6f}", fmt(o["top1"], 3)))
    return rows


PARITY_COLUMNS = ["batch", "inputs", "max abs err", "max rel err", "cosine (min)", "top-1 agree"]


class TargetParam(click.ParamType):
    """--to: a target of the registry (built-in or a plugin's), checked by the export itself (an
    unknown name is one usage line with the choices and a "did you mean"); shell completion offers
    every registered name."""

    name = "target"

    def shell_complete(self, ctx, param, incomplete):
        from click.shell_completion import CompletionItem

        from ..exporters.targets import target_names

        return [CompletionItem(n) for n in target_names() if n.startswith(incomplete)]


def _targets_help() -> str:
    from ..exporters.targets import target_names

    names = [f"{n} (tensorrt)" if n == "trt" else n for n in target_names()]  # reads entry points, imports none
    return " | ".join(names) + "; plugins add more (entry points `pfdeploy.targets`)."


def summary(art) -> dict:
    m = art.manifest
    return {"path": str(art.path), "model_file": str(art.model_file), "model": m["model"]["name"],
            "target": m["target"], "precision": m["precision"], "status": m["status"], "sha256": m["sha256"],
            "batch": m["exporter"]["batch"], "opset": m["exporter"].get("opset"),
            "export_seconds": m.get("export_seconds"), "parity": m.get("parity"), "manifest": m}


def show(console, art) -> None:
    m = art.manifest
    b = m["exporter"]["batch"]
    batch = f"dynamic {b['min']}:{b['opt']}:{b['max']}" if b["dynamic"] else f"static {b['min']}"
    console.print(f"[bold]{esc(m['model']['name'])}[/bold] -> {esc(m['target'])} {esc(m['precision'])} "
                  f"(opset {esc(m['exporter'].get('opset'))}, batch {esc(batch)}, weights {esc(m['weights']['source'])})")
    console.print(f"artifact: {esc(art.path)}")
    console.print(f"model file: {esc(art.model_file)}  sha256 {esc(m['sha256'])}")
    if m.get("export_seconds") is not None:
        console.print(f"export time: {m['export_seconds']:.1f} s")
    p = m.get("parity")
    if p:
        console.print(table(PARITY_COLUMNS, parity_rows(p), title=f"parity vs PyTorch ({p['inputs']} inputs)",
                            justify_right=PARITY_COLUMNS[1:]))
    status = {"ok": "[green]parity ok[/green]", "failed": "[red]parity FAILED[/red]",
              "unverified": "[yellow]not verified (--no-verify)[/yellow]",
              "inconclusive": "[yellow]parity inconclusive[/yellow]"}[m["status"]]
    console.print(status)
    if m["status"] == "inconclusive":
        from ..exporters.pipeline import inconclusive_note

        console.print(esc(inconclusive_note(art)))
    base = (p or {}).get("baseline")
    if base:
        b = base["overall"]
        console.print(f"baseline ({esc(base['what'])}): max abs {b['max_abs']:.2e}, cosine min {b['cosine_min']:.6f}, "
                      f"top-1 {b['top1']:.3f}")


@click.command("export")
@click.argument("model")
@click.option("--to", "target", required=True, type=TargetParam(), metavar="TARGET", help=_targets_help())
@click.option("--precision", default="fp32", show_default=True,
              help="fp32 | fp16 | int8 (trt also tf32); a plugin's target says its own.")
@click.option("--int8-recipe", "recipe", default=None, metavar="RECIPE",
              help="int8 ONNX only: onnxruntime (U8S8 QDQ, ONNX Runtime's x86 recipe; the default) or tensorrt "
                   "(symmetric S8S8 QDQ with float biases, what TensorRT engines are built from).")
@click.option("--batch", type=int, default=None, help="Static batch size.")
@click.option("--dynamic-batch", default=None, metavar="MIN:OPT:MAX",
              help="Dynamic batch axis range (default 1:8:64; OPT is TensorRT's tuning point).")
@weights_option()
@click.option("--seed", type=int, default=0, show_default=True, help="Seed of the synthetic weights.")
@click.option("--calib", type=click.Path(file_okay=False), default=None,
              help="Folder of calibration images for int8 (default: synthetic images).")
@click.option("--calib-size", type=click.IntRange(min=1), default=None, help="Number of calibration images (default 64 synthetic, or all in --calib).")
@click.option("--out", type=click.Path(), default=None,
              help="Also copy the artifact to this directory (new or empty; with --force, a previous artifact "
                   "there is replaced; other files are never deleted).")
@click.option("--cache-dir", type=click.Path(file_okay=False), default=None,
              help="Artifact cache (default $PFDEPLOY_CACHE_DIR or the user cache directory).")
@click.option("--force", is_flag=True, help="Re-export even if the cache holds this artifact (and replace a previous "
                                           "artifact in --out).")
@click.option("--no-verify", is_flag=True, help="Skip the parity check against PyTorch.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(model, target, precision, recipe, batch, dynamic_batch, weights, seed, calib, calib_size, out,
            cache_dir, force, no_verify, as_json):
    """Export MODEL to ONNX, OpenVINO, TensorRT or a plugin's target, verified against PyTorch."""
    from ..exporters.pipeline import get_artifact

    def progress(msg):
        err_console.print(f"[dim]{esc(msg)}[/dim]")

    art = get_artifact(model, target, precision, batch=batch, dynamic_batch=dynamic_batch, weights=weights,
                       seed=seed, cache_dir=cache_dir, force=force, verify=not no_verify, out=out, calib=calib,
                       calib_size=calib_size, recipe=recipe, progress=progress)
    emit(summary(art), as_json, lambda console: show(console, art))
