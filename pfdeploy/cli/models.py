"""`pfdeploy models`: the zoo as a table or JSON."""
from __future__ import annotations

import click

from ..render import emit, fmt, table
from ..zoo import FAMILIES, list_models


@click.command("models")
@click.option("--family", type=click.Choice(FAMILIES), help="Only models of this family.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def command(family, as_json):
    """List the model zoo: parameter-free models and their baselines."""
    specs = list_models(family)
    data = [s.to_dict() for s in specs]

    def human(console):
        rows = [(s.name, s.family, ", ".join(s.aliases) or "-", "x".join(map(str, s.input_size[1:])),
                 fmt(s.published.params_m, 1), fmt(s.published.macs_g, 2), fmt(s.published.top1, 1),
                 ", ".join(s.baselines) or "-") for s in specs]
        console.print(table(["model", "family", "aliases", "input", "params M*", "MACs G*", "top-1*", "baselines"],
                            rows, title="pfdeploy model zoo", justify_right=["params M*", "MACs G*", "top-1*"]))
        console.print("* published figures; `pfdeploy info MODEL` computes params and MACs. "
                      "Any timm model: timm:<name>.")

    emit(data, as_json, human)
