"""`pfdeploy models`: the zoo as a table or JSON."""
from __future__ import annotations

import click

from ..render import Col, emit, fmt, print_line, print_table
from ..zoo import FAMILIES, list_models


# priority order for a terminal (0: always); the input size goes into the title when shared
COLUMNS = [Col("model"), Col("family", 1), Col("aliases", 7, wrap=True), Col("input", 6, fold="input {}"),
           Col("params M*", 2, right=True), Col("MACs G*", 3, right=True), Col("top-1*", 4, right=True),
           Col("baselines", 5, wrap=True)]


@click.command("models")
@click.option("--family", type=click.Choice(FAMILIES), help="Only models of this family.")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
@click.option("--wide", is_flag=True, help="Every column, even where the terminal is narrower.")
def command(family, as_json, wide):
    """List the model zoo: parameter-free models and their baselines."""
    specs = list_models(family)
    data = [s.to_dict() for s in specs]

    def human(console):
        rows = [(s.name, s.family, ", ".join(s.aliases) or "-", "x".join(map(str, s.input_size[1:])),
                 fmt(s.published.params_m, 1), fmt(s.published.macs_g, 2), fmt(s.published.top1, 1),
                 ", ".join(s.baselines) or "-") for s in specs]
        print_table(console, COLUMNS, rows, title="pfdeploy model zoo", wide=wide)
        print_line(console, "* published figures; `pfdeploy info MODEL` computes params and MACs. "
                            "Any timm model: timm:<name>.")

    emit(data, as_json, human)
