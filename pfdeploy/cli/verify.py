"""`pfdeploy verify ARTIFACT [--images DIR]`: re-run parity of an artifact against PyTorch."""
from __future__ import annotations

import click

from ..errors import UserError
from ..render import emit


def verify_artifact(path, images=None, weights=None, limit: int | None = None, labels=None) -> dict:
    """Re-run parity for the artifact at `path` on seeded synthetic inputs (as at export) and,
    with `images`, on a folder of real images preprocessed per the model's spec. Returns
    {"artifact", "synthetic", "images", "accuracy"}; each parity record has "passed". With labelled
    images (class subfolders, or `labels` FILE) also top-1/top-5 of the artifact and of PyTorch,
    recorded beside the artifact in accuracy.json; the manifest is not modified."""
    from ..exporters.artifact import load_artifact
    from ..exporters.parity import artifact_runner, run_parity
    from ..exporters.pipeline import model_for_artifact
    from ..exporters.settings import BatchSpec
    from ..zoo import get_spec

    art = load_artifact(path)
    spec = get_spec(art.model_name)
    model = model_for_artifact(art, weights)
    runner = artifact_runner(art)
    b = art.manifest["exporter"]["batch"]
    batch = BatchSpec(b["dynamic"], b["min"], b["opt"], b["max"])
    result = {"artifact": str(art.path), "model": art.model_name, "target": art.target,
              "precision": art.precision, "synthetic": run_parity(model, spec, runner, batch.parity_batches(),
                                                                  art.precision), "images": None}
    result["accuracy"] = None
    if labels is not None and images is None:
        raise UserError("--labels needs --images DIR (the folder the labelled paths are relative to)")
    if limit is not None and limit < 1:
        raise UserError(f"--limit must be at least 1, got {limit}")
    if images is not None:
        from ..exporters.images import list_images, preprocess

        targets = None
        files = list_images(images)
        if labels is not None or _has_class_folders(images, files):
            from ..exporters.accuracy import labelled_images

            files, targets = labelled_images(images, labels)
        files, targets = files[: limit or None], (targets[: limit or None] if targets else None)
        x = preprocess(files, spec)
        step = batch.min if not batch.dynamic else min(batch.max, 8)
        chunks = []
        for i in range(0, x.shape[0], step):
            part = x[i: i + step]
            if not batch.dynamic and part.shape[0] < step:  # a static engine takes exactly its batch
                import torch

                pad = part[-1:].expand(step - part.shape[0], *part.shape[1:])
                part = torch.cat([part, pad])
            chunks.append((part.shape[0], part))
        rec = run_parity(model, spec, runner, [], art.precision, inputs=chunks, label=f"images:{images}")
        rec["images"] = len(files)
        result["images"] = rec
        if targets is not None:
            from ..exporters import accuracy

            acc = accuracy.measure(model, runner, x, targets, step, static=not batch.dynamic)
            result["accuracy"] = accuracy.record(art.path, acc, files, images,
                                                 art.manifest.get("weights", {}).get("source"),
                                                 art.manifest.get("sha256"))
    return result


def _has_class_folders(images, files) -> bool:
    from pathlib import Path

    root = Path(images).expanduser()
    return all(len(f.relative_to(root).parts) > 1 for f in files)


def verdict_cell(rec: dict):
    """The verdict of one parity record as styled text (its failures shown literally). Only the
    message of the record's own verdict is built: a passed record has no failures or baseline."""
    from rich.text import Text

    failures = "; ".join(rec.get("failures") or [])
    if rec["verdict"] == "passed":
        return Text("passed", style="green")
    if rec["verdict"] == "failed":
        return Text(f"FAILED: {failures}", style="red")
    base = "; ".join((rec.get("baseline") or {}).get("failures") or [])
    return Text(f"inconclusive: {failures}, and PyTorch with rounded weights misses too ({base})", style="yellow")


def verdict_markup(rec: dict) -> str:
    """verdict_cell as rich markup (user text escaped), for callers that print markup strings."""
    return verdict_cell(rec).markup


@click.command("verify")
@click.argument("artifact", type=click.Path())
@click.option("--images", type=click.Path(file_okay=False), default=None,
              help="Folder of real images: top-1 agreement between PyTorch and the artifact on them.")
@click.option("--weights", type=click.Path(dir_okay=False), default=None,
              help="The checkpoint the artifact was exported from, if not at its recorded path.")
@click.option("--labels", type=click.Path(dir_okay=False), default=None,
              help="Labels for --images: lines 'relative/path.jpg label' (ImageNet-1k index or synset id). "
                   "Class subfolders (n01440764/ or 0/) need no file. Gives top-1/top-5 of artifact and PyTorch.")
@click.option("--limit", type=click.IntRange(min=1), default=None, help="Use at most this many images (>= 1).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(artifact, images, weights, labels, limit, as_json):
    """Re-run parity of an artifact against PyTorch (optionally on real images)."""
    from .export import PARITY_COLUMNS, parity_rows
    from ..render import fmt, print_line, table

    res = verify_artifact(artifact, images, weights, limit, labels)

    def human(console):
        print_line(console, (res["model"], "bold"), f" {res['target']} {res['precision']}: {res['artifact']}")
        for key, title in (("synthetic", "seeded synthetic inputs"), ("images", "real images")):
            rec = res[key]
            if rec is None:
                continue
            console.print(table(PARITY_COLUMNS, parity_rows(rec), title=f"parity vs PyTorch on {title}",
                                justify_right=PARITY_COLUMNS[1:]))
            print_line(console, f"{title}: top-1 agreement {fmt(rec['overall'].get('top1'), 3)} over "
                       f"{rec['overall']['n']} inputs, ", verdict_cell(rec))

        acc = res.get("accuracy")
        if acc:
            print_line(console, f"accuracy on {acc['n']} labelled images: artifact top-1 {acc['top1'] * 100:.2f}% top-5 "
                       f"{acc['top5'] * 100:.2f}%, PyTorch top-1 {acc['torch_top1'] * 100:.2f}% top-5 "
                       f"{acc['torch_top5'] * 100:.2f}% (delta top-1 {acc['top1_delta'] * 100:+.2f} points)")

    emit(res, as_json, human)
    failed = [k for k in ("synthetic", "images") if res[k] is not None and res[k]["verdict"] == "failed"]
    if failed:
        raise UserError(f"parity failed on {' and '.join(failed)} inputs for {res['artifact']}")
