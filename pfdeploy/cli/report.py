"""`pfdeploy report --out DIR`: build the static HTML dashboard from the results store."""
from __future__ import annotations

import click


@click.command("report")
@click.option("--out", "out", required=True, type=click.Path(), metavar="DIR",
              help="Directory to write the site into (created; a previous report there is replaced).")
@click.option("--store", "store_url", metavar="URL",
              help="Results store (path, sqlite:///..., postgresql://...); default $PFDEPLOY_STORE or "
                   "./pfdeploy-results.db.")
@click.option("--title", default=None, help="Title shown on every page.")
@click.option("--threshold", type=float, default=0.05, show_default=True,
              help="Threshold of the regression/improvement markers on the History page.")
@click.option("--json", "as_json", is_flag=True, help="Print what was written as JSON.")
def command(out, store_url, title, threshold, as_json):
    """Build a static, self-contained HTML dashboard (Overview, History, Runs) from the results
    store. Open DIR/index.html in a browser: it needs no server and no network."""
    from ..errors import UsageError
    from ..render import emit
    from ..report import build_report

    if not 0 < threshold < 1:
        raise UsageError(f"--threshold must be between 0 and 1 (0.05 = 5%), not {threshold}")
    summary = build_report(out, store_url=store_url, title=title, threshold=threshold)

    def human(console):
        from rich.text import Text

        console.print(Text(f"report: {summary.runs} run(s), {summary.sections} machine/device overview(s), "
                           f"{summary.cases} case histories"))
        console.print(Text(f"open {summary.out / 'index.html'}"))

    emit(summary.to_dict(), as_json, human)
