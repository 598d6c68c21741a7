"""`pfdeploy weights`: the PfLayer release's pretrained checkpoints: list, fetch, verify."""
from __future__ import annotations

import click

from ..render import Col, emit, fmt, print_line, print_table

# priority order for a terminal (0: always shown)
LIST_COLUMNS = [Col("checkpoint"), Col("model", 1), Col("--weights"), Col("top-1 %", 2, right=True),
                Col("top-5 %", 4, right=True), Col("training", 5, wrap=True, min=12), Col("cached", 1),
                Col("sha256", 3)]


@click.group("weights")
def command():
    """The release's pretrained checkpoints: list them, fetch one into the cache, verify it.

    Commands that take --weights accept `release` (or `release+` for the longer-trained ResNets)
    and fetch the checkpoint on first use. PFDEPLOY_WEIGHTS_MIRROR=URL fetches URL/<file> instead
    of Google Drive."""


@command.command("list")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of a table.")
@click.option("--wide", is_flag=True, help="Table: every column, even where the terminal is narrower.")
def list_(as_json, wide):
    """Every released checkpoint, the zoo model it fits, its published accuracy, and whether it is cached."""
    from ..pretrained import catalogue, weights_dir

    rows = catalogue()

    def human(console):
        print_table(console, LIST_COLUMNS,
                    [(r["name"], r["model"], r["weights"], fmt(r["top1"], 1), fmt(r["top5"], 1), r["training"],
                      ("yes", "green") if r["cached"] else "no", (r["sha256"] or "-")[:12]) for r in rows],
                    title="PfLayer release checkpoints (ImageNet-1k val, published)", wide=wide)
        print_line(console, f"cache: {weights_dir()}")

    emit(rows, as_json, human)


@command.command("fetch")
@click.argument("names", nargs=-1, required=True, metavar="NAME...")
@click.option("--force", is_flag=True, help="Download again even if cached (the pinned sha256 must still match).")
def fetch_(names, force):
    """Download release checkpoints into the cache (written to a temporary file, checked, renamed)."""
    from ..pretrained import fetch, get_checkpoint, source_url

    for name in names:
        get_checkpoint(name)  # every name checked before any download
    for name in names:
        click.echo(f"{name}: {source_url(get_checkpoint(name))}", err=True)
        path = fetch(name, force=force, quiet=False)
        click.echo(f"{name}: {path}")


@command.command("verify")
@click.argument("names", nargs=-1, metavar="[NAME...]")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of lines.")
def verify_(names, as_json):
    """Re-check cached checkpoints (all cached ones by default): sha256 against the pin, keys and
    shapes against the zoo model."""
    from ..errors import UserError
    from ..pretrained import catalogue, verify

    names = names or [r["name"] for r in catalogue() if r["cached"]]
    if not names:
        raise UserError("no release checkpoint is cached; run `pfdeploy weights fetch NAME`")
    results = [verify(n) for n in names]

    def human(console):
        for r in results:
            print_line(console, f"{r['name']}: ", ("ok", "green"), f" ({r['model']}, sha256 {r['sha256'][:16]}..., pinned)")

    emit(results, as_json, human)
